/**
 * More of the cluster's failure modes, end to end: a cancel refused for lack
 * of privilege (per version), S3 failing in the middle of a job, and a
 * cluster error that embeds the raw destination URI with its credentials.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv, startScenario, until } from './harness.js';

const OPS_PASSWORD = 'ops-pa55/word';

/** How each version refuses a non-admin's CANCEL JOB without CONTROLJOB (undefined: owners may cancel, 25.1+). */
const refusalText = (profile: string, jobId: string): string | undefined =>
  profile === '22.2'
    ? 'user ops does not have CONTROLJOB privilege'
    : profile === '25.2'
      ? undefined
      : `user ops does not have privileges for job ${jobId}`;

describe.each(['22.2', '23.2', '25.2'] as const)('faults on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile });
    // A non-admin with what a backup needs, but without CONTROLJOB.
    env.cluster.engine.addUser({
      name: 'ops',
      password: OPS_PASSWORD,
      systemPrivileges: ['BACKUP', 'EXTERNALIOIMPLICITACCESS'],
    });
  });
  afterAll(async () => env?.close());

  const timeoutRun = async (extra: Record<string, string>) => {
    env.cluster.engine.setJobDuration(60_000);
    const before = env.cluster.jobs().length;
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'connection-string': env.cluster.url('ops'),
        timeout: '2s',
        ...extra,
      }),
    });
    return { r, job: env.cluster.jobs()[before]! };
  };

  it('a refused cancel is retried on grant-connection-string (22.2–24.3), or allowed to the owner (25.1+)', async () => {
    const { r, job } = await timeoutRun({ 'grant-connection-string': env.cluster.url('root') });
    expect(r.outputs.status).toBe('timeout');
    expect(r.stdout).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
    const cancels = env.cluster.statementLog.filter(
      (e) => /^CANCEL\s+JOB/i.test(e.sql) && e.params.includes(job.id),
    );
    if (refusalText(profile, job.id) !== undefined) {
      expect(r.stdout).toMatch(/retrying on grant-connection-string/);
      // Refused as ops, then sent again as root.
      expect(cancels.map((e) => e.user)).toEqual(['ops', 'root']);
    } else {
      expect(r.stdout).not.toMatch(/retrying on grant-connection-string/);
      expect(cancels.map((e) => e.user)).toEqual(['ops']);
    }
    await until(() => env.cluster.jobs().find((j) => j.id === job.id)!.status !== 'running', 5000, 'cancel');
  });

  it('without a grant connection, a refused cancel reports the running job and the missing CONTROLJOB', async () => {
    const { r, job } = await timeoutRun({});
    expect(r.outputs.status).toBe('timeout');
    const refusal = refusalText(profile, job.id);
    if (refusal !== undefined) {
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(new RegExp(`Job ${job.id} is STILL RUNNING`));
      // The cluster's own refusal, as this version words it, and the grant that is missing.
      expect(r.errors[0]).toContain(refusal);
      expect(r.errors[0]).toMatch(/CONTROLJOB/);
      expect(r.summary).toMatch(/STILL RUNNING/);
      expect(env.cluster.jobs().find((j) => j.id === job.id)!.status).toBe('running');
      env.cluster.engine.cancelJobAsOtherUser(job.id);
    } else {
      expect(r.stdout).toMatch(new RegExp(`CANCEL JOB ${job.id} sent`));
      expect(r.errors[0]).not.toMatch(/STILL RUNNING/);
    }
  });

  it('fails the step when S3 breaks in the middle of the job', async () => {
    env.cluster.engine.setJobDuration(3000);
    const before = env.cluster.jobs().length;
    const run = startScenario(env, { inputs: env.inputs({ collection: env.collection('mid-job') }) });
    await until(() => env.cluster.jobs().length > before, 20_000, 'a job');
    env.s3.inject({ op: 'PutObject', keyPrefix: 'mid-job/', status: 403, code: 'AccessDenied' });
    const r = await run.done;
    env.s3.clearFaults();
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('failed');
    expect(r.errors[0]).toMatch(/AccessDenied/);
    expect(r.errors[0]).toMatch(/credentials/);
  });

  it('scrubs the raw destination URI that a cluster error embeds', async () => {
    env.cluster.engine.setJobDuration(500);
    env.cluster.engine.leakUriInErrors(true);
    try {
      const r = await runScenario(env, {
        inputs: env.inputs({
          collection: env.collection(),
          'aws-secret-access-key': 'wrong/secret+with=chars&more',
        }),
      });
      expect(r.code).not.toBe(0);
      expect(r.outputs.status).toBe('failed');
      // The cluster's text (backupdest.ResolveDest, pkg/backup/backupdest/backup_destination.go) quotes the URI twice: inside a longer path, and as given.
      expect(r.errors[0]).toMatch(/A full backup already exists in s3:\/\/backups\//);
      expect(r.errors[0]).toMatch(/AWS_SECRET_ACCESS_KEY=\*\*\*/);
      expect(r.errors[0]).toMatch(/IN '\*\*\*'/);
      // In the summary the error is plain text, its `*` and `_` escaped for Markdown (rendered: AWS_SECRET_ACCESS_KEY=***).
      expect(r.summary).toContain('AWS\\_SECRET\\_ACCESS\\_KEY=\\*\\*\\*');
    } finally {
      env.cluster.engine.leakUriInErrors(false);
    }
  });
});
