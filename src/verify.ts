/**
 * Prove the backup after the job succeeded: the SQL checks, the bucket read
 * of the layer's own files, then the restore check (restore-check.ts) when
 * asked. Pruning (prune.ts) runs only after this proof.
 */
import type { ClusterLink } from './cluster.js';
import { AbortedError, errorLine, errorMessage } from './errors.js';
import type { StorageSettings } from './destination.js';
import { storageSettings } from './destination.js';
import type { CaptureTime } from './submit.js';
import { parseClusterTime } from './time.js';
import type { Statement } from './sql.js';
import { showBackupsStatement } from './sql.js';
import type { LayerRef } from './layout.js';
import { folderKey, incrementalFolderFor, layerPrefix } from './layout.js';
import type { RestoreCheckOutcome } from './restore-check.js';
import type { ObjectStore } from './storage.js';
import { isMissingCredentials, storageErrorText } from './storage.js';
import type { Config } from './config.js';

export interface VerifyInput {
  config: Config;
  link: ClusterLink;
  uri: string;
  fullSubdir: string;
  kind: 'full' | 'incremental';
  capture: CaptureTime | undefined;
  openStore: (settings: StorageSettings) => Promise<ObjectStore>;
  signal: AbortSignal;
  reconnectBudgetMs: number;
  log: (message: string) => void;
  showBackup: (subdir: string, checkFiles: boolean) => Statement;
  /** `verify: restore`: the restore check (restore-check.ts), run after the other checks passed. */
  restoreCheck?: () => Promise<RestoreCheckOutcome>;
}

export interface VerifyOutcome {
  verified: 'true' | 'false' | 'skipped';
  checks: string[];
  problem?: string;
  sizeBytes?: number;
  objectCount?: number;
  /** Incremental layer folder relative to the collection, e.g. `/incrementals/2026/11/24-114045.12/20261124/120000.00`. */
  incrementalPath?: string;
}

class VerifyProblem extends Error {}

/**
 * Verification never crashes the step: a check that could not run (an SQL or
 * S3 error, no credentials) gives `verified: 'false'` with "verification
 * could not run: …", and the caller fails the step. Texts are not scrubbed
 * here: the caller scrubs everything it prints. Only an abort propagates.
 */
export async function verifyBackup(v: VerifyInput): Promise<VerifyOutcome> {
  const checks: string[] = [];
  if (v.config.verify === 'none') return { verified: 'skipped', checks: ['none (verify: none)'] };
  const out: VerifyOutcome = { verified: 'true', checks };
  // The cluster and the bucket are asked at once: on a real cluster SHOW BACKUPS lists the bucket too.
  const sqlChecks: string[] = [];
  const bucketChecks: string[] = [];
  const results = await Promise.allSettled([
    verifyWithSql(v, sqlChecks),
    v.config.collection.kind === 's3' ? verifyInBucket(v, bucketChecks, out) : Promise.resolve(),
  ]);
  checks.push(...sqlChecks, ...bucketChecks);
  if (v.config.collection.kind !== 's3')
    checks.push('bucket not read (external:// collection: the connection holds the storage settings)');
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  const aborted = errors.find((e) => e instanceof AbortedError);
  if (aborted !== undefined) throw aborted;
  if (errors.length === 0) {
    if (v.config.verify !== 'restore' || v.restoreCheck === undefined) return out;
    const restored = await v.restoreCheck();
    checks.push(...restored.checks);
    return restored.ok ? out : { ...out, verified: 'false', checks, problem: restored.problem };
  }
  const problems = errors.map((e) =>
    e instanceof VerifyProblem ? e.message : `verification could not run: ${failureText(e)}`,
  );
  return { ...out, verified: 'false', checks, problem: [...new Set(problems)].join(' ') };
}

/** One line for an error of the cluster (with its SQLSTATE) or of S3 (with its code and HTTP status). */
function failureText(err: unknown): string {
  const e = err as { $metadata?: unknown };
  if ((e && typeof e === 'object' && e.$metadata !== undefined) || isMissingCredentials(err))
    return storageErrorText(err);
  return errorLine(err);
}

const query = (v: VerifyInput, stmt: Statement) =>
  v.link.withReconnect('verification', (s) => s.query(stmt), {
    budgetMs: v.reconnectBudgetMs,
    signal: v.signal,
  });

async function verifyWithSql(v: VerifyInput, checks: string[]): Promise<void> {
  if (v.kind === 'full') {
    const rows = await query(v, showBackupsStatement(v.uri));
    const paths = rows.map((r) => folderKey(String(r.path)));
    if (!paths.includes(folderKey(v.fullSubdir))) {
      throw new VerifyProblem(
        `SHOW BACKUPS IN the collection does not list ${v.fullSubdir} (it lists ${paths.length} backup(s)).`,
      );
    }
    checks.push('listed by SHOW BACKUPS');
  } else {
    const rows = await query(v, v.showBackup(v.fullSubdir, false));
    const found = rows.some(
      (r) => String(r.backup_type) === 'incremental' && sameTime(r.end_time, v.capture),
    );
    if (!found) {
      throw new VerifyProblem(
        `SHOW BACKUP FROM ${v.fullSubdir} shows no incremental layer ending at ${v.capture?.iso ?? 'the captured time'}.`,
      );
    }
    checks.push(`incremental layer listed by SHOW BACKUP FROM ${v.fullSubdir}`);
  }
  if (v.config.verify === 'files' || v.config.verify === 'restore') {
    try {
      await query(v, v.showBackup(v.fullSubdir, true));
    } catch (err) {
      throw new VerifyProblem(`SHOW BACKUP … WITH check_files failed: ${errorMessage(err)}`);
    }
    checks.push('all files present (SHOW BACKUP … WITH check_files)');
  }
}

function sameTime(value: unknown, capture: CaptureTime | undefined): boolean {
  if (capture === undefined) return true;
  const t = parseClusterTime(value == null ? undefined : String(value));
  if (!t) return false;
  const diff = t.micros - capture.micros;
  // SHOW BACKUP may print end times with less precision than the AOST we sent.
  return diff > -1_000_000n && diff < 1_000_000n;
}

const NO_RUNNER_CREDENTIALS = 'bucket not read: s3-auth is implicit and the runner has no AWS credentials';

async function verifyInBucket(v: VerifyInput, checks: string[], out: VerifyOutcome): Promise<void> {
  const settings = storageSettings(v.config);
  if (!settings) return;
  try {
    await readLayerFromBucket(v, settings, checks, out);
  } catch (err) {
    // With s3-auth: implicit the cluster's nodes use their own IAM role; the runner may have none.
    if (v.config.s3Auth === 'implicit' && settings.credentials === undefined && isMissingCredentials(err)) {
      checks.push(NO_RUNNER_CREDENTIALS);
      v.log(
        `The backup's files were not read from the bucket: s3-auth is implicit and the runner has no AWS credentials (${errorMessage(err)}). Configure aws-actions/configure-aws-credentials to have them read.`,
      );
      return;
    }
    throw err;
  }
}

async function readLayerFromBucket(
  v: VerifyInput,
  settings: StorageSettings,
  checks: string[],
  out: VerifyOutcome,
): Promise<void> {
  const store = await v.openStore(settings);
  let incrementalSubdir: string | undefined;
  if (v.kind === 'incremental') {
    incrementalSubdir = await findIncrementalFolder(store, settings.prefix, v.fullSubdir, v.capture);
    if (incrementalSubdir === undefined) {
      throw new VerifyProblem(
        `no incremental folder for ${v.capture?.iso ?? 'this backup'} under incrementals${v.fullSubdir}/ in the bucket.`,
      );
    }
    out.incrementalPath = `/incrementals${folderKey(v.fullSubdir)}/${incrementalSubdir}`;
  }
  const result = await verifyLayerObjects(store, settings.prefix, {
    fullSubdir: v.fullSubdir,
    incrementalSubdir,
  });
  if (!result.ok)
    throw new VerifyProblem(result.problem ?? `BACKUP_MANIFEST missing at ${result.manifestKey}`);
  out.sizeBytes = result.sizeBytes;
  out.objectCount = result.objectCount;
  checks.push(`BACKUP_MANIFEST read from the bucket (${result.objectCount} objects)`);
}

/** The incremental layer of this capture time: `YYYYMMDD/HHMMSS.ss` with an optional `-<start>` suffix (25.2+). */
async function findIncrementalFolder(
  store: ObjectStore,
  prefix: string,
  fullSubdir: string,
  capture: CaptureTime | undefined,
): Promise<string | undefined> {
  if (!capture) return undefined;
  const { day, time: name } = incrementalFolderFor(capture.literal);
  const dayPrefix = `${prefix}incrementals${folderKey(fullSubdir)}/${day}/`;
  for await (const entry of store.list(dayPrefix, { delimiter: '/' })) {
    const folder = entry.commonPrefix?.slice(dayPrefix.length).replace(/\/$/, '');
    if (folder !== undefined && (folder === name || folder.startsWith(`${name}-`))) return `${day}/${folder}`;
  }
  return undefined;
}

export interface VerifyResult {
  ok: boolean;
  manifestKey: string;
  sizeBytes: number;
  objectCount: number;
  problem?: string;
}

/** Reads the layer's own BACKUP_MANIFEST and sums the size and count of the layer's objects. */
export async function verifyLayerObjects(
  store: ObjectStore,
  prefix: string,
  layer: LayerRef,
): Promise<VerifyResult> {
  const folder = layerPrefix(prefix, layer);
  const manifestKey = `${folder}BACKUP_MANIFEST`;
  const manifest = await store.get(manifestKey);
  let sizeBytes = 0;
  let objectCount = 0;
  for await (const e of store.list(folder)) {
    if (e.key === undefined) continue;
    sizeBytes += e.size ?? 0;
    objectCount += 1;
  }
  if (manifest === undefined) {
    return {
      ok: false,
      manifestKey,
      sizeBytes,
      objectCount,
      problem: `BACKUP_MANIFEST is missing: no object ${manifestKey} (the folder holds ${objectCount} objects).`,
    };
  }
  if (manifest.length === 0) {
    return {
      ok: false,
      manifestKey,
      sizeBytes,
      objectCount,
      problem: `BACKUP_MANIFEST at ${manifestKey} is empty.`,
    };
  }
  return { ok: true, manifestKey, sizeBytes, objectCount };
}
