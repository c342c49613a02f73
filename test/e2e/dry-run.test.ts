/**
 * `dry-run: true` through the bundle: every check reported, each failure class on its own and
 * several at once, and nothing changed: no job on the test cluster, no GRANT, and no object
 * written to the S3 server but the storage check's own test files, which the nodes delete.
 * Every run goes through the harness's leak probe (runScenario).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRunResult } from '../support/action-runner.js';
import type { ProfileName } from '../support/cluster/index.js';
import type { E2eEnv, Scenario } from './harness.js';
import { BUCKET, runScenario, startE2eEnv } from './harness.js';

/** What may change during a dry run: nothing but the storage check's test files, written and removed. */
async function dryRun(env: E2eEnv, scenario: Scenario): Promise<ActionRunResult> {
  const jobs = env.cluster.jobs().length;
  const keys = env.s3.listKeys(BUCKET);
  const grantsBefore = grantState(env);
  const from = env.s3.requests.length;
  const r = await runScenario(env, { ...scenario, inputs: { ...scenario.inputs, 'dry-run': 'true' } });
  expect(env.cluster.jobs(), 'no job is created or left').toHaveLength(jobs);
  expect(env.s3.listKeys(BUCKET), 'the bucket holds what it held').toEqual(keys);
  const writes = env.s3.requests
    .slice(from)
    .filter((q) => ['PutObject', 'DeleteObject', 'DeleteObjects', 'CreateBucket'].includes(q.op));
  for (const w of writes) expect(w.key ?? '', `${w.op} ${w.key}`).toMatch(/cockroach-storage-test-/);
  expect(grantState(env), 'no GRANT ran').toEqual(grantsBefore);
  expect(r.outputs['job-id']).toBeUndefined();
  expect(r.outputs['backup-path']).toBeUndefined();
  expect(r.outputs['end-time']).toBeUndefined();
  return r;
}

function grantState(env: E2eEnv): string {
  return JSON.stringify(
    [...env.cluster.engine.users.values()].map((u) => [
      u.name,
      [...u.system.keys()].sort(),
      [...u.roleOptions].sort(),
      [...u.databases].map(([d, p]) => [d, [...p].sort()]),
    ]),
  );
}

/** The checklist row of a check: `| ✅ passed | <name> | …`. */
function row(summary: string, name: string): string {
  const line = summary.split('\n').find((l) => l.startsWith('| ') && l.includes(` | ${name}`));
  if (!line) throw new Error(`no checklist row "${name}" in:\n${summary}`);
  return line;
}

const PROFILES: ProfileName[] = ['22.2', '23.2', '25.2'];

describe.each(PROFILES)('dry run on %s', (profile) => {
  let env: E2eEnv;
  // The licence is readable with VIEWCLUSTERSETTING; 22.2 takes CONTROLJOB only as a role option.
  const roleOptions = ['VIEWCLUSTERSETTING', ...(profile === '22.2' ? ['CONTROLJOB'] : [])];
  beforeAll(async () => {
    env = await startE2eEnv({
      profile,
      jobDurationMs: 200,
      databases: ['defaultdb', 'shop'],
      users: [
        { name: 'root', password: 'rootpw-secret', admin: true },
        {
          name: 'backup_user',
          password: 'bkp-p@ss/w0rd+x',
          systemPrivileges: [
            'BACKUP',
            'EXTERNALIOIMPLICITACCESS',
            ...(profile === '23.2' ? ['CONTROLJOB'] : []),
          ],
          roleOptions,
        },
        { name: 'nobody', password: 'n0-body-pass' },
      ],
    });
  });
  afterAll(async () => env?.close());

  it('all green: every check passes, status checked, nothing changes', async () => {
    const collection = env.collection();
    const first = await runScenario(env, { inputs: env.inputs({ collection }) });
    expect(first.code).toBe(0);
    const r = await dryRun(env, {
      inputs: env.inputs({
        'connection-string': env.cluster.url('backup_user'),
        collection,
        'backup-type': 'auto',
        'if-running': 'fail',
        verify: 'files',
        'prune-keep-last': '1',
      }),
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs.status).toBe('checked');
    for (const name of [
      'Connection and TLS',
      'Version and edition',
      'if-running: fail',
      'backup-type: auto',
      'BACKUP privileges of backup\\_user',
      'BACKUP at statement time (in a transaction rolled back)',
      'Licence for the BACKUP options',
      'Waiting for the job',
      'CANCEL JOB (cancel-on-abort, on-timeout: cancel)',
      'verify: files',
      'Node access to the collection',
      'Pruning',
      "Runner's access to the collection",
    ])
      expect(row(r.summary, name)).toMatch(/^\| ✅ passed \|/);
    expect(row(r.summary, 'backup-type: auto')).toContain(
      `an incremental onto the full backup ${first.outputs['backup-path']}`,
    );
    expect(row(r.summary, 'Node access to the collection')).toContain('3 node(s) wrote, read and deleted');
    // The chain the incremental extends is never pruned, and it is the only one.
    expect(row(r.summary, 'Pruning')).toContain('would delete nothing');
    expect(r.summary).toContain('### Statements the run would send (redacted)');
    expect(r.summary).toMatch(
      /BACKUP INTO \$2 IN \$1 AS OF SYSTEM TIME '[^']+' WITH detached, revision_history/,
    );
    expect(r.summary).toContain('AWS_SECRET_ACCESS_KEY=redacted');
    const syntax = profile === '25.2' ? 'CHECK EXTERNAL CONNECTION' : 'SHOW BACKUP CONNECTION';
    expect(env.cluster.statementLog.some((e) => e.sql.startsWith(syntax))).toBe(true);
  });
});
