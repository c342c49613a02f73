/**
 * The action's rules at the edges where a real CockroachDB answers
 * differently from a lenient stand-in: each scenario runs the bundle against the test cluster,
 * which follows CockroachDB's source on these points.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, startScenario, until } from './harness.js';
import pg from 'pg';
import { TEST_S3_CREDENTIAL } from '../support/s3/server.js';
import { seedCollection } from '../support/seed.js';

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

describe.each(['22.2', '25.2'] as const)(
  'cancelling a job on its way to pause on CockroachDB %s',
  (profile) => {
    let env: E2eEnv;
    beforeAll(async () => {
      env = await startE2eEnv({ profile, sessionLingerMs: 0 });
    });
    afterAll(async () => env?.close());

    const jobsNow = () => env.cluster.jobs();
    const jobById = (id: string) => jobsNow().find((j) => j.id === id)!;
    const cancelled = ['cancel-requested', 'reverting', 'canceled'];

    /** A long job, pause-requested for `pausingMs`, then SIGINT: the main step's cancel. */
    const abortWhilePausing = async (pausingMs: number) => {
      env.cluster.engine.setJobDuration(60_000);
      const before = jobsNow().length;
      const inputs = env.inputs({ collection: env.collection() });
      const run = startScenario(env, { inputs });
      await until(() => jobsNow().length > before, 20_000, 'a backup job');
      const job = jobsNow()[before]!;
      await until(() => jobById(job.id).status === 'running', 5000, 'the job running');
      await until(() => run.stdout().includes(`Backup job ${job.id} created`), 10_000, 'the wait');
      env.cluster.engine.pauseJobSlowly(job.id, { requestedForMs: pausingMs });
      const signalledAt = Date.now();
      run.child.kill('SIGINT');
      const r = await run.done;
      return { r, job, inputs, exitMs: Date.now() - signalledAt };
    };

    it('waits, inside the cancel deadline, for the job to be paused, then cancels it', async () => {
      const { r, job, exitMs } = await abortWhilePausing(2000);
      expect(r.stdout, r.stdout).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
      expect(r.stdout).not.toMatch(/had already ended/);
      expect(r.state['job-owned']).toBe('cancelled');
      expect(exitMs).toBeLessThan(7500);
      await until(() => cancelled.includes(jobById(job.id).status), 5000, 'the job cancelled');
    });

    it('says a job still pausing at the deadline needs a cancel, and the post step cancels it once paused', async () => {
      const { r, job, inputs, exitMs } = await abortWhilePausing(6500);
      expect(exitMs).toBeLessThan(7500);
      expect(r.errors.join('\n')).toMatch(new RegExp(`Job ${job.id} is pausing .*STILL NEEDS A CANCEL`));
      expect(r.state['job-owned']).toBe('cancel-pending');
      expect(jobById(job.id).status).toMatch(/^pause/);
      await until(() => jobById(job.id).status === 'paused', 5000, 'the job paused');
      const post = await runScenario(env, { inputs, post: { state: r.state } });
      expect(post.code).toBe(0);
      expect(post.warnings.join('\n')).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
      await until(() => cancelled.includes(jobById(job.id).status), 5000, 'the job cancelled');
    });
  },
);

describe.each(['22.2', '25.2'] as const)('timeout while paused on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, sessionLingerMs: 0 });
  });
  afterAll(async () => env?.close());

  it('the timeout error says the job was paused, and since when', async () => {
    env.cluster.engine.setJobDuration(60_000);
    const before = env.cluster.jobs().length;
    // paused-timeout 20s: on 25.2 one WHEN COMPLETE wait lasts until the timeout, so the pause is
    // seen only by the read the action makes before cancelling.
    const run = startScenario(env, {
      inputs: env.inputs({ collection: env.collection(), timeout: '5s', 'paused-timeout': '20s' }),
    });
    await until(() => env.cluster.jobs().length > before, 20_000, 'a backup job');
    const job = env.cluster.jobs()[before]!;
    await until(() => run.stdout().includes(`Backup job ${job.id} created`), 10_000, 'the wait');
    env.cluster.engine.pauseJob(job.id);
    await until(() => env.cluster.jobs()[before]!.status === 'paused', 5000, 'the job paused');
    const r = await run.done;
    expect(r.outputs.status).toBe('timeout');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(
      new RegExp(
        `Backup job ${job.id} did not finish within timeout: it was paused since \\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z\\.`,
      ),
    );
    expect(r.errors[0]).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
  });
});

describe.each(['22.2', '25.2'] as const)('pruning around LATEST on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, jobDurationMs: 300 });
  });
  afterAll(async () => env?.close());

  it('never prunes the chain LATEST names, even when it is not the newest by end time', async () => {
    const path = `latest-${profile}`;
    const collection = env.collection(path);
    const first = await runScenario(env, { inputs: env.inputs({ collection }) });
    expect(first.code).toBe(0);
    // A past absolute time, written later: LATEST names this one (by write time), not the newest end time.
    const hourAgo = new Date(Date.now() - 3600_000).toISOString().replace('T', ' ').slice(0, 19);
    const past = await runScenario(env, { inputs: env.inputs({ collection, 'as-of-system-time': hourAgo }) });
    expect(past.code).toBe(0);
    const latestChain = past.outputs['backup-path']!;
    const r = await runScenario(env, {
      inputs: env.inputs({ collection, 'backup-type': 'incremental', 'prune-keep-last': '1' }),
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs['backup-path']).toBe(first.outputs['backup-path']);
    expect(env.s3.hasObject('backups', `${path}${latestChain}/BACKUP_MANIFEST`)).toBe(true);
    expect(r.summary).toMatch(new RegExp(`\\| \`${latestChain}\` \\| kept \\(named by LATEST\\)`));
  });
});

describe.each(['22.2', '25.2'] as const)(
  'pruning with the cluster as the truth on CockroachDB %s',
  (profile) => {
    let env: E2eEnv;
    beforeAll(async () => {
      env = await startE2eEnv({ profile, jobDurationMs: 300 });
    });
    afterAll(async () => env?.close());
    const day = 24 * 3600_000;

    it('ages chains by the cluster clock, not the runner clock ahead of it', async () => {
      // The runner (this machine) is 2 days ahead of the cluster.
      env.cluster.moveClock(-2 * day);
      try {
        const path = `skew-${profile}`;
        // 29 days old by the cluster's clock (31 by the runner's): prune-older-than 30d keeps it.
        const [young] = seedCollection(env.s3, 'backups', path, {
          chains: 1,
          objectsPerChain: 5,
          startDate: new Date(Date.now() - 2 * day - 29 * day),
        });
        const r = await runScenario(env, {
          inputs: env.inputs({ collection: env.collection(path), 'prune-older-than': '30d' }),
        });
        expect(r.errors).toEqual([]);
        expect(r.code).toBe(0);
        expect(env.s3.hasObject('backups', `${path}${young}/BACKUP_MANIFEST`)).toBe(true);
        expect(r.summary).toMatch(new RegExp(`\\| \`${young}\` \\| kept \\(newer than prune-older-than\\)`));
      } finally {
        env.cluster.moveClock(2 * day);
      }
    });

    it('skips a chain a running backup job writes into, then removes it with its failed layer', async () => {
      const path = `busy-${profile}`;
      const collection = env.collection(path);
      const first = await runScenario(env, { inputs: env.inputs({ collection }) });
      expect(first.code).toBe(0);
      const old = first.outputs['backup-path']!;
      // An incremental into the old chain, still running (lock and data written, no manifest yet).
      env.cluster.engine.setJobDuration(60_000);
      const inc = await runScenario(env, {
        inputs: env.inputs({ collection, 'backup-type': 'incremental', wait: 'false' }),
      });
      const incId = inc.outputs['job-id']!;
      const incKeys = () => env.s3.listKeys('backups', `${path}/incrementals${old}/`);
      await until(() => incKeys().some((k) => k.endsWith('.sst')), 20_000, 'the incremental writing');
      env.cluster.engine.setJobDuration(300);

      const r = await runScenario(env, { inputs: env.inputs({ collection, 'prune-keep-last': '1' }) });
      expect(r.errors).toEqual([]);
      expect(r.code).toBe(0);
      expect(env.s3.hasObject('backups', `${path}${old}/BACKUP_MANIFEST`)).toBe(true);
      expect(incKeys().some((k) => k.endsWith('.sst'))).toBe(true);
      expect(r.stdout).toContain(
        `Not pruning chain ${old} this time: a running backup job (${incId}) writes into it`,
      );
      expect(r.summary).toMatch(new RegExp(`\\| \`${old}\` \\| kept \\(a running backup job \\(${incId}\\)`));

      // The incremental fails: its layer (no manifest, no running job) goes with its chain next time.
      env.cluster.engine.failJob(incId, 'injected failure');
      const next = await runScenario(env, { inputs: env.inputs({ collection, 'prune-keep-last': '1' }) });
      expect(next.errors).toEqual([]);
      expect(env.s3.listKeys('backups', `${path}${old}/`)).toEqual([]);
      expect(incKeys()).toEqual([]);
    });
  },
);

describe.each(['25.2', '25.4'] as const)('the backup index on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, jobDurationMs: 300 });
  });
  afterAll(async () => env?.close());

  it('is written only from 25.4 (backup_index.go shouldWriteIndex)', async () => {
    const path = `index-${profile}`;
    const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection(path) }) });
    expect(r.code).toBe(0);
    const flat = r.outputs['backup-path']!.slice(1).replace(/\//g, '-');
    expect(env.s3.listKeys('backups', `${path}/metadata/index/${flat}/`)).toHaveLength(
      profile === '25.4' ? 1 : 0,
    );
    expect(env.s3.listKeys('backups', `${path}/index/`)).toEqual([]);
  });
});

describe.each(['22.2', '25.2'] as const)('a collection at the bucket root on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, jobDurationMs: 300 });
  });
  afterAll(async () => env?.close());
  const folder = /^\/\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2}$/;

  it('names the backup with one leading / in outputs, summary and RESTORE', async () => {
    const collection = 's3://backups';
    const first = await runScenario(env, { inputs: env.inputs({ collection }) });
    expect(first.code).toBe(0);
    expect(first.outputs['backup-path']).toMatch(folder);
    const inc = await runScenario(env, { inputs: env.inputs({ collection, 'backup-type': 'incremental' }) });
    expect(inc.errors).toEqual([]);
    expect(inc.outputs['backup-path']).toBe(first.outputs['backup-path']);
    expect(inc.outputs['backup-uri']).toBe(`s3://backups${first.outputs['backup-path']}`);
    expect(inc.summary).toContain(`FROM '${first.outputs['backup-path']}'\n  IN`);

    // SHOW BACKUPS lists the folder without a leading / there, as CockroachDB does.
    const root = new pg.Client({ connectionString: env.cluster.url('root') });
    root.on('error', () => undefined);
    await root.connect();
    try {
      const uri =
        `s3://backups?AWS_ACCESS_KEY_ID=${TEST_S3_CREDENTIAL.accessKeyId}` +
        `&AWS_SECRET_ACCESS_KEY=${encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey)}` +
        `&AWS_ENDPOINT=${encodeURIComponent(env.s3.endpoint)}&AWS_REGION=${env.s3.region}` +
        (profile === '25.2' ? '&AWS_USE_PATH_STYLE=true' : '');
      const listed = (await root.query(`SHOW BACKUPS IN '${uri}'`)).rows.map((r: { path: string }) => r.path);
      expect(listed).toEqual([first.outputs['backup-path']!.slice(1)]);
    } finally {
      await root.end();
    }
  });
});

describe('polling on CockroachDB 22.2 (no WHEN COMPLETE), with coarse progress', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile: '22.2', jobDurationMs: 12_000 });
  });
  afterAll(async () => env?.close());

  it('reads the job no more often than a plain 5 s poller, and notices the end as soon', async () => {
    const before = env.cluster.jobs().length;
    const logStart = env.cluster.statementLog.length;
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), 'poll-interval': '5s', verify: 'none' }),
    });
    expect(r.code).toBe(0);
    const job = env.cluster.jobs()[before]!;
    const reads = env.cluster.statementLog
      .slice(logStart)
      .filter((e) => /crdb_internal\.jobs WHERE job_id/.test(e.sql) && e.params.includes(job.id));
    const created = job.created.getTime();
    const ended = job.finished!.getTime();
    // A plain poller reads at 5, 10 and 15 s after the submission: 3 reads, the end seen at 15 s.
    expect(reads.length).toBeLessThanOrEqual(Math.ceil((ended - created) / 5000));
    expect(reads.at(-1)!.at - ended).toBeLessThan(5000 + 500);
  });
});

describe('an encrypted chain on CockroachDB 25.2', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile: '25.2', jobDurationMs: 300 });
  });
  afterAll(async () => env?.close());

  it("writes ENCRYPTION-INFO only in the full backup's folder, and hides the passphrase in descriptions", async () => {
    const path = 'encrypted';
    const inputs = env.inputs({ collection: env.collection(path), 'encryption-passphrase': 'Sekr1t-pass' });
    const full = await runScenario(env, { inputs });
    expect(full.code).toBe(0);
    const inc = await runScenario(env, { inputs: { ...inputs, 'backup-type': 'incremental' } });
    expect(inc.errors).toEqual([]);
    expect(inc.code).toBe(0);
    const infos = env.s3.listKeys('backups', `${path}/`).filter((k) => k.endsWith('/ENCRYPTION-INFO'));
    expect(infos).toEqual([`${path}${full.outputs['backup-path']}/ENCRYPTION-INFO`]);
    for (const id of [full.outputs['job-id'], inc.outputs['job-id']]) {
      const description = env.cluster.jobs().find((j) => j.id === id)!.description;
      expect(description).toContain("encryption_passphrase = '*****'");
      expect(description).not.toContain('Sekr1t-pass');
    }
  });
});
