/**
 * Never hang, never orphan, never duplicate (the action's behaviours that must hold):
 * the bundle against the test cluster's faults, on the oldest and newest
 * version profiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, startScenario, until } from './harness.js';

const longJob = 60_000;

/**
 * The main step has entered its wait for job `id` (it opens the log group just before the first
 * wait): an event rather than a fixed sleep, so a busy machine cannot move the signal into an
 * earlier phase.
 */
const waiting = (run: { stdout(): string }, id: string) =>
  until(() => run.stdout().includes(`Wait for backup job ${id}`), 30_000, `the wait for job ${id}`);

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
  const jobById = (id: string) => jobsNow().find((j) => j.id === id)!;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** CANCEL JOB statements the cluster received since `logStart` (for `id`, when given). */
  const cancelsSince = (logStart: number, id?: string) =>
    env.cluster.statementLog
      .slice(logStart)
      .filter(
        (e) =>
          /^CANCEL\s+JOB/i.test(e.sql) && (id === undefined || e.params.includes(id) || e.sql.includes(id)),
      );
  /** Reads of job `id` (SHOW JOB, crdb_internal.jobs, WHEN COMPLETE) between two instants. */
  const readsOf = (id: string, from: number, to: number) =>
    env.cluster.statementLog.filter(
      (e) =>
        e.at >= from && e.at <= to && /crdb_internal\.jobs|SHOW\s+JOB/i.test(e.sql) && e.params.includes(id),
    );
  const cancelledStatuses = ['cancel-requested', 'reverting', 'canceled'];

  /** Start a long backup, send `signal` during the wait; the time from the signal to the process exit. */
  const abortDuringWait = async (
    signal: NodeJS.Signals,
    extra: Record<string, string> = {},
    atSignal: () => void = () => undefined,
  ) => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const logStart = env.cluster.statementLog.length;
    const run = startScenario(env, { inputs: env.inputs({ collection: env.collection(), ...extra }) });
    const exited = new Promise<number>((resolve) => run.child.once('exit', () => resolve(Date.now())));
    const job = await newJob(before);
    await waiting(run, job.id);
    atSignal();
    const signalledAt = Date.now();
    run.child.kill(signal);
    const r = await run.done;
    const exitMs = (await exited) - signalledAt;
    return { r, job, logStart, signalledAt, exitMs };
  };

  it('survives dropped connections while waiting and resumes on the same job', async () => {
    env.cluster.engine.setJobDuration(4000);
    const before = jobsNow().length;
    const run = startScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    const job = await newJob(before);
    await waiting(run, job.id);
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
    await waiting(run, job.id);
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

  it('resubmits when the lost BACKUP created no job, only after the lost session is gone: exactly one job', async () => {
    env.cluster.engine.setJobDuration(1500);
    const before = jobsNow().length;
    const logStart = env.cluster.statementLog.length;
    const lingerMs = 2500;
    env.cluster.engine.loseNextBackupBeforeJob({ lingerMs });
    const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs.status).toBe('succeeded');
    expect(jobsNow()).toHaveLength(before + 1);
    expect(r.outputs['job-id']).toBe(jobsNow()[before]!.id);
    const log = env.cluster.statementLog.slice(logStart);
    const backups = log.filter((e) => /^BACKUP\s/i.test(e.sql));
    expect(backups).toHaveLength(2);
    // The lost attempt's session was looked for (by its application_name) until it was gone.
    const lostName = backups[0]!.applicationName;
    const sessionChecks = log.filter((e) => /cluster_sessions/.test(e.sql) && e.params.includes(lostName));
    expect(sessionChecks.length).toBeGreaterThanOrEqual(2);
    const jobLookups = log.filter((e) => /crdb_internal\.jobs/.test(e.sql) && e.at < backups[1]!.at);
    expect(jobLookups.length).toBeGreaterThanOrEqual(1);
    const waitedMs = backups[1]!.at - backups[0]!.at;
    expect(waitedMs).toBeGreaterThanOrEqual(lingerMs - 200);
    expect(backups[1]!.applicationName).not.toBe(lostName);
    expect(r.stdout).toMatch(/answer to BACKUP was lost/);
    expect(r.stdout).toMatch(/No job was created by the lost submission \(after \d+s\); submitting again/);
    expect(r.stdout).not.toMatch(/adopting it/);
    console.log(`[measure] ${profile}: lost BACKUP without a job → resubmitted after ${waitedMs} ms`);
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
    await waiting(run, job.id);
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

  it.each(['SIGTERM', 'SIGHUP'] as const)(
    '%s stops the wait and cancels the job like SIGINT',
    async (sig) => {
      const { r, job, logStart, signalledAt, exitMs } = await abortDuringWait(sig);
      const cancels = cancelsSince(logStart, job.id);
      expect(cancels).toHaveLength(1);
      const signalToCancelMs = cancels[0]!.at - signalledAt;
      expect(signalToCancelMs).toBeLessThan(2_000);
      expect(exitMs).toBeLessThan(7_000);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toContain(`Received ${sig}: stopping the wait.`);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(
        new RegExp(`cancelled while backup job ${job.id}.*CANCEL JOB ${job.id} sent`),
      );
      expect(r.summary).toMatch(/aborted/);
      expect(r.summary).toContain(job.id);
      await until(() => cancelledStatuses.includes(jobById(job.id).status), 5000, 'cancel');
      console.log(
        `[measure] ${profile}: ${sig} → CANCEL JOB in ${signalToCancelMs} ms; process exit ${exitMs} ms after ${sig}`,
      );
    },
  );

  it('with cancel-on-abort: false, SIGINT leaves the job running, says so and fails the step', async () => {
    const { r, job, logStart, exitMs } = await abortDuringWait('SIGINT', { 'cancel-on-abort': 'false' });
    expect(r.code).not.toBe(0);
    expect(cancelsSince(logStart)).toHaveLength(0);
    expect(jobById(job.id).status).toBe('running');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(new RegExp(`Job ${job.id} is left running \\(cancel-on-abort: false\\)`));
    expect(r.summary).toMatch(/aborted/);
    // Said once, in the error: not repeated as a note.
    expect(r.summary.split(`Job ${job.id} is left running (cancel-on-abort: false)`)).toHaveLength(2);
    expect(r.summary).not.toContain('was left running on the cluster');
    expect(r.state['job-owned']).toBe('true');
    expect(r.state['main-done']).toBe('true');
    console.log(`[measure] ${profile}: SIGINT with cancel-on-abort: false → exit in ${exitMs} ms`);
    env.cluster.engine.cancelJobAsOtherUser(job.id);
  });

  it('a CANCEL JOB that hangs is given up at the deadline: exit well inside the grace, job named as maybe running', async () => {
    env.cluster.wire.slowStatements(/^CANCEL\s+JOB/i, 30_000);
    let jobId: string | undefined;
    try {
      const { r, job, logStart, exitMs } = await abortDuringWait('SIGINT');
      jobId = job.id;
      expect(exitMs).toBeLessThan(7_000);
      expect(r.code).not.toBe(0);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(
        new RegExp(`Could not cancel within 5s.*: job ${job.id} may still be running`),
      );
      expect(r.summary).toMatch(/aborted/);
      expect(r.summary).toMatch(new RegExp(`job ${job.id} may still be running`));
      // The slowed CANCEL never reached the engine: the job really is still running.
      expect(cancelsSince(logStart)).toHaveLength(0);
      expect(jobById(job.id).status).toBe('running');
      console.log(`[measure] ${profile}: SIGINT with CANCEL JOB hanging → exit in ${exitMs} ms`);
      // The main step leaves the cancel to the post step, which gets it through once the cluster answers.
      expect(r.state['job-owned']).toBe('cancel-pending');
      env.cluster.wire.clearFaults();
      const post = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection() }),
        post: { state: r.state },
      });
      expect(post.stdout).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
      expect(cancelsSince(logStart)).toHaveLength(1);
      jobId = undefined;
    } finally {
      env.cluster.wire.clearFaults();
      if (jobId) env.cluster.engine.cancelJobAsOtherUser(jobId);
    }
  });

  it('connections refused right at SIGINT: the cancel retries until its deadline, then exits and names the job', async () => {
    const outageMs = 8_000;
    let outageStart = 0;
    const { r, job, exitMs } = await abortDuringWait('SIGINT', {}, () => {
      outageStart = Date.now();
      env.cluster.wire.refuseConnections(outageMs);
    });
    expect(exitMs).toBeLessThan(7_000);
    expect(r.code).not.toBe(0);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(
      new RegExp(
        `Could not cancel within 5s \\([^)]*ECONNREFUSED[^)]*\\): job ${job.id} may still be running`,
      ),
    );
    expect(r.summary).toMatch(new RegExp(`job ${job.id} may still be running`));
    expect(jobById(job.id).status).toBe('running');
    console.log(`[measure] ${profile}: SIGINT with connections refused → exit in ${exitMs} ms`);
    // Let the cluster come back before the next test.
    await sleep(Math.max(0, outageStart + outageMs + 300 - Date.now()));
    env.cluster.engine.cancelJobAsOtherUser(job.id);
  });

  it('after SIGKILL, the post step cancels the job the main step left running', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const inputs = env.inputs({ collection: env.collection() });
    const run = startScenario(env, { inputs });
    const job = await newJob(before);
    await waiting(run, job.id);
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

  /** Start a long backup with `inputs`, SIGKILL the main step during the wait; its saved state. */
  const killDuringWait = async (inputs: Record<string, string>) => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const run = startScenario(env, { inputs });
    const job = await newJob(before);
    await waiting(run, job.id);
    run.child.kill('SIGKILL');
    const main = await run.done;
    expect(main.signal).toBe('SIGKILL');
    return { job, main };
  };

  it('after SIGKILL with cancel-on-abort: false, the post step reports the running job and does not cancel it', async () => {
    const inputs = env.inputs({ collection: env.collection(), 'cancel-on-abort': 'false' });
    const { job, main } = await killDuringWait(inputs);
    expect(main.state['job-owned']).toBe('true');
    const logStart = env.cluster.statementLog.length;
    const post = await runScenario(env, { inputs, post: { state: main.state } });
    expect(post.code).toBe(0);
    expect(cancelsSince(logStart)).toHaveLength(0);
    expect(jobById(job.id).status).toBe('running');
    expect(post.warnings).toEqual([
      expect.stringContaining(`backup job ${job.id} is left running (cancel-on-abort: false)`),
    ]);
    expect(post.summary).toContain(job.id);
    env.cluster.engine.cancelJobAsOtherUser(job.id);
  });

  it('the post step after a killed main step that attached to a job never cancels it', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const collection = env.collection();
    const first = await runScenario(env, { inputs: env.inputs({ collection, wait: 'false' }) });
    const jobId = first.outputs['job-id']!;
    const inputs = env.inputs({ collection, 'if-running': 'attach' });
    const run = startScenario(env, { inputs });
    await until(() => run.stdout().includes(`Attaching to running backup job ${jobId}`), 20_000, 'attach');
    await waiting(run, jobId);
    run.child.kill('SIGKILL');
    const main = await run.done;
    expect(main.state['job-id']).toBe(jobId);
    expect(main.state['job-owned']).toBe('false');
    const logStart = env.cluster.statementLog.length;
    const post = await runScenario(env, { inputs, post: { state: main.state } });
    expect(post.code).toBe(0);
    expect(cancelsSince(logStart)).toHaveLength(0);
    expect(jobById(jobId).status).toBe('running');
    expect(post.warnings).toEqual([
      expect.stringMatching(new RegExp(`backup job ${jobId}, which it did not start: it is left running`)),
    ]);
    env.cluster.engine.cancelJobAsOtherUser(jobId);
  });

  it('after SIGKILL, a post-step cancel that hangs ends at the same deadline and names the job', async () => {
    const inputs = env.inputs({ collection: env.collection() });
    const { job, main } = await killDuringWait(inputs);
    env.cluster.wire.slowStatements(/^CANCEL\s+JOB/i, 30_000);
    try {
      const post = await runScenario(env, { inputs, post: { state: main.state } });
      expect(post.code).toBe(0);
      expect(post.durationMs).toBeLessThan(7_000);
      expect(post.warnings).toEqual([
        expect.stringMatching(
          new RegExp(`Could not cancel within \\ds.*: job ${job.id} may still be running`),
        ),
      ]);
      expect(post.summary).toContain(job.id);
      expect(jobById(job.id).status).toBe('running');
      console.log(`[measure] ${profile}: post step with CANCEL JOB hanging → done in ${post.durationMs} ms`);
    } finally {
      env.cluster.wire.clearFaults();
      env.cluster.engine.cancelJobAsOtherUser(job.id);
    }
  });

  it('the post step tries again a cancel the main step could not get through in time (job-owned: cancel-pending)', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const inputs = env.inputs({ collection: env.collection() });
    const first = await runScenario(env, { inputs: { ...inputs, wait: 'false' } });
    const jobId = first.outputs['job-id']!;
    const logStart = env.cluster.statementLog.length;
    const state = { ...first.state, 'job-id': jobId, 'job-owned': 'cancel-pending', 'main-done': 'true' };
    const post = await runScenario(env, { inputs, post: { state } });
    expect(post.code).toBe(0);
    expect(cancelsSince(logStart, jobId)).toHaveLength(1);
    expect(post.warnings).toEqual([
      expect.stringMatching(new RegExp(`could not cancel its backup job in time.*CANCEL JOB ${jobId} sent`)),
    ]);
    await until(() => cancelledStatuses.includes(jobById(jobId).status), 5000, 'cancel');
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
    const logStart = env.cluster.statementLog.length;
    env.cluster.engine.pauseJob(job.id);
    const r = await run.done;
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('timeout');
    expect(r.errors[0]).toMatch(/paused longer than paused-timeout/);
    expect(r.warnings.filter((w) => /is paused/.test(w))).toHaveLength(1);
    // on-timeout: cancel applies: the paused job really was cancelled.
    expect(cancelsSince(logStart, job.id)).toHaveLength(1);
    expect(r.stdout).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
    await until(() => cancelledStatuses.includes(jobById(job.id).status), 5000, 'the paused job cancelled');
  });

  it('a paused job that reaches timeout (shorter than paused-timeout) fails with status timeout', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    const run = startScenario(env, {
      // paused-timeout also bounds each WHEN COMPLETE wait (to half of it), so 25.2 reads the job at 4 s.
      inputs: env.inputs({ collection: env.collection(), timeout: '6s', 'paused-timeout': '8s' }),
    });
    const job = await newJob(before);
    const logStart = env.cluster.statementLog.length;
    env.cluster.engine.pauseJob(job.id);
    const r = await run.done;
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('timeout');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(new RegExp(`Backup job ${job.id} did not finish within timeout`));
    expect(r.errors[0]).not.toMatch(/paused-timeout/);
    expect(r.warnings.filter((w) => /is paused/.test(w))).toHaveLength(1);
    expect(cancelsSince(logStart, job.id)).toHaveLength(1);
    await until(() => cancelledStatuses.includes(jobById(job.id).status), 5000, 'the paused job cancelled');
  });

  it('a job held in pause-requested gives one warning over many reads, and the wait goes on', async () => {
    env.cluster.engine.setJobDuration(4000);
    const before = jobsNow().length;
    // paused-timeout 8s: WHEN COMPLETE (25.2) waits at most 4 s, so the held job is seen while held.
    const run = startScenario(env, {
      inputs: env.inputs({ collection: env.collection(), 'paused-timeout': '8s' }),
    });
    const job = await newJob(before);
    await waiting(run, job.id);
    const heldAt = Date.now();
    env.cluster.engine.pauseJobSlowly(job.id, { requestedForMs: 60_000 });
    await sleep(6000);
    const resumedAt = Date.now();
    env.cluster.engine.resumeJob(job.id);
    const r = await run.done;
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs.status).toBe('succeeded');
    const reads = readsOf(job.id, heldAt, resumedAt).length;
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(r.warnings.filter((w) => /is pause-requested/.test(w))).toHaveLength(1);
    expect(r.warnings.find((w) => /is pause-requested/.test(w))).toContain(job.id);
    console.log(`[measure] ${profile}: ${reads} reads of a pause-requested job, 1 warning`);
  });

  it('a job whose revert fails: one warning while reverting, then revert-failed fails the step', async () => {
    env.cluster.engine.setJobDuration(longJob);
    const before = jobsNow().length;
    // paused-timeout 4s: WHEN COMPLETE (25.2) waits at most 2 s, so the reverting job is read again.
    const run = startScenario(env, {
      inputs: env.inputs({ collection: env.collection(), 'paused-timeout': '4s' }),
    });
    const job = await newJob(before);
    await waiting(run, job.id);
    const revertAt = Date.now();
    const revertMs = 5000;
    env.cluster.engine.failJobDuringRevert(job.id, 'injected: could not clean up after the failure', {
      revertMs,
    });
    const r = await run.done;
    expect(jobById(job.id).status).toBe('revert-failed');
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('revert-failed');
    expect(r.outputs.verified).toBe('skipped');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(new RegExp(`Backup job ${job.id} ended with status revert-failed`));
    expect(r.errors[0]).toMatch(/could not clean up/);
    expect(r.summary).toMatch(/revert-failed/);
    expect(r.warnings.filter((w) => /is reverting/.test(w))).toHaveLength(1);
    const reads = readsOf(job.id, revertAt, revertAt + revertMs).length;
    expect(reads).toBeGreaterThanOrEqual(2);
    console.log(`[measure] ${profile}: ${reads} reads of a reverting job, 1 warning`);
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
    await waiting(run, job.id);
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
