/**
 * run(): the action's main step, as the order of its phases (connect, grant,
 * choose the job, wait, verify, prune), each in a log group and each handing
 * its result to the next. Every dependency (the runner, the clock, the
 * database and S3) is injected, so tests need no module mocks.
 */
import type { Config } from './config.js';
import type { Connected } from './connect.js';
import { connect, grant } from './connect.js';
import { StepContext } from './context.js';
import type { BackupDestination } from './destination.js';
import { buildBackupDestination, storageSettings, subdirFromDescription } from './destination.js';
import { abortFailure, forcedExit, settle, untilAborted } from './ending.js';
import { AbortedError, errorLine, StepFailure } from './errors.js';
import { readConfig, summaryWanted } from './inputs.js';
import type { CaptureTime } from './submit.js';
import type { JobRow } from './wait.js';
import { waitForJob } from './wait.js';
import { normalizeFullSubdir } from './layout.js';
import type { Plan } from './plan.js';
import { plannedFullSubdir } from './plan.js';
import { runDryRun } from './preflight.js';
import { pruneCollection, pruningEnabled } from './prune.js';
import { finalOutputs, ReportBuilder, writeOutputs } from './report.js';
import { runRestoreCheckFor } from './restore-check.js';
import type { Deps, Timings } from './runtime.js';
import { applicationNameBase, realDeps, runUrl, timingsFromEnv, writeSummaryOrWarn } from './runtime.js';
import { SecretRegistry } from './secrets.js';
import { showBackupStatement } from './sql.js';
import { saveState } from './state.js';
import { chooseJob } from './start.js';
import { renderSummary } from './summary.js';
import { verifyBackup } from './verify.js';

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
  let ctx: StepContext | undefined;
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
      saveState(io, 'done', true);
      return code;
    }
    const step = new StepContext(deps, config, secrets, builder, timings);
    ctx = step;
    builder.recordConfig(config);
    deps.onForcedExit?.(() => forcedExit(step, () => finish(true)));
    await untilAborted(backUp(step), deps.signal);
  } catch (caught) {
    let err = caught;
    // Wherever the run was when the signal came, the job it may have created is dealt with here.
    if (err instanceof AbortedError && ctx) err = await abortFailure(ctx);
    const failure = errorLine(err, secrets);
    builder.recordFailure(failure, err instanceof StepFailure ? err.outcome : undefined);
    io.setFailed(scrub(failure));
  } finally {
    await ctx?.closeConnections();
  }
  await finish(false);
  return builder.succeeded ? 0 : 1;

  /** Outputs, state and summary, once: by the normal ending or by the backstop before a forced exit. */
  async function finish(forced: boolean): Promise<void> {
    if (finished) return;
    finished = true;
    writeOutputs(io, finalOutputs(report), scrub);
    if (!forced) saveState(io, 'done', true);
    if (config?.summary ?? summaryWanted(deps.getInput))
      await writeSummaryOrWarn(io, renderSummary(report, scrub), scrub, '; the outputs are set');
  }
}

/** The phases in order, each in a log group, each handing its result to the next. */
async function backUp(ctx: StepContext): Promise<void> {
  const { config, report } = ctx;
  const cluster = await ctx.group('Connect to the cluster', () => connect(ctx));
  if (config.grantTo !== undefined) {
    const grantTo = config.grantTo;
    await ctx.group(`Grant privileges to ${grantTo}`, () => grant(ctx, grantTo, cluster.capabilities));
  }
  const destination = buildBackupDestination(config, cluster.version);
  // Only a URI that carries credentials is secret: external://name and implicit auth are not.
  if (destination.uri !== destination.redacted) ctx.secrets.add(destination.uri);

  const { plan, capture } = await chooseJob(ctx, cluster, destination);
  recordPlan(ctx, destination, plan, capture);
  const jobId = ctx.job.jobId!;

  if (!config.wait) {
    report.recordOutcome('submitted');
    report.recordStatus('running', 'skipped');
    ctx.log(`wait: false: job ${jobId} keeps running on the cluster; not waiting for it.`);
    return;
  }

  warmUpStorage(ctx);
  const outcome = await ctx.group(`Wait for backup job ${jobId}`, () =>
    waitForJob(ctx.waitContext(jobId, cluster.capabilities.whenComplete, cluster.deadline)),
  );
  const job = await settle(ctx, outcome);
  recordJob(ctx, destination, job, plan, capture);
  const fullSubdir = report.outputs['backup-path']!;
  const verified = await ctx.group('Verify the backup', () =>
    verify(ctx, cluster, destination, fullSubdir, plan, capture),
  );
  if (pruningEnabled(config)) {
    await ctx.group('Prune old backup chains', () =>
      prune(ctx, plan.kind === 'incremental' ? plan.fullSubdir : fullSubdir, verified),
    );
  }
  report.recordOutcome('succeeded');
  const how = verified ? ' and was verified' : ' (not verified: verify is none)';
  ctx.log(`Backup ${report.outputs['backup-uri'] ?? ''} succeeded${how}.`);
}

/**
 * Load the S3 SDK while the job runs rather than after it ends: start-up
 * stays light, and the end of the job is reported without that delay.
 */
function warmUpStorage(ctx: StepContext): void {
  const { config } = ctx;
  const pruning = pruningEnabled(config);
  const settings = storageSettings(config);
  if (settings === undefined || (config.verify === 'none' && !pruning)) return;
  // A failure here surfaces where the store is first used.
  ctx.openStore(settings).catch(() => undefined);
}

function recordPlan(
  ctx: StepContext,
  destination: BackupDestination,
  plan: Plan,
  capture: CaptureTime | undefined,
): void {
  ctx.report.recordPlan(plan, plannedFullSubdir(plan, capture), capture, {
    collectionDisplay: ctx.config.collection.display,
    collectionForRestore: destination.template,
  });
}

function recordJob(
  ctx: StepContext,
  destination: BackupDestination,
  job: JobRow,
  plan: Plan,
  capture: CaptureTime | undefined,
): void {
  ctx.report.recordJob(job);
  if (plan.kind === 'full' && !ctx.report.attached) {
    const described = subdirFromDescription(job.description);
    if (
      described !== undefined &&
      described !== 'LATEST' &&
      normalizeFullSubdir(described) !== ctx.report.outputs['backup-path']
    ) {
      // The cluster is the truth on where the backup went.
      recordPlan(ctx, destination, { kind: 'full', fullSubdir: described }, capture);
    }
  }
}

/** Returns whether the backup was verified (false with verify: none); throws when verification failed. */
async function verify(
  ctx: StepContext,
  cluster: Connected,
  destination: BackupDestination,
  fullSubdir: string,
  plan: Plan,
  capture: CaptureTime | undefined,
): Promise<boolean> {
  const { config } = ctx;
  const result = await verifyBackup({
    config,
    link: ctx.link,
    uri: destination.uri,
    fullSubdir,
    kind: plan.kind,
    capture,
    openStore: ctx.openStore,
    signal: ctx.deps.signal,
    reconnectBudgetMs: ctx.timings.reconnectBudgetMs,
    log: (m) => ctx.log(m),
    showBackup: (subdir, checkFiles) =>
      showBackupStatement(destination.uri, subdir, {
        checkFiles,
        encryptionPassphrase: config.encryptionPassphrase,
        kmsUri: config.kmsUri,
      }),
    ...(config.verify === 'restore' && capture
      ? {
          restoreCheck: () =>
            (ctx.job.restoreRun = runRestoreCheckFor({
              config,
              deps: ctx.deps,
              timings: ctx.timings,
              names: ctx.names,
              secrets: ctx.secrets,
              capture,
              sourceLink: ctx.link,
              sourceVersion: cluster.version,
              verifyLink: ctx.verifyLink(),
              uri: destination.uri,
              fullSubdir,
              waitContext: (jobId) =>
                ctx.waitContext(jobId, cluster.capabilities.whenComplete, cluster.deadline),
              log: (m) => ctx.log(m),
            })),
        }
      : {}),
  });
  ctx.report.recordVerification(result);
  for (const check of result.checks) ctx.log(`Checked: ${check}`);
  if (result.verified === 'false') {
    throw new StepFailure(
      `The backup job succeeded but verification failed: ${result.problem}`,
      'verify-failed',
    );
  }
  return result.verified === 'true';
}

async function prune(ctx: StepContext, protectFullSubdir: string, verified: boolean): Promise<void> {
  const { summary, failure } = await pruneCollection({
    config: ctx.config,
    link: ctx.link,
    openStore: ctx.openStore,
    protectFullSubdir,
    verified,
    reconnectBudgetMs: ctx.timings.reconnectBudgetMs,
    signal: ctx.deps.signal,
    log: (m) => ctx.log(m),
  });
  if (summary) ctx.report.recordPrune(summary);
  if (failure !== undefined) throw new StepFailure(failure, 'prune-failed');
}
