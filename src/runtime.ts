/**
 * What is injected: the runner's side (`ActionIO`), the environment, the
 * clock, the connector and the object store (`Deps`), the timings, and the
 * application name a DBA sees. The real ones come from here too (the runner's
 * commands through @actions/core, pg, S3, the system clock, and the signals
 * the runner sends when a workflow run is cancelled): `run()` and `runPost()`
 * build them when called without any (as @github/local-action and GitHub's
 * action template call them); tests pass fakes instead.
 */
import * as core from '@actions/core';
import type { Connector } from './cluster.js';
import { errorMessage } from './errors.js';
import { pgConnector } from './cluster.js';
import type { StorageSettings } from './destination.js';
import type { InputReader } from './inputs.js';
import { neutraliseCommands } from './report.js';
import type { ObjectStore } from './storage.js';
import { openObjectStore } from './storage.js';

/** The runner-facing side effects, injected so tests can record them. */
export interface ActionIO {
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  debug(message: string): void;
  setOutput(name: string, value: string): void;
  setFailed(message: string): void;
  setSecret(value: string): void;
  saveState(name: string, value: string): void;
  getState(name: string): string;
  startGroup(name: string): void;
  endGroup(): void;
  /** Append Markdown to the job summary; throws when the runner gave no summary file. */
  writeSummary(markdown: string): Promise<void>;
}

export type Scrub = (text: string) => string;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after ms, or early (without throwing) when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, Math.max(0, ms));
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

export interface Deps {
  io: ActionIO;
  getInput: InputReader;
  env: Readonly<Record<string, string | undefined>>;
  connector: Connector;
  openStore: (settings: StorageSettings) => Promise<ObjectStore>;
  clock: Clock;
  /** Aborted when the runner sends SIGINT, SIGTERM or SIGHUP. */
  signal: AbortSignal;
  random?: () => number;
  /**
   * Registers what to do when the step is about to be ended by force (the
   * backstop after a signal): write the outputs and the summary as they stand.
   */
  onForcedExit?: (finish: () => Promise<void>) => void;
}

/**
 * Append Markdown (scrubbed) to the job summary. A runner that gave no summary
 * file is no reason to fail the step: a warning says so, ending with
 * `afterwards` (what still holds, e.g. that the outputs are set).
 */
export async function writeSummaryOrWarn(
  io: ActionIO,
  markdown: string,
  scrub: Scrub,
  afterwards = '',
): Promise<void> {
  try {
    await io.writeSummary(scrub(markdown));
  } catch (err) {
    io.warning(`Could not write the job summary (${scrub(errorMessage(err))})${afterwards}.`);
  }
}

/** Timings that tests may shorten. */
export interface Timings {
  connectTimeoutMs: number;
  reconnectBudgetMs: number;
  sessionGoneTimeoutMs: number;
  cancelTimeoutMs: number;
  whenCompleteSliceMs: number;
}

export const DEFAULT_TIMINGS: Timings = {
  connectTimeoutMs: 10_000,
  reconnectBudgetMs: 5 * 60_000,
  sessionGoneTimeoutMs: 2 * 60_000,
  cancelTimeoutMs: 3_000,
  whenCompleteSliceMs: 15_000,
};

export function timingsFromEnv(env: Readonly<Record<string, string | undefined>>): Timings {
  // Test hook: the e2e tests shorten the reconnect budget; users never need it.
  const budget = Number(env.CRDB_BACKUP_ACTION_RECONNECT_BUDGET_MS);
  return Number.isFinite(budget) && budget > 0
    ? { ...DEFAULT_TIMINGS, reconnectBudgetMs: budget }
    : DEFAULT_TIMINGS;
}

export function runUrl(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const {
    GITHUB_SERVER_URL: server,
    GITHUB_REPOSITORY: repo,
    GITHUB_RUN_ID: id,
    GITHUB_RUN_ATTEMPT: attempt,
  } = env;
  if (!server || !repo || !id) return undefined;
  return `${server}/${repo}/actions/runs/${id}${attempt ? `/attempts/${attempt}` : ''}`;
}

/** `crdb-backup-action <repo> run <id>-<attempt>`: how a DBA sees this run in the cluster's session views. */
export function applicationNameBase(
  env: Readonly<Record<string, string | undefined>>,
  random: () => number,
): string {
  const repo = env.GITHUB_REPOSITORY ?? 'local';
  const id = env.GITHUB_RUN_ID ?? `local${Math.floor(random() * 1e9)}`;
  return `crdb-backup-action ${repo} run ${id}-${env.GITHUB_RUN_ATTEMPT ?? '1'}`;
}

export const coreIO: ActionIO = {
  // Log lines carry text from outside: none of their lines may become a workflow command.
  info: (m) => core.info(neutraliseCommands(m)),
  warning: (m) => core.warning(neutraliseCommands(m)),
  error: (m) => core.error(neutraliseCommands(m)),
  debug: (m) => core.debug(m),
  setOutput: (n, v) => core.setOutput(n, v),
  setFailed: (m) => core.setFailed(neutraliseCommands(m)),
  setSecret: (v) => core.setSecret(v),
  saveState: (n, v) => core.saveState(n, v),
  getState: (n) => core.getState(n),
  startGroup: (n) => core.startGroup(n),
  endGroup: () => core.endGroup(),
  writeSummary: async (markdown) => {
    await core.summary.addRaw(markdown, true).write();
  },
};

/** Aborted by the first SIGINT, SIGTERM or SIGHUP once installSignalHandlers() ran. */
const controller = new AbortController();
let forcedExit: (() => Promise<void>) | undefined;

export function realDeps(): Deps {
  return {
    io: coreIO,
    getInput: (name) => core.getInput(name),
    env: process.env,
    connector: pgConnector,
    openStore: openObjectStore,
    clock: systemClock,
    signal: controller.signal,
    onForcedExit: (finish) => {
      forcedExit = finish;
    },
  };
}

/**
 * From the first signal to a forced exit: the runner sends SIGTERM 7.5 s
 * after SIGINT (and kills 2.5 s later), so the step ends, with its summary,
 * before that.
 */
export const BACKSTOP_MS = 7_000;
/** The backstop's own summary must not hold the exit either. */
const FORCED_FINISH_MS = 300;

export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (controller.signal.aborted) return;
      core.info(`Received ${signal}: stopping the wait.`);
      controller.abort();
      // The cancel and the summary are bounded well inside the grace; should anything else
      // still hold the step, it writes what it knows and ends before the runner's SIGTERM.
      setTimeout(() => {
        const finish = forcedExit?.().catch(() => undefined) ?? Promise.resolve();
        const late = new Promise((resolve) => setTimeout(resolve, FORCED_FINISH_MS));
        void Promise.race([finish, late]).then(() => {
          core.setFailed(
            `crdb-backup-action did not finish within ${BACKSTOP_MS / 1000}s of ${signal}; exiting.`,
          );
          process.exit(1);
        });
      }, BACKSTOP_MS).unref();
    });
  }
}
