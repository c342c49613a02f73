/**
 * Self-tests of the test cluster with the real `pg` client and the S3 test
 * server: each statement and rule the action relies on, per version profile
 * where behaviour differs.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from '../s3/server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../s3/server.js';
import type { ProfileName, TestCluster } from './index.js';
import { PROFILE_NAMES, startTestCluster } from './index.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bk'] });
});
afterAll(async () => s3?.close());

const clients: pg.Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
});

async function connect(cluster: TestCluster, user = 'root', password?: string): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString: cluster.url(user, password !== undefined ? { password } : {}),
    types: { getTypeParser: () => (v: string) => v } as never,
  });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

const uri = (path: string, extra = '') =>
  `s3://bk/${path}?AWS_ACCESS_KEY_ID=${TEST_S3_CREDENTIAL.accessKeyId}&AWS_SECRET_ACCESS_KEY=${encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey)}&AWS_ENDPOINT=${encodeURIComponent(s3.endpoint)}${extra}`;

async function waitJob(c: pg.Client, id: string): Promise<Record<string, string>> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await c.query('SELECT status, error FROM crdb_internal.jobs WHERE job_id = $1', [id]);
    if (['succeeded', 'failed', 'canceled'].includes(rows[0]?.status)) return rows[0];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('job did not end');
}

describe.each(PROFILE_NAMES)('profile %s', (profile: ProfileName) => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ profile, jobDurationMs: 300 });
  });
  afterAll(async () => cluster?.close());
  const pathStyle = ['24.3', '25.2'].includes(profile) ? '&AWS_USE_PATH_STYLE=true' : '';

  it('reports its version in version(), SHOW crdb_version and the crdb_version ParameterStatus', async () => {
    const c = await connect(cluster);
    const { rows } = await c.query('SELECT version()');
    expect(rows[0].version).toMatch(
      new RegExp(`^CockroachDB CCL v${profile.replace('.', '\\.')}\\.\\d+ \\(`),
    );
    expect((await c.query('SHOW crdb_version')).rows[0].crdb_version).toBe(rows[0].version);
    const raw = new pg.Client({ connectionString: cluster.url('root') });
    const params: Record<string, string> = {};
    (raw as unknown as { connection: NodeJS.EventEmitter }).connection.on(
      'parameterStatus',
      (m: { parameterName: string; parameterValue: string }) => (params[m.parameterName] = m.parameterValue),
    );
    clients.push(raw);
    await raw.connect();
    expect(params.crdb_version).toBe(rows[0].version);
    expect(params.server_version).toBe('13.0.0');
  });

  it('runs a detached backup that writes the collection layout, BACKUP_MANIFEST last', async () => {
    const c = await connect(cluster);
    const { rows, fields } = await c.query(`BACKUP INTO $1 AS OF SYSTEM TIME '-1s' WITH detached`, [
      uri(`p${profile}`, pathStyle),
    ]);
    expect(fields.map((f) => [f.name, f.dataTypeID])).toEqual([['job_id', 20]]);
    const id = rows[0].job_id as string;
    expect(BigInt(id)).toBeGreaterThan(2n ** 53n);
    expect(await waitJob(c, id)).toMatchObject({ status: 'succeeded' });
    const keys = s3.listKeys('bk', `p${profile}/`);
    const full = keys.find((k) => /\/\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2}\/BACKUP_MANIFEST$/.test(k));
    expect(full).toBeDefined();
    expect(keys.some((k) => /BACKUP-LOCK-\d+$/.test(k))).toBe(true);
    expect(keys.some((k) => k.includes('/metadata/latest/LATEST-'))).toBe(true);
    const puts = s3.requests.filter(
      (r) => r.op === 'PutObject' && r.key?.startsWith(full!.replace(/BACKUP_MANIFEST$/, '')),
    );
    expect(puts.at(-1)?.key).toBe(full);
    const backups = await c.query('SHOW BACKUPS IN $1', [uri(`p${profile}`, pathStyle)]);
    expect(backups.rows).toHaveLength(1);
  });

  it('describes jobs with this version’s options format and redacts the secret', async () => {
    const c = await connect(cluster);
    const { rows } = await c.query(`BACKUP INTO $1 AS OF SYSTEM TIME '-1s' WITH detached, revision_history`, [
      uri(`d${profile}`, pathStyle),
    ]);
    const job = await c.query('SELECT description FROM crdb_internal.jobs WHERE job_id = $1', [
      rows[0].job_id,
    ]);
    const d = job.rows[0].description as string;
    expect(d).toContain('AWS_SECRET_ACCESS_KEY=redacted');
    expect(d).not.toContain(encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey));
    if (['22.2', '23.1'].includes(profile)) expect(d).toMatch(/WITH revision_history = true, detached$/);
    else expect(d).toMatch(/WITH OPTIONS \(revision_history = true, detached\)$/);
  });

  it('answers SHOW JOB with this version’s columns and time types', async () => {
    const c = await connect(cluster);
    const { rows } = await c.query(`BACKUP INTO $1 WITH detached`, [uri(`j${profile}`, pathStyle)]);
    const r = await c.query('SHOW JOB $1', [rows[0].job_id]);
    const names = r.fields.map((f) => f.name);
    const created = r.fields.find((f) => f.name === 'created')!;
    expect(created.dataTypeID).toBe(['22.2', '23.1'].includes(profile) ? 1114 : 1184);
    if (['22.2', '23.1', '23.2'].includes(profile)) expect(names).toContain('num_runs');
    else {
      expect(names).not.toContain('num_runs');
      expect(r.rows[0].created).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\+00)?$/);
    }
  });

  it('rejects AWS_USE_PATH_STYLE where the version does not know it', async () => {
    const c = await connect(cluster);
    const { rows } = await c.query(`BACKUP INTO $1 WITH detached`, [
      uri(`u${profile}`, '&AWS_USE_PATH_STYLE=true'),
    ]);
    const end = await waitJob(c, rows[0].job_id);
    if (['22.2', '23.1', '23.2', '24.1'].includes(profile)) {
      expect(end).toMatchObject({
        status: 'failed',
        error: 'unknown S3 query parameters: AWS_USE_PATH_STYLE',
      });
    } else expect(end.status).toBe('succeeded');
  });

  it('needs an enterprise licence for revision_history before 24.3', async () => {
    cluster.engine.setLicense(false);
    try {
      const c = await connect(cluster);
      const q = c.query(`BACKUP INTO $1 WITH detached, revision_history`, [uri(`l${profile}`, pathStyle)]);
      if (['24.3', '25.2'].includes(profile)) await expect(q).resolves.toBeDefined();
      else
        await expect(q).rejects.toMatchObject({
          code: 'XXC02',
          message: expect.stringContaining('requires an enterprise license'),
        });
    } finally {
      cluster.engine.setLicense(true);
    }
  });

  it('lets a non-admin owner cancel its own job only from 25.1', async () => {
    cluster.engine.addUser({
      name: `u${profile.replace('.', '')}`,
      password: 'pw-1234',
      systemPrivileges: ['BACKUP', 'EXTERNALIOIMPLICITACCESS'],
    });
    const c = await connect(cluster, `u${profile.replace('.', '')}`, 'pw-1234');
    cluster.engine.setJobDuration(10_000);
    const { rows } = await c.query(`BACKUP INTO $1 WITH detached`, [uri(`c${profile}`, pathStyle)]);
    cluster.engine.setJobDuration(300);
    const cancel = c.query('CANCEL JOB $1', [rows[0].job_id]);
    if (profile === '25.2') await expect(cancel).resolves.toMatchObject({ command: 'CANCEL' });
    else if (profile === '22.2')
      await expect(cancel).rejects.toMatchObject({
        code: '42501',
        message: expect.stringMatching(/does not have CONTROLJOB privilege/),
      });
    else
      await expect(cancel).rejects.toMatchObject({
        code: '42501',
        message: expect.stringMatching(/does not have privileges for job/),
      });
    cluster.engine.cancelJobAsOtherUser(rows[0].job_id);
  });
});

describe('statements and rules on 25.2', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ profile: '25.2', jobDurationMs: 2500, whenCompleteRecheckMs: 200 });
  });
  afterAll(async () => cluster?.close());

  it('ends SHOW JOB WHEN COMPLETE with 57014 at the statement timeout, and returns a finished job', async () => {
    const c = await connect(cluster);
    const { rows } = await c.query(`BACKUP INTO $1 WITH detached`, [uri('wc', '&AWS_USE_PATH_STYLE=true')]);
    await c.query('SET statement_timeout = 400');
    const t0 = Date.now();
    await expect(c.query('SHOW JOB WHEN COMPLETE $1', [rows[0].job_id])).rejects.toMatchObject({
      code: '57014',
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    await c.query("SET statement_timeout = '10s'");
    const done = await c.query('SHOW JOB WHEN COMPLETE $1', [rows[0].job_id]);
    expect(done.rows[0].status).toBe('succeeded');
    expect((await c.query('SHOW JOB WHEN COMPLETE $1', ['1'])).rows).toHaveLength(0);
  });

  it('waits for several jobs with SHOW JOBS WHEN COMPLETE SELECT …', async () => {
    const c = await connect(cluster);
    const a = (await c.query(`BACKUP INTO $1 WITH detached`, [uri('wa', '&AWS_USE_PATH_STYLE=true')])).rows[0]
      .job_id;
    const b = (await c.query(`BACKUP INTO $1 WITH detached`, [uri('wb', '&AWS_USE_PATH_STYLE=true')])).rows[0]
      .job_id;
    await c.query("SET statement_timeout = '20s'");
    const r = await c.query(
      `SHOW JOBS WHEN COMPLETE SELECT job_id FROM crdb_internal.jobs WHERE job_id IN (${a}, ${b})`,
    );
    expect(r.rows.map((x) => x.status)).toEqual(['succeeded', 'succeeded']);
  });

  it('never returns WHEN COMPLETE for a paused job', async () => {
    const c = await connect(cluster);
    const { rows } = await c.query(`BACKUP INTO $1 WITH detached`, [uri('pz', '&AWS_USE_PATH_STYLE=true')]);
    await c.query('PAUSE JOB $1', [rows[0].job_id]);
    await c.query('SET statement_timeout = 700');
    await expect(c.query('SHOW JOB WHEN COMPLETE $1', [rows[0].job_id])).rejects.toMatchObject({
      code: '57014',
    });
    await c.query('CANCEL JOB $1', [rows[0].job_id]);
  });

  it('applies the cancel state rules with 25.2 wording', async () => {
    const c = await connect(cluster);
    const { rows } = await c.query(`BACKUP INTO $1 WITH detached`, [uri('st', '&AWS_USE_PATH_STYLE=true')]);
    await waitJob(c, rows[0].job_id);
    await expect(c.query('CANCEL JOB $1', [rows[0].job_id])).rejects.toThrow(
      'job with state succeeded cannot be requested to be canceled',
    );
    await expect(c.query('CANCEL JOB 42')).rejects.toThrow('job with ID 42 does not exist');
  });

  it('fails the job, not the statement, when the S3 secret is wrong or the bucket is missing', async () => {
    const c = await connect(cluster);
    const bad = (
      await c.query(`BACKUP INTO $1 WITH detached`, [
        uri('x', '&AWS_USE_PATH_STYLE=true').replace(
          encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey),
          'nope',
        ),
      ])
    ).rows[0].job_id;
    expect(await waitJob(c, bad)).toMatchObject({
      status: 'failed',
      error: expect.stringContaining('SignatureDoesNotMatch'),
    });
    const missing = (
      await c.query(`BACKUP INTO $1 WITH detached`, [
        uri('x', '&AWS_USE_PATH_STYLE=true').replace('s3://bk/', 's3://nobucket/'),
      ])
    ).rows[0].job_id;
    expect(await waitJob(c, missing)).toMatchObject({
      status: 'failed',
      error: expect.stringContaining('NoSuchBucket'),
    });
  });

  it('checks privileges with CockroachDB’s texts; GRANT is idempotent; a missing role is 42704', async () => {
    const root = await connect(cluster);
    const user = await connect(cluster, 'backup_user');
    await expect(
      user.query('BACKUP INTO $1 WITH detached', [uri('priv', '&AWS_USE_PATH_STYLE=true')]),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('does not have BACKUP system privilege'),
    });
    await root.query('GRANT SYSTEM BACKUP TO backup_user');
    await root.query('GRANT SYSTEM BACKUP TO backup_user');
    await expect(
      user.query('BACKUP INTO $1 WITH detached', [uri('priv', '&AWS_USE_PATH_STYLE=true')]),
    ).rejects.toMatchObject({
      message: expect.stringContaining('EXTERNALIOIMPLICITACCESS'),
    });
    await expect(root.query('GRANT SYSTEM BACKUP TO ghost')).rejects.toMatchObject({
      code: '42704',
      message: 'role/user "ghost" does not exist',
    });
    const grants = await root.query('SHOW SYSTEM GRANTS FOR backup_user');
    expect(grants.rows.map((r) => r.privilege_type)).toEqual(['BACKUP']);
  });

  it('lists a chain with SHOW BACKUP FROM, and check_files finds a missing file', async () => {
    const c = await connect(cluster);
    const u = uri('chain', '&AWS_USE_PATH_STYLE=true');
    await waitJob(
      c,
      (await c.query(`BACKUP INTO $1 AS OF SYSTEM TIME '-2s' WITH detached`, [u])).rows[0].job_id,
    );
    const [full] = (await c.query('SHOW BACKUPS IN $1', [u])).rows.map((r) => r.path as string);
    await waitJob(
      c,
      (await c.query(`BACKUP INTO LATEST IN $1 AS OF SYSTEM TIME '-1s' WITH detached`, [u])).rows[0].job_id,
    );
    const chain = await c.query('SHOW BACKUP FROM $1 IN $2', [full, u]);
    expect(new Set(chain.rows.map((r) => r.backup_type))).toEqual(new Set(['full', 'incremental']));
    const dataKey = s3.listKeys('bk', `chain${full}/data/`)[0]!;
    s3.deleteObject('bk', dataKey);
    await expect(c.query('SHOW BACKUP FROM $1 IN $2 WITH check_files', [full, u])).rejects.toThrow(
      /The following files are missing from the backup/,
    );
  });

  it('fails an incremental whose targets the chain does not hold, as the backup job does', async () => {
    const c = await connect(cluster);
    const u = uri('targets', '&AWS_USE_PATH_STYLE=true');
    const first = await c.query(`BACKUP DATABASE shop INTO $1 AS OF SYSTEM TIME '-3s' WITH detached`, [u]);
    expect((await waitJob(c, first.rows[0].job_id)).status).toBe('succeeded');
    const [full] = (await c.query('SHOW BACKUPS IN $1', [u])).rows.map((r) => r.path as string);
    // The statement is accepted (detached): the job fails when it resolves its manifest.
    const wider = await c.query(
      `BACKUP DATABASE shop, defaultdb INTO $2 IN $1 AS OF SYSTEM TIME '-2s' WITH detached`,
      [u, full],
    );
    expect(await waitJob(c, wider.rows[0].job_id)).toMatchObject({
      status: 'failed',
      error: 'previous backup does not contain the complete database "defaultdb"',
    });
    const same = await c.query(`BACKUP DATABASE shop INTO $2 IN $1 AS OF SYSTEM TIME '-1s' WITH detached`, [
      u,
      full,
    ]);
    expect((await waitJob(c, same.rows[0].job_id)).status).toBe('succeeded');

    const uc = uri('targets-cluster', '&AWS_USE_PATH_STYLE=true');
    await waitJob(
      c,
      (await c.query(`BACKUP INTO $1 AS OF SYSTEM TIME '-2s' WITH detached`, [uc])).rows[0].job_id,
    );
    const onCluster = await c.query(
      `BACKUP DATABASE shop INTO LATEST IN $1 AS OF SYSTEM TIME '-1s' WITH detached`,
      [uc],
    );
    expect(await waitJob(c, onCluster.rows[0].job_id)).toMatchObject({
      status: 'failed',
      error: 'cannot append a backup of specific tables or databases to a cluster backup',
    });
  });

  it('moves its clock: now(), and the end time of a backup taken relative to it', async () => {
    const c = await connect(cluster);
    const before = Date.parse((await c.query('SELECT now() AS now')).rows[0].now);
    cluster.moveClock(8 * 86_400_000);
    try {
      const after = Date.parse((await c.query('SELECT now() AS now')).rows[0].now);
      expect(after - before).toBeGreaterThanOrEqual(8 * 86_400_000);
      expect(after - before).toBeLessThan(8 * 86_400_000 + 60_000);
    } finally {
      cluster.moveClock(-8 * 86_400_000);
    }
  });

  it('shows sessions by application_name, and keeps a lost-answer session for a while', async () => {
    const c = await connect(cluster);
    cluster.engine.loseNextBackupAnswer({ lingerMs: 500 });
    const lost = new pg.Client({ connectionString: cluster.url('root'), application_name: 'lost-one' });
    lost.on('error', () => undefined);
    await lost.connect();
    const before = cluster.jobs().length;
    await expect(
      lost.query('BACKUP INTO $1 WITH detached', [uri('lost', '&AWS_USE_PATH_STYLE=true')]),
    ).rejects.toThrow();
    expect(cluster.jobs()).toHaveLength(before + 1);
    const q =
      'SELECT session_id, application_name FROM crdb_internal.cluster_sessions WHERE application_name = $1';
    expect((await c.query(q, ['lost-one'])).rows).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 700));
    expect((await c.query(q, ['lost-one'])).rows).toHaveLength(0);
  });

  it('answers anything else with 42601', async () => {
    const c = await connect(cluster);
    await expect(c.query('CREATE TABLE t (a INT)')).rejects.toMatchObject({ code: '42601' });
    // An error in the extended protocol skips to Sync; the connection stays usable.
    expect((await c.query('SELECT version()')).rows).toHaveLength(1);
  });
});

describe('authentication', () => {
  it.each(['cleartext', 'md5', 'scram-sha-256'] as const)(
    '%s accepts the right password and refuses a wrong one with 28P01',
    async (auth) => {
      const cluster = await startTestCluster({ auth });
      try {
        const ok = await connect(cluster);
        expect((await ok.query('SELECT version()')).rows).toHaveLength(1);
        await expect(connect(cluster, 'root', 'wrong')).rejects.toMatchObject({ code: '28P01' });
      } finally {
        await cluster.close();
      }
    },
  );
});
