/**
 * `dry-run: true` through the bundle: every check reported, each failure class on its own and
 * several at once, and nothing changed: no job on the test cluster, no GRANT, and no object
 * written to the S3 server but the storage check's own test files, which the nodes delete.
 * Every run goes through the harness's leak probe (runScenario).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRunResult } from '../support/action-runner.js';
import type { ProfileName, TestCluster } from '../support/cluster/index.js';
import { startTestCluster } from '../support/cluster/index.js';
import type { E2eEnv, Scenario } from './harness.js';
import { BUCKET, runScenario, startE2eEnv, until } from './harness.js';

/** What may change during a dry run: nothing but the storage check's test files, written and removed. */
async function dryRun(env: E2eEnv, scenario: Scenario): Promise<ActionRunResult> {
  const jobs = env.cluster.jobs().length;
  const keys = env.s3.listKeys(BUCKET);
  const grantsBefore = grantState(env);
  const from = env.s3.requests.length;
  const r = await runScenario(env, { ...scenario, inputs: { ...scenario.inputs, 'dry-run': 'true' } });
  expect(env.cluster.jobs(), 'no job is created or left').toHaveLength(jobs);
  const after = env.s3.listKeys(BUCKET);
  expect(
    after.filter((k) => !keys.includes(k)),
    'the bucket holds what it held',
  ).toEqual([]);
  expect(after).toEqual(keys);
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
        {
          name: 'no_backup',
          password: 'n0-backup-pass',
          systemPrivileges: ['EXTERNALIOIMPLICITACCESS', ...(profile === '23.2' ? ['CONTROLJOB'] : [])],
          roleOptions,
        },
        {
          name: 'no_cancel',
          password: 'n0-cancel-pass',
          systemPrivileges: ['BACKUP', 'EXTERNALIOIMPLICITACCESS'],
          roleOptions: ['VIEWCLUSTERSETTING'],
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

  /** The names of the failed rows. */
  function failedRows(r: ActionRunResult): string[] {
    return r.summary
      .split('\n')
      .filter((l) => l.startsWith('| ❌ failed | '))
      .map((l) => l.split(' | ')[1]!);
  }

  function expectFailed(r: ActionRunResult, rows: string[]): void {
    expect(r.code).toBe(1);
    expect(r.outputs.status).toBe('error');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain(`Dry run: ${rows.length} of `);
    expect(failedRows(r).sort()).toEqual([...rows].sort());
  }

  it('missing BACKUP privilege: the GRANT to run', async () => {
    const r = await dryRun(env, {
      inputs: env.inputs({ 'connection-string': env.cluster.url('no_backup'), collection: env.collection() }),
    });
    expectFailed(r, [
      'BACKUP privileges of no\\_backup',
      'BACKUP at statement time (in a transaction rolled back)',
    ]);
    expect(row(r.summary, 'BACKUP privileges of no')).toContain('`GRANT SYSTEM BACKUP TO "no_backup";`');
    expect(row(r.summary, 'BACKUP at statement time')).toContain('BACKUP system privilege');
  });

  it('missing CONTROLJOB where a cancel may be needed (owners may cancel from 25.1)', async () => {
    const inputs = env.inputs({
      'connection-string': env.cluster.url('no_cancel'),
      collection: env.collection(),
    });
    const r = await dryRun(env, { inputs });
    const name = 'CANCEL JOB (cancel-on-abort, on-timeout: cancel)';
    if (profile === '25.2') {
      expect(r.code).toBe(0);
      expect(row(r.summary, name)).toMatch(/^\| ✅ passed \|.*owners may cancel their own jobs/);
    } else {
      expectFailed(r, [name]);
      expect(row(r.summary, name)).toContain(
        profile === '22.2'
          ? '`ALTER ROLE "no_cancel" WITH CONTROLJOB;`'
          : '`GRANT SYSTEM CONTROLJOB TO "no_cancel";`',
      );
      expect(row(r.summary, name)).toContain('set cancel-on-abort: false and on-timeout: leave');
    }
    // No cancel, no CONTROLJOB needed.
    const off = await dryRun(env, {
      inputs: { ...inputs, 'cancel-on-abort': 'false', 'on-timeout': 'leave' },
    });
    expect(off.code).toBe(0);
    expect(row(off.summary, name)).toMatch(/^\| ⏭️ skipped \|/);
  });

  it('licence refusal before 24.3: the input to change', async () => {
    env.cluster.engine.setLicense(false);
    try {
      const r = await dryRun(env, { inputs: env.inputs({ collection: env.collection() }) });
      if (profile === '25.2') {
        expect(r.code).toBe(0);
        expect(row(r.summary, 'Licence for the BACKUP options')).toContain(
          'need no enterprise licence from 24.3',
        );
        return;
      }
      expectFailed(r, [
        'Licence for the BACKUP options',
        'BACKUP at statement time (in a transaction rolled back)',
      ]);
      expect(row(r.summary, 'Licence for the BACKUP options')).toContain('set revision-history: false');
      expect(row(r.summary, 'BACKUP at statement time')).toContain('requires an enterprise license');
      // A user who may not read the licence: the statement-time refusal (XXC02) still tells.
      const nonAdmin = await dryRun(env, {
        inputs: env.inputs({
          'connection-string': env.cluster.url('no_cancel'),
          collection: env.collection(),
          'cancel-on-abort': 'false',
          'on-timeout': 'leave',
        }),
      });
      expect(failedRows(nonAdmin)).toContain('Licence for the BACKUP options');
    } finally {
      env.cluster.engine.setLicense(true);
    }
  });

  it('a node that cannot write: named with its locality and the IAM action', async () => {
    const nodes = env.cluster.engine.more.externalCheck.nodeList.map((n) => ({ ...n }));
    env.cluster.engine.more.externalCheck.setUnreachable(2);
    try {
      const r = await dryRun(env, { inputs: env.inputs({ collection: env.collection() }) });
      expectFailed(r, ['Node access to the collection']);
      const line = row(r.summary, 'Node access to the collection');
      expect(line).toContain(
        '1 of 3 node(s) could not use the collection: node 2 (region=us-east1,zone=us-east1-c)',
      );
      expect(line).toContain('s3:PutObject');
    } finally {
      env.cluster.engine.more.externalCheck.setNodes(nodes);
    }
  });

  it('a runner without list rights: the IAM action missing', async () => {
    const collection = env.collection();
    const path = collection.replace(`s3://${BUCKET}/`, '');
    const clear = env.s3.inject({
      op: 'ListObjectsV2',
      keyPrefix: `${path}/`,
      status: 403,
      code: 'AccessDenied',
      message: 'Access Denied',
    });
    try {
      const r = await dryRun(env, { inputs: env.inputs({ collection }) });
      expectFailed(r, ["Runner's access to the collection"]);
      expect(row(r.summary, "Runner's access")).toContain(`s3:ListBucket on arn:aws:s3:::${BUCKET}`);
      expect(row(r.summary, "Runner's access")).toContain('AccessDenied');
    } finally {
      clear();
    }
  });

  it('nothing to extend: incremental onto an empty collection', async () => {
    const r = await dryRun(env, {
      inputs: env.inputs({ collection: env.collection(), 'backup-type': 'incremental' }),
    });
    expectFailed(r, ['backup-type: incremental']);
    expect(row(r.summary, 'backup-type: incremental')).toContain('holds no full backup to append to');
    expect(row(r.summary, 'backup-type: incremental')).toContain('Run once with backup-type: full');
  });

  it('if-running: fail with a running job: the run would stop now', async () => {
    const collection = env.collection();
    env.cluster.engine.setJobDuration(60_000);
    let jobId: string | undefined;
    try {
      const started = await runScenario(env, { inputs: env.inputs({ collection, wait: 'false' }) });
      jobId = started.outputs['job-id'];
      expect(jobId).toBeDefined();
      // Once it has taken its lock, paused, it writes nothing more while the dry run looks; it is still unfinished.
      const path = collection.replace(`s3://${BUCKET}/`, '');
      await until(
        () => env.s3.listKeys(BUCKET, path).some((k) => k.includes('BACKUP-LOCK')),
        10_000,
        'the lock',
      );
      env.cluster.engine.pauseJob(jobId!);
      const r = await dryRun(env, { inputs: env.inputs({ collection, 'if-running': 'fail' }) });
      expectFailed(r, ['if-running: fail']);
      expect(row(r.summary, 'if-running: fail')).toContain(`backup job(s) ${jobId} (paused)`);
      // attach or start would go on: not a failure.
      const attach = await dryRun(env, { inputs: env.inputs({ collection, 'if-running': 'attach' }) });
      expect(attach.code).toBe(0);
    } finally {
      env.cluster.engine.setJobDuration(200);
      if (jobId) env.cluster.engine.failJob(jobId, 'test over');
    }
  });

  it('several failures at once: every one is reported', async () => {
    const nodes = env.cluster.engine.more.externalCheck.nodeList.map((n) => ({ ...n }));
    env.cluster.engine.more.externalCheck.setUnreachable(3);
    try {
      const r = await dryRun(env, {
        inputs: env.inputs({
          'connection-string': env.cluster.url('nobody'),
          collection: env.collection(),
          'backup-type': 'incremental',
          databases: 'shop',
        }),
      });
      const failed = failedRows(r);
      for (const name of [
        'BACKUP privileges of nobody',
        'backup-type: incremental',
        'Node access to the collection',
      ])
        expect(failed).toContain(name);
      if (profile !== '25.2') expect(failed).toContain('CANCEL JOB (cancel-on-abort, on-timeout: cancel)');
      expect(r.errors).toHaveLength(1);
      for (const name of failed) expect(r.errors[0]).toContain(name.replace(/\\/g, ''));
      expect(row(r.summary, 'BACKUP privileges of nobody')).toContain(
        '`GRANT BACKUP ON DATABASE "shop" TO "nobody";`',
      );
      expect(row(r.summary, 'BACKUP privileges of nobody')).toContain(
        '`GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO "nobody";`',
      );
    } finally {
      env.cluster.engine.more.externalCheck.setNodes(nodes);
    }
  });

  it('verify: restore without RESTORE: the GRANT to run; grant-to lists the grants it would run', async () => {
    const inputs = env.inputs({
      'connection-string': env.cluster.url('no_cancel'),
      collection: env.collection(),
      verify: 'restore',
      'cancel-on-abort': 'false',
      'on-timeout': 'leave',
    });
    const r = await dryRun(env, { inputs });
    expectFailed(r, ['verify: restore']);
    expect(row(r.summary, 'verify: restore')).toContain('`GRANT SYSTEM RESTORE TO "no_cancel";`');
    const granted = await dryRun(env, {
      inputs: { ...inputs, 'grant-to': 'no_cancel', 'grant-connection-string': env.cluster.url('root') },
    });
    expect(granted.code).toBe(0);
    expect(granted.summary).toContain('### GRANTs that grant-to would run (not run)');
    expect(granted.summary).toContain('GRANT SYSTEM RESTORE TO "no_cancel";');
  });

  it('text from outside stays text, and secrets stay out (passphrase, URI keys)', async () => {
    const nodes = env.cluster.engine.more.externalCheck.nodeList.map((n) => ({ ...n }));
    env.cluster.engine.more.externalCheck.setUnreachable(
      1,
      '| **bold** <img src=x> [l](http://e)\n::error::forged',
    );
    try {
      const r = await dryRun(env, {
        inputs: env.inputs({ collection: env.collection(), 'encryption-passphrase': 'pass-Phr@se/42+x' }),
      });
      expectFailed(r, ['Node access to the collection']);
      const line = row(r.summary, 'Node access to the collection');
      expect(line.split(/(?<!\\)\|/)).toHaveLength(5);
      expect(line).toContain('\\*\\*bold\\*\\* &lt;img src=x&gt; \\[l\\](http://e)');
      expect(r.stdout).not.toMatch(/^::error::forged/m);
      // The passphrase travels as a bind parameter and shows as (secret); the leak probe checks the rest.
      expect(r.summary).toMatch(/encryption_passphrase = \$\d/);
      expect(r.summary).toContain('= (secret)');
    } finally {
      env.cluster.engine.more.externalCheck.setNodes(nodes);
    }
  });
});

describe('dry run on 22.2 before 22.2.7 (no storage check)', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({
      profile: '22.2',
      version: 'CockroachDB CCL v22.2.5 (x86_64-pc-linux-gnu, built 2023/02/16 16:38:35, go1.19.4)',
      jobDurationMs: 200,
    });
  });
  afterAll(async () => env?.close());

  it('says plainly that node access is unchecked, and does not fail for it', async () => {
    const r = await dryRun(env, { inputs: env.inputs({ collection: env.collection() }) });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs.status).toBe('checked');
    expect(row(r.summary, 'Node access to the collection')).toMatch(
      /^\| ⏭️ skipped \|.*v22\.2\.5 does not parse the storage check: node access is unchecked/,
    );
  });
});

/** What a dry run may not change on a second cluster either: no job, no GRANT. */
function clusterState(c: TestCluster): string {
  return JSON.stringify([
    c.jobs().length,
    [...c.engine.users.values()].map((u) => [u.name, [...u.system.keys()].sort(), [...u.roleOptions].sort()]),
  ]);
}

describe.each(['22.2', '25.2'] as ProfileName[])('dry run on %s with the other connections', (profile) => {
  let env: E2eEnv;
  let verifier: TestCluster;
  let mismatched: TestCluster;
  const verifierUsers = [
    { name: 'root', password: 'v3rifier-root', admin: true },
    { name: 'restorer', password: 'r3storer-pass', systemPrivileges: ['RESTORE'] },
    { name: 'creator', password: 'cr3ator-pass', roleOptions: ['CREATEDB'] },
    { name: 'plain', password: 'pl4in-pass' },
  ];
  beforeAll(async () => {
    env = await startE2eEnv({
      profile,
      jobDurationMs: 200,
      databases: ['defaultdb', 'shop'],
      users: [
        { name: 'root', password: 'rootpw-secret', admin: true },
        {
          name: 'no_cancel',
          password: 'n0-cancel-pass',
          systemPrivileges: ['BACKUP', 'EXTERNALIOIMPLICITACCESS', 'RESTORE'],
          roleOptions: ['VIEWCLUSTERSETTING'],
        },
        { name: 'helper', password: 'h3lper-pass', roleOptions: ['VIEWCLUSTERSETTING'] },
      ],
    });
    verifier = await startTestCluster({ profile, users: verifierUsers });
    // 25.2 cannot restore a 22.2 backup, nor 23.2 a 25.2 one (restoreVersionRefusal).
    mismatched = await startTestCluster({
      profile: profile === '22.2' ? '25.2' : '23.2',
      users: [{ name: 'root', password: 'm1smatch-root', admin: true }],
    });
  });
  afterAll(async () => {
    await verifier?.close();
    await mismatched?.close();
    await env?.close();
  });

  const restoreRow = (user: string) =>
    `Restore check on verify-connection-string (${user}@127.0.0.1:${verifier.port})`.replace(/_/g, '\\_');

  it('verify-connection-string: connects, checks RESTORE there and lists the RESTORE statement', async () => {
    const before = clusterState(verifier);
    const base = env.inputs({
      collection: env.collection(),
      databases: 'shop',
      verify: 'restore',
      'verify-connection-string': verifier.url('restorer', { password: 'r3storer-pass' }),
    });
    const ok = await dryRun(env, { inputs: base });
    expect(ok.errors).toEqual([]);
    expect(ok.outputs.status).toBe('checked');
    expect(row(ok.summary, restoreRow('restorer'))).toMatch(
      /^\| ✅ passed \|.*can restore a backup taken on .*restorer holds RESTORE \(or CREATEDB\)/,
    );
    expect(ok.summary).toMatch(
      /RESTORE DATABASE "shop" FROM \$2 IN \$1 AS OF SYSTEM TIME '[^']+' WITH schema_only, verify_backup_table_data, new_db_name = 'crdb_backup_verify_<run id>_1', detached {2}-- \$1 = s3:\/\/[^ ]*AWS_SECRET_ACCESS_KEY=redacted/,
    );
    expect(ok.summary).toContain('-- the restore check on the verify-connection-string cluster');
    expect(verifier.statementLog.some((e) => /^SHOW SYSTEM GRANTS FOR/i.test(e.sql))).toBe(true);
    const creator = await dryRun(env, {
      inputs: { ...base, 'verify-connection-string': verifier.url('creator', { password: 'cr3ator-pass' }) },
    });
    expect(creator.code).toBe(0);
    // A user with neither: the GRANT to run on that cluster.
    const plain = await dryRun(env, {
      inputs: { ...base, 'verify-connection-string': verifier.url('plain', { password: 'pl4in-pass' }) },
    });
    expect(plain.code).toBe(1);
    expect(plain.outputs.status).toBe('error');
    const line = row(plain.summary, restoreRow('plain'));
    expect(line).toMatch(/^\| ❌ failed \|/);
    expect(line).toContain('run the statement below there');
    expect(line).toContain('`GRANT SYSTEM RESTORE TO "plain";`');
    expect(plain.errors[0]).toContain('Dry run: 1 of ');
    expect(verifier.statementLog.some((e) => /^(RESTORE|CREATE|DROP|GRANT)/i.test(e.sql))).toBe(false);
    expect(clusterState(verifier)).toEqual(before);
    // Masked first (::add-mask::), never printed otherwise.
    for (const r of [ok, creator, plain]) {
      const printed = r.stdout.split('\n').filter((l) => !l.startsWith('::add-mask::'));
      expect([...printed, r.summary].join('\n')).not.toMatch(/r3storer-pass|pl4in-pass/);
      expect(r.stdout).toContain('::add-mask::');
    }
  });

  it('verify-connection-string on a version that cannot restore this backup: refused with the rule', async () => {
    const r = await dryRun(env, {
      inputs: env.inputs({
        collection: env.collection(),
        verify: 'restore',
        'verify-connection-string': mismatched.url('root', { password: 'm1smatch-root' }),
      }),
    });
    expect(r.code).toBe(1);
    const line = r.summary.split('\n').find((l) => l.includes('Restore check on verify-connection-string'));
    expect(line).toMatch(
      /^\| ❌ failed \|.*verify-connection-string: CockroachDB v\d+\.\d+\.\d+ (cannot restore|restores backups from)/,
    );
    expect(mismatched.jobs()).toEqual([]);
  });

  it('grant-connection-string: must be an admin; a missing CONTROLJOB passes only if it could cancel', async () => {
    const inputs = env.inputs({
      'connection-string': env.cluster.url('no_cancel'),
      collection: env.collection(),
      'grant-to': 'no_cancel',
    });
    const cancel = 'CANCEL JOB (cancel-on-abort, on-timeout: cancel)';
    const admin = await dryRun(env, {
      inputs: { ...inputs, 'grant-connection-string': env.cluster.url('root') },
    });
    expect(admin.errors).toEqual([]);
    expect(row(admin.summary, 'grant-connection-string (root)')).toMatch(
      /^\| ✅ passed \|.*root is an admin/,
    );
    expect(row(admin.summary, cancel)).toMatch(/^\| ✅ passed \|/);
    expect(admin.summary).toContain('### GRANTs that grant-to would run (not run)');
    expect(admin.summary).toContain('GRANT SYSTEM BACKUP TO "no_cancel";');
    const helper = await dryRun(env, {
      inputs: { ...inputs, 'grant-connection-string': env.cluster.url('helper') },
    });
    expect(helper.code).toBe(1);
    const line = row(helper.summary, 'grant-connection-string (helper)');
    expect(line).toMatch(/^\| ❌ failed \|.*helper is not an admin/);
    expect(line).toContain('`GRANT admin TO "helper";`');
    // The GRANTs are still listed, unchanged.
    expect(helper.summary).toContain('GRANT SYSTEM BACKUP TO "no_cancel";');
    if (profile === '25.2') {
      expect(row(helper.summary, cancel)).toMatch(/^\| ✅ passed \|.*owners may cancel/);
    } else {
      // grant-to covers the run's user here; without grant-to the retry on a non-admin does not count.
      const noGrant = await dryRun(env, {
        inputs: env.inputs({
          'connection-string': env.cluster.url('no_cancel'),
          collection: env.collection(),
          'grant-connection-string': env.cluster.url('helper'),
        }),
      });
      expect(row(noGrant.summary, cancel)).toMatch(/^\| ❌ failed \|.*helper may not cancel it either/);
      const noGrantAdmin = await dryRun(env, {
        inputs: env.inputs({
          'connection-string': env.cluster.url('no_cancel'),
          collection: env.collection(),
          'grant-connection-string': env.cluster.url('root'),
        }),
      });
      expect(row(noGrantAdmin.summary, cancel)).toMatch(/^\| ✅ passed \|.*root, who may cancel it/);
    }
  });
});
