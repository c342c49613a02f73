/**
 * The submission under pressure: `timeout` bounds the whole run, the held
 * answer to BACKUP included (issue 13.3), on the oldest and newest profiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, until } from './harness.js';

const cancelledStatuses = ['cancel-requested', 'reverting', 'canceled'];

describe.each(['22.2', '25.2'] as const)('submission on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, sessionLingerMs: 0 });
  });
  afterAll(async () => {
    env?.cluster.wire.clearFaults();
    await env?.close();
  });

  const jobsNow = () => env.cluster.jobs();

  it('timeout: 3s with the answer to BACKUP held back ends in about 3 s plus the cancel', async () => {
    env.cluster.engine.setJobDuration(60_000);
    env.cluster.wire.holdAnswers(/^BACKUP/i, 30_000);
    const before = jobsNow().length;
    const logStart = env.cluster.statementLog.length;
    try {
      const r = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection(), timeout: '3s' }),
      });
      const log = env.cluster.statementLog.slice(logStart);
      const firstAt = log[0]!.at;
      const cancel = log.find((e) => /^CANCEL\s+JOB/i.test(e.sql));
      expect(cancel).toBeDefined();
      const toCancelMs = cancel!.at - firstAt;
      console.log(
        `[measure] ${profile}: timeout 3s, answer held back: first statement → CANCEL JOB ${toCancelMs} ms; whole step ${r.durationMs} ms`,
      );
      expect(r.code).not.toBe(0);
      expect(r.outputs.status).toBe('timeout');
      expect(jobsNow()).toHaveLength(before + 1);
      const job = jobsNow()[before]!;
      expect(r.outputs['job-id']).toBe(job.id);
      expect(r.stdout).toMatch(/No answer to BACKUP within \d+s/);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(
        new RegExp(`Backup job ${job.id} did not finish within timeout.*CANCEL JOB ${job.id} sent`),
      );
      expect(toCancelMs).toBeGreaterThanOrEqual(2_900);
      expect(toCancelMs).toBeLessThan(5_000);
      expect(r.durationMs).toBeLessThan(8_000);
      await until(() => cancelledStatuses.includes(jobsNow()[before]!.status), 5000, 'the cancel');
      // Only one BACKUP was ever sent.
      expect(log.filter((e) => /^BACKUP\s/i.test(e.sql))).toHaveLength(1);
    } finally {
      env.cluster.wire.clearFaults();
    }
  });
});
