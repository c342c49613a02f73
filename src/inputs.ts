/**
 * Every input read and validated into one typed, frozen Config before
 * anything connects. Secrets are registered (and so masked) before any
 * validation can throw. Each error names the input and says what to write.
 */
import { microsToIso, parseClusterTime } from './job.js';
import { pruningEnabled } from './prune.js';
import type { SecretRegistry } from './secrets.js';
import type {
  AsOfSystemTime,
  AwsCredentials,
  BackupType,
  Collection,
  Config,
  ConnectionConfig,
  IfRunning,
  OnTimeout,
  PathStyle,
  S3Auth,
  SslMode,
  VerifyMode,
} from './config.js';

export type InputReader = (name: string) => string;
type Env = Readonly<Record<string, string | undefined>>;

export class InputError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(`Input \`${input}\`: ${message}`);
    this.name = 'InputError';
  }
}

export interface ReadResult {
  config: Config;
  warnings: string[];
  notices: string[];
}

const MAX_INPUT_LENGTH = 32 * 1024;
const MAX_IDENTIFIER_BYTES = 128;
const MAX_ROLE_BYTES = 63;
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
 * holds it equal to action.yml; an input added there is added here.
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
  // A collection that carries a secret parameter is rejected below; its text must not show in that error.
  const collection = given(getInput, 'collection');
  if (/AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN/i.test(collection)) {
    secrets.add(collection);
    for (const m of collection.matchAll(/(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=([^&]*)/gi)) {
      secrets.add(m[1]);
      secrets.add(safeDecode(m[1]!));
    }
  }
}

/** Query parameters that carry a secret in libpq's and pg's vocabulary (password, sslpassword, sslkey…). */
const SECRET_PARAM = /pass|secret|token|key/i;

/**
 * Every secret part of a connection string, as the driver reads it: the
 * password is the userinfo up to the LAST `@` (WHATWG URL parsing, which both
 * this action's parser and pg-connection-string use), so
 * `postgresql://root:Pa55@w0rd!x@host/db` logs in with `Pa55@w0rd!x`. pg also
 * takes `?password=` and `?sslpassword=`; they are rejected below, but their
 * values are masked first, as is the userinfo before the first `@` that a
 * reader might take for the password.
 */
export function connectionSecrets(connectionString: string): string[] {
  const found: string[] = [];
  const naive = /^[a-z]+:\/\/[^:@/]*:([^@/]*)@/i.exec(connectionString);
  if (naive) found.push(naive[1]!, safeDecode(naive[1]!));
  try {
    const url = new URL(connectionString);
    if (url.password) found.push(url.password, connectionPassword(url));
    for (const [key, value] of url.searchParams) if (SECRET_PARAM.test(key)) found.push(value);
  } catch {
    // Not a URL: the whole string is registered as the secret.
  }
  return [...new Set(found.filter((v) => v !== ''))];
}

/** The password handed to the driver: the URL's userinfo password, percent-decoded. */
function connectionPassword(url: URL): string {
  return safeDecode(url.password);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// ---- booleans, enums, numbers, durations -----------------------------------------------------------

const TRUE = new Set(['true', 'True', 'TRUE']);
const FALSE = new Set(['false', 'False', 'FALSE']);

/** YAML 1.2 core schema booleans, as core.getBooleanInput reads them. */
export function parseBoolean(value: string, name: string, defaultValue: boolean): boolean {
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

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `90s`, `5m`, `1h30m`, `30d`, or a bare number of seconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) return undefined;
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(total);
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

// ---- AS OF SYSTEM TIME -------------------------------------------------------------------------------

const AOST_UNITS_MICROS: Record<string, bigint> = {
  us: 1n,
  µs: 1n,
  ms: 1000n,
  s: 1_000_000n,
  m: 60_000_000n,
  h: 3_600_000_000n,
};
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/;

export function parseAsOfSystemTime(value: string): AsOfSystemTime {
  const name = 'as-of-system-time';
  const advice =
    'Write a negative interval such as -10s, -500ms or -1m30s, or a UTC timestamp such as 2026-11-24 11:40:45.';
  if (/^-(\d+(\.\d+)?(us|µs|ms|s|m|h))+$/.test(value)) {
    let micros = 0n;
    for (const m of value.slice(1).matchAll(/(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)/g)) {
      const [whole, frac = ''] = m[1]!.split('.');
      const unit = AOST_UNITS_MICROS[m[2]!]!;
      micros += BigInt(whole!) * unit + (BigInt((frac + '000000000').slice(0, 9)) * unit) / 1_000_000_000n;
    }
    if (micros <= 0n)
      throw new InputError(name, `"${clip(value)}" is zero: the backup must read the past. ${advice}`);
    if (micros > 7n * 86_400_000_000n) {
      throw new InputError(
        name,
        `"${clip(value)}" is more than a week back, past any garbage-collection window. ${advice}`,
      );
    }
    return { kind: 'interval', text: value, micros };
  }
  const m = TIMESTAMP.exec(value);
  if (m) {
    const [, y, mo, d] = m;
    const parsed = parseClusterTime(value);
    const dayExists = new Date(Date.parse(`${y}-${mo}-${d}T00:00:00Z`)).getUTCDate() === Number(d);
    if (!parsed || !dayExists)
      throw new InputError(name, `"${clip(value)}" is not a valid date and time. ${advice}`);
    if (parsed.micros > BigInt(Date.now()) * 1000n) {
      throw new InputError(name, `${value} is in the future; a backup can only capture the past. ${advice}`);
    }
    return { kind: 'timestamp', text: value, iso: microsToIso(parsed.micros) };
  }
  if (/^\+?\d/.test(value) && parseDuration(value.replace(/^\+/, '')) !== undefined) {
    throw new InputError(
      name,
      `"${clip(value)}" is a positive interval: the time must lie in the past. ${advice}`,
    );
  }
  throw new InputError(name, `"${clip(value)}" is neither a negative interval nor a timestamp. ${advice}`);
}

// ---- identifiers -------------------------------------------------------------------------------------

/**
 * Comma-separated database names with SQL identifier rules: unquoted names
 * are folded to lower case; a double-quoted name keeps spaces, case and
 * commas, with `""` for a literal quote.
 */
export function parseDatabaseList(text: string): string[] {
  const name = 'databases';
  if (text.length > 4096)
    throw new InputError(
      name,
      'is longer than 4096 characters. List fewer databases, or back up the whole cluster.',
    );
  if (text.trim() === '') return [];
  const names: string[] = [];
  let i = 0;
  const s = text;
  const skipSpace = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  for (;;) {
    skipSpace();
    let ident: string;
    if (s[i] === '"') {
      i++;
      let out = '';
      for (;;) {
        if (i >= s.length)
          throw new InputError(name, `a quoted name is not closed. Write names like shop, "Weird Name".`);
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            out += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        out += s[i++];
      }
      ident = out;
      if (ident === '') throw new InputError(name, 'an empty quoted name ("") is not a database. Remove it.');
    } else {
      const start = i;
      while (i < s.length && s[i] !== ',') i++;
      const raw = s.slice(start, i).trim();
      if (raw === '')
        throw new InputError(name, 'has an empty name between commas. Write names like shop, "Weird Name".');
      ident = raw.toLowerCase();
      if (!/^[a-z_][a-z0-9_$]*$/.test(ident)) {
        throw new InputError(
          name,
          `"${clip(raw)}" is not a plain SQL identifier (letters, digits, _ and $; not starting with a digit). Put such a name in double quotes, e.g. "${clip(raw).replace(/"/g, '""')}".`,
        );
      }
    }
    if (/[\u0000-\u001f\u007f]/.test(ident)) {
      throw new InputError(
        name,
        'a name contains a control character or a line break. Write names on one line.',
      );
    }
    if (Buffer.byteLength(ident) > MAX_IDENTIFIER_BYTES) {
      throw new InputError(name, `a name is longer than ${MAX_IDENTIFIER_BYTES} bytes.`);
    }
    if (names.includes(ident))
      throw new InputError(name, `"${clip(ident)}" is listed twice. List each database once.`);
    names.push(ident);
    skipSpace();
    if (i >= s.length) break;
    if (s[i] !== ',')
      throw new InputError(name, `unexpected text after a quoted name. Separate names with commas.`);
    i++;
  }
  return names;
}

function parseRole(value: string, name: string): string {
  const folded = value.toLowerCase();
  if (!/^[a-z_][a-z0-9_.-]*$/.test(folded) || Buffer.byteLength(folded) > MAX_ROLE_BYTES) {
    throw new InputError(
      name,
      `"${clip(value)}" is not a role name. Write a plain user or role name (letters, digits, _, . and -, up to ${MAX_ROLE_BYTES} bytes), e.g. backup_user.`,
    );
  }
  return folded;
}

// ---- connection strings ------------------------------------------------------------------------------

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
const FILE_PARAMS: Record<string, string> = {
  sslrootcert: 'ca-cert',
  sslcert: 'client-cert',
  sslkey: 'client-key',
};
const PASSED_PARAMS = new Set(['options', 'connect_timeout']);

function parseConnectionString(
  value: string,
  name: string,
  tls: { caCert?: string; clientCert?: string; clientKey?: string },
  required: boolean,
): ConnectionConfig | undefined {
  const example = 'postgresql://user:password@host:26257/defaultdb?sslmode=verify-full';
  if (value === '') {
    if (!required) return undefined;
    throw new InputError(name, `is required. Write a connection URL such as ${example}, from a secret.`);
  }
  if (!/^postgres(ql)?:\/\//i.test(value)) {
    throw new InputError(name, `must be a postgresql:// URL. Write one such as ${example}, from a secret.`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InputError(
      name,
      `is not a valid URL (characters such as @, : or / in the password must be percent-encoded). Write one such as ${example}.`,
    );
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new InputError(name, `has no host. Write one such as ${example}.`);
  const user = safeDecode(url.username);
  if (!user) throw new InputError(name, `has no user name. Write one such as ${example}.`);
  const port = url.port ? Number(url.port) : 26257;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InputError(name, `has an invalid port. Write e.g. :26257.`);
  const database = safeDecode(url.pathname.replace(/^\//, '')) || 'defaultdb';
  if (/[\u0000-\u001f/]/.test(database))
    throw new InputError(name, `has an invalid database name in its path.`);
  const params: Record<string, string> = {};
  let sslmode: SslMode | undefined;
  for (const [key, v] of url.searchParams) {
    if (key === 'sslmode') {
      if (!(SSL_MODES as readonly string[]).includes(v)) {
        throw new InputError(
          name,
          `sslmode=${clip(v)} is not a libpq sslmode. Write one of ${SSL_MODES.join(', ')} (verify-full recommended).`,
        );
      }
      sslmode = v as SslMode;
    } else if (Object.hasOwn(FILE_PARAMS, key)) {
      throw new InputError(
        name,
        `${key} points to a file, which the runner does not have. Remove it and put the PEM text in the ${FILE_PARAMS[key]} input instead.`,
      );
    } else if (key === 'application_name') {
      throw new InputError(
        name,
        `application_name is set by the action itself (so the DBA sees the workflow run). Remove it.`,
      );
    } else if (key === 'options' && optionKeys(v).includes('application_name')) {
      // The server applies startup parameters in order and pg sends options after application_name,
      // so this would replace the name the lost-answer procedure looks the submitting session up by.
      throw new InputError(
        name,
        `options sets application_name, which the action sets itself (so the DBA sees the workflow run, and a lost BACKUP answer can be traced to its session). Remove it from options.`,
      );
    } else if (key === 'connect_timeout' && !/^\d{1,4}$/.test(v)) {
      throw new InputError(
        name,
        `connect_timeout=${clip(v)} is not a number of seconds. Write e.g. connect_timeout=10, or remove it.`,
      );
    } else if (PASSED_PARAMS.has(key)) {
      params[key] = v;
    } else {
      throw new InputError(
        name,
        `has an unknown parameter "${clip(key)}". Remove it; supported: sslmode, options, connect_timeout.`,
      );
    }
  }
  const password = url.password ? connectionPassword(url) : undefined;
  return {
    input: name,
    host,
    port,
    database,
    user,
    ...(password !== undefined ? { password } : {}),
    sslmode: sslmode ?? (tls.caCert !== undefined ? 'verify-full' : 'prefer'),
    ...(tls.caCert !== undefined ? { caCert: tls.caCert } : {}),
    ...(tls.clientCert !== undefined ? { clientCert: tls.clientCert, clientKey: tls.clientKey } : {}),
    params,
  };
}

/**
 * The session variables an `options` startup parameter sets, read as
 * CockroachDB reads it (pkg/sql/pgwire/pre_serve_options.go, parseOptions):
 * query-unescaped, split on unescaped spaces, each `-c key=value`,
 * `-ckey=value` or `--key=value`, the key lower-cased with `-` read as `_`.
 * Malformed options are left for the server to refuse.
 */
export function optionKeys(options: string): string[] {
  let raw: string;
  try {
    raw = decodeURIComponent(options.replace(/\+/g, ' '));
  } catch {
    return [];
  }
  const words: string[] = [];
  for (const m of raw.matchAll(/(?:\\.|[^\s\\])+/gs)) words.push(m[0].replace(/\\(.)/gs, '$1'));
  const keys: string[] = [];
  for (let i = 0; i < words.length; i++) {
    let word = words[i]!;
    if (word === '-c') word = words[++i] ?? '';
    else if (word.startsWith('--') || word.startsWith('-c')) word = word.slice(2);
    else continue;
    const eq = word.indexOf('=');
    if (eq > 0) keys.push(word.slice(0, eq).toLowerCase().replace(/-/g, '_'));
  }
  return keys;
}

function transportWarnings(c: ConnectionConfig): string[] {
  const loopback = /^(localhost|127\.\d+\.\d+\.\d+|::1)$/i.test(c.host);
  if (c.sslmode === 'require' && c.caCert === undefined) {
    return [
      `${c.input}: sslmode=require encrypts but does not verify the server. Use sslmode=verify-full with the ca-cert input.`,
    ];
  }
  if (['disable', 'allow', 'prefer'].includes(c.sslmode) && !loopback) {
    return [
      `${c.input}: sslmode=${c.sslmode} to ${c.host} may send the password and data unencrypted or to an unverified server. Use sslmode=verify-full with the ca-cert input.`,
    ];
  }
  return [];
}

function optionalPem(value: string, name: string, kind: 'CERTIFICATE' | 'PRIVATE KEY'): string | undefined {
  if (value === '') return undefined;
  const re =
    kind === 'CERTIFICATE'
      ? /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/
      : /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[\s\S]+-----END ([A-Z]+ )?PRIVATE KEY-----/;
  if (!re.test(value)) {
    throw new InputError(
      name,
      `is not a PEM ${kind.toLowerCase()}. Paste the PEM text (-----BEGIN ${kind}----- …) from a secret, not a file path.`,
    );
  }
  return value.endsWith('\n') ? value : `${value}\n`;
}

// ---- collection and storage --------------------------------------------------------------------------

const DUPLICATE_PARAMS: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'aws-access-key-id',
  AWS_ENDPOINT: 's3-endpoint',
  AWS_REGION: 'aws-region',
  AUTH: 's3-auth',
  ASSUME_ROLE: 'assume-role',
  AWS_USE_PATH_STYLE: 's3-path-style',
};
const SECRET_PARAMS: Record<string, string> = {
  AWS_SECRET_ACCESS_KEY: 'aws-secret-access-key',
  AWS_SESSION_TOKEN: 'aws-session-token',
};
const ALLOWED_PARAMS = new Set(['S3_STORAGE_CLASS', 'AWS_SERVER_ENC_MODE', 'AWS_SERVER_KMS_ID']);

function parseCollection(value: string, secrets: SecretRegistry): Collection {
  const name = 'collection';
  const examples = 'Write s3://bucket/path or external://connection_name.';
  if (value === '') throw new InputError(name, `is required. ${examples}`);
  if (/[\u0000-\u001f\u007f\s]/.test(value))
    throw new InputError(name, `contains spaces or control characters. ${examples}`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'external') {
    const m = /^external:\/\/([a-z_][a-z0-9_]*)$/i.exec(value);
    if (!m)
      throw new InputError(
        name,
        `"${clip(secrets.scrub(value))}" is not external://<name> with a plain connection name.`,
      );
    return {
      kind: 'external',
      raw: `external://${m[1]!.toLowerCase()}`,
      name: m[1]!.toLowerCase(),
      display: `external://${m[1]!.toLowerCase()}`,
    };
  }
  if (scheme !== 's3') {
    throw new InputError(
      name,
      `the ${scheme ? `${scheme}://` : 'given'} scheme is not supported by this action. ${examples}`,
    );
  }
  const [location, query = ''] = value.slice('s3://'.length).split(/\?(.*)/s, 2) as [string, string?];
  const [bucket = '', ...segments] = location.split('/');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new InputError(
      name,
      `"${clip(bucket)}" is not an S3 bucket name (3–63 lower-case letters, digits, dots and hyphens). ${examples}`,
    );
  }
  const pathSegments = segments.filter((seg, i) => !(seg === '' && i === segments.length - 1));
  for (const seg of pathSegments) {
    if (seg === '' || seg === '.' || seg === '..' || /[\\'"]/.test(seg)) {
      throw new InputError(
        name,
        `the path "${clip(pathSegments.join('/'))}" has an empty, "." or ".." segment or a quote. ${examples}`,
      );
    }
  }
  const extraParams: [string, string][] = [];
  if (query !== '') {
    for (const [key, v] of new URLSearchParams(query)) {
      if (Object.hasOwn(SECRET_PARAMS, key)) {
        throw new InputError(
          name,
          `must not carry ${key}: secrets in the collection would be printed. Put it in the ${SECRET_PARAMS[key]} input (from a secret).`,
        );
      }
      if (Object.hasOwn(DUPLICATE_PARAMS, key))
        throw new InputError(name, `must not carry ${key}: use the ${DUPLICATE_PARAMS[key]} input instead.`);
      if (!ALLOWED_PARAMS.has(key)) {
        throw new InputError(
          name,
          `has an unknown parameter "${clip(key)}". Only S3_STORAGE_CLASS, AWS_SERVER_ENC_MODE and AWS_SERVER_KMS_ID may be given there.`,
        );
      }
      extraParams.push([key, v]);
    }
    const enc = extraParams.find(([k]) => k === 'AWS_SERVER_ENC_MODE')?.[1];
    if (enc !== undefined && enc !== 'AES256' && enc !== 'aws:kms') {
      throw new InputError(name, `AWS_SERVER_ENC_MODE=${clip(enc)} is not AES256 or aws:kms.`);
    }
    if (enc === 'aws:kms' && !extraParams.some(([k]) => k === 'AWS_SERVER_KMS_ID')) {
      throw new InputError(
        name,
        'AWS_SERVER_ENC_MODE=aws:kms needs AWS_SERVER_KMS_ID in the collection query too.',
      );
    }
  }
  const path = pathSegments.join('/');
  return {
    kind: 's3',
    raw: value,
    bucket,
    path,
    extraParams,
    display: `s3://${bucket}${path ? `/${path}` : ''}`,
  };
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

function readAwsCredentials(
  read: (n: InputName) => string,
  env: Env,
  auth: S3Auth,
  collection: Collection,
): AwsCredentials {
  // Each input defaults to its own environment variable, as DESIGN.md says; but a session token
  // is only valid with the secret it was issued with, so the environment's goes with the environment's secret.
  const inputSecret = read('aws-secret-access-key');
  const fromInputs = read('aws-access-key-id') !== '' || inputSecret !== '';
  const accessKeyId = read('aws-access-key-id') || (env.AWS_ACCESS_KEY_ID ?? '').trim();
  const secretAccessKey = inputSecret || (env.AWS_SECRET_ACCESS_KEY ?? '').trim();
  const sessionToken = read('aws-session-token') || (inputSecret ? '' : (env.AWS_SESSION_TOKEN ?? '').trim());
  if (auth === 'implicit') {
    if (read('aws-access-key-id') || read('aws-secret-access-key') || read('aws-session-token')) {
      throw new InputError(
        's3-auth',
        'is implicit (the cluster nodes use their own IAM role), but AWS keys are given as inputs. Remove the aws-* key inputs, or set s3-auth: specified.',
      );
    }
    return { source: 'none' };
  }
  if (collection.kind === 's3') {
    if (!accessKeyId) {
      throw new InputError(
        'aws-access-key-id',
        'is required for an s3:// collection with s3-auth: specified. Set it (or run aws-actions/configure-aws-credentials first, which exports AWS_ACCESS_KEY_ID), or set s3-auth: implicit.',
      );
    }
    if (!secretAccessKey) {
      throw new InputError(
        'aws-secret-access-key',
        'is required with aws-access-key-id. Set it from a secret (or run aws-actions/configure-aws-credentials first), or set s3-auth: implicit.',
      );
    }
  }
  // S3-compatible stores use other key formats (MinIO: minioadmin): only printable ASCII is required.
  if (accessKeyId && !/^[\x21-\x7e]{3,128}$/.test(accessKeyId)) {
    throw new InputError(
      'aws-access-key-id',
      'is not an access key id: write the key id (printable characters, no spaces), e.g. AKIAIOSFODNN7EXAMPLE.',
    );
  }
  return {
    ...(accessKeyId ? { accessKeyId } : {}),
    ...(secretAccessKey ? { secretAccessKey } : {}),
    ...(sessionToken ? { sessionToken } : {}),
    source: fromInputs ? 'inputs' : accessKeyId ? 'environment' : 'none',
  };
}

function parseEndpoint(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    new URL(value);
  } catch {
    throw new InputError(
      's3-endpoint',
      `"${clip(value)}" is not a URL. Write one such as https://minio.example.com:9000.`,
    );
  }
  // On the text as written, since that is what goes to the cluster: no credentials (@), query or fragment.
  if (!/^https?:\/\/[^/]/i.test(value) || /[?#@]/.test(value)) {
    throw new InputError(
      's3-endpoint',
      'must be an http(s):// URL without credentials, query or fragment, e.g. https://minio.example.com:9000.',
    );
  }
  return value.replace(/\/+$/, '');
}

function parseAssumeRole(value: string): string | undefined {
  if (value === '') return undefined;
  for (const arn of value.split(',')) {
    if (!/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,128}$/.test(arn.trim())) {
      throw new InputError(
        'assume-role',
        `"${clip(arn)}" is not an IAM role ARN. Write arn:aws:iam::123456789012:role/name, or a comma-separated chain of them.`,
      );
    }
  }
  return value
    .split(',')
    .map((a) => a.trim())
    .join(',');
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

// ---- helpers -----------------------------------------------------------------------------------------

function clip(s: string): string {
  const oneLine = s.replace(/[\r\n]+/g, '⏎');
  return oneLine.length > 60 ? `${oneLine.slice(0, 57)}…` : oneLine;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
