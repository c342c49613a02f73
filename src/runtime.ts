/**
 * The real world the action runs in: the runner's commands through
 * @actions/core, pg, S3, the system clock, and the signals the runner sends
 * when a workflow run is cancelled. `run()` and `runPost()` build their
 * dependencies from here when called without any (as @github/local-action
 * and GitHub's action template call them); tests pass fakes instead.
 */
import * as core from '@actions/core';
import { pgConnector, systemClock } from './cluster.js';
import type { Deps } from './main.js';
import type { ActionIO } from './report.js';
import { neutraliseCommands } from './report.js';
import { openObjectStore } from './storage.js';

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
