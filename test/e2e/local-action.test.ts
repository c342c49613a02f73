/**
 * GitHub's own local runner, @github/local-action, drives the action (issue
 * 14.5): it imports src/main.ts and calls its exported run() with no
 * argument, with the inputs from an env file. It exits 0 whatever the action
 * did, so the test asserts on what it prints and on the test cluster.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/action-runner.js';
import { secretForms, secretsOf } from '../support/leaks.js';
import type { E2eEnv } from './harness.js';
import { startE2eEnv } from './harness.js';

const LOCAL_ACTION = join(REPO_ROOT, 'node_modules', '@github', 'local-action', 'bin', 'local-action.js');

/** `npx local-action run . src/main.ts <env file>`, as CONTRIBUTING describes it. */
async function localAction(
  inputs: Record<string, string>,
): Promise<{ code: number | null; stdout: string; summary: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'crdb-local-action-'));
  try {
    const summary = join(dir, 'summary.md');
    writeFileSync(summary, '');
    const envFile = join(dir, '.env');
    const lines = Object.entries(inputs).map(([k, v]) => `INPUT_${k.toUpperCase()}='${v}'`);
    writeFileSync(envFile, [...lines, `GITHUB_STEP_SUMMARY='${summary}'`, ''].join('\n'));
    const child = spawn(process.execPath, [LOCAL_ACTION, 'run', '.', 'src/main.ts', envFile], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(killer);
    return { code, stdout, summary: readFileSync(summary, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.each(['22.2', '25.2'] as const)('@github/local-action on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile });
  });
  afterAll(async () => env?.close());

  it('runs the action from src/main.ts: the backup succeeds and the outputs are printed', async () => {
    const before = env.cluster.jobs().length;
    const inputs = env.inputs({ collection: env.collection() });
    const r = await localAction(inputs);
    expect(r.code).toBe(0);
    const jobs = env.cluster.jobs().slice(before);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.status).toBe('succeeded');
    const outputs = r.stdout.slice(r.stdout.indexOf('Action Outputs'));
    expect(outputs).toMatch(new RegExp(`'job-id'\\s+│ '${jobs[0]!.id}'`));
    expect(outputs).toMatch(/'status'\s+│ 'succeeded'/);
    expect(outputs).toMatch(/'verified'\s+│ 'true'/);
    expect(outputs).toMatch(/'backup-path'\s+│ '\/\d{4}\/\d\d\/\d\d-\d{6}\.\d\d'/);
    expect(r.stdout).not.toMatch(/::error::/);
    expect(r.summary).toMatch(/succeeded/);
    for (const secret of secretsOf({ inputs }))
      for (const form of secretForms(secret))
        expect(r.stdout.includes(form), 'a secret in the output').toBe(false);
  });

  it('a failing run is seen in what it prints, although it exits 0', async () => {
    const inputs = env.inputs({
      collection: env.collection(),
      'connection-string': env.cluster.url('root', { password: 'wrong-password' }),
    });
    const r = await localAction(inputs);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/::error::Could not connect to the cluster/);
    expect(r.stdout.slice(r.stdout.indexOf('Action Outputs'))).toMatch(/'status'\s+│ 'error'/);
  });
});
