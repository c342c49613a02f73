/**
 * How the run's job ends when it does not simply succeed: the wait's outcome
 * settled into a succeeded job or a failure, the timeout, the workflow run
 * cancelled (abort), and the backstop's forced exit; and cancelling this
 * run's own job, which they share with if-running.
 */
import { adviceForJobError, withAdvice } from './advice.js';
import type { StepContext } from './context.js';
import { descriptionTargetsCollection } from './destination.js';
import { CANCEL_DEADLINE_MS, cancelRunJob } from './cancel.js';
import type { JobRow, WaitOutcome } from './wait.js';
import { jobStateAtTimeout, readJobWithin } from './wait.js';
import { AbortedError, StepFailure } from './errors.js';
import { lookUpSubmission } from './submit.js';

/** From the signal: the lookup of a job whose id never arrived ends by then… */
const ABORT_LOOKUP_MS = 2_500;
/** …and the cancel too, leaving the summary time before the runner's SIGTERM at 7.5 s. */
const ABORT_BUDGET_MS = 6_000;

/** Turn the wait's outcome into a terminal, succeeded job, or a failure with the right status. */
export async function settle(ctx: StepContext, outcome: WaitOutcome): Promise<JobRow> {
  const { report, job: tracker } = ctx;
  if (outcome.job) report.recordJob(outcome.job);
  if (outcome.job) tracker.lastRead(outcome.job);
  switch (outcome.kind) {
    case 'terminal': {
      const job = outcome.job;
      tracker.end();
      report.recordStatus(job.status);
      if (job.status === 'succeeded') return job;
      report.recordStatus(undefined, 'skipped');
      const error = job.error ?? '(the cluster recorded no error text)';
      const advice = adviceForJobError(error);
      throw new StepFailure(
        `Backup job ${job.jobId} ended with status ${job.status}: ${withAdvice(error, advice)}`,
        'failed',
      );
    }
    case 'vanished':
      report.recordStatus(undefined, 'skipped');
      throw new StepFailure(
        `Backup job ${tracker.jobId} is no longer returned by the cluster (not visible to ${ctx.config.connection.user}, or garbage-collected). Its result is unknown: check SHOW JOBS as an admin.`,
      );
    case 'timeout': {
      report.recordStatus('timeout', 'skipped');
      // Read once before cancelling: say what the job was doing when the wait ended.
      const job = await readJobWithin(ctx.link, tracker.jobId!, 3_000);
      const state = job ? `: ${jobStateAtTimeout(job)}` : '';
      const what =
        outcome.reason === 'paused-timeout'
          ? `Backup job ${tracker.jobId} stayed paused longer than paused-timeout${state}`
          : `Backup job ${tracker.jobId} did not finish within timeout${state}`;
      const action = await onTimeout(ctx);
      throw new StepFailure(`${what}. ${action}`, 'timeout');
    }
    case 'aborted':
      throw await abortFailure(ctx);
  }
}

async function onTimeout(ctx: StepContext): Promise<string> {
  if (!ctx.job.owned) return `It was not started by this step, so it is left running.`;
  if (ctx.config.onTimeout === 'leave') {
    return 'It is left running (on-timeout: leave): follow it with SHOW JOB ' + ctx.job.jobId + '.';
  }
  return (await cancelOwnJob(ctx, 'on-timeout: cancel')).text;
}

const abortHandling = new WeakMap<StepContext, Promise<StepFailure>>();

/** The abort, handled once whichever path saw it first (the wait, or the run's race with the signal). */
export function abortFailure(ctx: StepContext): Promise<StepFailure> {
  let handling = abortHandling.get(ctx);
  if (handling === undefined) {
    handling = handleAbort(ctx, Date.now());
    abortHandling.set(ctx, handling);
  }
  return handling;
}

async function handleAbort(ctx: StepContext, startedAt: number): Promise<StepFailure> {
  const { report, job: tracker } = ctx;
  if (tracker.ended) {
    // A restore check cancels its job and drops its scratch databases first (within the budget).
    const restore = await settleWithin(tracker.restoreRun, startedAt + ABORT_BUDGET_MS);
    const verifiedBefore = report.outputs.verified;
    // The job's final status stands; a verification that did not finish is not a pass.
    report.recordVerificationCut(restore);
    const what =
      restore !== undefined
        ? 'during the restore check'
        : verifiedBefore === 'true'
          ? 'while pruning'
          : 'before verification finished';
    return new StepFailure(
      `The workflow run was cancelled ${what}; backup job ${tracker.jobId} had ended with status ${report.outputs.status}.${restore?.problem !== undefined ? ` ${restore.problem}` : ''}`,
      'aborted',
    );
  }
  report.recordStatus('aborted', 'skipped');
  if (tracker.jobId === undefined && tracker.submission) {
    const found = await findUnansweredSubmission(ctx, startedAt + ABORT_LOOKUP_MS);
    if (found !== undefined) return found;
  }
  if (tracker.jobId === undefined) {
    return new StepFailure(
      'The workflow run was cancelled before a backup job was created; nothing is left running.',
      'aborted',
    );
  }
  const action = await onAbort(ctx, startedAt + ABORT_BUDGET_MS);
  return new StepFailure(
    `The workflow run was cancelled while backup job ${tracker.jobId} was ${tracker.lastStatus ?? 'running'}. ${action}`,
    'aborted',
  );
}

/**
 * BACKUP was sent and its answer had not arrived: find its job by its
 * capture time on a fresh connection. Adopted when found (then cancelled as
 * any job of this run); otherwise a failure that says what is known.
 */
async function findUnansweredSubmission(
  ctx: StepContext,
  deadline: number,
): Promise<StepFailure | undefined> {
  const { config } = ctx;
  const { capture, sessions } = ctx.job.submission!;
  ctx.log(
    `BACKUP was sent but its answer had not arrived; looking for its job (AS OF SYSTEM TIME '${capture.literal}').`,
  );
  const result = await lookUpSubmission({
    connector: ctx.deps.connector,
    connection: config.connection,
    applicationName: () => ctx.names.next(),
    captureLiteral: capture.literal,
    captureMicros: capture.micros,
    matchesCollection: (d) => descriptionTargetsCollection(d, config.collection),
    sessions,
    deadline,
    describe: (err) => ctx.describe(err),
  });
  if (result.kind === 'found') {
    ctx.job.found(result.job);
    ctx.report.recordJobId(result.job.jobId, 'found');
    ctx.log(`Found job ${result.job.jobId} (${result.job.status}), created by that BACKUP.`);
    return undefined;
  }
  if (result.kind === 'none') {
    return new StepFailure(
      'The workflow run was cancelled while BACKUP was being submitted; the cluster created no job for it, so nothing is left running.',
      'aborted',
    );
  }
  const text =
    `BACKUP was sent but its job could not be looked up before exiting (${result.why}): ` +
    `a BACKUP job AS OF SYSTEM TIME '${capture.literal}' may be running` +
    (config.cancelOnAbort
      ? '; the post step looks for it again and cancels it.'
      : ' (cancel-on-abort: false).') +
    ` Check SHOW JOBS.`;
  if (config.cancelOnAbort) ctx.job.uncertain();
  ctx.report.recordNote(text);
  return new StepFailure(
    `The workflow run was cancelled while BACKUP was being submitted. ${text}`,
    'aborted',
  );
}

/** The backstop is about to end the process: what the summary should say by then. */
export async function forcedExit(ctx: StepContext, finish: () => Promise<void>): Promise<void> {
  ctx.report.recordForcedExit(ctx.job.jobId, ctx.job.ended);
  await finish();
}

async function onAbort(ctx: StepContext, deadline: number): Promise<string> {
  if (!ctx.job.owned) return 'The job was not started by this step; it is left running.';
  if (!ctx.config.cancelOnAbort) {
    return `Job ${ctx.job.jobId} is left running (cancel-on-abort: false).`;
  }
  return (await cancelOwnJob(ctx, 'cancel-on-abort', Math.max(500, deadline - Date.now()))).text;
}

/**
 * Cancel this run's own job (on abort, on timeout, or yielding to another run); returns the line
 * logged and whether the job is now stopped or stopping (cancel sent, or it had already ended).
 */
export async function cancelOwnJob(
  ctx: StepContext,
  why: string,
  totalTimeoutMs?: number,
): Promise<{ text: string; stopped: boolean }> {
  const { result, text, ownership } = await cancelRunJob({
    connector: ctx.deps.connector,
    config: ctx.config,
    jobId: ctx.job.jobId!,
    applicationName: () => ctx.names.next(),
    timings: ctx.timings,
    ...(totalTimeoutMs !== undefined ? { totalTimeoutMs: Math.min(totalTimeoutMs, CANCEL_DEADLINE_MS) } : {}),
    why,
    log: (m) => ctx.log(m),
    describe: (err) => ctx.describe(err),
  });
  ctx.log(text);
  if (ownership === 'cancel-sent') ctx.job.cancelRequested();
  // The post step tries again, whatever the main step's ending.
  if (ownership === 'cancel-pending') ctx.job.cancelPending();
  return { text, stopped: result.kind === 'requested' || result.kind === 'already-finished' };
}

/** The promise's outcome if it settles by `deadline` (Date.now() time), else undefined. */
async function settleWithin<T>(p: Promise<T> | undefined, deadline: number): Promise<T | undefined> {
  if (p === undefined) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([p.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The promise's outcome, or AbortedError as soon as the signal aborts (the promise is then left behind). */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  p.catch(() => undefined);
  if (signal.aborted) return Promise.reject(new AbortedError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AbortedError());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
