/**
 * run(): the action's main step, as an orchestrator. Every dependency (the
 * runner, the clock, the database and S3) is injected, so tests need no
 * module mocks.
 */
import { adviceForConnectError, adviceForJobError, adviceForSubmitError } from './advice.js';
import type { LinkLogger, SqlSession } from './cluster.js';
import { ApplicationNames, ClusterLink, parseClusterVersion, versionAtLeast } from './cluster.js';
import { AbortedError, errorLine, errorMessage, StepFailure } from './errors.js';
import type { BackupDestination, StorageSettings } from './destination.js';
import {
  buildBackupDestination,
  descriptionTargetsCollection,
  storageSettings,
  subdirFromDescription,
} from './destination.js';
import { readConfig, summaryWanted } from './inputs.js';
import type { CaptureTime, JobRow, WaitOutcome } from './job.js';
import {
  CANCEL_DEADLINE_MS,
  cancelResultText,
  cancelWithFallback,
  captureTimeFromMicros,
  findRunningBackups,
  jobDurationSeconds,
  jobStateAtTimeout,
  parseClusterTime,
  readJobWithin,
  resolveCaptureTime,
  waitForJob,
} from './job.js';
import type { RunReport } from './report.js';
import type { ActionIO, Deps, Timings } from './runtime.js';
import { applicationNameBase, realDeps, runUrl, timingsFromEnv } from './runtime.js';
import {
  earlierThan,
  lookUpSubmission,
  SubmissionUncertain,
  submitBackup,
  SubmitDeadline,
} from './submit.js';
import { finalOutputs, ProgressReporter, renderSummary, restoreStatement, writeOutputs } from './report.js';
import { SecretRegistry } from './secrets.js';
import { STATE } from './state.js';
import type { Statement } from './sql.js';
import {
  backupStatement,
  grantStatements,
  quoteIdent,
  restoreGrantStatements,
  showBackupsStatement,
  showBackupStatement,
} from './sql.js';
import type { Plan } from './plan.js';
import { PlanError, planBackup } from './plan.js';
import { runDryRun } from './preflight.js';
import type { ObjectStore } from './storage.js';
import { normalizeFullSubdir } from './layout.js';
import { pruningEnabled, readPruneFacts } from './prune.js';
import { PruneFailure, pruneAfterBackup, verifyBackup } from './verify.js';
import type { RestoreCheckOutcome } from './restore-check.js';
import { runRestoreCheckFor } from './restore-check.js';
import type { ClusterVersion, Config } from './config.js';

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
  const report: RunReport = {
    outcome: 'error',
    outputs: {},
    databases: [],
    verifyChecks: [],
    notes: [],
    runUrl: runUrl(deps.env),
  };
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
    step = new Step(deps, config, secrets, report, timings);
    const running = step;
    deps.onForcedExit?.(() => running.forcedExit(() => finish(true)));
    await untilAborted(step.execute(), deps.signal);
  } catch (caught) {
    let err = caught;
    // Wherever the run was when the signal came, the job it may have created is dealt with here.
    if (err instanceof AbortedError && step) err = await step.abortFailure();
    const failure = errorLine(err, secrets);
    if (report.outcome === 'succeeded' || report.outcome === 'submitted') report.outcome = 'error';
    if (err instanceof StepFailure) report.outcome = err.outcome;
    report.error = failure;
    io.setFailed(scrub(failure));
  } finally {
    await step?.closeConnections();
  }
  await finish(false);
  return report.outcome === 'succeeded' || report.outcome === 'submitted' ? 0 : 1;

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
    private readonly report: RunReport,
    private readonly timings: Timings,
  ) {
    this.names = new ApplicationNames(applicationNameBase(deps.env, deps.random ?? Math.random));
    this.link = this.newLink(config.connection);
    report.databases = config.databases;
    report.outputs['collection-path'] = config.collection.display;
    if (config.encryptionPassphrase !== undefined) report.encrypted = 'passphrase';
    if (config.kmsUri !== undefined) report.encrypted = 'kms';
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
        plan = this.planFromDescription(attached);
        capture = captureFromDescription(attached.description);
        break;
      }
      const started = await this.group('Start the backup', async () => {
        const p = await this.planBackup();
        const c = await resolveCaptureTime(await this.link.session(), config.asOfSystemTime);
        await this.submit(p, c);
        return { plan: p, capture: c };
      });
      const earlier = round < 3 ? await this.startedFirst() : undefined;
      const outcome = earlier ? await this.yieldTo(earlier) : 'keep';
      if (outcome === 'keep') ({ plan, capture } = started);
      else if (outcome !== 'resubmit') {
        plan = this.planFromDescription(outcome);
        capture = captureFromDescription(outcome.description);
      }
    }
    this.recordPlan(plan, capture);

    if (!config.wait) {
      this.report.outcome = 'submitted';
      this.report.outputs.status = 'running';
      this.report.outputs.verified = 'skipped';
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
    this.report.outcome = 'succeeded';
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
    if (!versionAtLeast(v, 22, 2)) {
      throw new StepFailure(`CockroachDB ${v.tag} is too old: crdb-backup-action supports 22.2 and later.`);
    }
    if (v.major > 25)
      this.warn(
        `CockroachDB ${v.tag} is newer than the versions this action was tested with (22.2 to 25.x).`,
      );
    this.report.clusterVersion = v.full.replace(/ \(.*$/, '');
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
    const v = this.version!;
    const mayCancel = config.cancelOnAbort || config.onTimeout === 'cancel';
    // From 25.1 owners may cancel their own jobs, but only once the upgrade is finalized: grant anyway.
    const controlJob = !mayCancel ? 'none' : versionAtLeast(v, 23, 1, 12) ? 'system' : 'role-option';
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
    this.report.attached = true;
    this.report.outputs['job-id'] = job.jobId;
    this.deps.io.setOutput('job-id', job.jobId);
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
    if (running.length === 0) {
      this.log(`No other backup job is running into ${this.config.collection.display}.`);
      return undefined;
    }
    const ids = running.map((j) => `${j.jobId} (${j.status})`).join(', ');
    switch (this.config.ifRunning) {
      case 'start':
        this.log(
          `Backup job(s) ${ids} already running into this collection; starting another (if-running: start).`,
        );
        return undefined;
      case 'fail':
        throw new StepFailure(
          `if-running: fail: backup job(s) ${ids} are already running into ${this.config.collection.display}. Wait for them, or set if-running to attach, wait or start.`,
        );
      case 'attach': {
        const job = newest(running);
        this.attach(job);
        return job;
      }
      case 'wait':
        for (const job of running) {
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
    const mode = this.config.ifRunning;
    const own = this.jobId!;
    if (mode === 'start') {
      this.log(
        `Backup job ${other.jobId} into this collection was started just before job ${own}; keeping both (if-running: start).`,
      );
      return 'keep';
    }
    this.log(
      `Backup job ${other.jobId} into this collection was started just before job ${own} (another run passed the same check at the same moment); cancelling ${own} (if-running: ${mode}).`,
    );
    const text = await this.cancelOwnedJob(`if-running: ${mode}, job ${other.jobId} started first`);
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
    delete this.report.outputs['job-id'];
    if (mode === 'fail') {
      throw new StepFailure(
        `if-running: fail: backup job ${other.jobId} into ${this.config.collection.display} was started just before this run's job ${own}, which was cancelled. Wait for it, or set if-running to attach, wait or start.`,
      );
    }
    if (mode === 'attach') {
      this.attach(other);
      return other;
    }
    return 'resubmit';
  }

  /**
   * An attached job's description names the full backup it writes or extends
   * (`INTO '<subdir>' IN`). It is an incremental when its capture time does
   * not map to that folder.
   */
  private planFromDescription(job: JobRow): Plan {
    const subdir = subdirFromDescription(job.description);
    const capture = captureFromDescription(job.description);
    if (
      subdir !== undefined &&
      capture !== undefined &&
      capture.fullSubdir !== subdir &&
      subdir !== 'LATEST'
    ) {
      return { kind: 'incremental', appendTo: subdir };
    }
    return { kind: 'full', appendTo: subdir === 'LATEST' ? undefined : subdir };
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
      appendTo: plan.appendTo,
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
        this.report.outputs.status = 'timeout';
        throw new StepFailure(err.message, 'timeout');
      }
      if (err instanceof SubmissionUncertain) {
        // The post step looks again for the job, and cancels it when found.
        if (err.reason === 'timeout' && this.config.onTimeout === 'cancel')
          this.deps.io.saveState(STATE.owned, 'uncertain');
        if (err.reason === 'timeout') this.report.outputs.status = 'timeout';
        throw new StepFailure(err.message, err.reason === 'timeout' ? 'timeout' : 'error');
      }
      const advice = adviceForSubmitError(err, { user: config.connection.user, grantTo: config.grantTo });
      throw new StepFailure(`BACKUP was refused: ${withAdvice(errorLine(err, this.secrets), advice)}`);
    }
    this.submission = undefined;
    // Saved at once, so that the post step can cancel the job if this step is killed.
    this.deps.io.saveState(STATE.jobId, this.jobId);
    this.deps.io.saveState(STATE.owned, 'true');
    this.report.outputs['job-id'] = this.jobId;
    this.deps.io.setOutput('job-id', this.jobId);
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
    const o = this.report.outputs;
    const planned = plan.kind === 'incremental' ? plan.appendTo : (plan.appendTo ?? capture?.fullSubdir);
    // One leading '/' whatever the source: CockroachDB omits it for a collection at the bucket root.
    const full = planned === undefined ? undefined : normalizeFullSubdir(planned);
    this.report.backupKind = plan.kind;
    // Why auto took a new full backup (no full, other targets, full-backup-every) is worth a line.
    if (plan.kind === 'full' && plan.reason !== undefined && !this.report.notes.includes(plan.reason))
      this.report.notes.push(plan.reason);
    if (capture) o['end-time'] = capture.iso;
    if (full !== undefined) {
      o['backup-path'] = full;
      o['backup-uri'] = joinUri(this.config.collection.display, full);
      this.report.restoreStatement = restoreStatement({
        databases: this.config.databases,
        quoteIdent,
        collectionForRestore: this.destination!.template,
        fullSubdir: full,
        endTimeLiteral: capture?.literal ?? '<end-time>',
        encrypted: this.report.encrypted,
      });
    }
  }

  private waitContext(jobId: string) {
    const progress = new ProgressReporter(
      (line) => this.log(line),
      () => this.deps.clock.now(),
    );
    return {
      link: this.link,
      jobId,
      useWhenComplete: versionAtLeast(this.version!, 23, 2),
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
    const o = this.report.outputs;
    if (outcome.job) this.recordTimes(outcome.job);
    if (outcome.job) this.lastStatus = outcome.job.status;
    switch (outcome.kind) {
      case 'terminal': {
        const job = outcome.job;
        this.jobEnded = true;
        o.status = job.status;
        if (job.status === 'succeeded') return job;
        o.verified = 'skipped';
        const error = job.error ?? '(the cluster recorded no error text)';
        const advice = adviceForJobError(error);
        throw new StepFailure(
          `Backup job ${job.jobId} ended with status ${job.status}: ${withAdvice(error, advice)}`,
          'failed',
        );
      }
      case 'vanished':
        o.verified = 'skipped';
        throw new StepFailure(
          `Backup job ${this.jobId} is no longer returned by the cluster (not visible to ${this.config.connection.user}, or garbage-collected). Its result is unknown: check SHOW JOBS as an admin.`,
        );
      case 'timeout': {
        o.status = 'timeout';
        o.verified = 'skipped';
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
      if (restore?.problem !== undefined) this.report.verifyChecks.push(...restore.checks);
      // The job's final status stands; a verification that did not finish is not a pass.
      if (o.verified !== 'true' || restore !== undefined) o.verified = 'false';
      const what =
        restore !== undefined
          ? 'during the restore check'
          : o.verified === 'true'
            ? 'while pruning'
            : 'before verification finished';
      return new StepFailure(
        `The workflow run was cancelled ${what}; backup job ${this.jobId} had ended with status ${o.status}.${restore?.problem !== undefined ? ` ${restore.problem}` : ''}`,
        'aborted',
      );
    }
    o.status = 'aborted';
    o.verified = 'skipped';
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
      this.report.outputs['job-id'] = this.jobId;
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
    this.report.notes.push(text);
    return new StepFailure(
      `The workflow run was cancelled while BACKUP was being submitted. ${text}`,
      'aborted',
    );
  }

  /** The backstop is about to end the process: what the summary should say by then. */
  async forcedExit(finish: () => Promise<void>): Promise<void> {
    const o = this.report.outputs;
    if (!this.jobEnded) o.status = 'aborted';
    this.report.outcome = 'aborted';
    const job =
      this.jobId !== undefined
        ? `Backup job ${this.jobId} may still be running: CANCEL JOB ${this.jobId};`
        : '';
    this.report.error ??=
      `The workflow run was cancelled and the step could not finish in time. ${job}`.trim();
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

  private recordTimes(job: JobRow): void {
    const o = this.report.outputs;
    if (job.started ?? job.created) o['started-at'] = (job.started ?? job.created)!.iso;
    if (job.finished) o['finished-at'] = job.finished.iso;
    o.duration = jobDurationSeconds(job) ?? o.duration;
  }

  private recordJob(job: JobRow, plan: Plan, capture: CaptureTime | undefined): void {
    this.recordTimes(job);
    if (plan.kind === 'full' && !this.report.attached) {
      const described = subdirFromDescription(job.description);
      if (
        described !== undefined &&
        described !== 'LATEST' &&
        normalizeFullSubdir(described) !== this.report.outputs['backup-path']
      ) {
        // The cluster is the truth on where the backup went.
        this.recordPlan({ kind: 'full', appendTo: described }, capture);
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
    const o = this.report.outputs;
    o.verified = result.verified;
    this.report.verifyChecks = result.checks;
    for (const check of result.checks) this.log(`Checked: ${check}`);
    if (result.incrementalPath) this.report.incrementalPath = result.incrementalPath;
    if (result.sizeBytes !== undefined) o['size-bytes'] = String(result.sizeBytes);
    if (result.objectCount !== undefined) o['object-count'] = String(result.objectCount);
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
        protectFullSubdir: plan.kind === 'incremental' ? plan.appendTo! : this.report.outputs['backup-path']!,
        now: facts.now,
        busy: facts.busy,
        log: (m) => this.log(m),
        verified: this.report.outputs.verified === 'true',
      });
    } catch (err) {
      if (!(err instanceof PruneFailure)) throw err;
      if (err.summary) this.report.prune = err.summary;
      throw new StepFailure(err.message, 'prune-failed');
    }
    if (!summary) return;
    this.report.prune = summary;
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

function newest(jobs: JobRow[]): JobRow {
  return [...jobs].sort((a, b) => Number((b.created?.micros ?? 0n) - (a.created?.micros ?? 0n)))[0]!;
}

/** The AS OF SYSTEM TIME of an attached job, from its description, when it is an absolute timestamp. */
function captureFromDescription(description: string): CaptureTime | undefined {
  const m = /AS OF SYSTEM TIME '([^']+)'/.exec(description);
  const t = m ? parseClusterTime(m[1]) : undefined;
  return t ? captureTimeFromMicros(t.micros) : undefined;
}

function joinUri(collection: string, subdir: string): string {
  return `${collection.replace(/\/+$/, '')}/${subdir.replace(/^\/+/, '')}`;
}
