/**
 * Entry point of the bundle, for both the main and the post step: the
 * runner runs dist/index.js twice and the saved `isPost` state tells them apart.
 */
import * as core from '@actions/core';
import { run } from './main.js';
import { runPost } from './post.js';
import { coreIO, installSignalHandlers } from './runtime.js';
import { isPostStep, markPostNext } from './state.js';

async function main(): Promise<void> {
  const isPost = isPostStep(coreIO);
  if (!isPost) markPostNext(coreIO);
  installSignalHandlers();
  const code = isPost ? await runPost() : await run();
  // Keep-alive sockets of the S3 client must not hold the step open.
  process.exit(code);
}

main().catch((err: unknown) => {
  core.setFailed(`crdb-backup-action crashed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
