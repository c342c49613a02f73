/**
 * Never hang, never orphan, never duplicate (DESIGN.md behaviours 3 and 4):
 * the bundle against the test cluster's faults, on the oldest and newest
 * version profiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, startScenario, until } from './harness.js';

const longJob = 60_000;

describe.each(['22.2', '25.2'] as const)('resilience on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, sessionLingerMs: 0 });
  });
  afterAll(async () => env?.close());

  const jobsNow = () => env.cluster.jobs();
  const newJob = async (before: number) => {
    await until(() => jobsNow().length > before, 20_000, 'a backup job');
    return jobsNow()[before]!;
  };

  it('survives dropped connections while waiting and resumes on the same job', async () => {
    env.cluster.engine.setJobDuration(4000);
    const before = jobsNow().length;
    const run = startScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    const job = await newJob(before);
    await new Promise((r) => setTimeout(r, 800));
    env.cluster.wire.dropAllConnections();
    await new Promise((r) => setTimeout(r, 800));
    env.cluster.wire.dropAllConnections();
    const r = await run.done;
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs['job-id']).toBe(job.id);
    expect(r.stdout).toMatch(/Reconnected after/);
    expect(jobsNow()).toHaveLength(before + 1);
  });

  it('survives a cluster restart that refuses connections for several seconds', async () => {
    env.cluster.engine.setJobDuration(8000);
    const before = jobsNow().length;
    const run = startScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    const job = await newJob(before);
    await new Promise((r) => setTimeout(r, 500));
    const outageMs = 6000;
    env.cluster.wire.refuseConnections(outageMs);
    const r = await run.done;
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs['job-id']).toBe(job.id);
    const m = /Reconnected after ([\d.]+)s/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(outageMs / 1000 - 1.5);
    console.log(`[measure] ${profile}: survived an outage of ${outageMs} ms; reconnected after ${m![1]} s`);
  });

  it('adopts the job of a lost BACKUP answer: exactly one job', async () => {
    env.cluster.engine.setJobDuration(1500);
    const before = jobsNow().length;
    env.cluster.engine.loseNextBackupAnswer({ lingerMs: 1500 });
    const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(jobsNow()).toHaveLength(before + 1);
    expect(r.outputs['job-id']).toBe(jobsNow()[before]!.id);
    expect(r.stdout).toMatch(/answer to BACKUP was lost/);
    expect(r.stdout).toMatch(/adopting it/);
  });

  it('on timeout with on-timeout: cancel, cancels the job and reports status timeout', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection(), timeout: '3s' }) });
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('timeout');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/did not finish within timeout/);
    const job = jobsNow()[before]!;
    await until(
      () => ['canceled', 'reverting', 'cancel-requested'].includes(env.cluster.jobs()[before]!.status),
      5000,
      'cancel',
    );
    expect(r.summary).toContain(job.id);
  });

  it('on timeout with on-timeout: leave, leaves the job running', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), timeout: '2s', 'on-timeout': 'leave' }),
    });
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('timeout');
    expect(jobsNow()[before]!.status).toBe('running');
    expect(r.summary).toMatch(/left running/);
    env.cluster.engine.cancelJobAsOtherUser(jobsNow()[before]!.id);
  });

  it('cancels the job on SIGINT well inside the runner grace, and says so', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const logStart = env.cluster.statementLog.length;
    const run = startScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    const job = await newJob(before);
    await new Promise((r) => setTimeout(r, 1200));
    const signalledAt = Date.now();
    run.child.kill('SIGINT');
    await until(
      () => env.cluster.statementLog.slice(logStart).some((e) => /^CANCEL JOB/.test(e.sql)),
      7_500,
      'CANCEL JOB',
    );
    const cancelEntry = env.cluster.statementLog.slice(logStart).find((e) => /^CANCEL JOB/.test(e.sql))!;
    const signalToCancelMs = cancelEntry.at - signalledAt;
    const r = await run.done;
    expect(r.code).not.toBe(0);
    expect(r.durationMs).toBeLessThan(60_000);
    expect(signalToCancelMs).toBeLessThan(2_000);
    expect(r.summary).toMatch(/aborted/);
    expect(r.summary).toContain(job.id);
    expect(r.errors).toHaveLength(1);
    console.log(
      `[measure] ${profile}: SIGINT → CANCEL JOB in ${signalToCancelMs} ms; process exit after ${r.durationMs} ms`,
    );
  });

  it('after SIGKILL, the post step cancels the job the main step left running', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const inputs = env.inputs({ collection: env.collection() });
    const run = startScenario(env, { inputs });
    const job = await newJob(before);
    await new Promise((r) => setTimeout(r, 1000));
    run.child.kill('SIGKILL');
    const main = await run.done;
    expect(main.signal).toBe('SIGKILL');
    expect(main.state['job-id']).toBe(job.id);
    expect(main.state['job-owned']).toBe('true');
    const post = await runScenario(env, { inputs, post: { state: main.state } });
    expect(post.code).toBe(0);
    expect(post.stdout).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
    await until(() => jobsNow()[before]!.status !== 'running', 5000, 'cancel');
  });

  it('the post step does nothing after a clean main step', async () => {
    env.cluster.engine.setJobDuration(1000);
    const inputs = env.inputs({ collection: env.collection() });
    const main = await runScenario(env, { inputs });
    expect(main.code).toBe(0);
    const logStart = env.cluster.statementLog.length;
    const post = await runScenario(env, { inputs, post: { state: main.state } });
    expect(post.code).toBe(0);
    expect(env.cluster.statementLog.length).toBe(logStart);
  });

  it('if-running: attach reports the running job, never cancels it', async () => {
    env.cluster.engine.setJobDuration(5000);
    const collection = env.collection();
    const first = await runScenario(env, { inputs: env.inputs({ collection, wait: 'false' }) });
    const attached = await runScenario(env, { inputs: env.inputs({ collection, 'if-running': 'attach' }) });
    expect(attached.code).toBe(0);
    expect(attached.outputs['job-id']).toBe(first.outputs['job-id']);
    expect(attached.outputs.status).toBe('succeeded');
    expect(attached.summary).toMatch(/attached/);
  });

  it('if-running: fail refuses, wait waits then starts, start starts another', async () => {
    env.cluster.engine.setJobDuration(3000);
    const collection = env.collection();
    const sibling = `${collection}-archive`;
    const first = await runScenario(env, { inputs: env.inputs({ collection, wait: 'false' }) });
    // A job into a sibling collection with a common prefix is not "the same collection".
    await runScenario(env, { inputs: env.inputs({ collection: sibling, wait: 'false' }) });
    const failed = await runScenario(env, { inputs: env.inputs({ collection, 'if-running': 'fail' }) });
    expect(failed.code).not.toBe(0);
    expect(failed.errors[0]).toMatch(new RegExp(`if-running: fail.*${first.outputs['job-id']}`));
    expect(failed.errors[0]).not.toMatch(/archive/);

    const waited = await runScenario(env, { inputs: env.inputs({ collection, 'if-running': 'wait' }) });
    expect(waited.code).toBe(0);
    expect(waited.outputs['job-id']).not.toBe(first.outputs['job-id']);
    const firstJob = jobsNow().find((j) => j.id === first.outputs['job-id'])!;
    const waitedJob = jobsNow().find((j) => j.id === waited.outputs['job-id'])!;
    expect(waitedJob.created.getTime()).toBeGreaterThanOrEqual(firstJob.finished!.getTime());

    const again = await runScenario(env, { inputs: env.inputs({ collection, wait: 'false' }) });
    const started = await runScenario(env, { inputs: env.inputs({ collection, 'if-running': 'start' }) });
    expect(started.code).toBe(0);
    expect(started.outputs['job-id']).not.toBe(again.outputs['job-id']);
  });

  it('a job paused longer than paused-timeout fails the step as a timeout, and is cancelled', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const run = startScenario(env, {
      inputs: env.inputs({ collection: env.collection(), 'paused-timeout': '2s' }),
    });
    const job = await newJob(before);
    env.cluster.engine.pauseJob(job.id);
    const r = await run.done;
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('timeout');
    expect(r.errors[0]).toMatch(/paused longer than paused-timeout/);
    expect(r.warnings.filter((w) => /is paused/.test(w))).toHaveLength(1);
  });
});

describe('a minute-long cluster restart', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile: '25.2' });
  });
  afterAll(async () => env?.close());

  it('is survived: the wait reconnects and ends on the same job', async () => {
    env.cluster.engine.setJobDuration(70_000);
    const before = env.cluster.jobs().length;
    const run = startScenario(env, {
      inputs: env.inputs({ collection: env.collection() }),
      killAfterMs: 170_000,
    });
    await until(() => env.cluster.jobs().length > before, 20_000, 'a backup job');
    const job = env.cluster.jobs()[before]!;
    await new Promise((r) => setTimeout(r, 1000));
    env.cluster.wire.refuseConnections(60_000);
    const r = await run.done;
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs['job-id']).toBe(job.id);
    const m = /Reconnected after ([\d.]+)s/.exec(r.stdout);
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(59);
    console.log(`[measure] 25.2: survived an outage of 60000 ms; reconnected after ${m?.[1]} s`);
  }, 180_000);
});
