/**
 * Submitting the BACKUP without ever creating two jobs. Its capture time is
 * resolved to an absolute timestamp first; each attempt's application_name is
 * announced before the statement is sent (so an abort or the post step can
 * look for a job whose id never arrived), the answer has its own deadline,
 * and a lost or late answer is followed by the lost-answer procedure: find
 * the job by its capture time once the submitting session is gone, and only
 * then submit again. Also: the unfinished backups into the same collection,
 * which `if-running` decides on.
 */
import type { ClusterLink, Connector, LinkLogger, SqlSession } from './cluster.js';
import { isConnectionError } from './cluster.js';
import { AbortedError, errorMessage } from './errors.js';
import type { Clock } from './runtime.js';
import { fullSubdirFor } from './layout.js';
import type { JobRow } from './wait.js';
import { toJobRow } from './wait.js';
import type { Statement } from './sql.js';
import {
  backupsByAostStatement,
  formatTimestampMicros,
  sessionsByApplicationStatement,
  unfinishedBackupsStatement,
} from './sql.js';
import type { AsOfSystemTime, ConnectionConfig } from './config.js';
import { microsToIso, parseClusterTime } from './time.js';

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

/** Unfinished BACKUP jobs into this exact collection (for `if-running`). */
export async function findRunningBackups(
  session: SqlSession,
  matchesCollection: (description: string) => boolean,
): Promise<JobRow[]> {
  const rows = await session.query(unfinishedBackupsStatement());
  return rows.map(toJobRow).filter((j) => matchesCollection(j.description));
}

/** The longest the answer to BACKUP … WITH detached is awaited before the lost-answer procedure takes over. */
export const ANSWER_TIMEOUT_MS = 60_000;

export interface SubmitContext {
  link: ClusterLink;
  statement: Statement;
  capture: CaptureTime;
  /** The job must target this collection (checked on the description when a lost answer is looked for). */
  matchesCollection: (description: string) => boolean;
  clock: Clock;
  log: LinkLogger;
  signal?: AbortSignal;
  /** How long to wait for a lost session to disappear from cluster_sessions. */
  sessionGoneTimeoutMs: number;
  reconnectBudgetMs: number;
  maxAttempts?: number;
  /**
   * False when sessions do not carry the action's application_name: the lost
   * session cannot be looked for, so a job that appears late cannot be ruled out.
   */
  mayResubmit?: boolean;
  /** Called with the attempt's application_name just before BACKUP is sent on it. */
  onAttempt?: (applicationName: string) => void;
  /** Longest wait for the answer (default ANSWER_TIMEOUT_MS). */
  answerTimeoutMs?: number;
  /** The run's deadline (`timeout`), in clock milliseconds: nothing new is started after it. */
  deadline?: number;
}

export interface Submitted {
  jobId: string;
  /** True when the answer was lost and the job was found by its statement. */
  adopted: boolean;
  attempts: number;
}

/** The BACKUP may or may not have created a job, and submitting again could make a second one. */
export class SubmissionUncertain extends Error {
  constructor(
    message: string,
    /** `timeout`: the run's deadline came first. */
    readonly reason: 'timeout' | 'no-application-name' | 'session-stuck',
  ) {
    super(message);
    this.name = 'SubmissionUncertain';
  }
}

/** The run's deadline passed during the submission and no job was created. */
export class SubmitDeadline extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SubmitDeadline';
  }
}

class AnswerTimeout extends Error {}

/**
 * Submit BACKUP … WITH detached. When the answer is lost (the connection
 * died after the statement was sent) or late, never resubmit blindly: wait
 * until the lost session is gone, look for the job by its unique statement,
 * adopt it, and resubmit only when it does not exist.
 */
export async function submitBackup(ctx: SubmitContext): Promise<Submitted> {
  const maxAttempts = ctx.maxAttempts ?? 3;
  const deadline = ctx.deadline ?? Number.POSITIVE_INFINITY;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (ctx.signal?.aborted) throw new AbortedError();
    const left = deadline - ctx.clock.now();
    if (left <= 0) throw new SubmitDeadline('timeout: the run ran out of time before BACKUP could be sent.');
    const session = await ctx.link.withReconnect('connecting to submit the backup', async (s) => s, {
      budgetMs: Math.max(1, Math.min(ctx.reconnectBudgetMs, left)),
      signal: ctx.signal,
    });
    if (ctx.signal?.aborted) throw new AbortedError();
    ctx.onAttempt?.(session.applicationName);
    const sentAt = ctx.clock.now();
    const answerMs = Math.max(1, Math.min(ctx.answerTimeoutMs ?? ANSWER_TIMEOUT_MS, deadline - sentAt));
    try {
      const rows = await answerWithin(session.query(ctx.statement), answerMs, ctx);
      const id = rows[0]?.job_id;
      if (id == null) throw new Error('BACKUP … WITH detached returned no job_id');
      return { jobId: String(id), adopted: false, attempts: attempt };
    } catch (err) {
      if (err instanceof AbortedError) {
        ctx.link.abandon();
        throw err;
      }
      const late = err instanceof AnswerTimeout;
      if (!late && !isConnectionError(err)) throw err;
      // Closing the session is what makes "the lost session is gone" happen for a late answer.
      ctx.link.abandon();
      ctx.log.warning(
        late
          ? `No answer to BACKUP within ${Math.round(answerMs / 1000)}s; closed that connection. Looking for the job it may have created before going on.`
          : `The answer to BACKUP was lost (${errorMessage(err)}). Looking for the job it may have created before submitting again.`,
      );
      const found = await recoverLostSubmission(ctx, session.applicationName, deadline);
      if (found) {
        ctx.log.info(
          `Found job ${found.jobId} (${found.status}) created by the lost submission; adopting it.`,
        );
        return { jobId: found.jobId, adopted: true, attempts: attempt };
      }
      if (ctx.mayResubmit === false) {
        throw new SubmissionUncertain(
          `The answer to BACKUP was lost and no job created by it was found, but the session did not carry the action's application_name, so it cannot be known whether that BACKUP still creates one. ` +
            `Not submitting again, to avoid a second backup job: check SHOW JOBS for a BACKUP job AS OF SYSTEM TIME '${ctx.capture.literal}' and run the step again.`,
          'no-application-name',
        );
      }
      if (ctx.clock.now() >= deadline) {
        throw new SubmitDeadline(
          `timeout: the answer to BACKUP did not come in time and the cluster created no job for it; nothing is running.`,
        );
      }
      ctx.log.info(
        `No job was created by the lost submission (after ${Math.round((ctx.clock.now() - sentAt) / 1000)}s); submitting again.`,
      );
    }
  }
  throw new Error(
    `BACKUP could not be submitted after ${maxAttempts} attempts: the connection kept dropping.`,
  );
}

/** The answer, or AnswerTimeout after `ms`, or AbortedError as soon as the run is aborted. */
function answerWithin<T>(p: Promise<T>, ms: number, ctx: SubmitContext): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const signal = ctx.signal;
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(new AbortedError());
    };
    const timer = setTimeout(() => {
      done();
      reject(new AnswerTimeout());
    }, ms);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
    // The abandoned query's late failure must not surface as unhandled.
    p.catch(() => undefined);
  });
}

/** Wait (bounded) until the lost session is gone, then look for its job; undefined when none was created. */
async function recoverLostSubmission(
  ctx: SubmitContext,
  applicationName: string,
  runDeadline: number,
): Promise<JobRow | undefined> {
  const gone = await waitForSessionGone(ctx, applicationName, runDeadline);
  const found = await findJobsByStatement(ctx);
  if (found.length > 0) return found[0];
  if (!gone) {
    if (ctx.clock.now() >= runDeadline) {
      throw new SubmissionUncertain(
        `timeout: the session that sent BACKUP (${applicationName}) was still open when the run's time ran out and no job was found yet. ` +
          `It may still create one: check SHOW JOBS for a BACKUP job AS OF SYSTEM TIME '${ctx.capture.literal}'.`,
        'timeout',
      );
    }
    throw new SubmissionUncertain(
      `The session that sent BACKUP (${applicationName}) is still open after ${Math.round(ctx.sessionGoneTimeoutMs / 1000)}s; ` +
        'not resubmitting, to avoid a second backup job. Check SHOW JOBS for a BACKUP job and run the step again.',
      'session-stuck',
    );
  }
  return undefined;
}

/** True once no session with that name remains; false when the wait ran out first. */
async function waitForSessionGone(
  ctx: SubmitContext,
  applicationName: string,
  runDeadline: number,
): Promise<boolean> {
  const deadline = Math.min(ctx.clock.now() + ctx.sessionGoneTimeoutMs, runDeadline);
  for (;;) {
    const budget = Math.max(1000, Math.min(ctx.reconnectBudgetMs, deadline - ctx.clock.now()));
    const rows = await ctx.link.withReconnect(
      'checking for the lost session',
      (s) => s.query(sessionsByApplicationStatement(applicationName)),
      { budgetMs: budget, signal: ctx.signal },
    );
    if (rows.length === 0) return true;
    if (ctx.clock.now() >= deadline) return false;
    await ctx.clock.sleep(Math.min(500, Math.max(0, deadline - ctx.clock.now())), ctx.signal);
    if (ctx.signal?.aborted) throw new AbortedError();
  }
}

async function findJobsByStatement(ctx: SubmitContext): Promise<JobRow[]> {
  const rows = await ctx.link.withReconnect(
    'looking for the submitted job',
    (s) => s.query(jobsByStatement(ctx.capture)),
    { budgetMs: ctx.reconnectBudgetMs, signal: ctx.signal },
  );
  return rows.map(toJobRow).filter((j) => ctx.matchesCollection(j.description));
}

/** BACKUP jobs whose statement carries this capture time (unique to one run). */
function jobsByStatement(capture: { literal: string; micros: bigint }): Statement {
  // The job was created after the capture time; a minute of slack covers clock skew between nodes.
  return backupsByAostStatement(capture.literal, formatTimestampMicros(capture.micros - 60_000_000n));
}

export interface SubmissionLookup {
  connector: Connector;
  connection: ConnectionConfig;
  applicationName: () => string;
  /** The AS OF SYSTEM TIME literal the BACKUP was sent with. */
  captureLiteral: string;
  captureMicros: bigint;
  matchesCollection: (description: string) => boolean;
  /** application_names of the sessions that sent BACKUP. */
  sessions: readonly string[];
  /** Date.now() milliseconds: the lookup ends by then, whatever it found. */
  deadline: number;
  describe: (err: unknown) => string;
}

export type LookupResult =
  { kind: 'found'; job: JobRow } | { kind: 'none' } | { kind: 'unknown'; why: string };

/**
 * After an abort (or in the post step): the job a BACKUP whose answer never
 * arrived created, found on a fresh connection by its unique statement. A
 * job is reported as absent only once the sending sessions are gone (they
 * could still create it); everything ends by `deadline`.
 */
export async function lookUpSubmission(r: SubmissionLookup): Promise<LookupResult> {
  let session: SqlSession | undefined;
  let last = 'no answer from the cluster';
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<LookupResult>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'unknown', why: last }), Math.max(0, r.deadline - Date.now()));
  });
  const capture = { literal: r.captureLiteral, micros: r.captureMicros };
  let over = false;
  const attempt = async (): Promise<LookupResult> => {
    for (;;) {
      if (over) return { kind: 'unknown', why: last };
      const left = (): number => Math.max(1, r.deadline - Date.now());
      try {
        if (!session || session.broken) {
          session = await r.connector({
            connection: r.connection,
            applicationName: r.applicationName(),
            connectTimeoutMs: Math.min(2000, left()),
          });
        }
        const find = async (): Promise<JobRow | undefined> =>
          (await session!.query(jobsByStatement(capture), { clientTimeoutMs: left() }))
            .map(toJobRow)
            .find((j) => r.matchesCollection(j.description));
        const job = await find();
        if (job) return { kind: 'found', job };
        let open = 0;
        for (const name of r.sessions) {
          open += (await session.query(sessionsByApplicationStatement(name), { clientTimeoutMs: left() }))
            .length;
        }
        if (open === 0) {
          // Gone now: a job it created would be visible by now.
          const late = await find();
          return late ? { kind: 'found', job: late } : { kind: 'none' };
        }
        last = `the session that sent BACKUP is still open`;
      } catch (err) {
        last = r.describe(err);
        if (session && !session.broken && !isConnectionError(err)) return { kind: 'unknown', why: last };
      }
      if (Date.now() >= r.deadline - 100) return { kind: 'unknown', why: last };
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  try {
    return await Promise.race([attempt(), expired]);
  } finally {
    over = true;
    clearTimeout(timer);
    void session?.close().catch(() => undefined);
  }
}

/**
 * Of the unfinished backups into this collection, the oldest one created
 * before `ownId` (by creation time, then job id): the run that submitted
 * second yields to it. Undefined when this run's job came first, or when it
 * is not among them (it already ended).
 */
export function earlierThan(running: readonly JobRow[], ownId: string): JobRow | undefined {
  const own = running.find((j) => j.jobId === ownId);
  if (own?.created === undefined) return undefined;
  const key = (j: JobRow): [bigint, bigint] => [j.created?.micros ?? 0n, BigInt(j.jobId)];
  const before = (a: JobRow, b: JobRow): boolean => {
    const [ca, ia] = key(a);
    const [cb, ib] = key(b);
    return ca < cb || (ca === cb && ia < ib);
  };
  const earlier = running.filter((j) => j.jobId !== ownId && j.created !== undefined && before(j, own));
  return earlier.sort((a, b) => (before(a, b) ? -1 : 1))[0];
}
