/**
 * `verify: restore` endings through the bundle: a timeout, SIGINT and SIGKILL (then the post step)
 * during the restore check, a missing RESTORE privilege and grant-to, and verify-connection-string
 * to a second test cluster. After each, the cluster's jobs and catalog show that the restore job was
 * cancelled and that no scratch database survives; `status` stays the backup job's `succeeded`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSnapshot, ProfileName, TestCluster } from '../support/cluster/index.js';
import { DEFAULT_USERS, startTestCluster } from '../support/cluster/index.js';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, startScenario, until } from './harness.js';

const SHORT_JOB_MS = 500;
/** A restore job that runs far longer than any of these tests lets it. */
const LONG_JOB_MS = 120_000;

const restoreJobs = (cluster: TestCluster, since: number): JobSnapshot[] =>
  cluster.jobs().filter((j) => j.type === 'RESTORE' && j.created.getTime() >= since);

const scratchOf = (job: JobSnapshot): string => /new_db_name = '([^']+)'/.exec(job.description)![1]!;

/**
 * A cancelled restore job drops its OFFLINE database as it reverts (restore_job.go OnFailOrCancel):
 * wait for that, bounded, then nothing may be left.
 */
async function expectScratchGone(cluster: TestCluster, names: string[]): Promise<void> {
  await until(
    () => scratchLeft(cluster, names).length === 0,
    5_000,
    `scratch databases ${names.join(', ')} to go`,
  ).catch(() => undefined);
  expect(scratchLeft(cluster, names)).toEqual([]);
}

/** Scratch databases the cluster still has, public or OFFLINE (held by a restore job). */
function scratchLeft(cluster: TestCluster, names: string[]): string[] {
  const listed = cluster.engine.catalog
    .list()
    .map((d) => d.name)
    .filter((n) => n.startsWith('crdb_backup_verify_'));
  return [...new Set([...listed, ...names.filter((n) => cluster.engine.catalog.taken(n))])];
}

describe.each<ProfileName>(['22.2', '23.2', '25.2'])('verify: restore endings on %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({
      profile,
      jobDurationMs: SHORT_JOB_MS,
      users: [
        ...DEFAULT_USERS,
        // May back up (and reach a custom endpoint), but not restore.
        {
          name: 'checker',
          password: 'ch3cker-pw!',
          systemPrivileges: ['BACKUP', 'EXTERNALIOIMPLICITACCESS'],
        },
      ],
    });
    env.cluster.engine.catalog.setTables('shop', [{ name: 'orders', rows: 10 }]);
  });
  afterAll(async () => env?.close());

  /**
   * Start a run whose backup is short and whose restore job is long: a job takes its duration when
   * it starts (engine.ts runBackup, restore.ts runJob), so the duration grows once the backup job has
   * started, long before the restore job does. Resolves when that restore job runs.
   */
  async function startWithLongRestore(inputs: Record<string, string>) {
    env.cluster.engine.setJobDuration(SHORT_JOB_MS);
    const since = Date.now();
    const running = startScenario(env, { inputs });
    await until(
      () =>
        env.cluster
          .jobs()
          .some((j) => j.type === 'BACKUP' && j.created.getTime() >= since && j.status !== 'pending'),
      30_000,
      'the backup job to start',
    );
    await new Promise((r) => setTimeout(r, 100));
    env.cluster.engine.setJobDuration(LONG_JOB_MS);
    await until(
      () => restoreJobs(env.cluster, since).some((j) => j.status === 'running'),
      30_000,
      'the restore job',
    );
    return { running, since, job: restoreJobs(env.cluster, since)[0]! };
  }

  it('timeout during the check: the restore job is cancelled, its scratch database gone, status succeeded', async () => {
    const { running, job } = await startWithLongRestore(
      env.inputs({ collection: env.collection(), databases: 'shop', verify: 'restore', timeout: '6s' }),
    );
    const r = await running.done;
    env.cluster.engine.setJobDuration(SHORT_JOB_MS);
    expect(r.code).toBe(1);
    expect(r.outputs.status).toBe('succeeded');
    expect(r.outputs.verified).toBe('false');
    expect(r.errors[0]).toMatch(
      new RegExp(`timeout: restore job ${job.id} for shop did not finish within timeout`),
    );
    expect(r.errors[0]).toContain(`Restore job ${job.id} was cancelled`);
    await until(
      () => ['canceled', 'failed'].includes(env.cluster.jobs().find((j) => j.id === job.id)!.status),
      10_000,
      'the revert',
    );
    expect(env.cluster.jobs().find((j) => j.id === job.id)!.status).toBe('canceled');
    await expectScratchGone(env.cluster, [scratchOf(job)]);
    expect(r.state['restore-check']).toBe('[]');
  });

  it('SIGINT during the check: the restore job is cancelled within the grace, scratch gone, status succeeded', async () => {
    const { running, job } = await startWithLongRestore(
      env.inputs({ collection: env.collection(), databases: 'shop', verify: 'restore' }),
    );
    const sent = Date.now();
    running.child.kill('SIGINT');
    const r = await running.done;
    const exitMs = Date.now() - sent;
    env.cluster.engine.setJobDuration(SHORT_JOB_MS);
    expect(exitMs).toBeLessThan(7_500);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/crashed|Unhandled/);
    expect(r.outputs.status).toBe('succeeded');
    expect(r.outputs.verified).toBe('false');
    expect(r.errors[0]).toMatch(/cancelled during the restore check/);
    expect(r.errors[0]).toContain(`Restore job ${job.id} was cancelled`);
    await until(
      () => env.cluster.jobs().find((j) => j.id === job.id)!.status === 'canceled',
      10_000,
      'the cancel',
    );
    await expectScratchGone(env.cluster, [scratchOf(job)]);
    console.log(`[measure] ${profile}: SIGINT during the restore check → exit in ${exitMs} ms`);
  });

  it('SIGKILL during the check: the post step cancels the restore job and no scratch database survives', async () => {
    const inputs = env.inputs({ collection: env.collection(), databases: 'shop', verify: 'restore' });
    const { running, job } = await startWithLongRestore(inputs);
    running.child.kill('SIGKILL');
    const main = await running.done;
    env.cluster.engine.setJobDuration(SHORT_JOB_MS);
    expect(main.signal).toBe('SIGKILL');
    // The job id is saved once RESTORE answers; a kill just before leaves the name, by which the post step finds it.
    expect(JSON.parse(main.state['restore-check']!)).toEqual([
      expect.objectContaining({ db: scratchOf(job) }),
    ]);
    expect(env.cluster.jobs().find((j) => j.id === job.id)!.status).toBe('running');
    const post = await runScenario(env, { inputs, post: { state: main.state } });
    expect(post.code).toBe(0);
    expect(post.warnings.join('\n')).toMatch(
      new RegExp(`Restore job ${job.id} \\(restore check\\) was still running: cancel requested`),
    );
    await until(
      () => env.cluster.jobs().find((j) => j.id === job.id)!.status === 'canceled',
      10_000,
      'the cancel',
    );
    await expectScratchGone(env.cluster, [scratchOf(job)]);
  });

  it('a missing RESTORE privilege gives the exact GRANT; grant-to grants it and the check passes', async () => {
    const user = env.cluster.url('checker', { password: 'ch3cker-pw!' });
    const since = Date.now();
    const refused = await runScenario(env, {
      inputs: env.inputs({
        'connection-string': user,
        collection: env.collection(),
        databases: 'shop',
        verify: 'restore',
      }),
    });
    expect(refused.code).toBe(1);
    expect(refused.outputs.status).toBe('succeeded');
    expect(refused.outputs.verified).toBe('false');
    expect(refused.errors[0]).toMatch(
      /RESTORE of shop was refused: .*only users with the CREATEDB privilege can restore databases/,
    );
    expect(refused.errors[0]).toContain('GRANT SYSTEM RESTORE TO checker;');
    expect(restoreJobs(env.cluster, since)).toEqual([]);
    const granted = await runScenario(env, {
      inputs: env.inputs({
        'connection-string': user,
        'grant-to': 'checker',
        'grant-connection-string': env.cluster.url('root'),
        collection: env.collection(),
        databases: 'shop',
        verify: 'restore',
      }),
    });
    expect(granted.errors).toEqual([]);
    expect(granted.outputs.verified).toBe('true');
    expect(granted.stdout).toContain('GRANT SYSTEM RESTORE TO "checker": done');
    const jobs = restoreJobs(env.cluster, since);
    expect(jobs.map((j) => [j.user, j.status])).toEqual([['checker', 'succeeded']]);
    expect(scratchLeft(env.cluster, [scratchOf(jobs[0]!)])).toEqual([]);
  });
});

describe('verify-connection-string: the check runs on a second test cluster', () => {
  let env: E2eEnv;
  let staging: TestCluster;
  let older: TestCluster;
  beforeAll(async () => {
    env = await startE2eEnv({ profile: '24.3', jobDurationMs: SHORT_JOB_MS });
    staging = await startTestCluster({
      profile: '25.2',
      jobDurationMs: SHORT_JOB_MS,
      users: [{ name: 'root', password: 'st4ging-root', admin: true }],
    });
    older = await startTestCluster({ profile: '23.2', jobDurationMs: SHORT_JOB_MS });
    env.cluster.engine.catalog.setTables('shop', [{ name: 'orders', rows: 10 }]);
  });
  afterAll(async () => {
    await staging?.close();
    await older?.close();
    await env?.close();
  });

  it('restores on the next version, none on the source; its password never shows', async () => {
    const since = Date.now();
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        databases: 'shop',
        verify: 'restore',
        'verify-connection-string': staging.url('root', { password: 'st4ging-root' }),
      }),
    });
    expect(r.errors).toEqual([]);
    expect(r.outputs.verified).toBe('true');
    expect(restoreJobs(env.cluster, since)).toEqual([]);
    const jobs = restoreJobs(staging, since);
    expect(jobs.map((j) => j.status)).toEqual(['succeeded']);
    expect(r.stdout).toMatch(/Restore check on CockroachDB CCL v25\.2\.\d+ \(verify-connection-string\)/);
    expect(scratchLeft(staging, [scratchOf(jobs[0]!)])).toEqual([]);
  });

  it('an older verifying cluster is refused before any restore starts', async () => {
    const since = Date.now();
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        databases: 'shop',
        verify: 'restore',
        'verify-connection-string': older.url('root'),
      }),
    });
    expect(r.code).toBe(1);
    expect(r.outputs.status).toBe('succeeded');
    expect(r.outputs.verified).toBe('false');
    expect(r.errors[0]).toMatch(
      /verify-connection-string: CockroachDB v23\.2\.\d+ cannot restore a backup taken on v24\.3\.\d+/,
    );
    expect(restoreJobs(older, since)).toEqual([]);
    expect(older.statementLog.some((e) => /^RESTORE/i.test(e.sql))).toBe(false);
  });
});
