/**
 * Self-tests of CHECK EXTERNAL CONNECTION / SHOW BACKUP CONNECTION (external-check.ts): the form per version, columns and
 * types, simulated nodes with localities, an unreachable node, the test object written and removed
 * through the S3 server, and the privileges on the location.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from '../s3/server.js';
import { startS3Server } from '../s3/server.js';
import type { ProfileName, TestCluster } from './index.js';
import { startTestCluster } from './index.js';
import { Clients, pathStyleFor, s3Uri } from './selftest-helpers.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bk'] });
});
afterAll(async () => s3?.close());
const clients = new Clients();
afterEach(() => clients.closeAll());

/** The form each version parses (external-check.ts): CHECK EXTERNAL CONNECTION from 25.1. */
const FORMS: [ProfileName, string | undefined, string][] = [
  ['22.2', undefined, 'v22.2.6'],
  ['22.2', 'SHOW BACKUP CONNECTION', 'v22.2.19'],
  ['23.1', 'SHOW BACKUP CONNECTION', 'v23.1.11'],
  ['24.3', 'SHOW BACKUP CONNECTION', 'v24.3.5'],
  ['25.2', 'CHECK EXTERNAL CONNECTION', 'v25.2.1'],
];

describe.each(FORMS)('the storage check statement on %s (%s, %s)', (profile, form, version) => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({
      profile,
      version: `CockroachDB CCL ${version} (x86_64-pc-linux-gnu)`,
    });
  });
  afterAll(async () => cluster?.close());

  it('answers only its own form; the other is a syntax error', async () => {
    const c = await clients.connect(cluster);
    const uri = s3Uri(s3, `forms${version}`, pathStyleFor(profile));
    const check = c.query(`CHECK EXTERNAL CONNECTION $1 WITH transfer = '1KiB'`, [uri]);
    const show = c.query(`SHOW BACKUP CONNECTION $1 WITH transfer = '1KiB'`, [uri]);
    if (form === 'CHECK EXTERNAL CONNECTION') expect((await check).rows).toHaveLength(3);
    else
      await expect(check).rejects.toMatchObject({
        code: '42601',
        message: 'at or near "check": syntax error',
      });
    if (form === 'SHOW BACKUP CONNECTION') expect((await show).rows).toHaveLength(3);
    else
      await expect(show).rejects.toMatchObject({
        code: '42601',
        message: 'at or near "connection": syntax error',
      });
    expect(s3.listKeys('bk', `forms${version}/`)).toEqual([]);
  });
});

it('takes its nodes from startTestCluster({ nodes })', async () => {
  const cluster = await startTestCluster({
    profile: '25.2',
    nodes: [
      { id: 7, locality: 'region=eu-central1' },
      { id: 9, locality: 'region=eu-west2', unreachable: 'closing after writing: upload failed: timeout' },
    ],
  });
  try {
    const c = await clients.connect(cluster);
    const r = await c.query(`CHECK EXTERNAL CONNECTION $1 WITH transfer = '1KiB'`, [
      s3Uri(s3, 'opt-nodes', pathStyleFor('25.2')),
    ]);
    expect(r.rows.map((x) => [x.node, x.locality, x.ok, x.error])).toEqual([
      ['7', 'region=eu-central1', 't', ''],
      ['9', 'region=eu-west2', 'f', 'closing after writing: upload failed: timeout'],
    ]);
  } finally {
    await clients.closeAll();
    await cluster.close();
  }
});

describe.each([
  ['23.2', 'SHOW BACKUP CONNECTION'],
  ['25.2', 'CHECK EXTERNAL CONNECTION'],
] as [ProfileName, string][])('%s: %s', (profile, STMT) => {
  let cluster: TestCluster;
  const ps = pathStyleFor(profile);
  beforeAll(async () => {
    cluster = await startTestCluster({ profile });
    cluster.engine.addUser({ name: 'plain', password: 'pw-1' });
    cluster.engine.addUser({ name: 'io', password: 'pw-2', systemPrivileges: ['EXTERNALIOIMPLICITACCESS'] });
  });
  afterEach(() =>
    cluster.engine.more.externalCheck.setNodes([
      { id: 1, locality: 'region=us-east1,zone=us-east1-b' },
      { id: 2, locality: 'region=us-east1,zone=us-east1-c' },
      { id: 3, locality: 'region=us-west1,zone=us-west1-a' },
    ]),
  );
  afterAll(async () => cluster?.close());

  it('has every node write, read and delete a test file, and leaves nothing behind', async () => {
    const c = await clients.connect(cluster);
    s3.resetCounts();
    const r = await c.query(`${STMT} $1 WITH transfer = '1KiB'`, [s3Uri(s3, `chk${profile}`, ps)]);
    expect(r.fields.map((f) => [f.name, f.dataTypeID])).toEqual([
      ['node', 20],
      ['locality', 25],
      ['ok', 16],
      ['error', 25],
      ['transferred', 25],
      ['read_speed', 25],
      ['write_speed', 25],
      ['can_delete', 16],
    ]);
    expect(r.rows.map((x) => [x.node, x.locality, x.ok, x.error, x.transferred, x.can_delete])).toEqual([
      ['1', 'region=us-east1,zone=us-east1-b', 't', '', '1.0 KiB', 't'],
      ['2', 'region=us-east1,zone=us-east1-c', 't', '', '1.0 KiB', 't'],
      ['3', 'region=us-west1,zone=us-west1-a', 't', '', '1.0 KiB', 't'],
    ]);
    for (const row of r.rows) expect(row.read_speed).toMatch(/^\d+\.\d\d MiB\/s$/);
    expect(s3.counts.PutObject).toBe(3);
    expect(s3.counts.DeleteObject).toBe(3);
    expect(
      s3.requests
        .filter((q) => q.op === 'PutObject')
        .every((q) => /\/cockroach-storage-test-\d+$/.test(q.key ?? '')),
    ).toBe(true);
    expect(s3.listKeys('bk', `chk${profile}/`)).toEqual([]);
  });

  it('reports a node that cannot reach the bucket, and one row per concurrent worker', async () => {
    const c = await clients.connect(cluster);
    cluster.engine.more.externalCheck.setNodes([
      { id: 1, locality: 'region=eu-west1' },
      { id: 4, locality: 'region=ap-south1' },
    ]);
    cluster.engine.more.externalCheck.setUnreachable(4);
    const r = await c.query(`${STMT} $1 WITH transfer = '2KiB', concurrently = 2`, [
      s3Uri(s3, `chk2${profile}`, ps),
    ]);
    expect(r.rows.map((x) => [x.node, x.ok, x.can_delete])).toEqual([
      ['1', 't', 't'],
      ['1', 't', 't'],
      ['4', 'f', 'f'],
      ['4', 'f', 'f'],
    ]);
    expect(r.rows[2].error).toMatch(
      /^closing after writing: upload failed: RequestError: send request failed/,
    );
    expect(r.rows[2].transferred).toBe('2.0 KiB');
    // humanizeutil.DataRate: no bytes read is `0`; bytes written in no recorded time is `inf`.
    expect([r.rows[2].read_speed, r.rows[2].write_speed]).toEqual(['0', 'inf']);
    expect(s3.listKeys('bk', `chk2${profile}/`)).toEqual([]);
  });

  it('restores a node with setReachable(id) or an explicit undefined error', async () => {
    const c = await clients.connect(cluster);
    const check = cluster.engine.more.externalCheck;
    check.setNodes([
      { id: 1, locality: 'region=eu-west1' },
      { id: 2, locality: 'region=ap-south1' },
    ]);
    const okByNode = async (prefix: string) =>
      (await c.query(`${STMT} $1 WITH transfer = '1KiB'`, [s3Uri(s3, prefix, ps)])).rows.map((x) => [
        x.node,
        x.ok,
      ]);
    check.setUnreachable(1);
    check.setUnreachable(2, 'dial tcp: lookup s3: no such host');
    expect(await okByNode(`re1${profile}`)).toEqual([
      ['1', 'f'],
      ['2', 'f'],
    ]);
    check.setUnreachable(1, undefined);
    check.setReachable(2);
    expect(await okByNode(`re2${profile}`)).toEqual([
      ['1', 't'],
      ['2', 't'],
    ]);
  });

  it('reports bad credentials per node instead of failing the statement', async () => {
    const c = await clients.connect(cluster);
    const bad = s3Uri(s3, `chk3${profile}`, ps).replace(
      /AWS_SECRET_ACCESS_KEY=[^&]+/,
      'AWS_SECRET_ACCESS_KEY=wrong',
    );
    const r = await c.query(`${STMT} $1 WITH transfer = '1KiB'`, [bad]);
    expect(r.rows.every((x) => x.ok === 'f' && /^closing after writing: upload failed: /.test(x.error))).toBe(
      true,
    );
  });

  it('needs EXTERNALIOIMPLICITACCESS for a custom endpoint, and USAGE on an external connection', async () => {
    const plain = await clients.connect(cluster, 'plain', { password: 'pw-1' });
    await expect(plain.query(`${STMT} $1`, [s3Uri(s3, 'p', ps)])).rejects.toMatchObject({
      code: '42501',
      message:
        'only users with the admin role or the EXTERNALIOIMPLICITACCESS system privilege are allowed to access the specified s3 URI',
    });
    const io = await clients.connect(cluster, 'io', { password: 'pw-2' });
    const ok = await io.query(`${STMT} $1 WITH transfer = '1KiB'`, [s3Uri(s3, `p${profile}`, ps)]);
    expect(ok.rows.every((x) => x.ok === 't')).toBe(true);
    const root = await clients.connect(cluster);
    await root.query(`CREATE EXTERNAL CONNECTION chk_conn AS '${s3Uri(s3, `ec${profile}`, ps)}'`);
    await expect(plain.query(`${STMT} 'external://chk_conn'`)).rejects.toMatchObject({
      code: '42501',
      message: 'user plain does not have USAGE privilege on external_connection chk_conn',
    });
  });
});
