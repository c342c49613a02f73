/**
 * Self-tests of RESTORE DATABASE … WITH schema_only, verify_backup_table_data, new_db_name, detached
 * (restore.ts), DROP DATABASE and the database lists (catalog.ts), and SHOW BACKUP's table rows
 * (backup-objects.ts), with the real `pg` client and the S3 test server.
 */
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from '../s3/server.js';
import { startS3Server } from '../s3/server.js';
import type { ProfileName, TestCluster } from './index.js';
import { startTestCluster } from './index.js';
import { Clients, pathStyleFor, s3Uri, waitFor, waitJob } from './selftest-helpers.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bk'] });
});
afterAll(async () => s3?.close());
const clients = new Clients();
afterEach(() => clients.closeAll());

const SHOP_TABLES = [
  { name: 'orders', rows: 120 },
  { name: 'customers', rows: 40 },
];
/** An absolute AOST literal `ms` ago, to the millisecond (what the action sends, shortened). */
const ago = (ms: number) => new Date(Date.now() - ms).toISOString().replace('T', ' ').replace('Z', '');
const VERIFY = 'schema_only, verify_backup_table_data';

interface Backed {
  uri: string;
  full: string;
  /** AOST literals of the layers, oldest first. */
  times: string[];
  prefix: string;
}

async function backup(
  c: pg.Client,
  uri: string,
  prefix: string,
  opts: { incrementals?: number; with?: string; params?: string[] } = {},
): Promise<Backed> {
  const times: string[] = [];
  const extra = opts.with ? `, ${opts.with}` : '';
  const t0 = ago(3000);
  const first = await c.query(
    `BACKUP DATABASE shop INTO $1 AS OF SYSTEM TIME '${t0}' WITH detached${extra}`,
    [uri, ...(opts.params ?? [])],
  );
  expect((await waitJob(c, first.rows[0].job_id)).status).toBe('succeeded');
  times.push(t0);
  const full = (await c.query('SHOW BACKUPS IN $1', [uri])).rows[0].path as string;
  for (let i = 0; i < (opts.incrementals ?? 0); i++) {
    const t = ago(2000 - i * 500);
    const inc = await c.query(
      `BACKUP DATABASE shop INTO LATEST IN $1 AS OF SYSTEM TIME '${t}' WITH detached${extra}`,
      [uri, ...(opts.params ?? [])],
    );
    expect((await waitJob(c, inc.rows[0].job_id)).status).toBe('succeeded');
    times.push(t);
  }
  return { uri, full, times, prefix };
}

const dataKeys = (b: Backed) => s3.listKeys('bk', `${b.prefix}/`).filter((k) => k.endsWith('.sst'));
const dataReads = (prefix: string) =>
  s3.requests.filter((r) => r.op === 'GetObject' && r.key?.startsWith(`${prefix}/`) && r.key.endsWith('.sst'))
    .length;

describe.each(['22.2', '23.2', '25.2'] as ProfileName[])('RESTORE on CockroachDB %s', (profile) => {
  let cluster: TestCluster;
  let n = 0;
  const ps = pathStyleFor(profile);
  const next = () => {
    const prefix = `r${profile}/${++n}`;
    return { prefix, uri: s3Uri(s3, prefix, ps) };
  };
  beforeAll(async () => {
    cluster = await startTestCluster({ profile, jobDurationMs: 200 });
    cluster.engine.catalog.setTables('shop', SHOP_TABLES);
    cluster.engine.addUser({ name: 'plain', password: 'pw-1' });
    cluster.engine.addUser({ name: 'creator', password: 'pw-2', roleOptions: ['CREATEDB'] });
    cluster.engine.addUser({ name: 'restorer', password: 'pw-3', systemPrivileges: ['RESTORE'] });
  });
  afterAll(async () => cluster?.close());

  it('runs a detached RESTORE job that reads every data file and creates the tables without rows', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix);
    const before = dataReads(prefix);
    const r = await c.query(
      `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = 'scratch_a', detached`,
      [b.full, uri],
    );
    expect(r.fields.map((f) => [f.name, f.dataTypeID])).toEqual([['job_id', 20]]);
    const id = r.rows[0].job_id as string;
    const shown = await c.query('SELECT job_type, status FROM [SHOW JOBS] WHERE job_id = $1', [id]);
    expect(shown.rows[0]).toMatchObject({ job_type: 'RESTORE' });
    const done = await c.query('SHOW JOB WHEN COMPLETE $1', [id]);
    expect(done.rows[0]).toMatchObject({ status: 'succeeded', fraction_completed: '1' });
    expect(dataReads(prefix) - before).toBe(dataKeys(b).length);
    const db = cluster.engine.catalog.list().find((d) => d.name === 'scratch_a');
    expect(db).toEqual({
      name: 'scratch_a',
      owner: 'root',
      tables: SHOP_TABLES.map((t) => ({ schema: 'public', name: t.name, rows: 0 })),
    });
    const desc = (await c.query('SELECT description FROM crdb_internal.jobs WHERE job_id = $1', [id])).rows[0]
      .description as string;
    const opts = `new_db_name = 'scratch_a', schema_only, verify_backup_table_data`;
    expect(desc).toBe(
      `RESTORE DATABASE shop FROM '${b.full}' IN '${uri.replace(/AWS_SECRET_ACCESS_KEY=[^&]+/, 'AWS_SECRET_ACCESS_KEY=redacted').replace(/^(s3:\/\/[^?]+)\?(.*)$/, (_m, base: string) => base)}` +
        desc.slice(desc.indexOf('?') === -1 ? desc.length : desc.indexOf('?'), desc.indexOf("' AS OF")) +
        `' AS OF SYSTEM TIME '${b.times[0]}'` +
        (profile === '22.2' ? ` WITH detached, ${opts}` : ` WITH OPTIONS (detached, ${opts})`),
    );
    expect(desc).not.toContain(encodeURIComponent('tEst/Secret'));
  });

  it('restores an incremental chain up to the chosen layer, reading only the layers up to it', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix, { incrementals: 2 });
    const perLayer = dataKeys(b).length / 3;
    let before = dataReads(prefix);
    const mid = await c.query(
      `RESTORE DATABASE shop FROM LATEST IN $1 AS OF SYSTEM TIME '${b.times[1]}' WITH ${VERIFY}, new_db_name = 'scratch_mid', detached`,
      [uri],
    );
    expect((await waitJob(c, mid.rows[0].job_id)).status).toBe('succeeded');
    expect(dataReads(prefix) - before).toBe(2 * perLayer);
    before = dataReads(prefix);
    const all = await c.query(
      `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[2]}' WITH ${VERIFY}, new_db_name = 'scratch_all', detached`,
      [b.full, uri],
    );
    expect((await waitJob(c, all.rows[0].job_id)).status).toBe('succeeded');
    expect(dataReads(prefix) - before).toBe(3 * perLayer);
  });

  it('refuses a time no layer covers, and a time inside a layer without revision_history', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix, { incrementals: 1 });
    const restore = (t: string) =>
      c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${t}' WITH ${VERIFY}, new_db_name = 'x1', detached`,
        [b.full, uri],
      );
    // After the last layer's end: no layer covers it.
    await expect(restore(ago(100))).rejects.toThrow(
      'invalid RESTORE timestamp: supplied backups do not cover requested time',
    );
    // Before the full backup's end: the full layer (start 0) covers it, but only at its end time.
    await expect(restore(ago(60_000))).rejects.toThrow(
      /^invalid RESTORE timestamp: restoring to arbitrary time requires that BACKUP for requested time be created with 'revision_history' option\. nearest backup time is \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.\d]* \+0000 UTC$/,
    );
    const inside = new Date(Date.parse(`${b.times[1]}Z`) - 100)
      .toISOString()
      .replace('T', ' ')
      .replace('Z', '');
    await expect(restore(inside)).rejects.toThrow(
      /^invalid RESTORE timestamp: restoring to arbitrary time requires that BACKUP for requested time be created with 'revision_history' option\. nearest BACKUP times are \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.\d]* \+0000 UTC or .* \+0000 UTC$/,
    );
    expect(cluster.jobs().filter((j) => j.description.startsWith('RESTORE') && j.uri === uri)).toEqual([]);
  });

  it('restores a time inside a layer taken with revision_history', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix, { incrementals: 1, with: 'revision_history' });
    const inside = new Date(Date.parse(`${b.times[1]}Z`) - 100)
      .toISOString()
      .replace('T', ' ')
      .replace('Z', '');
    const r = await c.query(
      `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${inside}' WITH ${VERIFY}, new_db_name = 'scratch_rev', detached`,
      [b.full, uri],
    );
    expect((await waitJob(c, r.rows[0].job_id)).status).toBe('succeeded');
  });

  it('fails the job on a missing data file and on a corrupt one, and leaves no database', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix);
    const [first, second] = dataKeys(b);
    s3.deleteObject('bk', first!);
    const r1 = await c.query(
      `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = 'scratch_missing', detached`,
      [b.full, uri],
    );
    const j1 = await waitJob(c, r1.rows[0].job_id);
    expect(j1.status).toBe('failed');
    expect(j1.error).toMatch(
      /^opening SSTs: NoSuchKey: The specified key does not exist\.\n\tstatus code: 404, .*: s3 object does not exist: external_storage: file doesn't exist$/,
    );
    expect(cluster.engine.databases.has('scratch_missing')).toBe(false);

    const { uri: uri2, prefix: prefix2 } = next();
    const b2 = await backup(c, uri2, prefix2);
    const key = dataKeys(b2)[1]!;
    s3.putObject('bk', key, Buffer.concat([s3.getObject('bk', key)!, Buffer.from('x')]));
    const r2 = await c.query(
      `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b2.times[0]}' WITH ${VERIFY}, new_db_name = 'scratch_corrupt', detached`,
      [b2.full, uri2],
    );
    const j2 = await waitJob(c, r2.rows[0].job_id);
    expect(j2.status).toBe('failed');
    expect(j2.error).toMatch(
      /^processing restore span entry: error reading backup file\npebble\/table: invalid table \d{6,} \(checksum mismatch at 0\/\d+\)$/,
    );
    expect(cluster.engine.databases.has('scratch_corrupt')).toBe(false);
    expect(second).toBeDefined();
  });

  it('checks the passphrase: missing, wrong, right, and on an unencrypted backup', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix, { with: 'encryption_passphrase = $2', params: ['s3cret-pass'] });
    const q = (opts: string, params: string[] = []) =>
      c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = 'scratch_enc', detached${opts}`,
        [b.full, uri, ...params],
      );
    await expect(q('')).rejects.toThrow(
      'file appears encrypted -- try specifying one of "encryption_passphrase" or "kms"',
    );
    await expect(q(', encryption_passphrase = $3', ['wrong'])).rejects.toThrow(
      'failed to decrypt — check passphrase/key: cipher: message authentication failed',
    );
    const ok = await q(', encryption_passphrase = $3', ['s3cret-pass']);
    const id = ok.rows[0].job_id as string;
    expect((await waitJob(c, id)).status).toBe('succeeded');
    const desc = cluster.jobs().find((j) => j.id === id)!.description;
    expect(desc).toContain("encryption_passphrase = '*****'");
    expect(desc).not.toContain('s3cret-pass');

    const plain = next();
    const p = await backup(c, plain.uri, plain.prefix);
    await expect(
      c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${p.times[0]}' WITH ${VERIFY}, new_db_name = 'y1', encryption_passphrase = $3`,
        [p.full, plain.uri, 'pw'],
      ),
    ).rejects.toThrow('could not find or read encryption information');
  });

  it('refuses at statement time: an existing name, a database not in the backup, options CockroachDB refuses', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix);
    const at = `AS OF SYSTEM TIME '${b.times[0]}'`;
    await expect(
      c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 ${at} WITH ${VERIFY}, new_db_name = 'defaultdb', detached`,
        [b.full, uri],
      ),
    ).rejects.toThrow('database "defaultdb" already exists');
    await expect(
      c.query(`RESTORE DATABASE shop FROM $1 IN $2 ${at} WITH ${VERIFY}, detached`, [b.full, uri]),
    ).rejects.toThrow('database "shop" already exists');
    await expect(
      c.query(`RESTORE DATABASE nosuch FROM $1 IN $2 ${at} WITH ${VERIFY}, detached`, [b.full, uri]),
    ).rejects.toThrow(
      'failed to resolve targets in the BACKUP location specified by the RESTORE statement, use SHOW BACKUP to find correct targets: database "nosuch" does not exist, or invalid RESTORE timestamp: supplied backups do not cover requested time',
    );
    await expect(
      c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 ${at} WITH verify_backup_table_data, new_db_name = 'z', detached`,
        [b.full, uri],
      ),
    ).rejects.toThrow('to set the verify_backup_table_data option, the schema_only option must be set');
    await expect(
      c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME $3 WITH ${VERIFY}, new_db_name = 'z', detached`,
        [b.full, uri, b.times[0]!],
      ),
    ).rejects.toMatchObject({ code: '42P18', message: 'could not determine data type of placeholder $3' });
    await c.query('BEGIN');
    await expect(
      c.query(`RESTORE DATABASE shop FROM $1 IN $2 ${at} WITH ${VERIFY}, new_db_name = 'z'`, [b.full, uri]),
    ).rejects.toThrow('RESTORE cannot be used inside a multi-statement transaction without DETACHED option');
    await c.query('ROLLBACK');
    expect(cluster.jobs().filter((j) => j.uri === uri && j.description.startsWith('RESTORE'))).toEqual([]);
  });

  it('checks privileges: RESTORE system privilege, else CREATEDB with a deprecation notice, else 42501', async () => {
    const root = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(root, uri, prefix);
    const stmt = (name: string) =>
      `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = '${name}', detached`;
    const plain = await clients.connect(cluster, 'plain', { password: 'pw-1' });
    await expect(plain.query(stmt('p1'), [b.full, uri])).rejects.toMatchObject({
      code: '42501',
      message: 'only users with the CREATEDB privilege can restore databases',
      hint: expect.stringContaining(
        'RESTORE DATABASE, user plain will exclusively require the RESTORE system privilege.',
      ),
    });
    // AWS_ENDPOINT needs EXTERNALIOIMPLICITACCESS for non-admins (as for BACKUP).
    cluster.engine.users.get('creator')!.system.set('EXTERNALIOIMPLICITACCESS', false);
    cluster.engine.users.get('restorer')!.system.set('EXTERNALIOIMPLICITACCESS', false);
    const creator = await clients.connect(cluster, 'creator', { password: 'pw-2' });
    const notices: string[] = [];
    creator.on('notice', (m) => notices.push(m.message ?? ''));
    const r1 = await creator.query(stmt('by_creator'), [b.full, uri]);
    expect((await waitJob(creator, r1.rows[0].job_id)).status).toBe('succeeded');
    expect(notices.join('\n')).toContain('will exclusively require the RESTORE system privilege');
    const restorer = await clients.connect(cluster, 'restorer', { password: 'pw-3' });
    const r2 = await restorer.query(stmt('by_restorer'), [b.full, uri]);
    expect((await waitJob(restorer, r2.rows[0].job_id)).status).toBe('succeeded');
    expect(cluster.engine.catalog.owner('by_restorer')).toBe('restorer');
    // The restorer owns its scratch database and may drop it; another non-admin may not.
    await expect(creator.query('DROP DATABASE by_restorer CASCADE')).rejects.toMatchObject({
      code: '42501',
      message: 'user creator does not have DROP privilege on database by_restorer',
    });
    await restorer.query('DROP DATABASE by_restorer CASCADE');
    expect(cluster.engine.databases.has('by_restorer')).toBe(false);
  });

  it('cancels a restore job: canceled, and no database appears', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix);
    cluster.engine.setJobDuration(20_000);
    try {
      const r = await c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = 'scratch_cancel', detached`,
        [b.full, uri],
      );
      const id = r.rows[0].job_id as string;
      await waitFor(c, id, (row) => row.started !== null, 'the restore to start');
      // While it runs, the database exists OFFLINE: not listed, not droppable, its name taken.
      await new Promise((res) => setTimeout(res, 100));
      const listed = await c.query('SELECT datname FROM pg_database WHERE datname = $1', ['scratch_cancel']);
      expect(listed.rows).toEqual([]);
      await expect(c.query('DROP DATABASE scratch_cancel CASCADE')).rejects.toMatchObject({
        code: '55000',
        message: 'database "scratch_cancel" is offline: restoring',
      });
      await expect(
        c.query(
          `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = 'scratch_cancel', detached`,
          [b.full, uri],
        ),
      ).rejects.toThrow('database "scratch_cancel" already exists');
      await c.query('CANCEL JOB $1', [id]);
      expect((await waitJob(c, id)).status).toBe('canceled');
      expect(cluster.jobs().find((j) => j.id === id)).toMatchObject({ type: 'RESTORE', status: 'canceled' });
      await new Promise((res) => setTimeout(res, 100));
      await expect(c.query('DROP DATABASE scratch_cancel CASCADE')).rejects.toMatchObject({ code: '3D000' });
    } finally {
      cluster.engine.setJobDuration(200);
    }
    expect(cluster.engine.databases.has('scratch_cancel')).toBe(false);
  });

  it('answers a blocking RESTORE with the job result row', async () => {
    const c = await clients.connect(cluster);
    const { uri, prefix } = next();
    const b = await backup(c, uri, prefix);
    const r = await c.query(
      `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = 'scratch_block'`,
      [b.full, uri],
    );
    expect(r.rows[0]).toMatchObject({ status: 'succeeded', fraction_completed: '1' });
    expect(r.fields.map((f) => f.name).slice(0, 4)).toEqual([
      'job_id',
      'status',
      'fraction_completed',
      'rows',
    ]);
  });
});

describe('DROP DATABASE, database lists and SHOW BACKUP objects (25.2)', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({
      profile: '25.2',
      jobDurationMs: 200,
      databases: ['defaultdb', 'shop', 'empty_db', 'full_db'],
    });
    cluster.engine.catalog.setTables('full_db', [{ name: 't1', rows: 3 }]);
    cluster.engine.catalog.setTables('shop', SHOP_TABLES);
  });
  afterAll(async () => cluster?.close());

  it('drops with CASCADE by default, refuses RESTRICT and sql_safe_updates on a non-empty database', async () => {
    const c = await clients.connect(cluster);
    await expect(c.query('DROP DATABASE full_db RESTRICT')).rejects.toMatchObject({
      code: '2BP01',
      message: 'database "full_db" is not empty and RESTRICT was specified',
    });
    await c.query('SET sql_safe_updates = true');
    await expect(c.query('DROP DATABASE full_db')).rejects.toMatchObject({
      code: '01000',
      message:
        'rejected (sql_safe_updates = true): DROP DATABASE on non-empty database without explicit CASCADE',
    });
    await c.query('DROP DATABASE full_db CASCADE');
    await c.query('DROP DATABASE empty_db');
    await expect(c.query('DROP DATABASE full_db CASCADE')).rejects.toMatchObject({
      code: '3D000',
      message: 'database "full_db" does not exist',
    });
    expect((await c.query('DROP DATABASE IF EXISTS full_db CASCADE')).command).toBe('DROP');
    expect(cluster.engine.catalog.list().map((d) => d.name)).toEqual(['defaultdb', 'shop']);
  });

  it('lists databases with SHOW DATABASES, [SHOW DATABASES] and pg_database', async () => {
    const c = await clients.connect(cluster);
    const all = await c.query('SHOW DATABASES');
    expect(all.fields.map((f) => f.name)).toEqual([
      'database_name',
      'owner',
      'primary_region',
      'secondary_region',
      'regions',
      'survival_goal',
    ]);
    expect(all.rows.map((r) => r.database_name)).toContain('shop');
    const one = await c.query('SELECT database_name, owner FROM [SHOW DATABASES] WHERE database_name = $1', [
      'shop',
    ]);
    expect(one.rows).toEqual([{ database_name: 'shop', owner: 'root' }]);
    const none = await c.query('SELECT datname FROM pg_database WHERE datname = $1', ['nope']);
    expect(none.rows).toEqual([]);
  });

  it('shows the schema and table rows of each database in SHOW BACKUP', async () => {
    const c = await clients.connect(cluster);
    const uri = s3Uri(s3, 'objects', pathStyleFor('25.2'));
    const job = await c.query(`BACKUP DATABASE shop INTO $1 AS OF SYSTEM TIME '-1s' WITH detached`, [uri]);
    await waitJob(c, job.rows[0].job_id);
    const full = (await c.query('SHOW BACKUPS IN $1', [uri])).rows[0].path as string;
    const r = await c.query('SHOW BACKUP FROM $1 IN $2', [full, uri]);
    expect(
      r.rows.map((x) => [x.database_name, x.parent_schema_name, x.object_name, x.object_type, x.rows]),
    ).toEqual([
      [null, null, 'shop', 'database', null],
      ['shop', null, 'public', 'schema', null],
      ['shop', 'public', 'orders', 'table', '120'],
      ['shop', 'public', 'customers', 'table', '40'],
    ]);
    expect(r.rows.map((x) => x.size_bytes === null)).toEqual([true, true, false, false]);
    expect(Number(r.rows[2].size_bytes)).toBeGreaterThan(0);
  });
});

describe('RESTORE on another cluster (verify-connection-string)', () => {
  const clusters: TestCluster[] = [];
  afterAll(async () => {
    await Promise.all(clusters.map((c) => c.close()));
  });
  const start = async (profile: ProfileName) => {
    const c = await startTestCluster({ profile, jobDurationMs: 200 });
    c.engine.catalog.setTables('shop', SHOP_TABLES);
    clusters.push(c);
    return c;
  };

  it('restores a backup of the previous supported version, and refuses a newer or a too old one', async () => {
    const [v22, v24, v25, v23] = await Promise.all([
      start('22.2'),
      start('24.3'),
      start('25.2'),
      start('23.2'),
    ]);
    const taken: Record<string, Backed> = {};
    for (const [name, cluster] of [
      ['22.2', v22],
      ['24.3', v24],
      ['25.2', v25],
    ] as const) {
      const c = await clients.connect(cluster);
      const prefix = `cross/${name}`;
      const uri = s3Uri(s3, prefix, pathStyleFor(name));
      taken[name] = await backup(c, uri, prefix);
    }
    const on25 = await clients.connect(v25);
    const restore = (c: pg.Client, b: Backed, uri: string, name: string) =>
      c.query(
        `RESTORE DATABASE shop FROM $1 IN $2 AS OF SYSTEM TIME '${b.times[0]}' WITH ${VERIFY}, new_db_name = '${name}', detached`,
        [b.full, uri],
      );
    // 25.2 reads the collections with the path-style parameter it needs (pathStyleFor).
    const as25 = (b: Backed) => s3Uri(s3, b.prefix, pathStyleFor('25.2'));
    const ok = await restore(on25, taken['24.3']!, as25(taken['24.3']!), 'from_24_3');
    expect((await waitJob(on25, ok.rows[0].job_id)).status).toBe('succeeded');
    await expect(restore(on25, taken['22.2']!, as25(taken['22.2']!), 'from_22_2')).rejects.toMatchObject({
      message: 'backup from version 22.2 is older than the minimum restorable version 24.3',
      hint: expect.stringContaining('restoring-backups-across-versions'),
    });
    const on23 = await clients.connect(v23);
    await expect(
      restore(on23, taken['25.2']!, s3Uri(s3, taken['25.2']!.prefix, pathStyleFor('23.2')), 'from_25_2'),
    ).rejects.toThrow('backup from version 25.2 is newer than current version 23.2');
  });
});
