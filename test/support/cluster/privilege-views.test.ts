/**
 * Self-tests of what a dry run reads (privilege-views.ts) and of BACKUP … WITH detached inside a
 * transaction (transactions.ts): a ROLLBACK leaves no job and nothing in the bucket, a COMMIT starts it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from '../s3/server.js';
import { startS3Server } from '../s3/server.js';
import type { ProfileName, TestCluster } from './index.js';
import { startTestCluster } from './index.js';
import { Clients, pathStyleFor, s3Uri, waitJob } from './selftest-helpers.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bk'] });
});
afterAll(async () => s3?.close());
const clients = new Clients();
afterEach(() => clients.closeAll());

describe.each(['22.2', '23.2', '25.2'] as ProfileName[])('privilege views on %s', (profile) => {
  let cluster: TestCluster;
  const ps = pathStyleFor(profile);
  beforeAll(async () => {
    cluster = await startTestCluster({ profile, jobDurationMs: 200 });
    cluster.engine.addUser({ name: 'ops', password: 'pw-1', roleOptions: ['CONTROLJOB', 'CREATEDB'] });
    cluster.engine.addUser({ name: 'viewer', password: 'pw-2', systemPrivileges: ['VIEWCLUSTERSETTING'] });
  });
  afterAll(async () => cluster?.close());

  it('lists role options with SHOW ROLES: a STRING in 22.2, a STRING[] from 23.1', async () => {
    const c = await clients.connect(cluster);
    const r = await c.query('SHOW ROLES');
    expect(r.fields.map((f) => [f.name, f.dataTypeID])).toEqual([
      ['username', 25],
      ['options', profile === '22.2' ? 25 : 1009],
      ['member_of', 1009],
    ]);
    const ops = r.rows.find((x) => x.username === 'ops');
    expect(ops.options).toBe(profile === '22.2' ? 'CONTROLJOB, CREATEDB' : '{CONTROLJOB,CREATEDB}');
    expect(r.rows.find((x) => x.username === 'root').member_of).toBe('{admin}');
  });

  it('shows database grants for a user and answers has_database_privilege', async () => {
    const c = await clients.connect(cluster);
    await c.query('GRANT BACKUP ON DATABASE shop TO ops');
    const r = await c.query('SHOW GRANTS ON DATABASE shop FOR ops');
    expect(r.fields.map((f) => f.name)).toEqual([
      'database_name',
      'grantee',
      'privilege_type',
      'is_grantable',
    ]);
    expect(r.rows).toEqual([
      { database_name: 'shop', grantee: 'ops', privilege_type: 'BACKUP', is_grantable: 'f' },
    ]);
    const has = (u: string, p: string) =>
      c.query('SELECT has_database_privilege($1, $2, $3) AS ok', [u, 'shop', p]).then((x) => x.rows[0].ok);
    expect(await has('ops', 'BACKUP')).toBe('t');
    expect(await has('ops', 'DROP')).toBe('f');
    expect(await has('root', 'DROP')).toBe('t');
    await expect(has('ops', 'FLY')).rejects.toMatchObject({ code: '22023' });
  });

  it('lets admins and VIEWCLUSTERSETTING holders read enterprise.license, and refuses others', async () => {
    const root = await clients.connect(cluster);
    expect(
      (await root.query('SHOW CLUSTER SETTING enterprise.license')).rows[0]['enterprise.license'],
    ).toMatch(/^crl-/);
    const viewer = await clients.connect(cluster, 'viewer', { password: 'pw-2' });
    expect((await viewer.query('SHOW CLUSTER SETTING enterprise.license')).rowCount).toBe(1);
    const ops = await clients.connect(cluster, 'ops', { password: 'pw-1' });
    await expect(ops.query('SHOW CLUSTER SETTING enterprise.license')).rejects.toMatchObject({
      code: '42501',
      message:
        "only users with either MODIFYCLUSTERSETTING or VIEWCLUSTERSETTING privileges are allowed to show cluster setting 'enterprise.license'",
    });
  });

  it('creates no job for BACKUP … WITH detached in a rolled-back transaction, and starts it on COMMIT', async () => {
    const c = await clients.connect(cluster);
    const uri = s3Uri(s3, `txn${profile}`, ps);
    const before = cluster.jobs().length;
    await c.query('BEGIN');
    const r = await c.query('BACKUP DATABASE shop INTO $1 WITH detached', [uri]);
    expect(r.rows[0].job_id).toMatch(/^\d+$/);
    const other = await clients.connect(cluster);
    expect(
      (await other.query('SELECT job_id FROM [SHOW JOBS] WHERE job_id = $1', [r.rows[0].job_id])).rows,
    ).toEqual([]);
    await c.query('ROLLBACK');
    await new Promise((res) => setTimeout(res, 400));
    expect(cluster.jobs().length).toBe(before);
    expect(s3.listKeys('bk', `txn${profile}/`)).toEqual([]);
    // A statement-time refusal surfaces inside the transaction too.
    await c.query('BEGIN');
    await expect(c.query('BACKUP DATABASE nosuch INTO $1 WITH detached', [uri])).rejects.toThrow(
      'database "nosuch" does not exist',
    );
    await c.query('ROLLBACK');
    await c.query('BEGIN');
    const kept = await c.query('BACKUP DATABASE shop INTO $1 WITH detached', [uri]);
    await c.query('COMMIT');
    expect((await waitJob(c, kept.rows[0].job_id)).status).toBe('succeeded');
    expect(cluster.jobs().length).toBe(before + 1);
  });
});
