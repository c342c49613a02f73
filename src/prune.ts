/**
 * Pruning: whether it runs, what it needs from the cluster, which chains
 * go (the retention rules), and the driver that runs after a verified backup
 * and says what happened. Deleting the objects is prune-delete.ts.
 */
import type { ClusterLink, SqlSession } from './cluster.js';
import type { StorageSettings } from './destination.js';
import { descriptionTargetsCollection, storageSettings, subdirFromDescription } from './destination.js';
import { findRunningBackups } from './submit.js';
import { parseClusterTime } from './time.js';
import { folderKey, normalizeFullSubdir, readLatestFullSubdir } from './layout.js';
import type { ChainOutcome, PruneResult } from './prune-delete.js';
import { executePrune, measureChains } from './prune-delete.js';
import { countByCode } from './report.js';
import type { Chain, ObjectStore } from './storage.js';
import { isMissingCredentials, listChains, storageErrorText } from './storage.js';
import type { Config } from './config.js';

/** Whether this run prunes at all: either retention rule is set. */
export function pruningEnabled(rules: {
  readonly pruneKeepLast?: number | undefined;
  readonly pruneOlderThanMs?: number | undefined;
}): boolean {
  return rules.pruneKeepLast !== undefined || rules.pruneOlderThanMs !== undefined;
}

/**
 * What pruning needs from the cluster: its clock (folder names are end times in cluster time, so a
 * runner clock ahead of the cluster's would prune early) and the chains that running backup jobs
 * write into (such a chain is skipped this time).
 */
export interface PruneFacts {
  now: Date;
  /** Full backup folder (or `LATEST`) → ids of the running backup jobs that write into it. */
  busy: Map<string, string>;
}

export async function readPruneFacts(
  session: SqlSession,
  matchesCollection: (description: string) => boolean,
): Promise<PruneFacts> {
  const rows = await session.query({ text: 'SELECT now() AS now', params: [] });
  const now = parseClusterTime(String(rows[0]?.now ?? ''));
  if (!now)
    throw new Error(`could not read the cluster clock (SELECT now() returned ${JSON.stringify(rows[0])})`);
  const busy = new Map<string, string>();
  for (const job of await findRunningBackups(session, matchesCollection)) {
    const subdir = /\bINTO\s+LATEST\s+IN\b/i.test(job.description)
      ? 'LATEST'
      : subdirFromDescription(job.description);
    // A full backup into no named folder writes a new one: no existing chain is touched.
    if (subdir === undefined) continue;
    const key = subdir === 'LATEST' ? 'LATEST' : normalizeFullSubdir(subdir);
    busy.set(key, busy.has(key) ? `${busy.get(key)}, ${job.jobId}` : job.jobId);
  }
  return { now: new Date(Number(now.micros / 1000n)), busy };
}

// ---- retention rules ---------------------------------------------------------------------------------

export interface PrunePolicy {
  keepLast?: number;
  olderThanMs?: number;
  now: Date;
  /** The chain this run took or extended: never deleted. */
  protectFullSubdir: string;
  /** The chain LATEST names (`BACKUP … INTO LATEST` and `RESTORE … FROM LATEST` follow it): never deleted. */
  latestFullSubdir?: string;
  /** Chains a running backup job writes into, with the job ids: skipped this time. */
  busy?: ReadonlyMap<string, string>;
}

export interface PrunePlan {
  keep: Chain[];
  remove: Chain[];
  /** Why each chain is kept or removed, by fullSubdir. */
  reasons: Map<string, string>;
}

/** Decide which chains go. With both policies a chain goes only when both say so. */
export function planPrune(chains: Chain[], policy: PrunePolicy): PrunePlan {
  const reasons = new Map<string, string>();
  const complete = chains
    .filter((c) => c.hasManifest)
    .sort((a, b) => b.newestEndTime.getTime() - a.newestEndTime.getTime());
  const keep: Chain[] = [];
  const remove: Chain[] = [];
  const protectedSubdir = folderKey(policy.protectFullSubdir);
  if (complete.length === 0 || (policy.keepLast === undefined && policy.olderThanMs === undefined)) {
    for (const c of chains)
      reasons.set(
        c.fullSubdir,
        complete.length === 0
          ? 'no completed backup in this collection: nothing is pruned'
          : 'no prune policy',
      );
    return { keep: [...chains], remove: [], reasons };
  }
  const rank = new Map(complete.map((c, i) => [c.fullSubdir, i]));
  const cutoff = policy.olderThanMs !== undefined ? policy.now.getTime() - policy.olderThanMs : undefined;
  for (const c of chains) {
    const why = keepReason(c, rank.get(c.fullSubdir), protectedSubdir, policy, cutoff);
    reasons.set(c.fullSubdir, why.reason);
    (why.keep ? keep : remove).push(c);
  }
  return { keep, remove, reasons };
}

function keepReason(
  c: Chain,
  rank: number | undefined,
  protectedSubdir: string,
  policy: PrunePolicy,
  cutoff: number | undefined,
): { keep: boolean; reason: string } {
  if (c.fullSubdir === protectedSubdir) return { keep: true, reason: 'the chain this run took or extended' };
  if (policy.latestFullSubdir !== undefined && c.fullSubdir === folderKey(policy.latestFullSubdir))
    return { keep: true, reason: 'named by LATEST' };
  const busyJobs = policy.busy?.get(c.fullSubdir);
  if (busyJobs !== undefined)
    return { keep: true, reason: `a running backup job (${busyJobs}) writes into it: skipped this time` };
  if (!c.hasManifest || rank === undefined)
    return { keep: true, reason: 'no BACKUP_MANIFEST: possibly a backup in progress' };
  if (rank === 0) return { keep: true, reason: 'the newest chain' };
  const byCount = policy.keepLast === undefined ? undefined : rank >= policy.keepLast;
  const byAge = cutoff === undefined ? undefined : c.newestEndTime.getTime() < cutoff;
  const goes = (byCount ?? true) && (byAge ?? true);
  if (!goes) {
    return {
      keep: true,
      reason: byCount === false ? `among the newest ${policy.keepLast}` : 'newer than prune-older-than',
    };
  }
  const parts = [
    byCount ? `older than the newest ${policy.keepLast}` : '',
    byAge ? 'newest layer older than prune-older-than' : '',
  ];
  return { keep: false, reason: parts.filter(Boolean).join(' and ') };
}

// ---- after a verified backup -------------------------------------------------------------------------

export interface PruneSummary {
  dryRun: boolean;
  kept: { path: string; sizeBytes?: number; objects?: number; reason?: string }[];
  deleted: {
    path: string;
    sizeBytes?: number;
    objects?: number;
    /** Objects actually deleted. */
    deletedObjects?: number;
    /** `deleted`, `would delete`, `partially deleted (n of m objects)`, … (default: deleted / would delete). */
    outcome?: string;
  }[];
  /** One line per object that could not be deleted: `<key>: <code> <message>`. */
  failures: string[];
  /** The same failures with their error codes, for the counts by code. */
  failedObjects?: { key: string; code: string }[];
  /** One line that says what failed, for the step's error (set when failures is not empty). */
  failureMessage?: string;
  /** Pruning stopped on an error that is not about one object. */
  error?: string;
  note?: string;
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

/** What pruning after the backup needs from the main step. */
export interface PruneAfterBackupStep {
  config: Config;
  link: Pick<ClusterLink, 'withReconnect'>;
  openStore: (settings: StorageSettings) => Promise<ObjectStore>;
  /** The chain this run's backup is in: never pruned. */
  protectFullSubdir: string;
  verified: boolean;
  reconnectBudgetMs: number;
  signal: AbortSignal;
  log: (message: string) => void;
}

/**
 * The pruning phase: read the cluster's clock and running backups, then
 * prune. Returns what the summary shows and, when pruning failed, the line
 * the step fails with; errors that are not pruning's own (the cluster could
 * not be read) are thrown as they are.
 */
export async function pruneCollection(
  p: PruneAfterBackupStep,
): Promise<{ summary?: PruneSummary; failure?: string }> {
  let summary: PruneSummary | undefined;
  try {
    // Ages against the cluster's clock; chains that running backup jobs write into are skipped.
    const facts = await p.link.withReconnect(
      'reading the cluster clock and running backups for pruning',
      (s) => readPruneFacts(s, (d) => descriptionTargetsCollection(d, p.config.collection)),
      { budgetMs: p.reconnectBudgetMs, signal: p.signal },
    );
    summary = await pruneAfterBackup({
      config: p.config,
      openStore: p.openStore,
      protectFullSubdir: p.protectFullSubdir,
      now: facts.now,
      busy: facts.busy,
      log: p.log,
      verified: p.verified,
    });
  } catch (err) {
    if (!(err instanceof PruneFailure)) throw err;
    return err.summary ? { summary: err.summary, failure: err.message } : { failure: err.message };
  }
  if (!summary) return {};
  if (summary.failures.length === 0) return { summary };
  return {
    summary,
    failure:
      summary.failureMessage ??
      `Pruning failed for ${summary.failures.length} object(s): ${summary.failures.slice(0, 5).join('; ')}`,
  };
}

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
