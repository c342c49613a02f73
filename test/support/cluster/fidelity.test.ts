/**
 * Self-tests of details where the test cluster once strayed from CockroachDB
 * (its sources and docs, cited in the modules): the one unsanitized job error, table targets, USAGE on
 * external connections, crdb_internal.jobs and SHOW JOBS ordering, declared
 * placeholder types, and progress while a job runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from '../s3/server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../s3/server.js';
import type { TestCluster } from './index.js';
import { startTestCluster } from './index.js';
import type { SessionInfo } from './protocol-types.js';
import { Clients, longJob, s3Uri, waitFor, waitJob } from './selftest-helpers.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bk'] });
});
afterAll(async () => s3?.close());
const clients = new Clients();
afterEach(() => clients.closeAll());

describe('CockroachDB 25.2 fidelity details', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ profile: '25.2', jobDurationMs: 300 });
    cluster.engine.addUser({
      name: 'ops',
      password: 'pw-1234',
      systemPrivileges: ['EXTERNALIOIMPLICITACCESS'],
    });
  });
  afterAll(async () => cluster?.close());
  let n = 0;
  const uri = () => s3Uri(s3, `f/${++n}`, '&AWS_USE_PATH_STYLE=true');

  it('leaks the raw URI only as CockroachDB does: "A full backup already exists in …"', async () => {
    const c = await clients.connect(cluster);
    const raw = uri();
    cluster.engine.leakUriInErrors(true);
    try {
      const { rows } = await c.query('BACKUP INTO $1 WITH detached', [raw]);
      const end = await waitJob(c, rows[0].job_id);
      const subdir = /INTO '([^']+)' IN/.exec(end.description!)![1]!;
      const [base, query] = raw.split('?');
      expect(end.status).toBe('failed');
      expect(end.error).toBe(
        `A full backup already exists in ${base}${subdir}?${query}. Consider running an incremental backup to this full backup via \`BACKUP INTO '${subdir}' IN '${raw}'\``,
      );
      expect(end.error).toContain(encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey));
      // The description stays sanitized.
      expect(end.description).toContain('AWS_SECRET_ACCESS_KEY=redacted');
    } finally {
      cluster.engine.leakUriInErrors(false);
    }
    const { rows } = await c.query('BACKUP INTO $1 WITH detached', [uri()]);
    expect((await waitJob(c, rows[0].job_id)).status).toBe('succeeded');
  });

  it('backs up TABLE targets (and bare ones) as table backups, not as full-cluster backups', async () => {
    const c = await clients.connect(cluster);
    const u = uri();
    const { rows } = await c.query('BACKUP TABLE shop.orders, shop.public.items INTO $1 WITH detached', [u]);
    const end = await waitJob(c, rows[0].job_id);
    expect(end.status).toBe('succeeded');
    expect(end.description).toMatch(
      /^BACKUP TABLE shop\.public\.orders, shop\.public\.items INTO '\/\d{4}\//,
    );
    const [path] = (await c.query('SHOW BACKUPS IN $1', [u])).rows.map((r) => r.path as string);
    const shown = await c.query('SHOW BACKUP FROM $1 IN $2', [path, u]);
    expect(shown.rows.every((r) => r.is_full_cluster === 'f')).toBe(true);
    const bare = await c.query('BACKUP orders INTO $1 WITH detached', [uri()]);
    expect((await waitJob(c, bare.rows[0].job_id)).description).toMatch(
      /^BACKUP TABLE defaultdb\.public\.orders INTO '/,
    );
    await expect(c.query('BACKUP TABLE nodb.t INTO $1 WITH detached', [uri()])).rejects.toMatchObject({
      code: '42P01',
    });
    // A non-admin is refused on the table, not on a full-cluster backup.
    const ops = await clients.connect(cluster, 'ops', { password: 'pw-1234' });
    const denied = ops.query('BACKUP TABLE shop.orders INTO $1 WITH detached', [uri()]);
    await expect(denied).rejects.toMatchObject({
      code: '42501',
      message: 'user ops does not have BACKUP privilege on relation orders',
    });
  });

  it('checks USAGE on an external connection for non-admins at statement time', async () => {
    const root = await clients.connect(cluster);
    await root.query(`CREATE EXTERNAL CONNECTION vault AS '${uri()}'`);
    await root.query('GRANT SYSTEM BACKUP TO ops');
    const ops = await clients.connect(cluster, 'ops', { password: 'pw-1234' });
    const before = cluster.jobs().length;
    const refused = {
      code: '42501',
      message: 'user ops does not have USAGE privilege on external_connection vault',
    };
    await expect(ops.query(`BACKUP INTO 'external://vault' WITH detached`)).rejects.toMatchObject(refused);
    await expect(ops.query(`SHOW BACKUPS IN 'external://vault'`)).rejects.toMatchObject(refused);
    await expect(ops.query(`BACKUP INTO 'external://nothing' WITH detached`)).rejects.toMatchObject({
      code: '42501',
    });
    expect(cluster.jobs()).toHaveLength(before);
    expect((await root.query('GRANT USAGE ON EXTERNAL CONNECTION vault TO ops')).command).toBe('GRANT');
    const { rows } = await ops.query(`BACKUP INTO 'external://vault' WITH detached`);
    expect((await waitJob(ops, rows[0].job_id)).status).toBe('succeeded');
    expect((await ops.query(`SHOW BACKUPS IN 'external://vault'`)).rows).toHaveLength(1);
    await root.query('REVOKE USAGE ON EXTERNAL CONNECTION vault FROM ops');
    await expect(ops.query(`BACKUP INTO 'external://vault' WITH detached`)).rejects.toMatchObject(refused);
    await expect(root.query('GRANT USAGE ON EXTERNAL CONNECTION nope TO ops')).rejects.toMatchObject({
      code: '42704',
    });
    // Admins need no grant; a missing connection fails their job, not the statement.
    const admin = await root.query(`BACKUP INTO 'external://nothing' WITH detached`);
    expect(await waitJob(root, admin.rows[0].job_id)).toMatchObject({
      status: 'failed',
      error: expect.stringContaining('failed to load external connection object'),
    });
    await root.query('REVOKE SYSTEM BACKUP FROM ops');
  });

  it('has execution_events in crdb_internal.jobs on 25.x', async () => {
    const c = await clients.connect(cluster);
    const r = await c.query('SELECT * FROM crdb_internal.jobs LIMIT 1');
    const names = r.fields.map((f) => f.name);
    expect(names.slice(-2)).toEqual(['execution_errors', 'execution_events']);
    expect(r.fields.at(-1)!.dataTypeID).toBe(3802);
  });

  it('orders SHOW JOBS by COALESCE(finished, now()) DESC, started DESC', async () => {
    const c = await clients.connect(cluster);
    const first = (await c.query('BACKUP INTO $1 WITH detached', [uri()])).rows[0].job_id as string;
    await waitJob(c, first);
    const second = (await c.query('BACKUP INTO $1 WITH detached', [uri()])).rows[0].job_id as string;
    await waitJob(c, second);
    const runningA = await longJob(cluster, c, uri());
    const runningB = await longJob(cluster, c, uri());
    try {
      const ids = (await c.query('SHOW JOBS')).rows.map((r) => r.job_id as string);
      const mine = ids.filter((id) => [first, second, runningA, runningB].includes(id));
      expect(mine).toEqual([runningB, runningA, second, first]);
    } finally {
      cluster.engine.cancelJobAsOtherUser(runningA);
      cluster.engine.cancelJobAsOtherUser(runningB);
    }
  });

  it('advances fraction_completed while the job runs (smooth progress, as a test may ask)', async () => {
    cluster.engine.setProgressModel('smooth');
    const c = await clients.connect(cluster);
    const id = await longJob(cluster, c, uri(), 1600);
    const seen: number[] = [];
    const end = await waitFor(
      c,
      id,
      (r) => {
        seen.push(Number(r.fraction_completed));
        return r.status === 'succeeded';
      },
      'the job to succeed',
    );
    expect(end.fraction_completed).toBe('1');
    const during = [...new Set(seen.slice(0, -1))];
    expect(during.some((f) => f > 0 && f < 1)).toBe(true);
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen); // never goes back
    cluster.engine.setProgressModel('coarse');
  });

  it('moves fraction_completed at most every 15 s by default (jobs/progress.go)', async () => {
    const c = await clients.connect(cluster);
    const id = await longJob(cluster, c, uri(), 1600);
    const seen: number[] = [];
    const end = await waitFor(
      c,
      id,
      (r) => {
        seen.push(Number(r.fraction_completed));
        return r.status === 'succeeded';
      },
      'the job to succeed',
    );
    expect(end.fraction_completed).toBe('1');
    // A 1.6 s job: no progress is written before it ends.
    expect(new Set(seen.slice(0, -1))).toEqual(new Set([0]));
  });

  it('types a bare AS OF SYSTEM TIME placeholder from a parameter type the client declared', async () => {
    const engine = cluster.engine;
    const info: SessionInfo = {
      id: 900_001,
      user: 'root',
      database: 'defaultdb',
      startupParams: new Map(),
      signal: new AbortController().signal,
      tls: false,
    };
    engine.openSession(info);
    try {
      const sql = 'BACKUP INTO $1 AS OF SYSTEM TIME $2 WITH detached';
      await expect(engine.execute(info, sql, [uri(), '-1s'], [0, 0])).rejects.toMatchObject({
        code: '42P18',
      });
      const r = await engine.execute(info, sql, [uri(), '-1s'], [25, 25]);
      expect(r.fields!.map((f) => f.name)).toEqual(['job_id']);
    } finally {
      engine.closeSession(info);
    }
  });
});
