/**
 * The post step (same bundle, STATE_isPost). It matters only when the main
 * step was killed before it finished: then it cancels the job that step
 * created (with cancel-on-abort) or reports it as still running.
 */
import type { Deps } from './main.js';
import { applicationNameBase, DEFAULT_TIMINGS, STATE } from './main.js';
import { ApplicationNames, errorText } from './cluster.js';
import { InputError, readConfig } from './inputs.js';
import { cancelResultText, cancelWithFallback, readJob, TERMINAL_STATUSES } from './job.js';
import { describeError, SecretRegistry } from './secrets.js';

export async function runPost(deps: Deps): Promise<number> {
  const { io } = deps;
  if (io.getState(STATE.done) === 'true') {
    io.debug('The main step finished; the post step has nothing to do.');
    return 0;
  }
  const jobId = io.getState(STATE.jobId);
  if (!jobId) {
    io.info('The main step ended before it created a backup job; nothing to clean up.');
    return 0;
  }
  const secrets = new SecretRegistry((v) => io.setSecret(v));
  let config;
  try {
    config = readConfig(deps.getInput, deps.env, secrets).config;
  } catch (err) {
    const message = err instanceof InputError ? err.message : describeError(err, secrets);
    io.warning(
      `Post step: could not read the inputs (${secrets.scrub(message)}); backup job ${jobId} may still be running.`,
    );
    return 0;
  }
  const owned = io.getState(STATE.owned) === 'true';
  const names = new ApplicationNames(`${applicationNameBase(deps.env, deps.random ?? Math.random)} post`);
  const status = await currentStatus(deps, config.connection, names, jobId, (e) => describeError(e, secrets));
  let text: string;
  if (status !== undefined && TERMINAL_STATUSES.has(status)) {
    text = `The main step was stopped; backup job ${jobId} has since ended with status ${status}.`;
  } else if (!owned) {
    text = `The main step was stopped while following backup job ${jobId}, which it did not start: it is left running.`;
  } else if (!config.cancelOnAbort) {
    text = `The main step was stopped; backup job ${jobId} is left running (cancel-on-abort: false).`;
  } else {
    const result = await cancelWithFallback({
      connector: deps.connector,
      jobId,
      connections: config.grantConnectionGiven
        ? [config.connection, config.grantConnection]
        : [config.connection],
      applicationName: () => names.next(),
      connectTimeoutMs: DEFAULT_TIMINGS.cancelTimeoutMs,
      timeoutMs: DEFAULT_TIMINGS.cancelTimeoutMs,
      log: (m) => io.info(secrets.scrub(m)),
      describe: (err) => describeError(err, secrets),
    });
    text = `The main step was stopped before it finished. ${cancelResultText(result, jobId, 'post step, cancel-on-abort', config.connection.user)}`;
  }
  io.warning(secrets.scrub(text));
  if (config.summary) {
    try {
      await io.writeSummary(secrets.scrub(`## ⚠️ CockroachDB backup: post step\n\n${text}\n`));
    } catch (err) {
      io.warning(`Could not write the job summary (${secrets.scrub(errorText(err))}).`);
    }
  }
  return 0;
}

async function currentStatus(
  deps: Deps,
  connection: Parameters<Deps['connector']>[0]['connection'],
  names: ApplicationNames,
  jobId: string,
  describe: (err: unknown) => string,
): Promise<string | undefined> {
  try {
    const session = await deps.connector({
      connection,
      applicationName: names.next(),
      connectTimeoutMs: DEFAULT_TIMINGS.cancelTimeoutMs,
    });
    try {
      return (await readJob(session, jobId))?.status;
    } finally {
      await session.close();
    }
  } catch (err) {
    deps.io.info(`Post step: could not read job ${jobId} (${describe(err)}).`);
    return undefined;
  }
}
