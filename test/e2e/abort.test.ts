/**
 * An abort at any moment (issue 13.1): whatever the step is doing when the
 * runner sends SIGINT, it ends before the runner's SIGTERM 7.5 s later, with
 * the summary written, and the job it created cancelled or reported with its
 * id. One scenario per phase, on the oldest and newest profiles; each prints
 * the measured time from the signal to the exit.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCollection } from '../support/seed.js';
import type { RunningAction } from '../support/action-runner.js';
import type { E2eEnv, Scenario } from './harness.js';
import { BUCKET, runScenario, startE2eEnv, startScenario, until } from './harness.js';

/** The runner sends SIGTERM this long after SIGINT. */
const GRACE_MS = 7_500;
const cancelledStatuses = ['cancel-requested', 'reverting', 'canceled'];
const measured: string[] = [];

describe.each(['22.2', '25.2'] as const)('abort in every phase on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, sessionLingerMs: 0 });
  });
  afterAll(async () => {
    env?.cluster.wire.clearFaults();
    env?.s3.clearFaults();
    await env?.close();
    if (measured.length > 0) console.log(measured.splice(0).join('\n'));
  });

  const jobsNow = () => env.cluster.jobs();

  /** Start the run, wait for `ready`, send SIGINT; the result and the time from the signal to the exit. */
  const abortWhen = async (scenario: Scenario, ready: (run: RunningAction) => boolean, phase: string) => {
    const run = startScenario(env, scenario);
    const exited = new Promise<number>((resolve) => run.child.once('exit', () => resolve(Date.now())));
    await until(() => ready(run), 30_000, `the ${phase} phase`);
    const signalledAt = Date.now();
    run.child.kill('SIGINT');
    const r = await run.done;
    const exitMs = (await exited) - signalledAt;
    measured.push(`[measure] ${profile}: SIGINT while ${phase} → exit after ${exitMs} ms`);
    expect(exitMs).toBeLessThan(GRACE_MS);
    expect(r.killedByHarness).toBe(false);
    // A crash (an unhandled rejection) would exit non-zero too: stderr says why.
    expect(r.stderr).not.toMatch(/Error\b|^\s+at /m);
    expect(r.code).toBe(1);
    expect(r.errors).toHaveLength(1);
    expect(r.summary).toMatch(/aborted/);
    expect(r.outputs.status).toBe('aborted');
    return r;
  };
  const inGroup = (name: string) => (run: RunningAction) => run.stdout().includes(`::group::${name}`);

  it('while connecting to a server that accepts TCP and never answers', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const r = await abortWhen(
        {
          inputs: env.inputs({
            'connection-string': `postgresql://root:rootpw-secret@127.0.0.1:${port}/defaultdb?sslmode=disable`,
            collection: env.collection(),
          }),
        },
        () => sockets.size > 0,
        'connecting',
      );
      expect(r.errors[0]).toMatch(/cancelled before a backup job was created; nothing is left running/);
      expect(r.outputs['job-id']).toBeUndefined();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('while granting privileges', async () => {
    env.cluster.wire.slowStatements(/^GRANT/i, 30_000);
    const before = jobsNow().length;
    try {
      const r = await abortWhen(
        { inputs: env.inputs({ collection: env.collection(), 'grant-to': 'backup_user' }) },
        inGroup('Grant privileges to backup_user'),
        'granting',
      );
      expect(r.errors[0]).toMatch(/before a backup job was created/);
      expect(jobsNow()).toHaveLength(before);
    } finally {
      env.cluster.wire.clearFaults();
    }
  });

  it('while checking for running backups', async () => {
    env.cluster.wire.slowStatements(/status IN \('pending'/i, 30_000);
    const before = jobsNow().length;
    try {
      const r = await abortWhen(
        { inputs: env.inputs({ collection: env.collection() }) },
        inGroup('Check for running backups'),
        'checking running jobs',
      );
      expect(r.errors[0]).toMatch(/before a backup job was created/);
      expect(jobsNow()).toHaveLength(before);
    } finally {
      env.cluster.wire.clearFaults();
    }
  });

  it('while the answer to BACKUP is held back: the job whose id never arrived is found and cancelled', async () => {
    env.cluster.engine.setJobDuration(60_000);
    env.cluster.wire.holdAnswers(/^BACKUP/i, 30_000);
    const before = jobsNow().length;
    try {
      const r = await abortWhen(
        { inputs: env.inputs({ collection: env.collection() }) },
        () => jobsNow().length > before,
        'submitting (answer held back)',
      );
      const job = jobsNow()[before]!;
      expect(r.errors[0]).toMatch(
        new RegExp(`cancelled while backup job ${job.id} .*CANCEL JOB ${job.id} sent`),
      );
      expect(r.outputs['job-id']).toBe(job.id);
      expect(r.summary).toContain(job.id);
      await until(() => cancelledStatuses.includes(jobsNow()[before]!.status), 5000, 'the cancel');
      expect(jobsNow()).toHaveLength(before + 1);
    } finally {
      env.cluster.wire.clearFaults();
    }
  });

  it('while waiting for a lost session to disappear: no "refused", and the post step is asked to look again', async () => {
    env.cluster.engine.setJobDuration(1500);
    env.cluster.engine.loseNextBackupBeforeJob({ lingerMs: 30_000 });
    const before = jobsNow().length;
    const r = await abortWhen(
      { inputs: env.inputs({ collection: env.collection() }) },
      (run) => /answer to BACKUP was lost/.test(run.stdout()),
      'in lost-answer recovery',
    );
    expect(r.errors[0]).not.toMatch(/refused/);
    expect(r.errors[0]).toMatch(
      /BACKUP was being submitted.*may be running; the post step looks for it again/,
    );
    expect(r.state['job-owned']).toBe('uncertain');
    expect(r.state['submit-capture']).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$/);
    expect(jobsNow()).toHaveLength(before);
  });

  it('while waiting for the job', async () => {
    env.cluster.engine.setJobDuration(60_000);
    const before = jobsNow().length;
    const r = await abortWhen(
      { inputs: env.inputs({ collection: env.collection() }) },
      (run) => jobsNow().length > before && /Backup job \d+ created/.test(run.stdout()),
      'waiting',
    );
    const job = jobsNow()[before]!;
    expect(r.errors[0]).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
    await until(() => cancelledStatuses.includes(jobsNow()[before]!.status), 5000, 'the cancel');
  });

  it('while verifying: the job succeeded, so status stays succeeded and verified is false', async () => {
    env.cluster.engine.setJobDuration(500);
    env.cluster.wire.slowStatements(/check_files/i, 30_000);
    try {
      const run = startScenario(env, {
        inputs: env.inputs({ collection: env.collection(), verify: 'files' }),
      });
      const exited = new Promise<number>((resolve) => run.child.once('exit', () => resolve(Date.now())));
      await until(() => run.stdout().includes('::group::Verify the backup'), 30_000, 'verification');
      const signalledAt = Date.now();
      run.child.kill('SIGINT');
      const r = await run.done;
      const exitMs = (await exited) - signalledAt;
      measured.push(`[measure] ${profile}: SIGINT while verifying → exit after ${exitMs} ms`);
      expect(exitMs).toBeLessThan(GRACE_MS);
      expect(r.code).not.toBe(0);
      expect(r.outputs.status).toBe('succeeded');
      expect(r.outputs.verified).toBe('false');
      expect(r.errors[0]).toMatch(/cancelled before verification finished/);
      expect(r.summary).toMatch(/aborted/);
    } finally {
      env.cluster.wire.clearFaults();
    }
  });

  it('while pruning: the S3 calls see the abort', async () => {
    env.cluster.engine.setJobDuration(500);
    const path = `abort-prune-${profile}`;
    seedCollection(env.s3, BUCKET, path, {
      chains: 3,
      objectsPerChain: 3,
      startDate: new Date('2025-06-01T00:00:00Z'),
    });
    const clear = env.s3.inject({ op: 'DeleteObjects', delayMs: 30_000, times: 1 });
    try {
      const run = startScenario(env, {
        inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': '1' }),
      });
      const exited = new Promise<number>((resolve) => run.child.once('exit', () => resolve(Date.now())));
      await until(
        () =>
          env.s3.requests.some((q) => q.op === 'DeleteObjects') || run.stdout().includes('Prune old backup'),
        30_000,
        'pruning',
      );
      const signalledAt = Date.now();
      run.child.kill('SIGINT');
      const r = await run.done;
      const exitMs = (await exited) - signalledAt;
      measured.push(`[measure] ${profile}: SIGINT while pruning → exit after ${exitMs} ms`);
      expect(exitMs).toBeLessThan(GRACE_MS);
      expect(r.code).not.toBe(0);
      expect(r.outputs.status).toBe('succeeded');
      expect(r.outputs.verified).toBe('true');
      expect(r.errors[0]).toMatch(/cancelled while pruning/);
      expect(r.summary).toMatch(/aborted/);
    } finally {
      clear();
    }
  });

  it('after SIGKILL with the answer to BACKUP held back, the post step finds the job by its capture time and cancels it', async () => {
    env.cluster.engine.setJobDuration(60_000);
    env.cluster.wire.holdAnswers(/^BACKUP/i, 30_000);
    const before = jobsNow().length;
    const inputs = env.inputs({ collection: env.collection() });
    try {
      const run = startScenario(env, { inputs });
      await until(() => jobsNow().length > before, 30_000, 'the job');
      run.child.kill('SIGKILL');
      const main = await run.done;
      const job = jobsNow()[before]!;
      expect(main.state['job-id']).toBeUndefined();
      expect(main.state['submit-capture']).toBeDefined();
      env.cluster.wire.clearFaults();
      const post = await runScenario(env, { inputs, post: { state: main.state } });
      expect(post.code).toBe(0);
      expect(post.stdout).toMatch(new RegExp(`found job ${job.id}`));
      expect(post.stdout).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
      await until(() => cancelledStatuses.includes(jobsNow()[before]!.status), 5000, 'the cancel');
    } finally {
      env.cluster.wire.clearFaults();
    }
  });
});
