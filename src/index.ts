/**
 * Entry point of the bundle, for both the main and the post step: the
 * runner runs dist/index.js twice and the saved `isPost` state tells them apart.
 */
import * as core from '@actions/core';
import { pgConnector, systemClock } from './cluster.js';
import type { Deps } from './main.js';
import { run } from './main.js';
import { runPost } from './post.js';
import type { ActionIO } from './report.js';
import { neutraliseCommands } from './report.js';
import { openObjectStore } from './storage.js';

const io: ActionIO = {
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

/** From the first signal to a forced exit: before the runner's kill at 7.5 s + 2.5 s. */
const BACKSTOP_MS = 9_000;

async function main(): Promise<void> {
  const isPost = core.getState('isPost') === 'true';
  if (!isPost) core.saveState('isPost', 'true');
  const controller = new AbortController();
  // The runner sends SIGINT, then SIGTERM 7.5 s later, then kills 2.5 s after that.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (controller.signal.aborted) return;
      core.info(`Received ${signal}: stopping the wait.`);
      controller.abort();
      // The cancel and the summary are bounded well inside the grace; should anything else
      // still hold the step, it ends before the runner's kill rather than being killed.
      setTimeout(() => {
        core.setFailed(
          `crdb-backup-action did not finish within ${BACKSTOP_MS / 1000}s of ${signal}; exiting.`,
        );
        process.exit(1);
      }, BACKSTOP_MS).unref();
    });
  }
  const deps: Deps = {
    io,
    getInput: (name) => core.getInput(name),
    env: process.env,
    connector: pgConnector,
    openStore: openObjectStore,
    clock: systemClock,
    signal: controller.signal,
  };
  const code = isPost ? await runPost(deps) : await run(deps);
  // Keep-alive sockets of the S3 client must not hold the step open.
  process.exit(code);
}

main().catch((err: unknown) => {
  core.setFailed(`crdb-backup-action crashed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
