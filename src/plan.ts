/**
 * What to back up: a new full backup or an incremental onto the newest full
 * one (backup-type, full-backup-every, and the full backup's targets).
 */
import type { Row } from './cluster.js';
import { subdirFromDescription } from './destination.js';
import type { CaptureTime } from './submit.js';
import { captureTimeFromMicros } from './submit.js';
import { formatDurationMs, parseClusterTime } from './time.js';
import type { JobRow } from './wait.js';
import type { Statement } from './sql.js';
import { endMillisOfFolder } from './layout.js';
import type { BackupType, IfRunning } from './config.js';

/**
 * `fullSubdir` is always the folder of the chain's full backup (the `backup-path` output): the
 * one an incremental extends (`BACKUP … INTO '<fullSubdir>' IN …`), or the one a full backup
 * writes. A new full backup's folder follows from its capture time, so it is known beforehand
 * only when a job's description names it (a job attached to, or the cluster's own record).
 */
export type Plan = FullPlan | IncrementalPlan;

export interface FullPlan {
  kind: 'full';
  fullSubdir?: string;
  /** Why `auto` chose a new full backup: logged and in the summary. */
  reason?: string;
}

export interface IncrementalPlan {
  kind: 'incremental';
  fullSubdir: string;
  /** Onto which full backup it appends: logged. */
  reason?: string;
}

/** The `INTO '<subdir>' IN` of the BACKUP statement: only an incremental names a folder. */
export function appendTarget(plan: Plan): string | undefined {
  return plan.kind === 'incremental' ? plan.fullSubdir : undefined;
}

/** The chain's full backup folder as planned (not yet normalised), if known. */
export function plannedFullSubdir(plan: Plan, capture: CaptureTime | undefined): string | undefined {
  return plan.kind === 'incremental' ? plan.fullSubdir : (plan.fullSubdir ?? capture?.fullSubdir);
}

/** A plan that cannot be carried out (incremental without a full backup of the same targets). */
export class PlanError extends Error {}

export interface PlanContext {
  backupType: BackupType;
  /** This run's databases; empty for a cluster backup. */
  databases: readonly string[];
  fullBackupEveryMs?: number;
  collectionDisplay: string;
  /** Runs a statement on the cluster (with the step's reconnects). */
  query: (stmt: Statement) => Promise<Row[]>;
  showBackups: Statement;
  /** `SHOW BACKUP FROM <subdir> IN …` with the backup's encryption options. */
  showBackup: (subdir: string) => Statement;
  log: (message: string) => void;
}

/** What a backup holds: the whole cluster, or these databases. */
export interface Targets {
  cluster: boolean;
  databases: string[];
}

export async function planBackup(ctx: PlanContext): Promise<Plan> {
  if (ctx.backupType === 'full') return { kind: 'full' };
  const rows = await ctx.query(ctx.showBackups);
  // Folder names are end times (/YYYY/MM/DD-HHMMSS.ss): the greatest is the newest full backup,
  // the one `backup-type: incremental` extends.
  const latest = rows
    .map((r) => String(r.path))
    .map((p) => `/${p.replace(/^\/+/, '')}`)
    .sort()
    .pop();
  if (latest === undefined) {
    if (ctx.backupType === 'incremental') {
      throw new PlanError(
        `backup-type: incremental, but ${ctx.collectionDisplay} holds no full backup to append to. Run once with backup-type: full, or use backup-type: auto.`,
      );
    }
    return full(ctx, 'backup-type: auto: the collection holds no full backup yet; taking a full backup.');
  }

  if (ctx.backupType === 'auto' && ctx.fullBackupEveryMs !== undefined) {
    const now = await clusterNow(ctx);
    const end = endMillisOfFolder(latest);
    if (end !== undefined && now - end > ctx.fullBackupEveryMs) {
      return full(
        ctx,
        `backup-type: auto: the newest full backup ${latest} ended ${formatAge(now - end)} ago (cluster clock), more than full-backup-every (${formatAge(ctx.fullBackupEveryMs)}): starting a new chain with a full backup.`,
      );
    }
  }

  const held = targetsOf(await ctx.query(ctx.showBackup(latest)));
  const wanted: Targets = { cluster: ctx.databases.length === 0, databases: [...ctx.databases] };
  if (!sameTargets(held, wanted)) {
    const why = `the newest full backup ${latest} holds ${describeTargets(held)}, and this run backs up ${describeTargets(wanted)}; CockroachDB appends an incremental only to a backup of the same targets`;
    if (ctx.backupType === 'incremental') {
      throw new PlanError(
        `backup-type: incremental: ${why}. Set databases to what the full backup holds, or start a new chain with backup-type: full (or auto).`,
      );
    }
    return full(ctx, `backup-type: auto: ${why}: taking a new full backup.`);
  }
  const reason = `Appending an incremental backup to the full backup ${latest}.`;
  ctx.log(reason);
  return { kind: 'incremental', fullSubdir: latest, reason };
}

function full(ctx: PlanContext, reason: string): Plan {
  ctx.log(reason);
  return { kind: 'full', reason };
}

async function clusterNow(ctx: PlanContext): Promise<number> {
  const rows = await ctx.query({ text: 'SELECT now() AS now', params: [] });
  const value = rows[0]?.now;
  const ms = value instanceof Date ? value.getTime() : Date.parse(String(value));
  if (!Number.isFinite(ms))
    throw new Error(`could not read the cluster clock (SELECT now() gave ${String(value)})`);
  return ms;
}

/** The targets of a full backup, from `SHOW BACKUP`'s rows of its full layer. */
export function targetsOf(rows: Row[]): Targets {
  const fullRows = rows.filter((r) => r.backup_type === undefined || String(r.backup_type) === 'full');
  const cluster = fullRows.some((r) => r.is_full_cluster === true || r.is_full_cluster === 't');
  const databases = fullRows
    .filter((r) => String(r.object_type) === 'database')
    .map((r) => String(r.object_name));
  return { cluster, databases: [...new Set(databases)] };
}

export function sameTargets(a: Targets, b: Targets): boolean {
  if (a.cluster || b.cluster) return a.cluster === b.cluster;
  const x = new Set(a.databases);
  return x.size === new Set(b.databases).size && b.databases.every((d) => x.has(d));
}

function describeTargets(t: Targets): string {
  if (t.cluster) return 'the whole cluster';
  if (t.databases.length === 0) return 'no database';
  const names = [...t.databases].sort().map((d) => `"${d}"`);
  return `database${names.length > 1 ? 's' : ''} ${names.join(', ')}`;
}

function formatAge(ms: number): string {
  const days = Math.floor(ms / 86_400_000);
  const rest = ms - days * 86_400_000;
  if (days === 0) return formatDurationMs(ms);
  const hours = Math.floor(rest / 3_600_000);
  return hours > 0 ? `${days}d${hours}h` : `${days}d`;
}

/**
 * What `if-running` says to do about other unfinished backups into the same collection, seen
 * before submitting: start (with the line to log), fail, attach to the newest, or wait for each.
 */
export type RunningDecision =
  | { kind: 'start'; log: string }
  | { kind: 'fail'; message: string }
  | { kind: 'attach'; job: JobRow }
  | { kind: 'wait'; jobs: readonly JobRow[] };

export function decideIfRunning(
  mode: IfRunning,
  running: readonly JobRow[],
  collectionDisplay: string,
): RunningDecision {
  if (running.length === 0)
    return { kind: 'start', log: `No other backup job is running into ${collectionDisplay}.` };
  const ids = running.map((j) => `${j.jobId} (${j.status})`).join(', ');
  switch (mode) {
    case 'start':
      return {
        kind: 'start',
        log: `Backup job(s) ${ids} already running into this collection; starting another (if-running: start).`,
      };
    case 'fail':
      return {
        kind: 'fail',
        message: `if-running: fail: backup job(s) ${ids} are already running into ${collectionDisplay}. Wait for them, or set if-running to attach, wait or start.`,
      };
    case 'attach':
      return { kind: 'attach', job: newest(running) };
    case 'wait':
      return { kind: 'wait', jobs: running };
  }
}

/** Two runs may pass the if-running check together: the later one yields after submitting, at most twice. */
export const MAX_SUBMIT_ROUNDS = 3;

/** What to do once this run's own job is cancelled in favour of the one that started first. */
export type AfterYield =
  { kind: 'fail'; message: string } | { kind: 'attach'; job: JobRow } | { kind: 'resubmit' };

/**
 * Another backup into this collection was created just before this run's job `ownId` and is
 * still unfinished: do as if-running says, as if it had been seen before submitting. `keep`
 * both (if-running: start), or cancel this run's job and then do `then`.
 */
export type YieldDecision =
  { kind: 'keep'; log: string } | { kind: 'cancel-own'; log: string; then: AfterYield };

export function decideYield(
  mode: IfRunning,
  other: JobRow,
  ownId: string,
  collectionDisplay: string,
): YieldDecision {
  if (mode === 'start') {
    return {
      kind: 'keep',
      log: `Backup job ${other.jobId} into this collection was started just before job ${ownId}; keeping both (if-running: start).`,
    };
  }
  const log = `Backup job ${other.jobId} into this collection was started just before job ${ownId} (another run passed the same check at the same moment); cancelling ${ownId} (if-running: ${mode}).`;
  const then: AfterYield =
    mode === 'fail'
      ? {
          kind: 'fail',
          message: `if-running: fail: backup job ${other.jobId} into ${collectionDisplay} was started just before this run's job ${ownId}, which was cancelled. Wait for it, or set if-running to attach, wait or start.`,
        }
      : mode === 'attach'
        ? { kind: 'attach', job: other }
        : { kind: 'resubmit' };
  return { kind: 'cancel-own', log, then };
}

/** The newest of some jobs by creation time (the one `if-running: attach` follows). */
export function newest(jobs: readonly JobRow[]): JobRow {
  return [...jobs].sort((a, b) => Number((b.created?.micros ?? 0n) - (a.created?.micros ?? 0n)))[0]!;
}

/** The AS OF SYSTEM TIME of a job, from its description, when it is an absolute timestamp. */
export function captureFromDescription(description: string): CaptureTime | undefined {
  const m = /AS OF SYSTEM TIME '([^']+)'/.exec(description);
  const t = m ? parseClusterTime(m[1]) : undefined;
  return t ? captureTimeFromMicros(t.micros) : undefined;
}

/**
 * A job's description names the full backup it writes or extends (`INTO '<subdir>' IN`). It is
 * an incremental when its capture time does not map to that folder.
 */
export function planFromDescription(description: string): Plan {
  const subdir = subdirFromDescription(description);
  const capture = captureFromDescription(description);
  if (subdir !== undefined && capture !== undefined && capture.fullSubdir !== subdir && subdir !== 'LATEST') {
    return { kind: 'incremental', fullSubdir: subdir };
  }
  return subdir === undefined || subdir === 'LATEST'
    ? { kind: 'full' }
    : { kind: 'full', fullSubdir: subdir };
}
