/**
 * Waiting for a job: SHOW JOB WHEN COMPLETE in bounded slices where the
 * cluster has it, polling where it does not, through dropped connections and
 * pauses, with progress lines; and single reads of a job.
 */
import type { ClusterLink, LinkLogger, Row, SqlSession } from './cluster.js';
import { sqlState } from './cluster.js';
import { AbortedError, errorMessage } from './errors.js';
import type { Clock } from './runtime.js';
import {
  jobByIdStatement,
  restoreStatementTimeoutStatement,
  showStatementTimeoutStatement,
  statementTimeoutStatement,
  whenCompleteStatement,
} from './sql.js';
import type { ClusterTime } from './time.js';
import { formatDurationMs, parseClusterTime } from './time.js';

export const TERMINAL_STATUSES = new Set(['succeeded', 'failed', 'canceled', 'revert-failed']);
/** Statuses that hold a job without progress; WHEN COMPLETE keeps waiting through them. */
export const HELD_STATUSES = new Set(['paused', 'pause-requested']);

export interface JobRow {
  jobId: string;
  status: string;
  fractionCompleted: number | null;
  error: string | null;
  created?: ClusterTime;
  started?: ClusterTime;
  finished?: ClusterTime;
  /** The job record's last change: for a held job, when it was paused. */
  modified?: ClusterTime;
  description: string;
}

export function toJobRow(row: Row): JobRow {
  const fraction = row.fraction_completed;
  return {
    jobId: String(row.job_id),
    status: String(row.status ?? ''),
    fractionCompleted: fraction == null ? null : Number(fraction),
    error: row.error == null || row.error === '' ? null : String(row.error),
    created: parseClusterTime(row.created as string | null),
    started: parseClusterTime(row.started as string | null),
    finished: parseClusterTime(row.finished as string | null),
    modified: parseClusterTime(row.modified as string | null),
    description: String(row.description ?? ''),
  };
}

export async function readJob(
  session: SqlSession,
  jobId: string,
  clientTimeoutMs = 30_000,
): Promise<JobRow | undefined> {
  const rows = await session.query(jobByIdStatement(jobId), { clientTimeoutMs });
  return rows[0] ? toJobRow(rows[0]) : undefined;
}

/**
 * One read of the job within `ms` (connecting included), or undefined: what the job was doing when
 * a timeout ended the wait (on 23.2+ a pause is seen only between WHEN COMPLETE waits).
 */
export async function readJobWithin(
  link: ClusterLink,
  jobId: string,
  ms: number,
): Promise<JobRow | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  const read = (async () => readJob(await link.session(), jobId, ms))().catch(() => undefined);
  try {
    const job = await Promise.race([read, late]);
    if (job === undefined) link.abandon();
    return job;
  } finally {
    clearTimeout(timer);
  }
}

/** What a job still unfinished at a timeout was doing, as a clause: `it was paused since …`. */
export function jobStateAtTimeout(job: JobRow): string {
  const since = job.modified ? ` since ${job.modified.iso}` : '';
  switch (job.status) {
    case 'paused':
      return `it was paused${since}`;
    case 'pause-requested':
      return `it was pausing (pause-requested${since})`;
    case 'reverting':
    case 'cancel-requested':
      return `it was being rolled back (${job.status}${since})`;
    case 'pending':
      return 'it had not started yet (pending)';
    case 'running':
      return job.fractionCompleted === null
        ? 'it was running'
        : `it was running, ${Math.floor(job.fractionCompleted * 100)}% done`;
    default:
      return `its status was ${job.status}`;
  }
}

export type WaitOutcome =
  | { kind: 'terminal'; job: JobRow }
  | { kind: 'timeout'; job: JobRow | undefined; reason: 'timeout' | 'paused-timeout' }
  | { kind: 'aborted'; job: JobRow | undefined }
  | { kind: 'vanished'; job: JobRow | undefined };

export interface WaitContext {
  link: ClusterLink;
  jobId: string;
  useWhenComplete: boolean;
  pollIntervalMs: number;
  timeoutMs?: number;
  pausedTimeoutMs: number;
  clock: Clock;
  log: LinkLogger;
  signal: AbortSignal;
  /** Called with every job read, for progress lines. */
  onRead?: (job: JobRow) => void;
  /** Reconnect budget while waiting (a cluster restart of a minute or more must be survived). */
  reconnectBudgetMs: number;
  /** Longest single WHEN COMPLETE wait, so progress is read between waits. */
  whenCompleteSliceMs?: number;
}

/**
 * Wait until the job reaches a terminal status, the timeout or the paused
 * timeout expires, or the run is aborted. A dropped connection is
 * re-established and the wait resumes on the same job id.
 */
export async function waitForJob(ctx: WaitContext): Promise<WaitOutcome> {
  const startedAt = ctx.clock.now();
  const deadline = ctx.timeoutMs !== undefined ? startedAt + ctx.timeoutMs : Number.POSITIVE_INFINITY;
  // A pause is only seen between waits, so waits are kept well inside paused-timeout.
  const slice = Math.min(
    ctx.whenCompleteSliceMs ?? 15_000,
    Math.max(1000, Math.floor(ctx.pausedTimeoutMs / 2)),
  );
  const poller = new AdaptivePoller(ctx.pollIntervalMs);
  let whenComplete = ctx.useWhenComplete;
  let heldSince: number | undefined;
  let last: JobRow | undefined;
  const warned = new Set<string>();
  const timeoutSetting: TimeoutSetting = {};

  const reconnecting = <T>(what: string, fn: (s: SqlSession) => Promise<T>): Promise<T> =>
    ctx.link.withReconnect(what, fn, {
      budgetMs: Math.max(1000, Math.min(ctx.reconnectBudgetMs, deadline - ctx.clock.now())),
      signal: ctx.signal,
    });

  // With WHEN COMPLETE the job just created is waited on at once: a read before the first wait
  // would cost a statement and tell nothing the read after it does not.
  let readNow = !whenComplete;
  try {
    if (!whenComplete)
      await ctx.clock.sleep(
        Math.min(poller.firstDelay(), Math.max(0, deadline - ctx.clock.now())),
        ctx.signal,
      );
    for (;;) {
      if (ctx.signal.aborted) return { kind: 'aborted', job: last };
      if (ctx.clock.now() >= deadline) return { kind: 'timeout', job: last, reason: 'timeout' };

      if (readNow) {
        const job = await reconnecting(`the wait for job ${ctx.jobId}`, (s) => readJob(s, ctx.jobId));
        if (!job) return { kind: 'vanished', job: last };
        last = job;
        ctx.onRead?.(job);
        if (TERMINAL_STATUSES.has(job.status)) return { kind: 'terminal', job };

        warnOnceAboutState(job, warned, ctx.log);
        if (HELD_STATUSES.has(job.status)) {
          heldSince ??= ctx.clock.now();
          if (ctx.clock.now() - heldSince >= ctx.pausedTimeoutMs) {
            return { kind: 'timeout', job, reason: 'paused-timeout' };
          }
        } else {
          heldSince = undefined;
        }
      }
      readNow = true;

      const now = ctx.clock.now();
      const pausedLeft =
        heldSince !== undefined ? heldSince + ctx.pausedTimeoutMs - now : Number.POSITIVE_INFINITY;
      const budget = Math.min(deadline - now, pausedLeft);
      // Less than a second left: a short sleep to the deadline, not a whole WHEN COMPLETE wait.
      if (whenComplete && heldSince === undefined && budget >= 1000) {
        const waitMs = Math.max(1000, Math.min(slice, budget));
        const result = await waitWhenComplete(ctx, waitMs, timeoutSetting, reconnecting);
        if (result.unsupported) {
          whenComplete = false;
          ctx.log.warning(
            `SHOW JOB WHEN COMPLETE is not usable here (${result.unsupported}); polling instead.`,
          );
        }
      } else {
        await ctx.clock.sleep(Math.max(0, Math.min(poller.nextDelay(), budget)), ctx.signal);
      }
    }
  } catch (err) {
    if (err instanceof AbortedError) return { kind: 'aborted', job: last };
    throw err;
  } finally {
    if (!ctx.signal.aborted) await restoreStatementTimeout(ctx, timeoutSetting);
  }
}

/** The statement_timeout last set, on which session, and what that session had before. */
interface TimeoutSetting {
  session?: SqlSession;
  ms?: number;
  original?: string;
}

/**
 * Put back the session's own statement_timeout: verification (`SHOW BACKUP … WITH check_files` can
 * take minutes), a BACKUP after if-running: wait and pruning run on this session next. When that
 * cannot be done, the session is dropped, so that the next statement runs on a fresh one.
 */
async function restoreStatementTimeout(ctx: WaitContext, setting: TimeoutSetting): Promise<void> {
  const session = setting.session;
  if (session === undefined || setting.original === undefined || session.broken) return;
  setting.session = undefined;
  try {
    await session.query(restoreStatementTimeoutStatement(setting.original), { clientTimeoutMs: 5_000 });
  } catch {
    ctx.link.abandon();
  }
}

/** One bounded `SHOW JOB WHEN COMPLETE`; returns why it cannot be used, if the cluster refuses it. */
async function waitWhenComplete(
  ctx: WaitContext,
  waitMs: number,
  setting: TimeoutSetting,
  reconnecting: <T>(what: string, fn: (s: SqlSession) => Promise<T>) => Promise<T>,
): Promise<{ unsupported?: string }> {
  try {
    await reconnecting(`the wait for job ${ctx.jobId}`, async (s) => {
      if (setting.session !== s || setting.ms !== waitMs) {
        // What the session had (0, or set by the connection string's options), to put back after the wait.
        if (setting.session !== s) {
          const rows = await s.query(showStatementTimeoutStatement());
          setting.original = String(rows[0]?.statement_timeout ?? '0');
        }
        await s.query(statementTimeoutStatement(waitMs));
        setting.session = s;
        setting.ms = waitMs;
      }
      // The query may hold the connection for waitMs: abandon it at once on abort.
      return raceAbort(s.query(whenCompleteStatement(ctx.jobId), { clientTimeoutMs: waitMs + 15_000 }), ctx);
    });
    return {};
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    const code = sqlState(err);
    if (code === '57014') return {};
    if (code !== undefined) return { unsupported: `${code}: ${errorMessage(err)}` };
    throw err;
  }
}

function raceAbort<T>(p: Promise<T>, ctx: WaitContext): Promise<T> {
  // The query may already be under way when the signal came: its failure once abandoned is expected.
  p.catch(() => undefined);
  if (ctx.signal.aborted) {
    ctx.link.abandon();
    return Promise.reject(new AbortedError());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      ctx.link.abandon();
      reject(new AbortedError());
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        ctx.signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function warnOnceAboutState(job: JobRow, warned: Set<string>, log: LinkLogger): void {
  const notable = ['paused', 'pause-requested', 'reverting', 'cancel-requested'];
  if (!notable.includes(job.status) || warned.has(job.status)) return;
  warned.add(job.status);
  const why = job.status.startsWith('pause')
    ? 'someone paused it; it counts toward timeout and paused-timeout'
    : 'it is being rolled back';
  log.warning(`Backup job ${job.jobId} is ${job.status}: ${why}.`);
}

/**
 * Polling schedule for clusters without a usable WHEN COMPLETE (there each read scans the whole
 * jobs table): a read one poll-interval after the submission, then one a poll-interval after each
 * answer, as a plain poller makes them, and never more. fraction_completed moves in steps of at
 * least 5 % at most every 15 s (pkg/jobs/progress.go), so reads aimed
 * at an end predicted from it cost statements and buy no earlier detection (measured: 1.2× the
 * statements of a 5 s poller, no faster).
 */
export class AdaptivePoller {
  constructor(private readonly maxIntervalMs: number) {}

  /** The first read: one interval after the submission. */
  firstDelay(): number {
    return this.maxIntervalMs;
  }

  /** The next read: one interval after the answer to the last one. */
  nextDelay(): number {
    return this.maxIntervalMs;
  }
}

/**
 * Progress lines at a calm cadence: on a change of status or fraction, and
 * otherwise at most every `quietMs`. fraction_completed moves in steps of
 * ≥5 % at most every 15 s, so the ETA is a rough guide.
 */
export class ProgressReporter {
  private lastLineAt = Number.NEGATIVE_INFINITY;
  private lastKey = '';
  private first: { at: number; fraction: number } | undefined;
  /**
   * Elapsed time counts from the start of the wait, not from the first read: on 23.2+ the first
   * read may come only when WHEN COMPLETE returns, at the very end.
   */
  private readonly startedAt: number;

  constructor(
    private readonly emit: (line: string) => void,
    private readonly now: () => number,
    private readonly quietMs = 30_000,
  ) {
    this.startedAt = now();
  }

  update(job: JobRow): void {
    const at = this.now();
    const fraction = job.fractionCompleted ?? 0;
    if (this.first === undefined) this.first = { at, fraction };
    const key = `${job.status}|${fraction.toFixed(3)}`;
    if (key === this.lastKey && at - this.lastLineAt < this.quietMs) return;
    this.lastKey = key;
    this.lastLineAt = at;
    this.emit(this.line(job, fraction, at));
  }

  private line(job: JobRow, fraction: number, at: number): string {
    const pct = `${(fraction * 100).toFixed(1)}%`;
    const elapsed = at - this.startedAt;
    const observed = at - this.first!.at;
    const gained = fraction - this.first!.fraction;
    let rate = '';
    let eta = '';
    if (gained > 0 && observed > 0 && job.status === 'running') {
      const perMin = (gained / observed) * 60_000 * 100;
      rate = `, ${perMin.toFixed(1)}%/min`;
      const remainingMs = ((1 - fraction) / gained) * observed;
      eta = `, ETA ~${formatDurationMs(remainingMs)}`;
    }
    return `Job ${job.jobId}: ${job.status}, ${pct}${rate}${eta} (elapsed ${formatDurationMs(elapsed)})`;
  }
}
