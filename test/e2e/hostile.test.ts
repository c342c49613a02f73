/**
 * Texts from outside (a job error, version(), an S3 error) that look like
 * workflow commands or Markdown stay plain text: the runner obeys no line of
 * them, and the summary renders them as written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRunResult } from '../support/action-runner.js';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, startScenario, until } from './harness.js';

const HOSTILE = [
  'it broke',
  '::stop-commands::tok3n',
  '  ::add-mask::hostile-mask-value',
  '::error::pwned by the text',
  '```',
  '# Heading from outside',
  '<img src=x onerror=alert(1)> ##[error]legacy',
].join('\n');

/** The runner would obey a line that starts with `::` (after spaces) or holds `##[`. */
function expectNoInjectedCommand(r: ActionRunResult): void {
  const lines = r.stdout.split(/\r?\n/);
  expect(lines.filter((l) => /^\s*::stop-commands::/.test(l))).toEqual([]);
  expect(lines.filter((l) => /^\s*::add-mask::hostile/.test(l))).toEqual([]);
  expect(lines.filter((l) => l.includes('##['))).toEqual([]);
  // One ::error:: line, the action's own; the hostile text is inside it, escaped by @actions/core.
  expect(r.errors).toHaveLength(1);
  expect(r.errors.some((e) => e.startsWith('pwned'))).toBe(false);
  // The texts are still there for a reader, neutralised.
  expect(r.stdout).toContain('» ::stop-commands::tok3n');
}

function expectPlainSummary(r: ActionRunResult): void {
  expect(r.summary).not.toMatch(/^\s*```/m);
  expect(r.summary).not.toMatch(/^# /m);
  expect(r.summary).not.toContain('<img');
  expect(r.summary).toContain('\\`\\`\\`');
}

describe.each(['22.2', '25.2'] as const)('hostile texts on %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    const real = profile === '22.2' ? 'v22.2.19' : 'v25.2.1';
    env = await startE2eEnv({
      profile,
      jobDurationMs: 300,
      version: `CockroachDB CCL ${real} (x86_64-pc-linux-gnu, built 2025/05/01 00:00:00, go1.23.7)\n${HOSTILE}`,
    });
  });
  afterAll(async () => env?.close());

  it('a job error and version() with command lines and backticks', async () => {
    env.cluster.engine.setJobDuration(20_000);
    const before = env.cluster.jobs().length;
    const running = startScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    await until(() => env.cluster.jobs().length > before, 20_000, 'the backup job');
    env.cluster.engine.failJob(env.cluster.jobs()[before]!.id, HOSTILE);
    const r = await running.done;
    expect(r.code).toBe(1);
    expect(r.outputs.status).toBe('failed');
    expect(r.stdout).toMatch(/Connected to CockroachDB CCL/);
    expectNoInjectedCommand(r);
    expectPlainSummary(r);
  });

  it('an S3 error with command lines and backticks', async () => {
    env.cluster.engine.setJobDuration(300);
    const collection = env.collection();
    const clear = env.s3.inject({
      op: 'GetObject',
      status: 500,
      code: 'InternalError',
      message: HOSTILE,
      times: 50,
    });
    try {
      const r = await runScenario(env, { inputs: env.inputs({ collection }) });
      expect(r.code).toBe(1);
      expect(r.outputs.status).toBe('succeeded');
      expect(r.outputs.verified).toBe('false');
      expectNoInjectedCommand(r);
      expectPlainSummary(r);
    } finally {
      clear();
    }
  });
});
