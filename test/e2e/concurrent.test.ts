/**
 * Two runs at once into one collection (issue 13.5): both pass the
 * if-running check before either job exists, both submit; after submitting
 * each looks again, and the run whose job came second yields as if-running
 * says. On the oldest and newest profiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRunResult } from '../support/action-runner.js';
import type { E2eEnv } from './harness.js';
import { startE2eEnv, startScenario, until } from './harness.js';

const cancelledStatuses = ['cancel-requested', 'reverting', 'canceled'];

describe.each(['22.2', '25.2'] as const)('two runs at once on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, sessionLingerMs: 0 });
  });
  afterAll(async () => {
    env?.cluster.wire.clearFaults();
    await env?.close();
  });

  const jobsNow = () => env.cluster.jobs().filter((j) => !('type' in j) || j.type === 'BACKUP');

  /**
   * Start two runs together. BACKUP reaches the cluster 1.5 s after it is sent, so both runs
   * have checked for running backups (and found none) before either job exists.
   */
  const together = async (ifRunning: string) => {
    env.cluster.engine.setJobDuration(3000);
    env.cluster.wire.slowStatements(/^BACKUP/i, 1500);
    const before = jobsNow().length;
    const collection = env.collection();
    try {
      // Capture times a second apart: two full backups captured in the same centisecond would share
      // a folder, and CockroachDB fails the second one (that is not what these tests are about).
      const runs = [10, 11].map((s) =>
        startScenario(env, {
          inputs: env.inputs({ collection, 'if-running': ifRunning, 'as-of-system-time': `-${s}s` }),
        }),
      );
      const [a, b] = await Promise.all(runs.map((r) => r.done));
      const jobs = jobsNow().slice(before);
      // Both really submitted before either saw the other's job.
      const checks = [a!, b!].map((r) => r.stdout.indexOf('No other backup job is running'));
      expect(checks.every((i) => i >= 0)).toBe(true);
      expect(jobs.length).toBeGreaterThanOrEqual(2);
      const first = jobs[0]!;
      const second = jobs[1]!;
      // The run whose job came second is the one that yields.
      const isSecond = (r: ActionRunResult) => r.stdout.includes(`Backup job ${second.id} created`);
      const later = isSecond(a!) ? a! : b!;
      const earlier = later === a ? b! : a!;
      expect(isSecond(earlier)).toBe(false);
      return { earlier, later, first, second, jobs };
    } finally {
      env.cluster.wire.clearFaults();
    }
  };

  it('if-running: fail — the later run cancels its own job and fails, naming the other', async () => {
    const { earlier, later, first, second } = await together('fail');
    expect(earlier.code).toBe(0);
    expect(earlier.outputs['job-id']).toBe(first.id);
    expect(later.code).not.toBe(0);
    expect(later.errors).toHaveLength(1);
    expect(later.errors[0]).toMatch(
      new RegExp(
        `if-running: fail: backup job ${first.id} .* was started just before this run's job ${second.id}, which was cancelled`,
      ),
    );
    await until(
      () => cancelledStatuses.includes(jobsNow().find((j) => j.id === second.id)!.status),
      5000,
      'cancel',
    );
    expect(jobsNow().find((j) => j.id === first.id)!.status).toBe('succeeded');
  });

  it('if-running: attach — the later run cancels its own job and reports the other', async () => {
    const { earlier, later, first, second, jobs } = await together('attach');
    expect(jobs).toHaveLength(2);
    expect(earlier.code).toBe(0);
    expect(later.code).toBe(0);
    expect(earlier.outputs['job-id']).toBe(first.id);
    expect(later.outputs['job-id']).toBe(first.id);
    expect(later.stdout).toMatch(new RegExp(`Attaching to running backup job ${first.id}`));
    expect(cancelledStatuses).toContain(jobsNow().find((j) => j.id === second.id)!.status);
  });

  it('if-running: wait — the later run cancels its own job, waits for the other, then submits again', async () => {
    const { earlier, later, first, second, jobs } = await together('wait');
    expect(jobs).toHaveLength(3);
    const third = jobs[2]!;
    expect(earlier.code).toBe(0);
    expect(later.code).toBe(0);
    expect(earlier.outputs['job-id']).toBe(first.id);
    expect(later.outputs['job-id']).toBe(third.id);
    expect(cancelledStatuses).toContain(jobsNow().find((j) => j.id === second.id)!.status);
    expect(later.stdout).toMatch(new RegExp(`Waiting for backup job ${first.id} to finish before starting`));
    // The resubmitted backup was created only after the first one had finished.
    const firstDone = jobsNow().find((j) => j.id === first.id)!;
    expect(firstDone.status).toBe('succeeded');
    expect(later.outputs['backup-path']).not.toBe(earlier.outputs['backup-path']);
  });

  it('if-running: start — both keep their jobs', async () => {
    const { earlier, later, first, second, jobs } = await together('start');
    expect(jobs).toHaveLength(2);
    expect([earlier.errors, later.errors]).toEqual([[], []]);
    expect(earlier.code).toBe(0);
    expect(later.code).toBe(0);
    expect(earlier.outputs['job-id']).toBe(first.id);
    expect(later.outputs['job-id']).toBe(second.id);
    expect(later.stdout).toMatch(
      new RegExp(
        `Backup job ${first.id} into this collection was started just before job ${second.id}; keeping both`,
      ),
    );
  });
});
