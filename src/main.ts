/**
 * run(): the action's main step, as an orchestrator. Every dependency (the
 * runner, the clock, the database and S3) is injected, so tests need no
 * module mocks.
 */
import { adviceForConnectError, adviceForJobError, adviceForSubmitError } from './advice.js';
import type { Capabilities, ClusterVersion, LinkLogger, SqlSession } from './cluster.js';
import { ApplicationNames, capabilities, ClusterLink, parseClusterVersion } from './cluster.js';
import { AbortedError, errorLine, errorMessage, StepFailure } from './errors.js';
import type { BackupDestination, StorageSettings } from './destination.js';
import {
  buildBackupDestination,
  descriptionTargetsCollection,
  storageSettings,
  subdirFromDescription,
} from './destination.js';
import { readConfig, summaryWanted } from './inputs.js';
import { CANCEL_DEADLINE_MS, cancelResultText, cancelWithFallback } from './cancel.js';
import type { CaptureTime } from './submit.js';
import type { JobRow, WaitOutcome } from './wait.js';
import { jobStateAtTimeout, ProgressReporter, readJobWithin, waitForJob } from './wait.js';
import type { RunReport } from './report.js';
import type { ActionIO, Deps, Timings } from './runtime.js';
import { applicationNameBase, realDeps, runUrl, timingsFromEnv } from './runtime.js';
import {
  earlierThan,
  findRunningBackups,
  lookUpSubmission,
  resolveCaptureTime,
  SubmissionUncertain,
  submitBackup,
  SubmitDeadline,
} from './submit.js';
import { finalOutputs, ReportBuilder, writeOutputs } from './report.js';
import { renderSummary } from './summary.js';
import { SecretRegistry } from './secrets.js';
import { STATE } from './state.js';
import type { Statement } from './sql.js';
import {
  backupStatement,
  grantStatements,
  restoreGrantStatements,
  showBackupsStatement,
  showBackupStatement,
} from './sql.js';
import type { Plan } from './plan.js';
import {
  appendTarget,
  captureFromDescription,
  decideIfRunning,
  decideYield,
  MAX_SUBMIT_ROUNDS,
  PlanError,
  planBackup,
  plannedFullSubdir,
  planFromDescription,
} from './plan.js';
import { runDryRun } from './preflight.js';
import type { ObjectStore } from './storage.js';
import { normalizeFullSubdir } from './layout.js';
import { PruneFailure, pruneAfterBackup, pruningEnabled, readPruneFacts } from './prune.js';
import { verifyBackup } from './verify.js';
import type { RestoreCheckOutcome } from './restore-check.js';
import { runRestoreCheckFor } from './restore-check.js';
import type { Config } from './config.js';

/** From the signal: the lookup of a job whose id never arrived ends by then… */
const ABORT_LOOKUP_MS = 2_500;
/** …and the cancel too, leaving the summary time before the runner's SIGTERM at 7.5 s. */
const ABORT_BUDGET_MS = 6_000;

/** Runs the main step; returns the process exit code. */
export async function run(
  deps: Deps = realDeps(),
  timings: Timings = timingsFromEnv(deps.env),
): Promise<number> {
  const { io } = deps;
  const secrets = new SecretRegistry((v) => io.setSecret(v));
  const scrub = (t: string): string => secrets.scrub(t);
  const builder = new ReportBuilder(runUrl(deps.env), (name, value) => io.setOutput(name, value));
  const { report } = builder;
  let config: Config | undefined;
  let step: Step | undefined;
  let finished = false;
  try {
    const read = readConfig(deps.getInput, deps.env, secrets);
    config = read.config;
    for (const w of read.warnings) io.warning(scrub(w));
    for (const n of read.notices) io.info(scrub(n));
    if (config.dryRun) {
      const code = await runDryRun({
        ...deps,
        config,
        secrets,
        applicationName: applicationNameBase(deps.env, deps.random ?? Math.random),
        connectTimeoutMs: timings.connectTimeoutMs,
        reconnectBudgetMs: timings.reconnectBudgetMs,
        ...(report.runUrl !== undefined ? { runUrl: report.runUrl } : {}),
      });
      io.saveState(STATE.done, 'true');
      return code;
    }
    step = new Step(deps, config, secrets, builder, timings);
    const running = step;
    deps.onForcedExit?.(() => running.forcedExit(() => finish(true)));
    await untilAborted(step.execute(), deps.signal);
  } catch (caught) {
    let err = caught;
    // Wherever the run was when the signal came, the job it may have created is dealt with here.
    if (err instanceof AbortedError && step) err = await step.abortFailure();
    const failure = errorLine(err, secrets);
    builder.recordFailure(failure, err instanceof StepFailure ? err.outcome : undefined);
    io.setFailed(scrub(failure));
  } finally {
    await step?.closeConnections();
  }
  await finish(false);
  return builder.succeeded ? 0 : 1;

  /** Outputs, state and summary, once: by the normal ending or by the backstop before a forced exit. */
  async function finish(forced: boolean): Promise<void> {
    if (finished) return;
    finished = true;
    writeOutputs(io, finalOutputs(report), scrub);
    if (!forced) io.saveState(STATE.done, 'true');
    if (config?.summary ?? summaryWanted(deps.getInput)) await writeSummary(io, report, scrub);
  }
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
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
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

async function writeSummary(io: ActionIO, report: RunReport, scrub: (t: string) => string): Promise<void> {
  try {
    await io.writeSummary(scrub(renderSummary(report, scrub)));
  } catch (err) {
    io.warning(`Could not write the job summary (${scrub(errorMessage(err))}); the outputs are set.`);
  }
}

/** One run of the main step: the phases in order, each in a log group. */
class Step {
  private readonly names: ApplicationNames;
  private readonly link: ClusterLink;
  private readonly extraLinks: ClusterLink[] = [];
  private version: ClusterVersion | undefined;
  private capabilities: Capabilities | undefined;
  private destination: BackupDestination | undefined;
  private jobId: string | undefined;
  private owned = false;
  /** False when the session does not carry the action's application_name (see checkApplicationName). */
  private applicationNameCarried = true;
  /** The BACKUP sent (or being sent) whose job id has not arrived: how to find its job. */
  private submission: { capture: CaptureTime; sessions: string[] } | undefined;
  /** The job's last status read; set once it reached a terminal one. */
  private lastStatus: string | undefined;
  private jobEnded = false;
  /** `timeout` runs from the first statement (clock milliseconds). */
  private runDeadline: number | undefined;
  private abortHandling: Promise<StepFailure> | undefined;
  private store: Promise<ObjectStore> | undefined;
  /** The restore check under way (verify: restore): an abort waits for its clean-up. */
  private restoreRun: Promise<RestoreCheckOutcome> | undefined;
  private verifyLinkValue: ClusterLink | undefined;
  /** What the cluster link, the submission and the wait log through: scrubbed like every other line. */
  private readonly logger: LinkLogger = { info: (m) => this.log(m), warning: (m) => this.warn(m) };

  constructor(
    private readonly deps: Deps,
    private readonly config: Config,
    private readonly secrets: SecretRegistry,
    private readonly report: ReportBuilder,
    private readonly timings: Timings,
  ) {
    this.names = new ApplicationNames(applicationNameBase(deps.env, deps.random ?? Math.random));
    this.link = this.newLink(config.connection);
    report.recordConfig({
      databases: config.databases,
      collectionDisplay: config.collection.display,
      ...(config.kmsUri !== undefined
        ? { encrypted: 'kms' }
        : config.encryptionPassphrase !== undefined
          ? { encrypted: 'passphrase' }
          : {}),
    });
  }

  /** The restore check's cluster: a second connection when verify-connection-string is given. */
  private verifyLink(): ClusterLink {
    if (!this.config.verifyConnectionGiven) return this.link;
    if (this.verifyLinkValue === undefined) {
      this.verifyLinkValue = this.newLink(this.config.verifyConnection);
      this.extraLinks.push(this.verifyLinkValue);
    }
    return this.verifyLinkValue;
  }

  private newLink(connection: Config['connection']): ClusterLink {
    return new ClusterLink(this.deps.connector, connection, this.names, this.deps.clock, this.logger, {
      connectTimeoutMs: this.timings.connectTimeoutMs,
      random: this.deps.random,
    });
  }

  /** Close every connection, but never let a stuck socket hold the step open. */
  async closeConnections(): Promise<void> {
    const closing = Promise.all([this.link.close(), ...this.extraLinks.map((l) => l.close())]);
    await Promise.race([closing, this.deps.clock.sleep(1000)]);
  }

  private async group<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.deps.io.startGroup(name);
    try {
      return await fn();
    } finally {
      this.deps.io.endGroup();
    }
  }

  private log(message: string): void {
    this.deps.io.info(this.secrets.scrub(message));
  }

  private warn(message: string): void {
    this.deps.io.warning(this.secrets.scrub(message));
  }

  async execute(): Promise<void> {
    const { config } = this;
    const session = await this.group('Connect to the cluster', () => this.connect());
    if (config.grantTo !== undefined)
      await this.group(`Grant privileges to ${config.grantTo}`, () => this.grant());
    this.destination = buildBackupDestination(config, this.version!);
    // Only a URI that carries credentials is secret: external://name and implicit auth are not.
    if (this.destination.uri !== this.destination.redacted) this.secrets.add(this.destination.uri);

    let capture: CaptureTime | undefined;
    let plan: Plan | undefined;
    // Two runs may pass the check together: the later one yields after submitting (at most twice).
    for (let round = 1; plan === undefined; round++) {
      const attached = await this.group('Check for running backups', () =>
        this.handleRunningBackups(session),
      );
      if (attached) {
        plan = planFromDescription(attached.description);
        capture = captureFromDescription(attached.description);
        break;
      }
      const started = await this.group('Start the backup', async () => {
        const p = await this.planBackup();
        const c = await resolveCaptureTime(await this.link.session(), config.asOfSystemTime);
        await this.submit(p, c);
        return { plan: p, capture: c };
      });
      const earlier = round < MAX_SUBMIT_ROUNDS ? await this.startedFirst() : undefined;
      const outcome = earlier ? await this.yieldTo(earlier) : 'keep';
      if (outcome === 'keep') ({ plan, capture } = started);
      else if (outcome !== 'resubmit') {
        plan = planFromDescription(outcome.description);
        capture = captureFromDescription(outcome.description);
      }
    }
    this.recordPlan(plan, capture);

    if (!config.wait) {
      this.report.recordOutcome('submitted');
      this.report.recordStatus('running', 'skipped');
      this.log(`wait: false: job ${this.jobId} keeps running on the cluster; not waiting for it.`);
      return;
    }

    this.warmUpStorage();
    const outcome = await this.group(`Wait for backup job ${this.jobId}`, () => this.waitForJob());
    const job = await this.settle(outcome);
    this.recordJob(job, plan, capture);
    await this.group('Verify the backup', () => this.verify(plan, capture));
    if (pruningEnabled(config)) {
      await this.group('Prune old backup chains', () => this.prune(plan));
    }
    this.report.recordOutcome('succeeded');
    const verified =
      this.report.outputs.verified === 'true' ? ' and was verified' : ' (not verified: verify is none)';
    this.log(`Backup ${this.report.outputs['backup-uri'] ?? ''} succeeded${verified}.`);
  }

  /** One S3 client serves verification and pruning. */
  private readonly openStore = (settings: StorageSettings): Promise<ObjectStore> =>
    (this.store ??= this.deps.openStore(settings));

  /**
   * Load the S3 SDK while the job runs rather than after it ends: start-up
   * stays light, and the end of the job is reported without that delay.
   */
  private warmUpStorage(): void {
    const { config } = this;
    const pruning = pruningEnabled(config);
    const settings = storageSettings(config);
    if (settings === undefined || (config.verify === 'none' && !pruning)) return;
    // A failure here surfaces where the store is first used.
    this.openStore(settings).catch(() => undefined);
  }

  private async connect(): Promise<SqlSession> {
    let session: SqlSession;
    try {
      session = await this.link.withReconnect('connecting', async (s) => s, {
        budgetMs: Math.min(30_000, this.timings.reconnectBudgetMs),
        signal: this.deps.signal,
      });
    } catch (err) {
      const advice = adviceForConnectError(err);
      throw new StepFailure(
        `Could not connect to the cluster at ${this.config.connection.host}:${this.config.connection.port}: ${withAdvice(errorLine(err, this.secrets), advice)}`,
      );
    }
    if (this.config.timeoutMs !== undefined) this.runDeadline = this.deps.clock.now() + this.config.timeoutMs;
    const rows = await session.query({ text: 'SELECT version() AS version', params: [] });
    const text = String(rows[0]?.version ?? '');
    try {
      this.version = parseClusterVersion(text);
    } catch (err) {
      throw new StepFailure(errorMessage(err));
    }
    const v = this.version;
    this.capabilities = capabilities(v);
    if (this.capabilities.unsupported !== undefined) throw new StepFailure(this.capabilities.unsupported);
    if (this.capabilities.untested !== undefined) this.warn(this.capabilities.untested);
    this.report.recordVersion(v.full);
    this.log(
      `Connected to ${v.full} as ${this.config.connection.user} (application_name "${session.applicationName}").`,
    );
    await this.checkApplicationName(session);
    return session;
  }

  /**
   * The lost-answer procedure finds the submitting session by its
   * application_name: a session that does not carry it (a pooler that drops
   * it, a server-side default) makes "no such session" meaningless, so a
   * lost answer is then never followed by a second BACKUP.
   */
  private async checkApplicationName(session: SqlSession): Promise<void> {
    const rows = await session.query({ text: 'SHOW application_name', params: [] });
    const actual = String(rows[0]?.application_name ?? '');
    if (actual === session.applicationName) return;
    this.applicationNameCarried = false;
    this.warn(
      `The session's application_name is "${actual}", not "${session.applicationName}" (a connection pooler or proxy may not pass it on). ` +
        'Should the answer to BACKUP be lost, the step will look for the job it created but will not submit again.',
    );
  }

  private async grant(): Promise<void> {
    const { config } = this;
    const mayCancel = config.cancelOnAbort || config.onTimeout === 'cancel';
    // From 25.1 owners may cancel their own jobs, but only once the upgrade is finalized: grant anyway.
    const controlJob = !mayCancel ? 'none' : this.capabilities!.controlJob;
    const statements = grantStatements(config.grantTo!, {
      databases: config.databases,
      implicitAccess: config.s3Auth === 'implicit' || config.s3Endpoint !== undefined,
      controlJob,
    });
    const link = config.grantConnectionGiven ? this.newLink(config.grantConnection) : this.link;
    if (link !== this.link) this.extraLinks.push(link);
    const work = statements.map((stmt) => ({ stmt, link }));
    if (config.verify === 'restore') {
      // On the verifying cluster (its own connection must then be an admin's).
      const verifier = config.verifyConnectionGiven ? this.verifyLink() : link;
      for (const stmt of restoreGrantStatements(config.grantTo!, {
        implicitAccess: config.s3Auth === 'implicit' || config.s3Endpoint !== undefined,
        controlJob,
      }))
        work.push({ stmt, link: verifier });
    }
    for (const { stmt, link } of work) {
      try {
        await link.withReconnect('granting privileges', (s) => s.query(stmt), {
          budgetMs: 30_000,
          signal: this.deps.signal,
        });
        this.log(`${stmt.text}: done`);
      } catch (err) {
        throw new StepFailure(
          `grant-to: \`${stmt.text}\` failed: ${errorLine(err, this.secrets)}. The grant-connection-string user must be an admin (or hold the privilege WITH GRANT OPTION), and the role ${config.grantTo} must exist.`,
        );
      }
    }
  }

  private attach(job: JobRow): void {
    this.jobId = job.jobId;
    this.owned = false;
    this.report.recordJobId(job.jobId, 'attached');
    this.deps.io.saveState(STATE.jobId, job.jobId);
    this.deps.io.saveState(STATE.owned, 'false');
    this.log(
      `Attaching to running backup job ${job.jobId} (if-running: attach); it will never be cancelled by this step.`,
    );
  }

  /** `if-running`: another unfinished BACKUP into the same collection. Returns the job to attach to, if any. */
  private async handleRunningBackups(session: SqlSession): Promise<JobRow | undefined> {
    const matches = (d: string): boolean => descriptionTargetsCollection(d, this.config.collection);
    const running = await findRunningBackups(session, matches);
    const decision = decideIfRunning(this.config.ifRunning, running, this.config.collection.display);
    switch (decision.kind) {
      case 'start':
        this.log(decision.log);
        return undefined;
      case 'fail':
        throw new StepFailure(decision.message);
      case 'attach':
        this.attach(decision.job);
        return decision.job;
      case 'wait':
        for (const job of decision.jobs) {
          this.log(`Waiting for backup job ${job.jobId} to finish before starting (if-running: wait).`);
          const outcome = await waitForJob(this.waitContext(job.jobId));
          if (outcome.kind === 'aborted') throw new AbortedError();
          if (outcome.kind === 'timeout') {
            throw new StepFailure(
              `timeout: backup job ${job.jobId} (not ours) was still running; nothing was started.`,
              'timeout',
            );
          }
          this.log(`Backup job ${job.jobId} ended: ${outcome.job?.status ?? 'no longer visible'}.`);
        }
        return undefined;
    }
  }

  /**
   * Another backup into this collection, created before the job just
   * submitted and still unfinished: two runs that passed the if-running check
   * at the same moment both submitted, and the later one must yield.
   */
  private async startedFirst(): Promise<JobRow | undefined> {
    const matches = (d: string): boolean => descriptionTargetsCollection(d, this.config.collection);
    const running = await this.link.withReconnect(
      'checking for a backup started at the same time',
      (s) => findRunningBackups(s, matches),
      { budgetMs: Math.min(30_000, this.timings.reconnectBudgetMs), signal: this.deps.signal },
    );
    return earlierThan(running, this.jobId!);
  }

  /**
   * This run's job came second: do as if-running says, as if the other job
   * had been seen before submitting. Returns the job to attach to, `resubmit`
   * (its own job cancelled, the other waited for), or `keep`.
   */
  private async yieldTo(other: JobRow): Promise<JobRow | 'resubmit' | 'keep'> {
    const own = this.jobId!;
    const decision = decideYield(this.config.ifRunning, other, own, this.config.collection.display);
    this.log(decision.log);
    if (decision.kind === 'keep') return 'keep';
    const text = await this.cancelOwnedJob(
      `if-running: ${this.config.ifRunning}, job ${other.jobId} started first`,
    );
    if (!/^CANCEL JOB \d+ sent|had already ended/.test(text)) {
      this.log(`Job ${own} could not be cancelled, so it is kept.`);
      return 'keep';
    }
    this.jobId = undefined;
    this.owned = false;
    this.submission = undefined;
    this.deps.io.saveState(STATE.jobId, '');
    this.deps.io.saveState(STATE.owned, 'false');
    this.deps.io.saveState(STATE.capture, '');
    this.report.recordJobId(undefined);
    if (decision.then.kind === 'fail') throw new StepFailure(decision.then.message);
    if (decision.then.kind === 'attach') {
      this.attach(decision.then.job);
      return decision.then.job;
    }
    return 'resubmit';
  }

  private async planBackup(): Promise<Plan> {
    const { config } = this;
    try {
      return await planBackup({
        backupType: config.backupType,
        databases: config.databases,
        ...(config.fullBackupEveryMs !== undefined ? { fullBackupEveryMs: config.fullBackupEveryMs } : {}),
        collectionDisplay: config.collection.display,
        query: (stmt) =>
          this.link.withReconnect('planning the backup', (s) => s.query(stmt), {
            budgetMs: this.timings.reconnectBudgetMs,
            signal: this.deps.signal,
          }),
        showBackups: showBackupsStatement(this.destination!.uri),
        showBackup: (subdir) =>
          showBackupStatement(this.destination!.uri, subdir, {
            checkFiles: false,
            encryptionPassphrase: config.encryptionPassphrase,
            kmsUri: config.kmsUri,
          }),
        log: (m) => this.log(m),
      });
    } catch (err) {
      if (err instanceof PlanError) throw new StepFailure(err.message);
      throw new StepFailure(`Could not plan the backup: ${errorLine(err, this.secrets)}`);
    }
  }

  private async submit(plan: Plan, capture: CaptureTime): Promise<void> {
    const { config } = this;
    const stmt: Statement = backupStatement(this.destination!.uri, {
      databases: config.databases,
      asOf: capture.literal,
      appendTo: appendTarget(plan),
      revisionHistory: config.revisionHistory,
      encryptionPassphrase: config.encryptionPassphrase,
      kmsUri: config.kmsUri,
    });
    this.log(`${stmt.text}  -- $1 = ${this.destination!.redacted}`);
    try {
      const submitted = await submitBackup({
        link: this.link,
        statement: stmt,
        capture,
        matchesCollection: (d) => descriptionTargetsCollection(d, config.collection),
        clock: this.deps.clock,
        log: this.logger,
        signal: this.deps.signal,
        sessionGoneTimeoutMs: this.timings.sessionGoneTimeoutMs,
        reconnectBudgetMs: this.timings.reconnectBudgetMs,
        mayResubmit: this.applicationNameCarried,
        deadline: this.runDeadline,
        onAttempt: (name) => this.beforeSending(capture, name),
      });
      this.jobId = submitted.jobId;
      this.owned = true;
    } catch (err) {
      if (err instanceof AbortedError) throw err;
      if (err instanceof SubmitDeadline) {
        this.report.recordStatus('timeout');
        throw new StepFailure(err.message, 'timeout');
      }
      if (err instanceof SubmissionUncertain) {
        // The post step looks again for the job, and cancels it when found.
        if (err.reason === 'timeout' && this.config.onTimeout === 'cancel')
          this.deps.io.saveState(STATE.owned, 'uncertain');
        if (err.reason === 'timeout') this.report.recordStatus('timeout');
        throw new StepFailure(err.message, err.reason === 'timeout' ? 'timeout' : 'error');
      }
      const advice = adviceForSubmitError(err, { user: config.connection.user, grantTo: config.grantTo });
      throw new StepFailure(`BACKUP was refused: ${withAdvice(errorLine(err, this.secrets), advice)}`);
    }
    this.submission = undefined;
    // Saved at once, so that the post step can cancel the job if this step is killed.
    this.deps.io.saveState(STATE.jobId, this.jobId);
    this.deps.io.saveState(STATE.owned, 'true');
    this.report.recordJobId(this.jobId, 'created');
    this.log(`Backup job ${this.jobId} created.`);
  }

  /**
   * Saved before BACKUP goes out on a session: should its answer never arrive
   * (abort, kill), the abort handling and the post step find the job by its
   * capture time once that session is gone.
   */
  private beforeSending(capture: CaptureTime, applicationName: string): void {
    this.submission ??= { capture, sessions: [] };
    this.submission.sessions.push(applicationName);
    this.deps.io.saveState(STATE.capture, capture.literal);
    this.deps.io.saveState(STATE.sessions, this.submission.sessions.join('\n'));
    this.deps.io.saveState(STATE.owned, 'true');
  }

  private recordPlan(plan: Plan, capture: CaptureTime | undefined): void {
    this.report.recordPlan(plan, plannedFullSubdir(plan, capture), capture, {
      collectionDisplay: this.config.collection.display,
      collectionForRestore: this.destination!.template,
    });
  }

  private waitContext(jobId: string) {
    const progress = new ProgressReporter(
      (line) => this.log(line),
      () => this.deps.clock.now(),
    );
    return {
      link: this.link,
      jobId,
      useWhenComplete: this.capabilities!.whenComplete,
      pollIntervalMs: this.config.pollIntervalMs,
      timeoutMs:
        this.runDeadline === undefined ? undefined : Math.max(1, this.runDeadline - this.deps.clock.now()),
      pausedTimeoutMs: this.config.pausedTimeoutMs,
      clock: this.deps.clock,
      log: this.logger,
      signal: this.deps.signal,
      onRead: (job: JobRow) => {
        if (job.jobId === this.jobId) this.lastStatus = job.status;
        progress.update(job);
      },
      reconnectBudgetMs: this.timings.reconnectBudgetMs,
      whenCompleteSliceMs: this.timings.whenCompleteSliceMs,
    };
  }

  private async waitForJob(): Promise<WaitOutcome> {
    return waitForJob(this.waitContext(this.jobId!));
  }

  /** Turn the wait's outcome into a terminal, succeeded job, or a failure with the right status. */
  private async settle(outcome: WaitOutcome): Promise<JobRow> {
    if (outcome.job) this.report.recordJob(outcome.job);
    if (outcome.job) this.lastStatus = outcome.job.status;
    switch (outcome.kind) {
      case 'terminal': {
        const job = outcome.job;
        this.jobEnded = true;
        this.report.recordStatus(job.status);
        if (job.status === 'succeeded') return job;
        this.report.recordStatus(undefined, 'skipped');
        const error = job.error ?? '(the cluster recorded no error text)';
        const advice = adviceForJobError(error);
        throw new StepFailure(
          `Backup job ${job.jobId} ended with status ${job.status}: ${withAdvice(error, advice)}`,
          'failed',
        );
      }
      case 'vanished':
        this.report.recordStatus(undefined, 'skipped');
        throw new StepFailure(
          `Backup job ${this.jobId} is no longer returned by the cluster (not visible to ${this.config.connection.user}, or garbage-collected). Its result is unknown: check SHOW JOBS as an admin.`,
        );
      case 'timeout': {
        this.report.recordStatus('timeout', 'skipped');
        // Read once before cancelling: say what the job was doing when the wait ended.
        const job = await readJobWithin(this.link, this.jobId!, 3_000);
        const state = job ? `: ${jobStateAtTimeout(job)}` : '';
        const what =
          outcome.reason === 'paused-timeout'
            ? `Backup job ${this.jobId} stayed paused longer than paused-timeout${state}`
            : `Backup job ${this.jobId} did not finish within timeout${state}`;
        const action = await this.onTimeout();
        throw new StepFailure(`${what}. ${action}`, 'timeout');
      }
      case 'aborted':
        throw await this.abortFailure();
    }
  }

  private async onTimeout(): Promise<string> {
    if (!this.owned) return `It was not started by this step, so it is left running.`;
    if (this.config.onTimeout === 'leave') {
      return 'It is left running (on-timeout: leave): follow it with SHOW JOB ' + this.jobId + '.';
    }
    return this.cancelOwnedJob('on-timeout: cancel');
  }

  /** The abort, handled once whichever path saw it first (the wait, or the run's race with the signal). */
  abortFailure(): Promise<StepFailure> {
    return (this.abortHandling ??= this.handleAbort(Date.now()));
  }

  private async handleAbort(startedAt: number): Promise<StepFailure> {
    const o = this.report.outputs;
    if (this.jobEnded) {
      // A restore check cancels its job and drops its scratch databases first (within the budget).
      const restore = await settleWithin(this.restoreRun, startedAt + ABORT_BUDGET_MS);
      const verifiedBefore = o.verified;
      // The job's final status stands; a verification that did not finish is not a pass.
      this.report.recordVerificationCut(restore);
      const what =
        restore !== undefined
          ? 'during the restore check'
          : verifiedBefore === 'true'
            ? 'while pruning'
            : 'before verification finished';
      return new StepFailure(
        `The workflow run was cancelled ${what}; backup job ${this.jobId} had ended with status ${o.status}.${restore?.problem !== undefined ? ` ${restore.problem}` : ''}`,
        'aborted',
      );
    }
    this.report.recordStatus('aborted', 'skipped');
    if (this.jobId === undefined && this.submission) {
      const found = await this.findUnansweredSubmission(startedAt + ABORT_LOOKUP_MS);
      if (found !== undefined) return found;
    }
    if (this.jobId === undefined) {
      return new StepFailure(
        'The workflow run was cancelled before a backup job was created; nothing is left running.',
        'aborted',
      );
    }
    const action = await this.onAbort(startedAt + ABORT_BUDGET_MS);
    return new StepFailure(
      `The workflow run was cancelled while backup job ${this.jobId} was ${this.lastStatus ?? 'running'}. ${action}`,
      'aborted',
    );
  }

  /**
   * BACKUP was sent and its answer had not arrived: find its job by its
   * capture time on a fresh connection. Adopted when found (then cancelled as
   * any job of this run); otherwise a failure that says what is known.
   */
  private async findUnansweredSubmission(deadline: number): Promise<StepFailure | undefined> {
    const { capture, sessions } = this.submission!;
    this.log(
      `BACKUP was sent but its answer had not arrived; looking for its job (AS OF SYSTEM TIME '${capture.literal}').`,
    );
    const result = await lookUpSubmission({
      connector: this.deps.connector,
      connection: this.config.connection,
      applicationName: () => this.names.next(),
      captureLiteral: capture.literal,
      captureMicros: capture.micros,
      matchesCollection: (d) => descriptionTargetsCollection(d, this.config.collection),
      sessions,
      deadline,
      describe: (err) => errorLine(err, this.secrets),
    });
    if (result.kind === 'found') {
      this.jobId = result.job.jobId;
      this.owned = true;
      this.lastStatus = result.job.status;
      this.deps.io.saveState(STATE.jobId, this.jobId);
      this.report.recordJobId(this.jobId, 'found');
      this.log(`Found job ${this.jobId} (${result.job.status}), created by that BACKUP.`);
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
      (this.config.cancelOnAbort
        ? '; the post step looks for it again and cancels it.'
        : ' (cancel-on-abort: false).') +
      ` Check SHOW JOBS.`;
    if (this.config.cancelOnAbort) this.deps.io.saveState(STATE.owned, 'uncertain');
    this.report.recordNote(text);
    return new StepFailure(
      `The workflow run was cancelled while BACKUP was being submitted. ${text}`,
      'aborted',
    );
  }

  /** The backstop is about to end the process: what the summary should say by then. */
  async forcedExit(finish: () => Promise<void>): Promise<void> {
    this.report.recordForcedExit(this.jobId, this.jobEnded);
    await finish();
  }

  private async onAbort(deadline: number): Promise<string> {
    if (!this.owned) return 'The job was not started by this step; it is left running.';
    if (!this.config.cancelOnAbort) {
      return `Job ${this.jobId} is left running (cancel-on-abort: false).`;
    }
    return this.cancelOwnedJob('cancel-on-abort', Math.max(500, deadline - Date.now()));
  }

  private async cancelOwnedJob(why: string, totalTimeoutMs?: number): Promise<string> {
    const jobId = this.jobId!;
    const { config } = this;
    const result = await cancelWithFallback({
      connector: this.deps.connector,
      jobId,
      connections: config.grantConnectionGiven
        ? [config.connection, config.grantConnection]
        : [config.connection],
      applicationName: () => this.names.next(),
      connectTimeoutMs: Math.min(this.timings.connectTimeoutMs, this.timings.cancelTimeoutMs),
      timeoutMs: this.timings.cancelTimeoutMs,
      ...(totalTimeoutMs !== undefined
        ? { totalTimeoutMs: Math.min(totalTimeoutMs, CANCEL_DEADLINE_MS) }
        : {}),
      log: (m) => this.log(m),
      describe: (err) => errorLine(err, this.secrets),
    });
    const text = cancelResultText(result, jobId, why, config.connection.user);
    this.log(text);
    if (result.kind === 'requested') this.deps.io.saveState(STATE.owned, 'cancelled');
    // The post step tries again, whatever the main step's ending.
    if (result.kind === 'timed-out' || result.kind === 'failed' || result.kind === 'pausing')
      this.deps.io.saveState(STATE.owned, 'cancel-pending');
    return text;
  }

  private recordJob(job: JobRow, plan: Plan, capture: CaptureTime | undefined): void {
    this.report.recordJob(job);
    if (plan.kind === 'full' && !this.report.attached) {
      const described = subdirFromDescription(job.description);
      if (
        described !== undefined &&
        described !== 'LATEST' &&
        normalizeFullSubdir(described) !== this.report.outputs['backup-path']
      ) {
        // The cluster is the truth on where the backup went.
        this.recordPlan({ kind: 'full', fullSubdir: described }, capture);
      }
    }
  }

  private async verify(plan: Plan, capture: CaptureTime | undefined): Promise<void> {
    const result = await verifyBackup({
      config: this.config,
      link: this.link,
      uri: this.destination!.uri,
      fullSubdir: this.report.outputs['backup-path']!,
      kind: plan.kind,
      capture,
      openStore: this.openStore,
      signal: this.deps.signal,
      reconnectBudgetMs: this.timings.reconnectBudgetMs,
      log: (m) => this.log(m),
      showBackup: (subdir, checkFiles) =>
        showBackupStatement(this.destination!.uri, subdir, {
          checkFiles,
          encryptionPassphrase: this.config.encryptionPassphrase,
          kmsUri: this.config.kmsUri,
        }),
      ...(this.config.verify === 'restore' && capture
        ? {
            restoreCheck: () =>
              (this.restoreRun = runRestoreCheckFor({
                config: this.config,
                deps: this.deps,
                timings: this.timings,
                names: this.names,
                secrets: this.secrets,
                capture,
                sourceLink: this.link,
                sourceVersion: this.version!,
                verifyLink: this.verifyLink(),
                uri: this.destination!.uri,
                fullSubdir: this.report.outputs['backup-path']!,
                waitContext: (jobId) => this.waitContext(jobId),
                log: (m) => this.log(m),
              })),
          }
        : {}),
    });
    this.report.recordVerification(result);
    for (const check of result.checks) this.log(`Checked: ${check}`);
    if (result.verified === 'false') {
      throw new StepFailure(
        `The backup job succeeded but verification failed: ${result.problem}`,
        'verify-failed',
      );
    }
  }

  private async prune(plan: Plan): Promise<void> {
    let summary;
    try {
      // Ages against the cluster's clock; chains that running backup jobs write into are skipped.
      const facts = await this.link.withReconnect(
        'reading the cluster clock and running backups for pruning',
        (s) => readPruneFacts(s, (d) => descriptionTargetsCollection(d, this.config.collection)),
        { budgetMs: this.timings.reconnectBudgetMs, signal: this.deps.signal },
      );
      summary = await pruneAfterBackup({
        config: this.config,
        openStore: this.openStore,
        protectFullSubdir:
          plan.kind === 'incremental' ? plan.fullSubdir : this.report.outputs['backup-path']!,
        now: facts.now,
        busy: facts.busy,
        log: (m) => this.log(m),
        verified: this.report.outputs.verified === 'true',
      });
    } catch (err) {
      if (!(err instanceof PruneFailure)) throw err;
      if (err.summary) this.report.recordPrune(err.summary);
      throw new StepFailure(err.message, 'prune-failed');
    }
    if (!summary) return;
    this.report.recordPrune(summary);
    if (summary.failures.length > 0) {
      throw new StepFailure(
        summary.failureMessage ??
          `Pruning failed for ${summary.failures.length} object(s): ${summary.failures.slice(0, 5).join('; ')}`,
        'prune-failed',
      );
    }
  }
}

/** The message, then the advice as a sentence of its own (the message may already end in a period). */
function withAdvice(message: string, advice: string | undefined): string {
  return advice ? `${message.replace(/[.\s]+$/, '')}. ${advice}` : message;
}
