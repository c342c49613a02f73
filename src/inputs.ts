/**
 * Every input read and validated into one typed, frozen Config before
 * anything connects, driven by one table of the inputs (INPUTS). Secrets are
 * registered (and so masked) before any validation can throw. Each error
 * names the input and says what to write. The rules of the connection
 * strings, the collection and the names live in connection.ts,
 * collection.ts and identifiers.ts.
 */
import { parseAssumeRole, parseCollection, parseEndpoint, readAwsCredentials } from './collection.js';
import type { BackupType, Config, IfRunning, OnTimeout, PathStyle, S3Auth, VerifyMode } from './config.js';
import {
  connectionSecrets,
  optionalPem,
  parseConnectionString,
  safeDecode,
  transportWarnings,
} from './connection.js';
import { parseDatabaseList, parseRole } from './identifiers.js';
import { clip, InputError } from './errors.js';
import { parseAsOfSystemTime, parseDuration } from './time.js';
import { pruningEnabled } from './prune.js';
import type { SecretRegistry } from './secrets.js';

export type InputReader = (name: string) => string;
type Env = Readonly<Record<string, string | undefined>>;

export interface ReadResult {
  config: Config;
  warnings: string[];
  notices: string[];
}

const MAX_INPUT_LENGTH = 32 * 1024;
/** The default lifetime of an assumed role's session (role-duration-seconds: 3600). */
const DEFAULT_SESSION_MS = 3_600_000;

export interface InputSpec {
  readonly name: string;
  /** action.yml's `required`. */
  readonly required?: true;
  /** action.yml's `default`, which the runner passes when the input is unset and which an unset input reads as. */
  readonly default?: string;
  /** Registered (masked) before anything is validated. */
  readonly secret?: true;
  /** Belongs to the storage, so an `external://` collection (whose connection holds those settings) rejects it. */
  readonly storage?: true;
  /** Read as YAML 1.2 booleans are (true, True, TRUE, false…). */
  readonly kind?: 'boolean';
  /** The values it may take; anything else is rejected. */
  readonly choices?: readonly string[];
}

/**
 * Every input of action.yml, in its order: one row drives reading (with the
 * default), the secret list and the storage list. test/unit/action-yml.test.ts
 * holds it equal to action.yml (and to the defaults in docs/inputs.md); an
 * input added there is added here.
 */
export const INPUTS = [
  { name: 'connection-string', required: true, secret: true },
  { name: 'ca-cert' },
  { name: 'client-cert' },
  { name: 'client-key', secret: true },
  { name: 'collection', required: true },
  { name: 'aws-access-key-id', storage: true },
  { name: 'aws-secret-access-key', secret: true, storage: true },
  { name: 'aws-session-token', secret: true, storage: true },
  { name: 'aws-region', storage: true },
  { name: 's3-endpoint', storage: true },
  { name: 's3-path-style', default: 'auto', storage: true, choices: ['auto', 'true', 'false'] },
  { name: 's3-auth', default: 'specified', storage: true, choices: ['specified', 'implicit'] },
  { name: 'assume-role', storage: true },
  { name: 'backup-type', default: 'full', choices: ['full', 'incremental', 'auto'] },
  { name: 'full-backup-every' },
  { name: 'databases' },
  { name: 'as-of-system-time', default: '-10s' },
  { name: 'revision-history', default: 'true', kind: 'boolean' },
  { name: 'encryption-passphrase', secret: true },
  { name: 'kms-uri', secret: true },
  { name: 'grant-to' },
  { name: 'grant-connection-string', secret: true },
  { name: 'wait', default: 'true', kind: 'boolean' },
  { name: 'poll-interval', default: '5s' },
  { name: 'timeout' },
  { name: 'paused-timeout', default: '10m' },
  { name: 'on-timeout', default: 'cancel', choices: ['cancel', 'leave'] },
  { name: 'cancel-on-abort', default: 'true', kind: 'boolean' },
  { name: 'if-running', default: 'start', choices: ['start', 'attach', 'wait', 'fail'] },
  { name: 'verify', default: 'manifest', choices: ['none', 'manifest', 'files', 'restore'] },
  { name: 'verify-connection-string', secret: true },
  { name: 'prune-keep-last', storage: true },
  { name: 'prune-older-than', storage: true },
  { name: 'prune-dry-run', default: 'false', storage: true, kind: 'boolean' },
  { name: 'dry-run', default: 'false', kind: 'boolean' },
  { name: 'summary', default: 'true', kind: 'boolean' },
] as const satisfies readonly InputSpec[];

export type InputName = (typeof INPUTS)[number]['name'];

const SPECS: ReadonlyMap<string, InputSpec> = new Map(INPUTS.map((i) => [i.name, i]));

function spec(name: InputName): InputSpec {
  return SPECS.get(name)!;
}

export const SECRET_INPUTS: readonly InputName[] = INPUTS.filter((i) => 'secret' in i).map((i) => i.name);
export const STORAGE_INPUTS: readonly InputName[] = INPUTS.filter((i) => 'storage' in i).map((i) => i.name);

/** The input as given: trimmed, '' when unset. */
function given(getInput: InputReader, name: InputName): string {
  return (getInput(name) ?? '').trim();
}

/** The input, or its default when unset. */
function valueOf(getInput: InputReader, name: InputName): string {
  return given(getInput, name) || (spec(name).default ?? '');
}

/** Reads inputs for readConfig: each value no longer than MAX_INPUT_LENGTH. */
function inputReader(getInput: InputReader) {
  const checked = (name: InputName): string => {
    const v = given(getInput, name);
    if (v.length > MAX_INPUT_LENGTH)
      throw new InputError(name, `is ${v.length} characters long; the limit is ${MAX_INPUT_LENGTH}.`);
    return v;
  };
  return {
    /** As given, '' when unset. */
    given: checked,
    /** As given, or the default when unset. */
    read: (name: InputName): string => checked(name) || (spec(name).default ?? ''),
    /** A boolean input, its default when unset. */
    flag: (name: InputName): boolean => parseBoolean(checked(name), name, spec(name).default === 'true'),
    /** One of the input's choices, its default when unset. */
    choice: <T extends string>(name: InputName): T =>
      oneOf<T>(checked(name) || spec(name).default!, name, spec(name).choices as readonly T[]),
  };
}

export function readConfig(getInput: InputReader, env: Env, secrets: SecretRegistry): ReadResult {
  registerSecrets(getInput, env, secrets);
  const { given, read, flag, choice } = inputReader(getInput);
  const warnings: string[] = [];
  const notices: string[] = [];

  const collection = parseCollection(read('collection'), secrets);
  const external = collection.kind === 'external';
  if (external) rejectStorageInputsForExternal(given);

  const caCert = optionalPem(read('ca-cert'), 'ca-cert', 'CERTIFICATE');
  const clientCert = optionalPem(read('client-cert'), 'client-cert', 'CERTIFICATE');
  const clientKey = optionalPem(read('client-key'), 'client-key', 'PRIVATE KEY');
  if ((clientCert === undefined) !== (clientKey === undefined)) {
    throw new InputError(
      clientCert === undefined ? 'client-cert' : 'client-key',
      'client-cert and client-key go together: set both (PEM texts from secrets) or neither.',
    );
  }
  const tls = { caCert, clientCert, clientKey };
  const connection = parseConnectionString(read('connection-string'), 'connection-string', tls, true)!;
  const grantRaw = given('grant-connection-string');
  const grantConnection = grantRaw
    ? parseConnectionString(grantRaw, 'grant-connection-string', tls, true)!
    : connection;
  const verifyRaw = given('verify-connection-string');
  const verifyConnection = verifyRaw
    ? parseConnectionString(verifyRaw, 'verify-connection-string', tls, true)!
    : connection;
  for (const c of [
    connection,
    ...(grantRaw ? [grantConnection] : []),
    ...(verifyRaw ? [verifyConnection] : []),
  ])
    warnings.push(...transportWarnings(c));

  const s3Auth = choice<S3Auth>('s3-auth');
  const aws = external ? { source: 'none' as const } : readAwsCredentials(read, env, s3Auth, collection);
  const awsRegion = external
    ? undefined
    : read('aws-region') || env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
  if (awsRegion !== undefined && !/^[a-z0-9-]{2,32}$/.test(awsRegion)) {
    throw new InputError(
      'aws-region',
      `"${awsRegion}" is not an AWS region name. Write one such as us-east-1 or eu-west-1.`,
    );
  }
  const s3Endpoint = parseEndpoint(read('s3-endpoint'));
  const s3PathStyle = choice<PathStyle>('s3-path-style');
  const assumeRole = parseAssumeRole(read('assume-role'));

  const encryptionPassphrase = read('encryption-passphrase') || undefined;
  const kmsUri = parseKmsUri(read('kms-uri'));
  if (encryptionPassphrase !== undefined && kmsUri !== undefined) {
    throw new InputError(
      'kms-uri',
      'encryption-passphrase and kms-uri cannot both be set: choose one way to encrypt the backup.',
    );
  }
  const verify = choice<VerifyMode>('verify');
  if (verifyRaw !== '' && verify !== 'restore') {
    throw new InputError(
      'verify-connection-string',
      `names the cluster of the restore check, which runs only with verify: restore, and verify is ${verify}. Set verify: restore, or remove verify-connection-string.`,
    );
  }
  const pruneKeepLast = parsePositiveInt(read('prune-keep-last'), 'prune-keep-last');
  const pruneOlderThanMs = parseDurationInput(read('prune-older-than'), 'prune-older-than', {
    minMs: 60_000,
  });
  if (pruningEnabled({ pruneKeepLast, pruneOlderThanMs }) && verify === 'none') {
    throw new InputError(
      pruneKeepLast !== undefined ? 'prune-keep-last' : 'prune-older-than',
      'pruning deletes old backups only after the new one is verified, and verify is none. Set verify to manifest, files or restore, or remove the prune inputs.',
    );
  }
  if (s3Auth === 'specified' && !external) {
    notices.push(
      'The AWS credentials are handed to the cluster in the backup URI; CockroachDB keeps them in the job record until the job is garbage-collected.',
    );
  }
  const timeoutMs = parseDurationInput(read('timeout'), 'timeout', { minMs: 1 });
  if (aws.sessionToken) {
    // Temporary credentials last 1 h by default (configure-aws-credentials' role-duration-seconds):
    // warn only when this run may outlast them, else say it once in the log.
    if (timeoutMs === undefined || timeoutMs > DEFAULT_SESSION_MS) {
      warnings.push(
        `aws-session-token is set: temporary credentials expire (by default after 1 hour) and the backup must finish before they do, but ${timeoutMs === undefined ? 'no timeout is set' : `timeout is ${read('timeout')}`}. Set role-duration-seconds in configure-aws-credentials to outlast the backup, and a timeout no longer than that.`,
      );
    } else {
      notices.push(
        `aws-session-token is set: the run ends within timeout (${read('timeout')}), inside the default 1-hour lifetime of temporary credentials.`,
      );
    }
  }
  const backupType = choice<BackupType>('backup-type');
  const fullBackupEveryMs = parseDurationInput(read('full-backup-every'), 'full-backup-every', {
    minMs: 60_000,
  });
  if (fullBackupEveryMs !== undefined && backupType !== 'auto') {
    throw new InputError(
      'full-backup-every',
      `starts a new chain only with backup-type: auto, and backup-type is ${backupType}. Set backup-type: auto, or remove full-backup-every.`,
    );
  }
  const config: Config = {
    connection,
    grantConnection,
    grantConnectionGiven: grantRaw !== '',
    collection,
    aws,
    ...(awsRegion !== undefined ? { awsRegion } : {}),
    ...(s3Endpoint !== undefined ? { s3Endpoint } : {}),
    s3PathStyle,
    s3Auth,
    ...(assumeRole !== undefined ? { assumeRole } : {}),
    backupType,
    ...(fullBackupEveryMs !== undefined ? { fullBackupEveryMs } : {}),
    databases: parseDatabaseList(read('databases')),
    asOfSystemTime: parseAsOfSystemTime(read('as-of-system-time')),
    revisionHistory: flag('revision-history'),
    ...(encryptionPassphrase !== undefined ? { encryptionPassphrase } : {}),
    ...(kmsUri !== undefined ? { kmsUri } : {}),
    ...(read('grant-to') ? { grantTo: parseRole(read('grant-to'), 'grant-to') } : {}),
    wait: flag('wait'),
    pollIntervalMs: parseDurationInput(read('poll-interval'), 'poll-interval', {
      minMs: 100,
      maxMs: 600_000,
    })!,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    pausedTimeoutMs: parseDurationInput(read('paused-timeout'), 'paused-timeout', { minMs: 1000 })!,
    onTimeout: choice<OnTimeout>('on-timeout'),
    cancelOnAbort: flag('cancel-on-abort'),
    ifRunning: choice<IfRunning>('if-running'),
    verify,
    verifyConnection,
    verifyConnectionGiven: verifyRaw !== '',
    ...(pruneKeepLast !== undefined ? { pruneKeepLast } : {}),
    ...(pruneOlderThanMs !== undefined ? { pruneOlderThanMs } : {}),
    pruneDryRun: flag('prune-dry-run'),
    dryRun: flag('dry-run'),
    summary: flag('summary'),
  };
  return { config: deepFreeze(config), warnings, notices };
}

/**
 * Whether to write the job summary, for an ending that has no config (an input was rejected):
 * only an explicit false turns it off.
 */
export function summaryWanted(getInput: InputReader): boolean {
  return !FALSE.has(valueOf(getInput, 'summary'));
}

function registerSecrets(getInput: InputReader, env: Env, secrets: SecretRegistry): void {
  for (const name of SECRET_INPUTS) {
    const value = given(getInput, name);
    secrets.add(value);
    if (name.endsWith('connection-string')) for (const v of connectionSecrets(value)) secrets.add(v);
  }
  secrets.add(env.AWS_SECRET_ACCESS_KEY);
  secrets.add(env.AWS_SESSION_TOKEN);
  // A collection that carries a secret parameter is rejected (parseCollection); its text must not show in that error.
  const collection = given(getInput, 'collection');
  if (/AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN/i.test(collection)) {
    secrets.add(collection);
    for (const m of collection.matchAll(/(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=([^&]*)/gi)) {
      secrets.add(m[1]);
      secrets.add(safeDecode(m[1]!));
    }
  }
}

// ---- booleans, enums, numbers, durations -----------------------------------------------------------

const TRUE = new Set(['true', 'True', 'TRUE']);
const FALSE = new Set(['false', 'False', 'FALSE']);

/** YAML 1.2 core schema booleans, as core.getBooleanInput reads them. */
function parseBoolean(value: string, name: string, defaultValue: boolean): boolean {
  if (value === '') return defaultValue;
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw new InputError(name, `"${clip(value)}" is not a boolean. Write true or false.`);
}

function oneOf<T extends string>(value: string, name: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(name, `"${clip(value)}" is not one of ${allowed.join(', ')}. Write one of those.`);
}

function parsePositiveInt(value: string, name: string): number | undefined {
  if (value === '') return undefined;
  if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 1) {
    throw new InputError(name, `"${clip(value)}" is not a whole number of 1 or more. Write e.g. 7.`);
  }
  return Number(value);
}

function parseDurationInput(
  value: string,
  name: string,
  bounds: { minMs: number; maxMs?: number },
): number | undefined {
  if (value === '') return undefined;
  const ms = parseDuration(value);
  const example = 'such as 500ms, 90s, 5m, 1h30m, 30d or a number of seconds';
  if (ms === undefined)
    throw new InputError(name, `"${clip(value)}" is not a duration. Write one ${example}.`);
  if (ms < bounds.minMs)
    throw new InputError(name, `${value} is too short: the minimum is ${formatMs(bounds.minMs)}.`);
  if (bounds.maxMs !== undefined && ms > bounds.maxMs) {
    throw new InputError(name, `${value} is too long: the maximum is ${formatMs(bounds.maxMs)}.`);
  }
  return ms;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : ms < 60_000 ? `${ms / 1000}s` : `${ms / 60_000}m`;
}

/** With external://, each storage input must be unset or its default (a boolean in any of its spellings). */
function rejectStorageInputsForExternal(given: (name: InputName) => string): void {
  for (const input of STORAGE_INPUTS) {
    const v = given(input);
    const { kind, default: def } = spec(input);
    const isDefault = kind === 'boolean' ? (def === 'true' ? TRUE : FALSE).has(v) : v === def;
    if (v !== '' && !isDefault) {
      throw new InputError(
        input,
        'cannot be used with an external:// collection: the external connection holds the storage settings. Remove it.',
      );
    }
  }
}

function parseKmsUri(value: string): string | undefined {
  if (value === '') return undefined;
  if (!/^(aws-kms|aws|gs|azure-kms):\/\/\S+$/.test(value)) {
    throw new InputError(
      'kms-uri',
      'is not a KMS URI. Write one such as aws-kms:///arn:aws:kms:…?AUTH=implicit&REGION=us-east-1 (from a secret).',
    );
  }
  return value;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
