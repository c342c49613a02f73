/**
 * The backup job: resolve the capture time, submit (without ever creating two
 * jobs), find jobs by collection or statement, wait for a terminal status,
 * cancel.
 */
import type { ClusterLink, Connector, LinkLogger, Row, SqlSession } from './cluster.js';
import { isConnectionError, sqlState } from './cluster.js';
import { AbortedError, errorMessage } from './errors.js';
import type { Clock } from './runtime.js';
import {
  cancelJobStatement,
  formatTimestampMicros,
  jobByIdStatement,
  restoreStatementTimeoutStatement,
  showStatementTimeoutStatement,
  statementTimeoutStatement,
  unfinishedBackupsStatement,
  whenCompleteStatement,
} from './sql.js';
import type { AsOfSystemTime, ConnectionConfig } from './config.js';

export const TERMINAL_STATUSES = new Set(['succeeded', 'failed', 'canceled', 'revert-failed']);
/** Statuses that hold a job without progress; WHEN COMPLETE keeps waiting through them. */
export const HELD_STATUSES = new Set(['paused', 'pause-requested']);

export interface ClusterTime {
  /** ISO 8601 UTC with the precision the cluster gave (up to microseconds). */
  iso: string;
  micros: bigint;
}

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

const CLUSTER_TIME =
  /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?))?$/;

/** Parse a TIMESTAMP (UTC by CockroachDB's convention, up to 23.1) or TIMESTAMPTZ text. */
export function parseClusterTime(text: string | null | undefined): ClusterTime | undefined {
  if (text == null || text === '') return undefined;
  const m = CLUSTER_TIME.exec(text.trim());
  if (!m) return undefined;
  const [, date, time, frac = '', zone] = m;
  const baseMs = Date.parse(`${date}T${time}Z`);
  if (Number.isNaN(baseMs)) return undefined;
  const micros6 = (frac + '000000').slice(0, 6);
  let micros = BigInt(baseMs) * 1000n + BigInt(micros6);
  micros -= BigInt(zoneOffsetMinutes(zone)) * 60_000_000n;
  return { iso: microsToIso(micros, frac.length), micros };
}

function zoneOffsetMinutes(zone: string | undefined): number {
  if (zone === undefined || zone === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0'));
}

/** ISO 8601 UTC; keeps 3 or 6 fraction digits as the input precision warrants. */
export function microsToIso(micros: bigint, fractionDigits = 6): string {
  const ts = formatTimestampMicros(micros); // YYYY-MM-DD HH:MM:SS.ffffff+00:00
  const frac = ts.slice(20, 26);
  const keep = fractionDigits === 0 ? '' : fractionDigits <= 3 ? `.${frac.slice(0, 3)}` : `.${frac}`;
  return `${ts.slice(0, 10)}T${ts.slice(11, 19)}${keep}Z`;
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

/** Seconds from creation to finish, as the cluster recorded them (`83.412`). */
export function jobDurationSeconds(job: JobRow): string | undefined {
  if (!job.created || !job.finished) return undefined;
  const micros = job.finished.micros - job.created.micros;
  return (Number(micros) / 1e6).toFixed(3);
}

export interface CaptureTime {
  /** `YYYY-MM-DD HH:MM:SS.ffffff+00:00`, the literal sent as AS OF SYSTEM TIME. */
  literal: string;
  /** The `end-time` output. */
  iso: string;
  micros: bigint;
  /** The dated subdirectory a full backup at this time lands in: `/YYYY/MM/DD-HHMMSS.ss`. */
  fullSubdir: string;
}

/**
 * An interval is resolved against the cluster's clock and sent as an absolute
 * timestamp: CockroachDB reads '-1m30s' as −30 s, and an absolute time makes
 * the statement unique to this run (the key to finding a lost submission).
 */
export async function resolveCaptureTime(session: SqlSession, aost: AsOfSystemTime): Promise<CaptureTime> {
  let micros: bigint;
  if (aost.kind === 'interval') {
    const rows = await session.query({ text: 'SELECT now() AS now', params: [] });
    const now = parseClusterTime(String(rows[0]?.now ?? ''));
    if (!now)
      throw new Error(`could not read the cluster clock (SELECT now() returned ${JSON.stringify(rows[0])})`);
    micros = now.micros - aost.micros;
  } else {
    const parsed = parseClusterTime(aost.iso);
    if (!parsed) throw new Error(`internal: as-of-system-time ${aost.iso} did not parse`);
    micros = parsed.micros;
  }
  return captureTimeFromMicros(micros);
}

export function captureTimeFromMicros(micros: bigint): CaptureTime {
  const literal = formatTimestampMicros(micros);
  return { literal, iso: microsToIso(micros), micros, fullSubdir: fullSubdirFor(literal) };
}

/** Go's `/2006/01/02-150405.00` of the end time: fraction truncated to 2 digits. */
export function fullSubdirFor(literal: string): string {
  const [date, time] = literal.split(' ');
  const [y, mo, d] = date!.split('-');
  const hms = time!.slice(0, 8).replace(/:/g, '');
  const cs = time!.slice(9, 11);
  return `/${y}/${mo}/${d}-${hms}.${cs}`;
}

/** Unfinished BACKUP jobs into this exact collection (for `if-running`). */
export async function findRunningBackups(
  session: SqlSession,
  matchesCollection: (description: string) => boolean,
): Promise<JobRow[]> {
  const rows = await session.query(unfinishedBackupsStatement());
  return rows.map(toJobRow).filter((j) => matchesCollection(j.description));
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
 * least 5 % at most every 15 s (jobs/progress.go, cockroach-surface-resolved.md §10), so reads aimed
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

export type CancelResult =
  | { kind: 'requested' }
  | { kind: 'already-finished'; status: string }
  /** Already being rolled back: CockroachDB refuses a cancel of a reverting job, and needs none. */
  | { kind: 'reverting' }
  /** Still pause-requested at the deadline: CockroachDB cancels it only once it is paused. */
  | { kind: 'pausing' }
  | { kind: 'refused'; message: string }
  /** `connectionLost`: the connection failed (worth another one), as opposed to an answer from the server. */
  | { kind: 'failed'; message: string; connectionLost?: boolean }
  /** The whole cancel (every attempt, every connection) ran out of time. */
  | { kind: 'timed-out'; afterMs: number; last?: string };

/**
 * The longest a whole cancel may take, all attempts on all connections
 * together: well inside the runner's 7.5 s from SIGINT to SIGTERM (and the
 * 2.5 s after it), with room left for the summary.
 */
export const CANCEL_DEADLINE_MS = 5_000;

/** Below this, another statement or connection attempt is not worth starting. */
const CANCEL_MIN_STEP_MS = 100;

/**
 * How long before the deadline a cancel stops waiting for a pausing job, so that "pausing" is
 * reported rather than the whole cancel timing out.
 */
const PAUSING_MARGIN_MS = 300;

/**
 * CANCEL JOB on the given session, bounded by a short statement timeout. CockroachDB cancels only
 * pending, running and paused jobs (pkg/jobs/update.go, CancelRequested): a job on its way to pause
 * (`pause-requested`) is refused, so the cancel is sent again until the job is paused or the
 * deadline comes.
 */
export async function cancelJob(
  session: SqlSession,
  jobId: string,
  timeoutMs: number,
  deadline = Number.POSITIVE_INFINITY,
): Promise<CancelResult> {
  // Each step gets its own timeout, capped by what is left of the whole cancel.
  const left = (): number => Math.max(1, Math.min(timeoutMs + 1000, deadline - Date.now()));
  // Without a deadline of its own, the wait for a pausing job is bounded by the statement timeout.
  const pauseDeadline = Math.min(deadline, Date.now() + Math.max(timeoutMs, CANCEL_DEADLINE_MS));
  try {
    const serverTimeout = Math.max(1, Math.min(timeoutMs, deadline - Date.now()));
    await session.query(statementTimeoutStatement(serverTimeout), { clientTimeoutMs: left() });
  } catch (err) {
    return cancelFailure(err);
  }
  for (;;) {
    try {
      await session.query(cancelJobStatement(jobId), { clientTimeoutMs: left() });
      return { kind: 'requested' };
    } catch (err) {
      const m = /(?:status|state) ([a-z-]+) cannot be requested to be canceled/.exec(errorMessage(err));
      if (m?.[1] !== 'pause-requested') return cancelFailure(err);
      const pause = Math.min(250, pauseDeadline - PAUSING_MARGIN_MS - Date.now());
      if (pause <= 0) return { kind: 'pausing' };
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

function cancelFailure(err: unknown): CancelResult {
  const message = errorMessage(err);
  if (sqlState(err) === '42501') return { kind: 'refused', message };
  const m = /(?:status|state) ([a-z-]+) cannot be requested to be canceled/.exec(message);
  if (m?.[1] === 'reverting') return { kind: 'reverting' };
  if (m) return { kind: 'already-finished', status: m[1]! };
  return isConnectionError(err)
    ? { kind: 'failed', message, connectionLost: true }
    : { kind: 'failed', message };
}

export interface CancelRequest {
  connector: Connector;
  jobId: string;
  /** The step's own connection, then (when given) the grant connection for a refusal. */
  connections: readonly ConnectionConfig[];
  applicationName: () => string;
  /** Per connection attempt, capped by what is left of totalTimeoutMs. */
  connectTimeoutMs: number;
  /** Per statement, capped by what is left of totalTimeoutMs. */
  timeoutMs: number;
  /** One deadline for the whole cancel: every attempt on every connection (default CANCEL_DEADLINE_MS). */
  totalTimeoutMs?: number;
  log: (message: string) => void;
  describe: (err: unknown) => string;
}

interface CancelRun {
  readonly deadline: number;
  /** Set once the deadline passed: nothing more is started or logged. */
  expired: boolean;
  /** The last failure, for the timed-out report. */
  last?: string;
  /** Sessions still open; closed when the cancel ends, whichever way. */
  readonly open: Set<SqlSession>;
}

/**
 * Cancel on a fresh connection (the waiting one may be busy in WHEN
 * COMPLETE); a connection failure is retried on a new connection, a refusal
 * for lack of privilege moves to the next connection. All of it ends within
 * one deadline: a cancel that cannot be sent by then is reported as such.
 */
export async function cancelWithFallback(r: CancelRequest): Promise<CancelResult> {
  const totalMs = Math.max(CANCEL_MIN_STEP_MS, r.totalTimeoutMs ?? CANCEL_DEADLINE_MS);
  const run: CancelRun = { deadline: Date.now() + totalMs, expired: false, open: new Set() };
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<CancelResult>((resolve) => {
    timer = setTimeout(() => {
      run.expired = true;
      resolve({ kind: 'timed-out', afterMs: totalMs, ...(run.last !== undefined ? { last: run.last } : {}) });
    }, totalMs);
  });
  try {
    return await Promise.race([cancelAttempts(r, run, totalMs), expired]);
  } finally {
    clearTimeout(timer);
    run.expired = true;
    for (const s of run.open) void s.close().catch(() => undefined);
  }
}

async function cancelAttempts(r: CancelRequest, run: CancelRun, totalMs: number): Promise<CancelResult> {
  let result: CancelResult = { kind: 'failed', message: 'no connection to cancel with' };
  for (const [i, connection] of r.connections.entries()) {
    if (run.expired) break;
    if (i > 0) r.log(`CANCEL JOB ${r.jobId} was refused; retrying on grant-connection-string.`);
    result = await cancelOnConnection(r, run, connection);
    if (result.kind !== 'refused') break;
  }
  if (result.kind === 'failed' && Date.now() >= run.deadline - CANCEL_MIN_STEP_MS) {
    return { kind: 'timed-out', afterMs: totalMs, last: result.message };
  }
  return result;
}

/** Attempts on one connection: a connection failure (refused, reset, timed out) is tried again until the deadline. */
async function cancelOnConnection(
  r: CancelRequest,
  run: CancelRun,
  connection: ConnectionConfig,
): Promise<CancelResult> {
  let result: CancelResult = { kind: 'failed', message: 'no time left to cancel' };
  for (let attempt = 0; ; attempt++) {
    if (run.expired || run.deadline - Date.now() < CANCEL_MIN_STEP_MS) return result;
    const { result: once, retry } = await cancelOnce(r, run, connection);
    result = once;
    if (result.kind === 'failed') run.last = result.message;
    if (!retry) return result;
    const pause = Math.min(250 * 2 ** attempt, 1000, run.deadline - Date.now() - CANCEL_MIN_STEP_MS);
    if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

async function cancelOnce(
  r: CancelRequest,
  run: CancelRun,
  connection: ConnectionConfig,
): Promise<{ result: CancelResult; retry: boolean }> {
  let session: SqlSession | undefined;
  try {
    session = await r.connector({
      connection,
      applicationName: r.applicationName(),
      connectTimeoutMs: Math.max(1, Math.min(r.connectTimeoutMs, run.deadline - Date.now())),
    });
    if (run.expired) return { result: { kind: 'failed', message: 'out of time' }, retry: false };
    run.open.add(session);
    const result = await cancelJob(session, r.jobId, r.timeoutMs, run.deadline);
    // A dropped or timed-out connection is worth another one; an answer from the server is not.
    return { result, retry: result.kind === 'failed' && result.connectionLost === true };
  } catch (err) {
    return { result: { kind: 'failed', message: r.describe(err) }, retry: isConnectionError(err) };
  } finally {
    if (session) {
      run.open.delete(session);
      void session.close().catch(() => undefined);
    }
  }
}

export function cancelResultText(result: CancelResult, jobId: string, why: string, user: string): string {
  switch (result.kind) {
    case 'requested':
      return `CANCEL JOB ${jobId} sent (${why}); the cluster rolls the job back.`;
    case 'already-finished':
      return `Job ${jobId} had already ended (${result.status}); nothing to cancel.`;
    case 'reverting':
      return `Job ${jobId} is already being rolled back (reverting); nothing to cancel.`;
    case 'pausing':
      return (
        `Job ${jobId} is pausing (pause-requested) and STILL NEEDS A CANCEL: CockroachDB cancels a job only once it is paused, ` +
        `and it did not become paused in time. Cancel it once it is paused: CANCEL JOB ${jobId};`
      );
    case 'refused':
      return (
        `Job ${jobId} is STILL RUNNING: ${user} may not cancel it (${result.message}). ` +
        `Grant CONTROLJOB (GRANT SYSTEM CONTROLJOB TO ${user}; on 22.2 and 23.1 before 23.1.12: ALTER ROLE ${user} WITH CONTROLJOB), ` +
        `set grant-connection-string to an admin connection, or cancel it as an admin: CANCEL JOB ${jobId};`
      );
    case 'failed':
      return `Job ${jobId} may still be running: CANCEL JOB failed (${result.message}). Cancel it by hand: CANCEL JOB ${jobId};`;
    case 'timed-out':
      return (
        `Could not cancel within ${Math.round(result.afterMs / 1000)}s${result.last !== undefined ? ` (${result.last})` : ''}: ` +
        `job ${jobId} may still be running. Cancel it by hand: CANCEL JOB ${jobId};`
      );
  }
}
