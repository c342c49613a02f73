/**
 * Cancelling a job of this run, for the main step and the post step alike:
 * on a fresh connection, falling back to grant-connection-string when the
 * user may not, all within one deadline.
 */
import type { Connector, SqlSession } from './cluster.js';
import { isConnectionError, sqlState } from './cluster.js';
import type { Config, ConnectionConfig } from './config.js';
import type { Timings } from './runtime.js';
import type { Ownership } from './state.js';
import { errorMessage } from './errors.js';
import { cancelJobStatement, statementTimeoutStatement } from './sql.js';

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

export interface RunJobCancel {
  connector: Connector;
  config: Pick<Config, 'connection' | 'grantConnection' | 'grantConnectionGiven'>;
  jobId: string;
  applicationName: () => string;
  timings: Pick<Timings, 'connectTimeoutMs' | 'cancelTimeoutMs'>;
  /** What the whole cancel may take (default CANCEL_DEADLINE_MS). */
  totalTimeoutMs?: number;
  /** Why it is cancelled, for the text: `cancel-on-abort`, `on-timeout: cancel`, … */
  why: string;
  /** Scrubbing log and error description: the texts carry the cluster's errors. */
  log: (message: string) => void;
  describe: (err: unknown) => string;
}

/**
 * Cancel this run's backup job, from the main step or the post step: on the
 * step's connection, then on grant-connection-string when refused. Returns
 * what happened as a sentence, and the job's ownership from now on when it
 * changed: `cancel-sent`, or `cancel-pending` when the post step must try again.
 */
export async function cancelRunJob(
  c: RunJobCancel,
): Promise<{ result: CancelResult; text: string; ownership?: Ownership }> {
  const { config } = c;
  const result = await cancelWithFallback({
    connector: c.connector,
    jobId: c.jobId,
    connections: config.grantConnectionGiven
      ? [config.connection, config.grantConnection]
      : [config.connection],
    applicationName: c.applicationName,
    connectTimeoutMs: Math.min(c.timings.connectTimeoutMs, c.timings.cancelTimeoutMs),
    timeoutMs: c.timings.cancelTimeoutMs,
    ...(c.totalTimeoutMs !== undefined ? { totalTimeoutMs: c.totalTimeoutMs } : {}),
    log: c.log,
    describe: c.describe,
  });
  const text = cancelResultText(result, c.jobId, c.why, config.connection.user);
  const ownership = ownershipAfter(result);
  return ownership ? { result, text, ownership } : { result, text };
}

function ownershipAfter(result: CancelResult): Ownership | undefined {
  switch (result.kind) {
    case 'requested':
      return 'cancel-sent';
    case 'timed-out':
    case 'failed':
    case 'pausing':
      return 'cancel-pending';
    default:
      return undefined;
  }
}
