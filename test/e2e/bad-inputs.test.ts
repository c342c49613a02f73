/**
 * Bad input is rejected before anything connects: one `::error::` that names
 * the input, a non-zero exit, and zero connections to the test cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BAD_INPUT_CASES } from './bad-inputs.cases.js';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv } from './harness.js';

describe('bad input', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile: '25.2' });
  });
  afterAll(async () => env?.close());

  it('has a case for well over 30 rules', () => {
    expect(BAD_INPUT_CASES.length).toBeGreaterThan(30);
  });

  it.each(BAD_INPUT_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const connectionsBefore = env.cluster.wire.stats.connectionsAccepted;
    const s3Before = env.s3.counts.total;
    const inputs = { ...env.inputs({ collection: env.collection() }), ...c.inputs };
    const r = await runScenario(env, { inputs, env: c.env });
    expect(r.code).not.toBe(0);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain(c.input);
    expect(env.cluster.wire.stats.connectionsAccepted).toBe(connectionsBefore);
    expect(env.s3.counts.total).toBe(s3Before);
    expect(r.outputs['job-id']).toBeUndefined();
  });
});
