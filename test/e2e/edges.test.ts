/**
 * The rules at the edges (DESIGN.md "Rules at the edges") where a real CockroachDB answers
 * differently from a lenient stand-in: each scenario runs the bundle against the test cluster,
 * which follows CockroachDB's source on these points.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv } from './harness.js';

describe.each(['23.2', '25.2'] as const)('session settings on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile });
  });
  afterAll(async () => env?.close());

  it('verification after a WHEN COMPLETE wait runs without the wait statement_timeout', async () => {
    env.cluster.engine.setJobDuration(1500);
    // check_files reads 4 files here (a manifest and 3 data files): 1.6 s, longer than the 1 s wait slice.
    env.cluster.engine.setBackupReadDelay(400);
    try {
      const logStart = env.cluster.statementLog.length;
      // paused-timeout 2s bounds each WHEN COMPLETE wait to 1 s: statement_timeout = 1000.
      const r = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection(), verify: 'files', 'paused-timeout': '2s' }),
      });
      expect(r.errors).toEqual([]);
      expect(r.code).toBe(0);
      expect(r.outputs.verified).toBe('true');
      const sets = env.cluster.statementLog
        .slice(logStart)
        .filter((e) => /^SET statement_timeout/i.test(e.sql))
        .map((e) => e.sql);
      expect(sets).toContain('SET statement_timeout = 1000');
      expect(sets[sets.length - 1]).toBe('SET statement_timeout = 0');
    } finally {
      env.cluster.engine.setBackupReadDelay(2);
    }
  });
});
