/**
 * Backup jobs that run for real: they parse their destination as CockroachDB
 * does, sign in to the S3 server with the credentials in the URI and write
 * the collection layout, BACKUP_MANIFEST last.
 */
import type * as S3 from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';

type S3Module = typeof S3;
import type { Profile } from './profiles.js';
import { knowsPathStyleParam, virtualHostedByDefault } from './profiles.js';
import { SqlError } from './protocol-types.js';
import { compactTime, fullSubdirOf, goQueryEscape, incrementalFolderOf, nowMicros } from './sqltext.js';

export interface ExternalConnections {
  get(name: string): string | undefined;
}

/** A destination after CockroachDB's URI parsing. */
export interface S3Destination {
  raw: string;
  bucket: string;
  /** Path inside the bucket without leading or trailing '/'. */
  path: string;
  params: Map<string, string>;
}

const S3_PARAMS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_ENDPOINT',
  'AWS_REGION',
  'AUTH',
  'AWS_SERVER_ENC_MODE',
  'AWS_SERVER_KMS_ID',
  'S3_STORAGE_CLASS',
  'ASSUME_ROLE',
  'COCKROACH_LOCALITY',
];
const REDACTED = new Set(['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']);

/** CockroachDB's parse of a destination URI; external:// is resolved through the connections. */
export function parseDestination(
  uri: string,
  profile: Profile,
  external: ExternalConnections,
): S3Destination {
  let url: URL;
  try {
    url = new URL(uri);
  } catch (err) {
    throw new SqlError('XXUUU', `logging backup destinations: parse "${uri}": ${(err as Error).message}`);
  }
  if (url.protocol === 'external:') {
    const target = external.get(url.hostname);
    if (target === undefined) {
      throw new SqlError(
        'XXUUU',
        `failed to load external connection object: external connection with name ${url.hostname} does not exist`,
      );
    }
    return parseDestination(target, profile, external);
  }
  if (url.protocol !== 's3:') {
    throw new SqlError(
      'XXUUU',
      `unsupported storage scheme: "${url.protocol.replace(':', '')}" - refer to docs to find supported storage schemes`,
    );
  }
  if (!url.hostname) throw new SqlError('XXUUU', 'empty host component; s3 URI must specify a target bucket');
  const known = new Set(S3_PARAMS);
  if (knowsPathStyleParam(profile)) known.add('AWS_USE_PATH_STYLE');
  if (profile.major >= 25) known.add('AWS_SKIP_CHECKSUM');
  const params = new Map<string, string>();
  const unknown: string[] = [];
  for (const [k, v] of url.searchParams) {
    if (!known.has(k)) unknown.push(k);
    params.set(k, v);
  }
  if (unknown.length > 0)
    throw new SqlError('XXUUU', `unknown S3 query parameters: ${unknown.sort().join(', ')}`);
  const auth = params.get('AUTH') ?? 'specified';
  if (auth !== 'specified' && auth !== 'implicit')
    throw new SqlError('XXUUU', `unsupported value ${auth} for AUTH`);
  if (auth === 'specified') {
    for (const p of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      if (!params.get(p)) throw new SqlError('XXUUU', `AUTH is set to 'specified', but ${p} is not set`);
    }
  }
  if (params.get('AWS_SERVER_ENC_MODE') === 'aws:kms' && !params.get('AWS_SERVER_KMS_ID')) {
    throw new SqlError(
      'XXUUU',
      'AWS_SERVER_KMS_ID param must be set when using aws:kms server side encryption mode.',
    );
  }
  return {
    raw: uri,
    bucket: url.hostname,
    path: decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, ''),
    params,
  };
}

/** `cloud.SanitizeExternalStorageURI`: secret values redacted, keys sorted, Go query encoding. */
export function sanitizeUri(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return uri;
  }
  const entries = [...url.searchParams].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const base = `${url.protocol}//${url.host}${url.pathname}`;
  if (entries.length === 0) return base;
  return `${base}?${entries.map(([k, v]) => `${goQueryEscape(k)}=${REDACTED.has(k) ? 'redacted' : goQueryEscape(v)}`).join('&')}`;
}

export interface Manifest {
  jobId: string;
  kind: 'full' | 'incremental';
  startMicros: string;
  endMicros: string;
  databases: string[];
  isFullCluster: boolean;
  /**
   * Each data file with the SHA-256 of its bytes. CockroachDB's manifest records per-file spans and
   * the SSTs carry block checksums (pebble) that RESTORE verifies as it reads them; one file-level
   * checksum stands in for both, so a restore can tell a corrupt file from a good one.
   */
  files: { path: string; size: number; checksum?: string }[];
  encryption?: string;
  /** The tables of each backed-up database at the end time (the descriptors a manifest carries). */
  catalog?: ManifestDatabase[];
  /** `revision_history` (MVCCFilter_All): a RESTORE may pick any time inside this layer. */
  revisionHistory?: boolean;
  /** The cluster version that wrote it (BackupManifest.ClusterVersion), e.g. `24.3`. */
  clusterVersion?: string;
}

export interface ManifestTable {
  schema: string;
  name: string;
  rows: number;
}

export interface ManifestDatabase {
  name: string;
  tables: ManifestTable[];
}

/** The bucket as one backup job sees it, through the credentials of its URI. */
export class JobStorage {
  private client: unknown;
  constructor(
    private readonly dest: S3Destination,
    private readonly profile: Profile,
  ) {}

  private prefixed(key: string): string {
    return this.dest.path ? `${this.dest.path}/${key}` : key;
  }

  /** Where the SDK would send requests, or the error CockroachDB would report for lack of a route. */
  private async s3(): Promise<{
    send: (cmd: unknown) => Promise<unknown>;
    mod: S3Module;
  }> {
    const mod = await import('@aws-sdk/client-s3');
    const p = this.dest.params;
    const endpoint = p.get('AWS_ENDPOINT');
    const region = p.get('AWS_REGION') ?? 'us-east-1';
    if (!endpoint) {
      throw new Error(
        `RequestError: send request failed\ncaused by: dial tcp: lookup ${this.dest.bucket}.s3.${region}.amazonaws.com: no such host`,
      );
    }
    const url = /^https?:\/\//.test(endpoint) ? endpoint : `https://${endpoint}`;
    const pathStyle = !virtualHostedByDefault(this.profile) || p.get('AWS_USE_PATH_STYLE') === 'true';
    if (!pathStyle) {
      throw new Error(
        `RequestError: send request failed\ncaused by: dial tcp: lookup ${this.dest.bucket}.${new URL(url).hostname}: no such host`,
      );
    }
    if (p.get('AUTH') === 'implicit') {
      throw new Error('NoCredentialProviders: no valid providers in chain');
    }
    this.client ??= new mod.S3Client({
      region,
      endpoint: url,
      forcePathStyle: true,
      credentials: {
        accessKeyId: p.get('AWS_ACCESS_KEY_ID')!,
        secretAccessKey: p.get('AWS_SECRET_ACCESS_KEY')!,
        ...(p.get('AWS_SESSION_TOKEN') ? { sessionToken: p.get('AWS_SESSION_TOKEN')! } : {}),
      },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
    });
    const client = this.client as { send: (c: unknown) => Promise<unknown> };
    return { send: (c) => client.send(c), mod };
  }

  async put(key: string, body: string | Buffer): Promise<void> {
    try {
      const { send, mod } = await this.s3();
      await send(new mod.PutObjectCommand({ Bucket: this.dest.bucket, Key: this.prefixed(key), Body: body }));
    } catch (err) {
      throw new Error(`failed to put s3 object: ${sdkText(err)}`);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const { send, mod } = await this.s3();
      const out = (await send(
        new mod.GetObjectCommand({ Bucket: this.dest.bucket, Key: this.prefixed(key) }),
      )) as {
        Body: { transformToByteArray(): Promise<Uint8Array> };
      };
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw new Error(`failed to get s3 object: ${sdkText(err)}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      const { send, mod } = await this.s3();
      await send(new mod.DeleteObjectCommand({ Bucket: this.dest.bucket, Key: this.prefixed(key) }));
    } catch (err) {
      throw new Error(`failed to delete s3 object: ${sdkText(err)}`);
    }
  }

  /** Keys under a folder of the collection, relative to the collection. */
  async list(folder: string): Promise<{ key: string; size: number }[]> {
    const out: { key: string; size: number }[] = [];
    try {
      const { send, mod } = await this.s3();
      let token: string | undefined;
      for (let page = 0; page < 10_000; page++) {
        const r = (await send(
          new mod.ListObjectsV2Command({
            Bucket: this.dest.bucket,
            Prefix: this.prefixed(folder),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        )) as {
          Contents?: { Key?: string; Size?: number }[];
          IsTruncated?: boolean;
          NextContinuationToken?: string;
        };
        const strip = this.dest.path ? this.dest.path.length + 1 : 0;
        for (const o of r.Contents ?? []) if (o.Key) out.push({ key: o.Key.slice(strip), size: o.Size ?? 0 });
        if (!r.IsTruncated) break;
        token = r.NextContinuationToken;
      }
    } catch (err) {
      throw new Error(`failed to list s3 bucket: ${sdkText(err)}`);
    }
    return out;
  }

  /** `SHOW BACKUPS IN`: completed full backups, in listing order. */
  async fullBackups(): Promise<string[]> {
    const keys = await this.list('');
    return (
      keys
        .map((k) => /^\/?([^/]+\/[^/]+\/[^/]+)\/BACKUP_MANIFEST$/.exec(k.key)?.[1])
        .filter((p): p is string => p !== undefined && /^\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2}$/.test(p))
        // Paths relative to the collection, as backupdest.ListFullBackupsInCollection gives them
        // (pkg/backup/backupdest/backup_destination.go): under a path they start with '/', at the
        // bucket root they do not.
        .map((p) => (this.dest.path ? `/${p}` : p))
    );
  }

  async latest(): Promise<string | undefined> {
    const entries = (await this.list('metadata/latest/'))
      .filter((e) => e.key !== 'metadata/latest/')
      .sort((a, b) => (a.key < b.key ? -1 : 1));
    if (entries.length > 0) return (await this.get(entries[0]!.key))?.toString('utf8');
    return (await this.get('LATEST'))?.toString('utf8');
  }

  async manifest(folder: string): Promise<Manifest | undefined> {
    const body = await this.get(`${folder}/BACKUP_MANIFEST`);
    return body ? (JSON.parse(body.toString('utf8')) as Manifest) : undefined;
  }

  /** The layers of a chain: the full backup, then its incrementals oldest first. */
  async chain(subdir: string): Promise<{ folder: string; manifest: Manifest }[]> {
    const full = subdir.replace(/^\/+/, '');
    const layers: { folder: string; manifest: Manifest }[] = [];
    const fullManifest = await this.manifest(full);
    if (!fullManifest) return layers;
    layers.push({ folder: full, manifest: fullManifest });
    const incs = (await this.list(`incrementals/${full}/`))
      .map((k) => /^(incrementals\/.+)\/BACKUP_MANIFEST$/.exec(k.key)?.[1])
      .filter((f): f is string => f !== undefined)
      .sort();
    for (const folder of incs) {
      const m = await this.manifest(folder);
      if (m) layers.push({ folder, manifest: m });
    }
    return layers;
  }
}

function sdkText(err: unknown): string {
  const e = err as { name?: string; message?: string; Code?: string };
  if (e?.message?.startsWith('RequestError') || e?.message?.startsWith('NoCredentialProviders'))
    return e.message;
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
}

export interface BackupPlan {
  id: string;
  profile: Profile;
  dest: S3Destination;
  kind: 'full' | 'incremental';
  /** Full backup subdirectory (for an incremental: the one it extends; 'LATEST' until resolved). */
  subdir: string;
  endMicros: bigint;
  databases: string[];
  passphrase?: string;
  dataFiles: number;
  /** Legacy `BACKUP … TO` (≤24.2): one backup at the destination itself, no LATEST, no index. */
  legacy?: boolean;
  /** The databases and tables covered, as the cluster's catalog had them when the job was planned. */
  catalog?: ManifestDatabase[];
  revisionHistory?: boolean;
}

export interface RunHooks {
  durationMs: () => number;
  progress: (fraction: number) => void;
  /** Resolves when the job may go on (pauses hold it); rejects when it was cancelled. */
  gate: () => Promise<void>;
  /** LATEST was resolved to this subdirectory. */
  resolved: (subdir: string) => void;
  minStepMs: number;
}

/** The body of a backup job: throws with CockroachDB's text when it fails. */
export async function runBackup(plan: BackupPlan, hooks: RunHooks): Promise<void> {
  const store = new JobStorage(plan.dest, plan.profile);
  let folder: string;
  let startMicros = 0n;
  const at = (name: string) => (folder ? `${folder}/${name}` : name);
  if (plan.kind === 'full') {
    const full = plan.legacy ? '' : fullSubdirOf(plan.endMicros).replace(/^\//, '');
    folder = full;
    const existing = plan.legacy
      ? (await store.list('')).filter((k) => !k.key.includes('/'))
      : await store.list(`${full}/`);
    const lock = existing.find((k) => /BACKUP-LOCK-\d+$/.test(k.key));
    const where = [plan.dest.bucket, plan.dest.path, full].filter(Boolean).join('/');
    if (existing.some((k) => k.key === at('BACKUP_MANIFEST'))) {
      throw Object.assign(new Error(`${where} already contains a BACKUP_MANIFEST file`), { code: '42C01' });
    }
    if (lock)
      throw Object.assign(
        new Error(
          `${where} already contains a \`BACKUP-LOCK\` file written by job ${lock.key.split('-').pop()}`,
        ),
        { code: '42C01' },
      );
  } else {
    let subdir = plan.subdir;
    if (subdir === 'LATEST') {
      const latest = await store.latest();
      if (!latest)
        throw Object.assign(
          new Error(`path does not contain a completed latest backup: ${sanitizeUri(plan.dest.raw)}`),
          { code: '58P01' },
        );
      subdir = latest;
      hooks.resolved(subdir);
    }
    const layers = await store.chain(subdir);
    if (layers.length === 0) {
      throw new Error(
        `No full backup exists in "${subdir}" to append an incremental backup to. To take a full backup, remove the subdirectory from the backup command (i.e. run 'BACKUP ... INTO <collectionURI>'). `,
      );
    }
    // CockroachDB checks the targets against the chain when the job resolves its manifest
    // (pkg/backup/backup_planning.go getBackupDetailAndManifest, in the job for a detached
    // BACKUP): database targets onto a cluster backup are refused first, …
    if (layers[0]!.manifest.isFullCluster && plan.databases.length > 0) {
      throw new Error('cannot append a backup of specific tables or databases to a cluster backup');
    }
    const previous = BigInt(layers[layers.length - 1]!.manifest.endMicros);
    if (plan.endMicros <= previous) {
      throw new Error(
        `\`AS OF SYSTEM TIME\` ${plan.endMicros} must be greater than the previous backup's end time of ${previous}.`,
      );
    }
    // … then, after the end-time check, createBackupManifest's checkForNewCompleteDatabases: every
    // complete database of a non-cluster backup must be complete in the previous layer (its
    // CompleteDbs). A cluster backup onto a database backup is not checked there.
    if (plan.databases.length > 0) {
      const inPrevious = new Set(layers[layers.length - 1]!.manifest.databases);
      const added = plan.databases.find((d) => !inPrevious.has(d));
      if (added !== undefined)
        throw new Error(`previous backup does not contain the complete database ${goQuote(added)}`);
    }
    startMicros = previous;
    const suffix = plan.profile.incrementalStartSuffix ? `-${compactTime(previous)}` : '';
    folder = `incrementals/${subdir.replace(/^\//, '')}/${incrementalFolderOf(plan.endMicros)}${suffix}`;
  }
  await store.put(at(`BACKUP-LOCK-${plan.id}`), Buffer.alloc(0));
  const files: Manifest['files'] = [];
  const steps = Math.max(1, plan.dataFiles);
  const stepMs = Math.max(hooks.minStepMs, hooks.durationMs() / (steps + 1));
  for (let i = 0; i < steps; i++) {
    await hooks.gate();
    await sleep(stepMs);
    await hooks.gate();
    const path = `data/${(BigInt(plan.id) % 100000n) * 1000n + BigInt(i)}.sst`;
    const body = createHash('sha256').update(`${plan.id}/${i}`).digest().toString('hex').repeat(8);
    await store.put(at(path), body);
    files.push({ path, size: body.length, checksum: sha256(body) });
    hooks.progress(Math.min(0.95, ((i + 1) / (steps + 1)) * 1));
  }
  await sleep(stepMs);
  await hooks.gate();
  // Written once, in the full backup's folder, and read from there for every layer of the chain
  // (pkg/backup/backupencryption/encryption.go WriteEncryptionInfoIfNotExists, GetEncryptionFromBase).
  if (plan.passphrase !== undefined && plan.kind === 'full') await store.put(at('ENCRYPTION-INFO'), 'salt');
  const manifest: Manifest = {
    jobId: plan.id,
    kind: plan.kind,
    startMicros: String(startMicros),
    endMicros: String(plan.endMicros),
    databases: plan.databases,
    isFullCluster: plan.databases.length === 0,
    files,
    ...(plan.passphrase !== undefined ? { encryption: passphraseHash(plan.passphrase) } : {}),
    ...(plan.catalog ? { catalog: plan.catalog } : {}),
    ...(plan.revisionHistory ? { revisionHistory: true } : {}),
    clusterVersion: `${plan.profile.major}.${plan.profile.minor}`,
  };
  const body = JSON.stringify(manifest);
  // BACKUP_MANIFEST is written last: it is what marks a backup complete.
  await store.put(
    at('BACKUP_MANIFEST-CHECKSUM'),
    createHash('sha256').update(body).digest('hex').slice(0, 8),
  );
  await store.put(at('BACKUP_MANIFEST'), body);
  if (plan.legacy) return;
  if (plan.kind === 'full') {
    // Named from the time it is written, not the backup's end time (backupdest/backup_destination.go
    // newTimestampedLatestFileName: the descending encoding of timeutil.Now()): the newest LATEST file
    // names the full backup written last, which need not be the one with the newest end time.
    const descending = (0xffffffffffffn - nowMicros() / 1000n).toString(16).padStart(12, '0');
    await store.put(`metadata/latest/LATEST-${descending}`, `/${folder}`);
  }
  if (plan.profile.writesIndex) {
    const full = (plan.kind === 'full' ? folder : plan.subdir.replace(/^\//, '')).replace(/\//g, '-');
    // CockroachDB's backup index (backupinfo/backup_index.go): metadata/index/<full with - for />/
    // <descending end>_<start or 0>_<end>_metadata.pb.
    const descendingEnd = (0xffffffffffffn - plan.endMicros / 1000n).toString(16).padStart(12, '0');
    const start = startMicros === 0n ? '0' : compactTime(startMicros);
    await store.put(
      `metadata/index/${full}/${descendingEnd}_${start}_${compactTime(plan.endMicros)}_metadata.pb`,
      folder,
    );
  }
}

export function sha256(body: string | Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

export function passphraseHash(passphrase: string): string {
  return createHash('sha256').update(`crdb-test:${passphrase}`).digest('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export { nowMicros };

/** Go's %q of a plain string: double quotes, with `"` and `\` escaped. */
function goQuote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
