/**
 * Prove the backup after the job succeeded (DESIGN.md `verify`), and prune
 * old chains only after that proof.
 */
import type { ClusterLink } from './cluster.js';
import { AbortedError, errorLine, errorMessage } from './errors.js';
import type { StorageSettings } from './destination.js';
import { storageSettings } from './destination.js';
import type { CaptureTime } from './submit.js';
import { parseClusterTime } from './time.js';
import type { PruneSummary } from './report.js';
import { countByCode } from './report.js';
import type { Statement } from './sql.js';
import { showBackupsStatement } from './sql.js';
import { readLatestFullSubdir } from './layout.js';
import type { RestoreCheckOutcome } from './restore-check.js';
import type { Chain, ChainOutcome, ObjectStore, PruneResult } from './storage.js';
import {
  executePrune,
  isMissingCredentials,
  listChains,
  measureChains,
  planPrune,
  storageErrorText,
  verifyLayerObjects,
} from './storage.js';
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
    const paths = rows.map((r) => normaliseSubdir(String(r.path)));
    if (!paths.includes(normaliseSubdir(v.fullSubdir))) {
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
    out.incrementalPath = `/incrementals${normaliseSubdir(v.fullSubdir)}/${incrementalSubdir}`;
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
  const [date, time] = capture.literal.split(' ');
  const day = date!.replace(/-/g, '');
  const name = `${time!.slice(0, 8).replace(/:/g, '')}.${time!.slice(9, 11)}`;
  const dayPrefix = `${prefix}incrementals${normaliseSubdir(fullSubdir)}/${day}/`;
  for await (const entry of store.list(dayPrefix, { delimiter: '/' })) {
    const folder = entry.commonPrefix?.slice(dayPrefix.length).replace(/\/$/, '');
    if (folder !== undefined && (folder === name || folder.startsWith(`${name}-`))) return `${day}/${folder}`;
  }
  return undefined;
}

function normaliseSubdir(s: string): string {
  return `/${s.replace(/^\/+|\/+$/g, '')}`;
}

export interface PruneInput {
  config: Config;
  openStore: (settings: StorageSettings) => Promise<ObjectStore>;
  protectFullSubdir: string;
  /** The cluster's clock: folder names are end times in cluster time. */
  now: Date;
  /** Full backups that running backup jobs write into (`LATEST` for one that names no folder), with job ids. */
  busy?: ReadonlyMap<string, string>;
  log: (message: string) => void;
  verified: boolean;
}

/**
 * Pruning stopped on an error that is not about one object (a listing
 * failed, the store could not be opened, no credentials). The backup itself
 * succeeded and was verified; the message says so and what pruning was
 * doing. `summary` is what the summary shows of the pruning so far.
 */
export class PruneFailure extends Error {
  constructor(
    message: string,
    readonly summary?: PruneSummary,
  ) {
    super(message);
    this.name = 'PruneFailure';
  }
}

const PRUNE_FAILED = 'The backup succeeded and was verified, but pruning failed';

const VERSIONED_NOTE =
  'On a versioned bucket, deleting only adds delete markers: the old versions stay until a lifecycle rule expires them.';

/**
 * Prune after a verified backup only; returns what the summary shows, or
 * undefined when nothing ran. Objects that could not be deleted are in
 * `failures` (and `failureMessage` says it in one line); any other error
 * throws a PruneFailure.
 */
export async function pruneAfterBackup(p: PruneInput): Promise<PruneSummary | undefined> {
  const settings = storageSettings(p.config);
  if (!settings) return undefined;
  if (!p.verified) {
    p.log("Pruning skipped: this run's backup was not verified.");
    return undefined;
  }
  const where = `s3://${settings.bucket}/${settings.prefix}`;
  const fail = (during: string, err: unknown, summary?: PruneSummary): PruneFailure => {
    const cause =
      p.config.s3Auth === 'implicit' && settings.credentials === undefined && isMissingCredentials(err)
        ? `pruning needs AWS credentials on the runner with s3-auth: implicit (the cluster's own IAM role does not reach the runner): configure them with aws-actions/configure-aws-credentials before this step (${storageErrorText(err)})`
        : storageErrorText(err);
    const done = summary?.deleted.filter((c) => c.outcome === 'deleted').length ?? 0;
    const touched = summary?.deleted.some((c) => (c.deletedObjects ?? 0) > 0) ?? false;
    const after = !touched
      ? ' Nothing was deleted.'
      : ` ${done} chain(s) were deleted before that; the other chains keep their BACKUP_MANIFEST and pruning retries them next run.`;
    return new PruneFailure(
      `${PRUNE_FAILED} while ${during}: ${cause.replace(/[.\s]+$/, '')}.${after}`,
      summary,
    );
  };
  let store: ObjectStore;
  try {
    store = await p.openStore(settings);
  } catch (err) {
    throw fail(`opening the bucket ${settings.bucket}`, err);
  }
  let chains: Chain[];
  let latest: string | undefined;
  try {
    chains = await listChains(store, settings.prefix);
    latest = await readLatestFullSubdir(store, settings.prefix);
  } catch (err) {
    throw fail(`listing the backups in ${where}`, err);
  }
  const busy = new Map(p.busy ?? []);
  const intoLatest = busy.get('LATEST');
  busy.delete('LATEST');
  if (intoLatest !== undefined && latest !== undefined) busy.set(latest, intoLatest);
  const plan = planPrune(chains, {
    keepLast: p.config.pruneKeepLast,
    olderThanMs: p.config.pruneOlderThanMs,
    now: p.now,
    protectFullSubdir: p.protectFullSubdir,
    ...(latest !== undefined ? { latestFullSubdir: latest } : {}),
    busy,
  });
  for (const c of plan.keep) {
    const reason = plan.reasons.get(c.fullSubdir) ?? '';
    if (reason.startsWith('a running backup job'))
      p.log(`Not pruning chain ${c.fullSubdir} this time: ${reason}.`);
  }
  for (const c of plan.remove)
    p.log(
      `${p.config.pruneDryRun ? 'Would delete' : 'Deleting'} chain ${c.fullSubdir}: ${plan.reasons.get(c.fullSubdir) ?? ''}`,
    );
  const result = await executePrune(store, settings.prefix, plan, { dryRun: p.config.pruneDryRun });
  if (!result.interrupted) {
    try {
      await measureChains(store, settings.prefix, plan.keep);
    } catch (err) {
      p.log(`Sizes of the kept chains are unknown: listing them failed (${storageErrorText(err)}).`);
    }
  }
  const summary = pruneSummary(result, plan.reasons);
  p.log(`S3 requests for verification and pruning: ${formatCounts(store.requestCounts())}.`);
  if (result.interrupted) {
    const failure = fail(result.interrupted.during, result.interrupted.error, summary);
    summary.error = failure.message;
    throw failure;
  }
  if (summary.failures.length > 0) summary.failureMessage = deleteFailureMessage(summary);
  return summary;
}

function pruneSummary(result: PruneResult, reasons: Map<string, string>): PruneSummary {
  return {
    dryRun: result.dryRun,
    kept: result.plan.keep.map((c) => ({
      path: c.fullSubdir,
      sizeBytes: c.sizeBytes,
      objects: c.objectCount,
      reason: reasons.get(c.fullSubdir),
    })),
    deleted: result.chains.map((o) => ({
      path: o.fullSubdir,
      sizeBytes: o.state === 'not-deleted' && o.objects === 0 ? undefined : o.sizeBytes,
      objects: o.state === 'not-deleted' && o.objects === 0 ? undefined : o.objects,
      deletedObjects: o.deleted,
      outcome: chainOutcomeText(o, result),
    })),
    failures: result.failed.map((f) => `${f.key}: ${f.code} ${f.message}`.trim()),
    failedObjects: result.failed.map((f) => ({ key: f.key, code: f.code })),
    note: VERSIONED_NOTE,
  };
}

function chainOutcomeText(o: ChainOutcome, result: PruneResult): string {
  switch (o.state) {
    case 'dry-run':
      return 'would delete';
    case 'deleted':
      return 'deleted';
    case 'partial':
      return `partially deleted (${o.deleted} of ${o.objects} objects)`;
    case 'not-deleted':
      return result.interrupted && o.objects === 0
        ? 'not deleted (pruning stopped)'
        : `not deleted (0 of ${o.objects} objects)`;
  }
}

/** The one line that fails the step when objects could not be deleted. */
function deleteFailureMessage(s: PruneSummary): string {
  const chains = s.deleted.filter((c) => c.outcome !== 'deleted').map((c) => `${c.path} ${c.outcome}`);
  const codes = countByCode((s.failedObjects ?? []).map((f) => f.code));
  return (
    `${PRUNE_FAILED}: ${s.failures.length} object(s) could not be deleted (${codes}); ` +
    `chain(s) ${chains.join(', ')}. Their BACKUP_MANIFEST is kept, so they are still recognised as complete backups and pruning retries them next run. ` +
    `First: ${s.failures[0] ?? ''}`
  );
}

function formatCounts(counts: Record<string, number>): string {
  const parts = Object.entries(counts).map(([op, n]) => `${op} ${n}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}
