/**
 * `npm run action -- --env-file <file> [NAME=value …]`: runs dist/index.js by hand as the runner does:
 * the main step with INPUT_* variables and fresh GITHUB_OUTPUT, GITHUB_STATE and GITHUB_STEP_SUMMARY
 * files, then the post step (post-if: always()) with the state the main step saved as STATE_*
 * variables. The env file holds INPUT_<NAME>=value lines (what `npm run test-cluster -- -- --env-file`
 * writes); NAME=value arguments add or override inputs (`wait=false`, `timeout=2s`).
 */
import { readFileSync } from 'node:fs';
import { runAction } from '../test/support/action-runner.js';

const args = process.argv.slice(2);
const inputs: Record<string, string> = {};
const envAt = args.indexOf('--env-file');
if (envAt >= 0) {
  for (const line of readFileSync(args[envAt + 1]!, 'utf8').split('\n')) {
    const m = /^INPUT_([^=]+)=(.*)$/.exec(line);
    if (m) inputs[m[1]!.toLowerCase()] = m[2]!;
  }
}
for (const a of args.filter((a, i) => i !== envAt && i !== envAt + 1 && a.includes('='))) {
  const at = a.indexOf('=');
  inputs[a.slice(0, at).toLowerCase()] = a.slice(at + 1);
}
if (!inputs['connection-string']) {
  console.error('usage: npm run action -- --env-file /tmp/cluster.env [name=value …]');
  process.exit(2);
}

const main = await runAction({ inputs });
process.stdout.write(main.stdout);
process.stderr.write(main.stderr);
console.log(`\n--- main step: exit ${main.code}\n--- GITHUB_OUTPUT:`);
for (const [k, v] of Object.entries(main.outputs)) console.log(`${k}=${v}`);
console.log(`--- GITHUB_STEP_SUMMARY:\n${main.summary}`);
const post = await runAction({ inputs, post: { state: main.state } });
process.stdout.write(post.stdout);
console.log(`--- post step: exit ${post.code}`);
process.exit(main.code ?? 1);
