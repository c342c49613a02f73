/**
 * The post step (same bundle, STATE_isPost). It matters only when the main
 * step was killed before it finished: then it cancels the job that step
 * created (with cancel-on-abort) or reports it as still running.
 */
import { ApplicationNames } from './cluster.js';
import { errorLine } from './errors.js';
import { readConfig } from './inputs.js';
import { CANCEL_DEADLINE_MS, cancelRunJob } from './cancel.js';
import { parseClusterTime } from './time.js';
import { TERMINAL_STATUSES, toJobRow } from './wait.js';
import { SecretRegistry } from './secrets.js';
import { readMainState } from './state.js';
import { jobByIdStatement } from './sql.js';
import { descriptionTargetsCollection } from './destination.js';
import type { Deps } from './runtime.js';
import { applicationNameBase, DEFAULT_TIMINGS, realDeps, writeSummaryOrWarn } from './runtime.js';
import { lookUpSubmission } from './submit.js';
import type { Config } from './config.js';
import { postRestoreCheck } from './restore-cleanup.js';

export async function runPost(deps: Deps = realDeps()): Promise<number> {
  const { io } = deps;
  await postRestoreCheck(deps);
  const state = readMainState(io);
  const { ownership } = state;
  // A cancel the main step asked for is tried again even though the main step finished.
  const pending = ownership === 'cancel-pending' || ownership === 'lookup-pending';
  if (state.done && !pending) {
    io.debug('The main step finished; the post step has nothing to do.');
    return 0;
  }
  let jobId = state.jobId;
  const captureLiteral = state.capture;
  if (!jobId && !captureLiteral) {
    io.info('The main step ended before it created a backup job; nothing to clean up.');
    return 0;
  }
  const secrets = new SecretRegistry((v) => io.setSecret(v));
  let config;
  try {
    config = readConfig(deps.getInput, deps.env, secrets).config;
  } catch (err) {
    io.warning(
      `Post step: could not read the inputs (${errorLine(err, secrets)}); backup job ${jobId} may still be running.`,
    );
    return 0;
  }
  // cancel-sent: the main step had sent CANCEL JOB; sending it again is harmless and makes sure.
  const mainAsked = ownership === 'cancel-sent' || pending;
  const owned = ownership === 'owned' || mainAsked;
  const names = new ApplicationNames(`${applicationNameBase(deps.env, deps.random ?? Math.random)} post`);
  // One deadline for the whole clean-up (status read and cancel), as in the main step.
  const deadline = Date.now() + CANCEL_DEADLINE_MS + (jobId ? 0 : LOOKUP_MS);
  if (!jobId) {
    // BACKUP was sent and its answer never arrived: its job is found by its capture time.
    const found = await findSubmitted(deps, config, names, captureLiteral, state.sessions, secrets);
    if (found === undefined) return 0;
    jobId = found;
  }
  const status = await currentStatus(
    deps,
    config.connection,
    names,
    jobId,
    (e) => errorLine(e, secrets),
    Math.min(STATUS_READ_MS, CANCEL_DEADLINE_MS / 2),
  );
  let text: string;
  if (status !== undefined && TERMINAL_STATUSES.has(status)) {
    text = `The main step was stopped; backup job ${jobId} has since ended with status ${status}.`;
  } else if (!owned) {
    text = `The main step was stopped while following backup job ${jobId}, which it did not start: it is left running.`;
  } else if (!config.cancelOnAbort && !mainAsked) {
    text = `The main step was stopped; backup job ${jobId} is left running (cancel-on-abort: false).`;
  } else {
    const cancel = await cancelRunJob({
      connector: deps.connector,
      config,
      jobId,
      applicationName: () => names.next(),
      timings: DEFAULT_TIMINGS,
      totalTimeoutMs: Math.max(1000, deadline - Date.now()),
      why: mainAsked ? 'post step, as the main step had asked' : 'post step, cancel-on-abort',
      log: (m) => io.info(secrets.scrub(m)),
      describe: (err) => errorLine(err, secrets),
    });
    const why =
      ownership === 'cancel-pending'
        ? 'The main step could not cancel its backup job in time; the post step tried again.'
        : 'The main step was stopped before it finished.';
    text = `${why} ${cancel.text}`;
  }
  io.warning(secrets.scrub(text));
  if (config.summary) {
    await writeSummaryOrWarn(io, `## ⚠️ CockroachDB backup: post step\n\n${text}\n`, (t) => secrets.scrub(t));
  }
  return 0;
}

/** The longest the post step looks for a job whose id the main step never received. */
const LOOKUP_MS = 2_500;

/** The job of an unanswered BACKUP, or undefined (said in the log) when none is found. */
async function findSubmitted(
  deps: Deps,
  config: Config,
  names: ApplicationNames,
  captureLiteral: string,
  sessions: readonly string[],
  secrets: SecretRegistry,
): Promise<string | undefined> {
  const capture = parseClusterTime(captureLiteral);
  if (!capture) return undefined;
  const result = await lookUpSubmission({
    connector: deps.connector,
    connection: config.connection,
    applicationName: () => names.next(),
    captureLiteral,
    captureMicros: capture.micros,
    matchesCollection: (d) => descriptionTargetsCollection(d, config.collection),
    sessions,
    deadline: Date.now() + LOOKUP_MS,
    describe: (err) => errorLine(err, secrets),
  });
  switch (result.kind) {
    case 'found':
      deps.io.info(
        `Post step: found job ${result.job.jobId}, created by the BACKUP whose answer never arrived.`,
      );
      return result.job.jobId;
    case 'none':
      deps.io.info('Post step: the BACKUP whose answer never arrived created no job; nothing to clean up.');
      return undefined;
    case 'unknown':
      deps.io.warning(
        secrets.scrub(
          `Post step: could not find out whether BACKUP created a job (${result.why}): check SHOW JOBS for a BACKUP job AS OF SYSTEM TIME '${captureLiteral}'.`,
        ),
      );
      return undefined;
  }
}

/** The longest the post step spends reading the job's status before it decides. */
const STATUS_READ_MS = 2_000;

/** The job's status, or undefined when it cannot be read within `limitMs` (connect and read together). */
async function currentStatus(
  deps: Deps,
  connection: Parameters<Deps['connector']>[0]['connection'],
  names: ApplicationNames,
  jobId: string,
  describe: (err: unknown) => string,
  limitMs: number,
): Promise<string | undefined> {
  let over = false;
  let timer: NodeJS.Timeout | undefined;
  const read = async (): Promise<string | undefined> => {
    const session = await deps.connector({
      connection,
      applicationName: names.next(),
      connectTimeoutMs: limitMs,
    });
    try {
      if (over) return undefined;
      const rows = await session.query(jobByIdStatement(jobId), { clientTimeoutMs: limitMs });
      return rows[0] ? toJobRow(rows[0]).status : undefined;
    } finally {
      void session.close().catch(() => undefined);
    }
  };
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      over = true;
      reject(new Error(`no answer within ${limitMs / 1000}s`));
    }, limitMs);
  });
  try {
    return await Promise.race([read(), late]);
  } catch (err) {
    deps.io.info(`Post step: could not read job ${jobId} (${describe(err)}).`);
    return undefined;
  } finally {
    over = true;
    clearTimeout(timer);
  }
}
