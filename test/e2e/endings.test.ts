/**
 * Every ending of a run, through the bundle: each output (present or absent
 * as the README's Outputs section says) and the summary's headline and status row.
 * `status` is the same word for the same ending on every version.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRunResult } from '../support/action-runner.js';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, startScenario, until } from './harness.js';

const BACKUP_OUTPUTS = ['backup-path', 'backup-uri', 'end-time', 'size-bytes', 'object-count'];
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** The outputs written, by name; and the summary's headline and status row. */
function expectEnding(
  r: ActionRunResult,
  want: {
    status: string;
    headline: string;
    backup: 'all' | 'path' | 'none';
    jobId: boolean;
    verified?: string;
  },
): void {
  expect(r.outputs.status).toBe(want.status);
  expect(r.outputs['job-id'] !== undefined, 'job-id').toBe(want.jobId);
  if (want.jobId) expect(r.outputs['job-id']).toMatch(/^\d+$/);
  expect(r.outputs['collection-path']).toMatch(/^s3:\/\/backups\//);
  if (want.verified !== undefined) expect(r.outputs.verified).toBe(want.verified);
  const present = BACKUP_OUTPUTS.filter((k) => r.outputs[k] !== undefined);
  if (want.backup === 'all') expect(present).toEqual(BACKUP_OUTPUTS);
  if (want.backup === 'path') expect(present).toEqual(['backup-path', 'backup-uri', 'end-time']);
  if (want.backup === 'none') expect(present).toEqual([]);
  if (r.outputs['end-time'] !== undefined) expect(r.outputs['end-time']).toMatch(ISO);
  const lines = r.summary.split('\n');
  expect(lines[0]).toBe(`## ${want.headline}`);
  expect(lines).toContain(`| Status | \`${want.status}\` |`);
  // No empty header cell, no cut-off code block for an error.
  expect(r.summary).not.toMatch(/\| \|/);
  expect(r.summary).not.toContain('```text');
  if (want.backup === 'none') {
    expect(r.summary).not.toContain('| Backup path |');
    expect(r.summary).not.toContain('Restore from this backup');
  }
}

describe.each(['22.2', '25.2'] as const)('every ending on %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, jobDurationMs: 300 });
  });
  afterAll(async () => env?.close());

  const startJob = async (inputs: Record<string, string>) => {
    const before = env.cluster.jobs().length;
    const running = startScenario(env, { inputs: env.inputs(inputs) });
    await until(() => env.cluster.jobs().length > before, 20_000, 'the backup job');
    // The step is waiting once it has opened the wait's log group.
    await until(() => running.stdout().includes('::group::Wait for backup job'), 20_000, 'the wait');
    return { running, job: env.cluster.jobs()[before]! };
  };

  it('success', async () => {
    env.cluster.engine.setJobDuration(300);
    const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    expect(r.code).toBe(0);
    expectEnding(r, {
      status: 'succeeded',
      headline: '✅ CockroachDB backup succeeded',
      backup: 'all',
      jobId: true,
      verified: 'true',
    });
    expect(r.summary).toContain('| Backup path |');
    expect(r.summary).toContain('### Restore from this backup');
    expect(r.stdout).toContain(`Backup ${r.outputs['backup-uri']} succeeded and was verified.`);
    expect(r.stdout).not.toMatch(/verified \((true|false|skipped)\)/);
  });

  it('the progress line counts the time since the wait began, also when the first read comes at the end', async () => {
    env.cluster.engine.setJobDuration(3000);
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), verify: 'none' }),
    });
    expect(r.code).toBe(0);
    const last = [...r.stdout.matchAll(/^Job \d+: succeeded, 100\.0%.*\(elapsed (\d+)s\)$/gm)].pop();
    expect(last, r.stdout).toBeDefined();
    expect(Number(last![1])).toBeGreaterThanOrEqual(2);
    expect(r.stdout).toContain(`Backup ${r.outputs['backup-uri']} succeeded (not verified: verify is none).`);
  });

  it('failed: a missing bucket', async () => {
    env.cluster.engine.setJobDuration(300);
    const r = await runScenario(env, { inputs: env.inputs({ collection: 's3://no-such-bucket/x' }) });
    expect(r.code).toBe(1);
    expect(r.outputs['collection-path']).toBe('s3://no-such-bucket/x');
    r.outputs['collection-path'] = 's3://backups/'; // for the shared check below
    expectEnding(r, {
      status: 'failed',
      headline: '❌ CockroachDB backup failed',
      backup: 'none',
      jobId: true,
      verified: 'skipped',
    });
    expect(r.summary).toMatch(/\| Planned backup path \(no backup there\) \| `\/\d{4}\//);
    // The cause is in a paragraph (which wraps), whole.
    expect(r.summary).toMatch(/### Error\n\nBackup job \d+ ended with status failed: .*NoSuchBucket/);
  });

  it('canceled by someone else', async () => {
    env.cluster.engine.setJobDuration(20_000);
    const { running, job } = await startJob({ collection: env.collection() });
    env.cluster.engine.cancelJobAsOtherUser(job.id);
    const r = await running.done;
    expect(r.code).toBe(1);
    expectEnding(r, {
      status: 'canceled',
      headline: '❌ CockroachDB backup failed',
      backup: 'none',
      jobId: true,
      verified: 'skipped',
    });
  });

  it('timeout', async () => {
    env.cluster.engine.setJobDuration(60_000);
    const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection(), timeout: '2s' }) });
    expect(r.code).toBe(1);
    expectEnding(r, {
      status: 'timeout',
      headline: '⏱️ CockroachDB backup timed out',
      backup: 'none',
      jobId: true,
      verified: 'skipped',
    });
  });

  it.each([
    ['true', /Cancel requested for backup job|CANCEL JOB/],
    ['false', /left running \(cancel-on-abort: false\)/],
  ] as const)('aborted with cancel-on-abort: %s', async (cancel, says) => {
    env.cluster.engine.setJobDuration(60_000);
    const { running, job } = await startJob({ collection: env.collection(), 'cancel-on-abort': cancel });
    running.child.kill('SIGINT');
    const r = await running.done;
    expect(r.code).toBe(1);
    expectEnding(r, {
      status: 'aborted',
      headline: '🛑 CockroachDB backup aborted',
      backup: 'none',
      jobId: true,
      verified: 'skipped',
    });
    expect(r.summary).toMatch(says);
    // Whether the job was cancelled is said once, not twice.
    const sentence =
      r.summary.match(new RegExp(`[^\\n>]*${job.id}[^\\n]*(cancel|left running)[^\\n]*`, 'g')) ?? [];
    expect(sentence.length).toBeLessThanOrEqual(1);
    if (cancel === 'false') env.cluster.engine.cancelJobAsOtherUser(job.id);
  });

  it('error before a job: a wrong password', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'connection-string': env.cluster.url('root', { password: 'wrong-password-1' }),
      }),
      extraSecrets: ['wrong-password-1'],
    });
    expect(r.code).toBe(1);
    expectEnding(r, {
      status: 'error',
      headline: '❌ CockroachDB backup step failed',
      backup: 'none',
      jobId: false,
    });
    expect(r.summary).toContain('Nothing was started on the cluster.');
  });

  it('error before a job: bad input', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), timeout: 'soon' }),
    });
    expect(r.code).toBe(1);
    expect(r.outputs).toEqual({ status: 'error' });
    expect(r.summary.split('\n')[0]).toBe('## ❌ CockroachDB backup step failed');
    expect(r.summary).toContain('| Status | `error` |');
  });

  it('wait: false', async () => {
    env.cluster.engine.setJobDuration(20_000);
    const collection = env.collection();
    const r = await runScenario(env, { inputs: env.inputs({ collection, wait: 'false' }) });
    expect(r.code).toBe(0);
    expectEnding(r, {
      status: 'running',
      headline: '🚀 CockroachDB backup submitted (not waited for)',
      backup: 'path',
      jobId: true,
      verified: 'skipped',
    });
    expect(r.outputs['backup-uri']).toBe(`${collection}${r.outputs['backup-path']}`);
    expect(r.summary).not.toContain('Restore from this backup');
    expect(r.summary).toContain('### Follow the job');
    expect(r.summary).toContain(`SHOW JOB WHEN COMPLETE ${r.outputs['job-id']};`);
    env.cluster.engine.cancelJobAsOtherUser(r.outputs['job-id']!);
  });
});

describe('aws-session-token on 25.2', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile: '25.2', jobDurationMs: 300 });
  });
  afterAll(async () => env?.close());

  it.each([
    ['no timeout', {}, true],
    ['a timeout over an hour', { timeout: '2h' }, true],
    ['a timeout within the hour', { timeout: '45m' }, false],
  ] as const)('with %s: a warning only when the run may outlast the credentials', async (_, extra, warns) => {
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'aws-session-token': 'FwoGZXIvYXdzEXAMPLETOKEN',
        ...extra,
      }),
    });
    expect(r.code).toBe(0);
    expect(r.warnings.filter((w) => w.includes('aws-session-token')).length).toBe(warns ? 1 : 0);
    if (!warns) expect(r.stdout).toMatch(/^aws-session-token is set: the run ends within timeout \(45m\)/m);
  });
});
