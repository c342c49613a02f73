/**
 * Which job this run follows: the `if-running` check, then the plan and the
 * BACKUP it submits, or a running job it attaches to; and, when another run
 * submitted at the same moment, yielding to it.
 */
import { adviceForSubmitError, withAdvice } from './advice.js';
import type { SqlSession } from './cluster.js';
import type { Connected } from './connect.js';
import type { StepContext } from './context.js';
import type { BackupDestination } from './destination.js';
import { descriptionTargetsCollection } from './destination.js';
import { cancelOwnJob } from './ending.js';
import { AbortedError, StepFailure } from './errors.js';
import type { CaptureTime } from './submit.js';
import { findRunningBackups, resolveCaptureTime } from './submit.js';
import type { JobRow } from './wait.js';
import { waitForJob } from './wait.js';
import type { Plan } from './plan.js';
import {
  appendTarget,
  captureFromDescription,
  decideIfRunning,
  decideYield,
  MAX_SUBMIT_ROUNDS,
  PlanError,
  planBackup,
  planFromDescription,
} from './plan.js';
import { backupStatement, showBackupsStatement, showBackupStatement } from './sql.js';
import type { Statement } from './sql.js';
import { earlierThan, SubmissionUncertain, submitBackup, SubmitDeadline } from './submit.js';

export interface Chosen {
  plan: Plan;
  /** The backup's AS OF SYSTEM TIME; unknown for an attached job whose description has no absolute one. */
  capture: CaptureTime | undefined;
}

/** The job this run follows, submitted or attached to, with its plan and capture time. */
export async function chooseJob(
  ctx: StepContext,
  cluster: Connected,
  destination: BackupDestination,
): Promise<Chosen> {
  for (let round = 1; ; round++) {
    const attached = await ctx.group('Check for running backups', () => checkRunningBackups(ctx, cluster));
    if (attached) return fromDescription(attached);
    const started = await ctx.group('Start the backup', async () => {
      const plan = await planFor(ctx, destination);
      const capture = await resolveCaptureTime(await ctx.link.session(), ctx.config.asOfSystemTime);
      await submit(ctx, cluster, destination, plan, capture);
      return { plan, capture };
    });
    // Two runs may pass the check together: the later one yields after submitting (at most twice).
    const earlier = round < MAX_SUBMIT_ROUNDS ? await startedFirst(ctx) : undefined;
    const outcome = earlier ? await yieldTo(ctx, earlier) : 'keep';
    if (outcome === 'keep') return started;
    if (outcome !== 'resubmit') return fromDescription(outcome);
  }
}

function fromDescription(job: JobRow): Chosen {
  return { plan: planFromDescription(job.description), capture: captureFromDescription(job.description) };
}

function attach(ctx: StepContext, job: JobRow): void {
  ctx.job.attached(job.jobId);
  ctx.report.recordJobId(job.jobId, 'attached');
  ctx.log(
    `Attaching to running backup job ${job.jobId} (if-running: attach); it will never be cancelled by this step.`,
  );
}

/** `if-running`: another unfinished BACKUP into the same collection. Returns the job to attach to, if any. */
async function checkRunningBackups(ctx: StepContext, cluster: Connected): Promise<JobRow | undefined> {
  const { config } = ctx;
  const matches = (d: string): boolean => descriptionTargetsCollection(d, config.collection);
  const running = await findRunningBackups(cluster.session, matches);
  const decision = decideIfRunning(config.ifRunning, running, config.collection.display);
  switch (decision.kind) {
    case 'start':
      ctx.log(decision.log);
      return undefined;
    case 'fail':
      throw new StepFailure(decision.message);
    case 'attach':
      attach(ctx, decision.job);
      return decision.job;
    case 'wait':
      for (const job of decision.jobs) {
        ctx.log(`Waiting for backup job ${job.jobId} to finish before starting (if-running: wait).`);
        const outcome = await waitForJob(
          ctx.waitContext(job.jobId, cluster.capabilities.whenComplete, cluster.deadline),
        );
        if (outcome.kind === 'aborted') throw new AbortedError();
        if (outcome.kind === 'timeout') {
          throw new StepFailure(
            `timeout: backup job ${job.jobId} (not ours) was still running; nothing was started.`,
            'timeout',
          );
        }
        ctx.log(`Backup job ${job.jobId} ended: ${outcome.job?.status ?? 'no longer visible'}.`);
      }
      return undefined;
  }
}

/**
 * Another backup into this collection, created before the job just
 * submitted and still unfinished: two runs that passed the if-running check
 * at the same moment both submitted, and the later one must yield.
 */
async function startedFirst(ctx: StepContext): Promise<JobRow | undefined> {
  const matches = (d: string): boolean => descriptionTargetsCollection(d, ctx.config.collection);
  const running = await ctx.link.withReconnect(
    'checking for a backup started at the same time',
    (s: SqlSession) => findRunningBackups(s, matches),
    { budgetMs: Math.min(30_000, ctx.timings.reconnectBudgetMs), signal: ctx.deps.signal },
  );
  return earlierThan(running, ctx.job.jobId!);
}

/**
 * This run's job came second: do as if-running says, as if the other job
 * had been seen before submitting. Returns the job to attach to, `resubmit`
 * (its own job cancelled, the other waited for), or `keep`.
 */
async function yieldTo(ctx: StepContext, other: JobRow): Promise<JobRow | 'resubmit' | 'keep'> {
  const own = ctx.job.jobId!;
  const mode = ctx.config.ifRunning;
  const decision = decideYield(mode, other, own, ctx.config.collection.display);
  ctx.log(decision.log);
  if (decision.kind === 'keep') return 'keep';
  const { stopped } = await cancelOwnJob(ctx, `if-running: ${mode}, job ${other.jobId} started first`);
  if (!stopped) {
    ctx.log(`Job ${own} could not be cancelled, so it is kept.`);
    return 'keep';
  }
  ctx.job.givenUp();
  ctx.report.recordJobId(undefined);
  if (decision.then.kind === 'fail') throw new StepFailure(decision.then.message);
  if (decision.then.kind === 'attach') {
    attach(ctx, decision.then.job);
    return decision.then.job;
  }
  return 'resubmit';
}

async function planFor(ctx: StepContext, destination: BackupDestination): Promise<Plan> {
  const { config } = ctx;
  try {
    return await planBackup({
      backupType: config.backupType,
      databases: config.databases,
      ...(config.fullBackupEveryMs !== undefined ? { fullBackupEveryMs: config.fullBackupEveryMs } : {}),
      collectionDisplay: config.collection.display,
      query: (stmt) =>
        ctx.link.withReconnect('planning the backup', (s) => s.query(stmt), {
          budgetMs: ctx.timings.reconnectBudgetMs,
          signal: ctx.deps.signal,
        }),
      showBackups: showBackupsStatement(destination.uri),
      showBackup: (subdir) =>
        showBackupStatement(destination.uri, subdir, {
          checkFiles: false,
          encryptionPassphrase: config.encryptionPassphrase,
          kmsUri: config.kmsUri,
        }),
      log: (m) => ctx.log(m),
    });
  } catch (err) {
    if (err instanceof PlanError) throw new StepFailure(err.message);
    throw new StepFailure(`Could not plan the backup: ${ctx.describe(err)}`);
  }
}

async function submit(
  ctx: StepContext,
  cluster: Connected,
  destination: BackupDestination,
  plan: Plan,
  capture: CaptureTime,
): Promise<void> {
  const { config } = ctx;
  const stmt: Statement = backupStatement(destination.uri, {
    databases: config.databases,
    asOf: capture.literal,
    appendTo: appendTarget(plan),
    revisionHistory: config.revisionHistory,
    encryptionPassphrase: config.encryptionPassphrase,
    kmsUri: config.kmsUri,
  });
  ctx.log(`${stmt.text}  -- $1 = ${destination.redacted}`);
  let jobId: string;
  try {
    const submitted = await submitBackup({
      link: ctx.link,
      statement: stmt,
      capture,
      matchesCollection: (d) => descriptionTargetsCollection(d, config.collection),
      clock: ctx.deps.clock,
      log: ctx.logger,
      signal: ctx.deps.signal,
      sessionGoneTimeoutMs: ctx.timings.sessionGoneTimeoutMs,
      reconnectBudgetMs: ctx.timings.reconnectBudgetMs,
      mayResubmit: cluster.applicationNameCarried,
      deadline: cluster.deadline,
      onAttempt: (name) => ctx.job.sending(capture, name),
    });
    jobId = submitted.jobId;
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    if (err instanceof SubmitDeadline) {
      ctx.report.recordStatus('timeout');
      throw new StepFailure(err.message, 'timeout');
    }
    if (err instanceof SubmissionUncertain) {
      // The post step looks again for the job, and cancels it when found.
      if (err.reason === 'timeout' && config.onTimeout === 'cancel') ctx.job.uncertain();
      if (err.reason === 'timeout') ctx.report.recordStatus('timeout');
      throw new StepFailure(err.message, err.reason === 'timeout' ? 'timeout' : 'error');
    }
    const advice = adviceForSubmitError(err, { user: config.connection.user, grantTo: config.grantTo });
    throw new StepFailure(`BACKUP was refused: ${withAdvice(ctx.describe(err), advice)}`);
  }
  ctx.job.created(jobId);
  ctx.report.recordJobId(jobId, 'created');
  ctx.log(`Backup job ${jobId} created.`);
}
