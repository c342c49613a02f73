/**
 * Self-tests of what differs between CockroachDB versions on the backup
 * surface (each rule cites its CockroachDB source or docs page where the test cluster implements it),
 * with the real `pg` client, for every version profile.
 */
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from '../s3/server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../s3/server.js';
import type { ProfileName, TestCluster } from './index.js';
import { PROFILE_NAMES, startTestCluster } from './index.js';
import { Clients, longJob, pathStyleFor, s3Uri, waitFor, waitJob } from './selftest-helpers.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bk'] });
});
afterAll(async () => s3?.close());
const clients = new Clients();
afterEach(() => clients.closeAll());

const atLeast = (p: ProfileName, v: ProfileName) => PROFILE_NAMES.indexOf(p) >= PROFILE_NAMES.indexOf(v);
const cols = (r: pg.QueryResult) => r.fields.map((f) => [f.name, f.dataTypeID]);
const TEXT = 25;
const INT8 = 20;
const FLOAT8 = 701;
const BOOL = 16;

describe.each(PROFILE_NAMES)('CockroachDB %s', (profile: ProfileName) => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ profile, jobDurationMs: 300 });
    for (const name of ['ops_role', 'ops_priv', 'other']) {
      cluster.engine.addUser({
        name,
        password: 'pw-1234',
        systemPrivileges: ['BACKUP', 'EXTERNALIOIMPLICITACCESS'],
      });
    }
  });

  it('crdb_internal.jobs ends with execution_errors and execution_events (crdb_internal.go, every version)', async () => {
    const c = await clients.connect(cluster);
    const r = await c.query('SELECT * FROM crdb_internal.jobs LIMIT 1');
    expect(r.fields.slice(-2).map((f) => [f.name, f.dataTypeID])).toEqual([
      ['execution_errors', 1009],
      ['execution_events', 3802],
    ]);
  });
  afterAll(async () => cluster?.close());
  const word = profile === '25.2' ? 'state' : 'status';
  const ps = pathStyleFor(profile);
  let n = 0;
  const uri = (extra = '') => s3Uri(s3, `v${profile}/${++n}`, `${ps}${extra}`);
  const TS = atLeast(profile, '23.2') ? 1184 : 1114;

  it('answers a blocking BACKUP with 6 columns up to 24.3 and 4 from 25.1', async () => {
    const c = await clients.connect(cluster);
    const r = await c.query('BACKUP INTO $1', [uri()]);
    const four = [
      ['job_id', INT8],
      ['status', TEXT],
      ['fraction_completed', FLOAT8],
      ['rows', INT8],
    ];
    expect(cols(r)).toEqual(profile === '25.2' ? four : [...four, ['index_entries', INT8], ['bytes', INT8]]);
    expect(r.rows[0]).toMatchObject({ status: 'succeeded', fraction_completed: '1' });
    expect(r.command).toBe('BACKUP');
    expect(r.rowCount).toBe(1);
  });

  it('answers SHOW JOB and SHOW JOBS with this era’s exact columns', async () => {
    const c = await clients.connect(cluster);
    const id = (await c.query('BACKUP INTO $1 WITH detached', [uri()])).rows[0].job_id as string;
    await waitJob(c, id);
    const job = await c.query('SHOW JOB $1', [id]);
    const jobs = await c.query('SHOW JOBS');
    const common = (names: string[]) =>
      names.map((name) => [
        name,
        name === 'job_id' || name === 'coordinator_id' || name === 'trace_id' || name === 'num_runs'
          ? INT8
          : name === 'fraction_completed'
            ? FLOAT8
            : ['created', 'started', 'finished', 'modified', 'last_run', 'next_run'].includes(name)
              ? TS
              : name === 'execution_errors'
                ? 1009
                : TEXT,
      ]);
    if (!atLeast(profile, '24.1')) {
      const all = common([
        'job_id',
        'job_type',
        'description',
        'statement',
        'user_name',
        'status',
        'running_status',
        'created',
        'started',
        'finished',
        'modified',
        'fraction_completed',
        'error',
        'coordinator_id',
        'trace_id',
        'last_run',
        'next_run',
        'num_runs',
        'execution_errors',
      ]);
      expect(all).toHaveLength(19);
      expect(cols(job)).toEqual(all);
      expect(cols(jobs)).toEqual(all);
      expect(job.rows[0].created).toMatch(/\.\d+/);
    } else {
      const noIds = [
        'job_id',
        'job_type',
        'description',
        'user_name',
        'status',
        'running_status',
        'created',
        'started',
        'finished',
        'modified',
        'fraction_completed',
        'error',
        'coordinator_id',
      ];
      expect(cols(jobs)).toEqual(common(noIds));
      expect(noIds).toHaveLength(13);
      expect(cols(job)).toEqual(
        common([...noIds.slice(0, 3), 'statement', ...noIds.slice(3), 'trace_id', 'execution_errors']),
      );
      // date_trunc('second', …) on the four times.
      for (const t of ['created', 'started', 'finished', 'modified'])
        expect(job.rows[0][t]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\+00)?$/);
    }
    expect(job.rows[0]).toMatchObject({ job_id: id, job_type: 'BACKUP', status: 'succeeded' });
  });

  it("abbreviates long descriptions in SHOW JOBS (no ids) from 24.1 to substr(d,0,60)||' … '||right(d,7)", async () => {
    const c = await clients.connect(cluster);
    const id = (await c.query('BACKUP INTO $1 WITH detached', [uri()])).rows[0].job_id as string;
    const full = (await waitJob(c, id)).description!;
    expect(full.length).toBeGreaterThan(70);
    const shown = (await c.query('SHOW JOBS')).rows.find((r) => r.job_id === id)!.description as string;
    const viaSelect = (await c.query(`SELECT job_id, description FROM [SHOW JOBS] WHERE job_id = ${id}`))
      .rows[0].description;
    if (atLeast(profile, '24.1')) {
      // SQL substr is 1-indexed: a start of 0 with length 60 keeps 59 characters.
      expect(shown).toBe(`${full.slice(0, 59)} … ${full.slice(-7)}`);
      expect(viaSelect).toBe(shown);
    } else {
      expect(shown).toBe(full);
    }
    // SHOW JOB <id> and crdb_internal.jobs never abbreviate.
    expect((await c.query('SHOW JOB $1', [id])).rows[0].description).toBe(full);
  });

  it('keeps an explicit detached = FALSE in descriptions from 23.1', async () => {
    const c = await clients.connect(cluster);
    const r = await c.query('BACKUP INTO $1 WITH detached = FALSE', [uri()]);
    expect(r.fields).toHaveLength(profile === '25.2' ? 4 : 6);
    const d = (await waitJob(c, r.rows[0].job_id)).description!;
    if (profile === '22.2') expect(d).not.toMatch(/WITH/);
    else if (profile === '23.1') expect(d).toMatch(/' WITH detached = FALSE$/);
    else expect(d).toMatch(/' WITH OPTIONS \(detached = FALSE\)$/);
  });

  it('treats BACKUP … TO as the deprecated legacy form up to 24.2 and removes it from 24.3', async () => {
    const c = await clients.connect(cluster);
    const notices: string[] = [];
    c.on('notice', (m) => notices.push(m.message ?? ''));
    const legacyPath = `legacy${profile}`;
    const target = s3Uri(s3, legacyPath, ps);
    const q = c.query('BACKUP TO $1 WITH detached', [target]);
    const removed =
      'The `BACKUP TO` syntax is no longer supported. Please use `BACKUP INTO` to create a backup collection.';
    if (atLeast(profile, '24.3')) {
      await expect(q).rejects.toMatchObject({ code: '42601', message: removed });
      await expect(c.query('BACKUP DATABASE shop TO $1', [target])).rejects.toMatchObject({
        message: removed,
      });
      return;
    }
    const { rows } = await q;
    expect(notices[0]).toMatch(/^The `BACKUP TO` syntax will be removed in a future release/);
    const end = await waitJob(c, rows[0].job_id);
    expect(end.status).toBe('succeeded');
    expect(end.description).toMatch(
      profile === '22.2' || profile === '23.1'
        ? /^BACKUP TO 's3:\/\/bk\/legacy[\d.]+\?.*AWS_SECRET_ACCESS_KEY=redacted.*' WITH detached$/
        : /^BACKUP TO 's3:\/\/bk\/legacy[\d.]+\?.*' WITH OPTIONS \(detached\)$/,
    );
    // The legacy form writes one backup at the destination itself, not a dated collection entry.
    expect(s3.hasObject('bk', `${legacyPath}/BACKUP_MANIFEST`)).toBe(true);
    expect(s3.listKeys('bk', `${legacyPath}/metadata/`)).toEqual([]);
    const again = await c.query('BACKUP TO $1 WITH detached', [target]);
    expect(await waitJob(c, again.rows[0].job_id)).toMatchObject({
      status: 'failed',
      error: expect.stringContaining('already contains a BACKUP_MANIFEST file'),
    });
  });

  it('refuses a bare $2 placeholder in AS OF SYSTEM TIME at prepare with 42P18; $2::STRING works', async () => {
    const c = await clients.connect(cluster);
    const before = cluster.jobs().length;
    await expect(
      c.query('BACKUP INTO $1 AS OF SYSTEM TIME $2 WITH detached', [uri(), '-1s']),
    ).rejects.toMatchObject({
      code: '42P18',
      message: 'could not determine data type of placeholder $2',
      hint: 'consider adding explicit type casts to the placeholder arguments',
    });
    expect(cluster.jobs()).toHaveLength(before);
    const ok = await c.query('BACKUP INTO $1 AS OF SYSTEM TIME $2::STRING WITH detached', [uri(), '-1s']);
    const end = await waitJob(c, ok.rows[0].job_id);
    expect(end).toMatchObject({ status: 'succeeded' });
    expect(end.description).toContain(' AS OF SYSTEM TIME $2::STRING ');
  });

  it('applies the PAUSE / RESUME / CANCEL state rules with this version’s wording', async () => {
    const c = await clients.connect(cluster);
    const id = await longJob(cluster, c, uri());
    expect((await c.query('PAUSE JOB $1', [id])).command).toBe('PAUSE');
    await waitFor(c, id, (r) => r.status === 'paused', 'paused');
    await expect(c.query('PAUSE JOB $1', [id])).resolves.toMatchObject({ command: 'PAUSE' }); // no-op
    expect((await c.query('RESUME JOB $1', [id])).command).toBe('RESUME');
    expect((await waitFor(c, id, (r) => r.status === 'running', 'running')).status).toBe('running');
    await expect(c.query('RESUME JOB $1', [id])).resolves.toMatchObject({ command: 'RESUME' }); // no-op
    // pause-requested: cancel and resume are refused, pause is a no-op.
    const job = cluster.engine.jobs.find((j) => j.id === id)!;
    job.status = 'pause-requested';
    await expect(c.query('CANCEL JOB $1', [id])).rejects.toMatchObject({
      code: 'XXUUU',
      message: `job with ${word} pause-requested cannot be requested to be canceled`,
    });
    await expect(c.query('RESUME JOB $1', [id])).rejects.toMatchObject({
      message: `job with ${word} pause-requested cannot be resumed`,
    });
    await expect(c.query('PAUSE JOB $1', [id])).resolves.toMatchObject({ command: 'PAUSE' });
    job.status = 'running';
    // running → cancel-requested → reverting → canceled, with `job canceled by user`.
    const cancel = await c.query('CANCEL JOB $1', [id]);
    // The tag is `CANCEL JOBS 1`, which pg reads as command CANCEL without a row count.
    expect(cancel.command).toBe('CANCEL');
    const end = await waitJob(c, id);
    expect(end).toMatchObject({ status: 'canceled', error: 'job canceled by user' });
    await expect(c.query('CANCEL JOB $1', [id])).resolves.toMatchObject({ command: 'CANCEL' }); // no-op
    await expect(c.query('PAUSE JOB $1', [id])).rejects.toMatchObject({
      message: `job with ${word} canceled cannot be requested to be paused`,
    });
    await expect(c.query('RESUME JOB $1', [id])).rejects.toMatchObject({
      message: `job with ${word} canceled cannot be resumed`,
    });
    const done = (await c.query('BACKUP INTO $1 WITH detached', [uri()])).rows[0].job_id as string;
    await waitJob(c, done);
    await expect(c.query('CANCEL JOB $1', [done])).rejects.toMatchObject({
      message: `job with ${word} succeeded cannot be requested to be canceled`,
    });
    await expect(c.query('CANCEL JOB 4242')).rejects.toMatchObject({
      message: 'job with ID 4242 does not exist',
    });
  });

  it('gives control of other users’ jobs by CONTROLJOB (role option; system privilege from 23.1.12), never of admins’', async () => {
    const root = await clients.connect(cluster);
    const other = await clients.connect(cluster, 'other', { password: 'pw-1234' });
    const opsRole = await clients.connect(cluster, 'ops_role', { password: 'pw-1234' });
    const opsPriv = await clients.connect(cluster, 'ops_priv', { password: 'pw-1234' });
    const theirs = await longJob(cluster, other, uri());
    const admins = await longJob(cluster, root, uri());
    const denied =
      profile === '22.2'
        ? 'user ops_role does not have CONTROLJOB privilege'
        : `user ops_role does not have privileges for job ${theirs}`;
    await expect(opsRole.query('PAUSE JOB $1', [theirs])).rejects.toMatchObject({
      code: '42501',
      message: denied,
    });
    // The role option, in every version.
    await root.query('ALTER ROLE ops_role WITH CONTROLJOB');
    await expect(opsRole.query('PAUSE JOB $1', [theirs])).resolves.toMatchObject({ command: 'PAUSE' });
    await waitFor(root, theirs, (r) => r.status === 'paused', 'paused');
    await expect(opsRole.query('CANCEL JOB $1', [admins])).rejects.toMatchObject({
      code: '42501',
      message: 'only admins can control jobs owned by other admins',
    });
    // The system privilege: 23.1.12+ and 23.2+ (the 23.1 profile is 23.1.11).
    const grant = root.query('GRANT SYSTEM CONTROLJOB TO ops_priv');
    if (atLeast(profile, '23.2')) {
      await grant;
      await expect(opsPriv.query('RESUME JOB $1', [theirs])).resolves.toMatchObject({ command: 'RESUME' });
      await expect(opsPriv.query('CANCEL JOB $1', [admins])).rejects.toMatchObject({
        message: 'only admins can control jobs owned by other admins',
      });
      const grants = await root.query('SHOW SYSTEM GRANTS FOR ops_priv');
      expect(grants.rows.map((r) => r.privilege_type).sort()).toEqual([
        'BACKUP',
        'CONTROLJOB',
        'EXTERNALIOIMPLICITACCESS',
      ]);
    } else {
      await expect(grant).rejects.toMatchObject({ code: '42601' });
      await expect(opsPriv.query('RESUME JOB $1', [theirs])).rejects.toMatchObject({ code: '42501' });
    }
    await root.query('CANCEL JOB $1', [theirs]);
    await root.query('CANCEL JOB $1', [admins]);
  });

  it('grants, shows and revokes system privileges; crdb_internal.is_admin() tells admins apart', async () => {
    cluster.engine.addUser({ name: 'grantee', password: 'pw-1234' });
    const root = await clients.connect(cluster);
    const user = await clients.connect(cluster, 'grantee', { password: 'pw-1234' });
    const isAdmin = await root.query('SELECT crdb_internal.is_admin()');
    expect(cols(isAdmin)).toEqual([['crdb_internal.is_admin', BOOL]]);
    expect(isAdmin.rows[0]['crdb_internal.is_admin']).toBe('t');
    expect((await user.query('SELECT crdb_internal.is_admin() AS a')).rows[0].a).toBe('f');
    await root.query('GRANT SYSTEM BACKUP, EXTERNALIOIMPLICITACCESS TO grantee WITH GRANT OPTION');
    const all = await root.query('SHOW SYSTEM GRANTS');
    expect(cols(all)).toEqual([
      ['grantee', TEXT],
      ['privilege_type', TEXT],
      ['is_grantable', BOOL],
    ]);
    expect(all.rows.filter((r) => r.grantee === 'grantee')).toEqual([
      { grantee: 'grantee', privilege_type: 'BACKUP', is_grantable: 't' },
      { grantee: 'grantee', privilege_type: 'EXTERNALIOIMPLICITACCESS', is_grantable: 't' },
    ]);
    // Without FOR, every grantee's rows.
    expect(new Set(all.rows.map((r) => r.grantee))).toEqual(
      new Set(['grantee', 'ops_role', 'ops_priv', 'other']),
    );
    const ok = await user.query('BACKUP INTO $1 WITH detached', [uri()]);
    await waitJob(user, ok.rows[0].job_id);
    expect((await root.query('REVOKE SYSTEM BACKUP FROM grantee')).command).toBe('REVOKE');
    expect((await root.query('SHOW SYSTEM GRANTS FOR grantee')).rows.map((r) => r.privilege_type)).toEqual([
      'EXTERNALIOIMPLICITACCESS',
    ]);
    await expect(user.query('BACKUP INTO $1 WITH detached', [uri()])).rejects.toMatchObject({
      code: '42501',
      message:
        'only users with the admin role or the BACKUP system privilege are allowed to perform full cluster backups: user grantee does not have BACKUP system privilege',
    });
    await expect(root.query('GRANT SYSTEM BACKUP TO ghost')).rejects.toMatchObject({
      code: '42704',
      message: 'role/user "ghost" does not exist',
    });
  });

  it('returns a failed job’s row from SHOW JOB WHEN COMPLETE, without an error', async () => {
    const c = await clients.connect(cluster);
    const bad = uri().replace(encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey), 'wrong-secret');
    const { rows } = await c.query('BACKUP INTO $1 WITH detached', [bad]);
    await c.query("SET statement_timeout = '20s'");
    const r = await c.query('SHOW JOB WHEN COMPLETE $1', [rows[0].job_id]);
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]).toMatchObject({
      job_id: rows[0].job_id,
      status: 'failed',
      error: expect.stringContaining('SignatureDoesNotMatch'),
    });
    expect(r.rows[0].finished).not.toBeNull();
    // The same columns as SHOW JOB <id> of this version.
    expect(r.fields.map((f) => f.name)).toEqual(
      (await c.query('SHOW JOB $1', [rows[0].job_id])).fields.map((f) => f.name),
    );
  });

  it('names incremental folders by end time, with the -<start> suffix from 25.2', async () => {
    const c = await clients.connect(cluster);
    const path = `inc${profile}`;
    const u = s3Uri(s3, path, ps);
    const full = await c.query(`BACKUP INTO $1 AS OF SYSTEM TIME '-3s' WITH detached`, [u]);
    await waitJob(c, full.rows[0].job_id);
    const [fullPath] = (await c.query('SHOW BACKUPS IN $1', [u])).rows.map((r) => r.path as string);
    const inc = await c.query(`BACKUP INTO LATEST IN $1 AS OF SYSTEM TIME '-1s' WITH detached`, [u]);
    const end = await waitJob(c, inc.rows[0].job_id);
    expect(end.status).toBe('succeeded');
    // The description names the resolved full backup instead of 'LATEST' once the job resolved it.
    expect(end.description).toContain(`INTO '${fullPath}' IN `);
    const manifests = s3
      .listKeys('bk', `${path}/incrementals/`)
      .filter((k) => k.endsWith('/BACKUP_MANIFEST'));
    expect(manifests).toHaveLength(1);
    const m =
      /^[^/]+\/incrementals\/(\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2})\/(\d{8})\/(\d{6}\.\d{2})(-.+)?\/BACKUP_MANIFEST$/.exec(
        manifests[0]!,
      );
    expect(m).not.toBeNull();
    expect(`/${m![1]}`).toBe(fullPath);
    if (profile === '25.2') {
      const [y, mo, rest] = fullPath!.slice(1).split('/');
      expect(m![4]).toBe(`-${y}${mo}${rest!.slice(0, 2)}-${rest!.slice(3)}`);
    } else expect(m![4]).toBeUndefined();
  });

  it('needs an enterprise licence for encryption (passphrase or KMS) before 24.3', async () => {
    cluster.engine.setLicense(false);
    try {
      const c = await clients.connect(cluster);
      const passphrase = c.query('BACKUP INTO $1 WITH detached, encryption_passphrase = $2', [uri(), 'pw']);
      const kms = c.query('BACKUP INTO $1 WITH detached, kms = $2', [
        uri(),
        'aws-kms:///arn:aws:kms:us-east-1:123:key/abc?AUTH=implicit&REGION=us-east-1',
      ]);
      const both = c.query('BACKUP INTO $1 WITH detached, revision_history, encryption_passphrase = $2', [
        uri(),
        'pw',
      ]);
      if (atLeast(profile, '24.3')) {
        await expect(passphrase).resolves.toMatchObject({ command: 'BACKUP' });
        await expect(kms).resolves.toMatchObject({ command: 'BACKUP' });
        await expect(both).resolves.toMatchObject({ command: 'BACKUP' });
        return;
      }
      const text = (feature: string) =>
        new RegExp(
          `^use of BACKUP with ${feature} requires an enterprise license\\. see https://cockroachlabs\\.com/pricing\\?cluster=[0-9a-f-]{36} for details on how to enable enterprise features$`,
        );
      await expect(passphrase).rejects.toMatchObject({
        code: 'XXC02',
        message: expect.stringMatching(text('encryption')),
      });
      await expect(kms).rejects.toMatchObject({
        code: 'XXC02',
        message: expect.stringMatching(text('encryption')),
      });
      // Encryption is checked before revision_history.
      await expect(both).rejects.toMatchObject({ message: expect.stringMatching(text('encryption')) });
    } finally {
      cluster.engine.setLicense(true);
    }
  });

  it('fails an unlicensed incremental in the job before 24.3, with the full licence text', async () => {
    const c = await clients.connect(cluster);
    const path = `lic${profile}`;
    const u = s3Uri(s3, path, ps);
    await waitJob(
      c,
      (await c.query(`BACKUP INTO $1 AS OF SYSTEM TIME '-2s' WITH detached`, [u])).rows[0].job_id,
    );
    cluster.engine.setLicense(false);
    try {
      const { rows } = await c.query('BACKUP INTO LATEST IN $1 WITH detached', [u]);
      const end = await waitJob(c, rows[0].job_id);
      if (atLeast(profile, '24.3')) expect(end.status).toBe('succeeded');
      else
        expect(end).toMatchObject({
          status: 'failed',
          error: expect.stringMatching(
            /^use of BACKUP with incremental requires an enterprise license\. see https:\/\/cockroachlabs\.com\/pricing\?cluster=[0-9a-f-]{36} for details on how to enable enterprise features$/,
          ),
        });
    } finally {
      cluster.engine.setLicense(true);
    }
  });
});

describe('patch releases', () => {
  const clusters: TestCluster[] = [];
  afterAll(async () => {
    await Promise.all(clusters.map((c) => c.close()));
  });
  const start = async (profile: ProfileName, version: string) => {
    const cluster = await startTestCluster({
      profile,
      version: `CockroachDB CCL ${version} (x86_64-pc-linux-gnu, built 2024/01/01 00:00:00, go1.21.0)`,
      jobDurationMs: 200,
    });
    clusters.push(cluster);
    return cluster;
  };

  it.each([
    ['v22.2.2', 'XXUUU', 'user or role ghost does not exist'],
    ['v22.2.3', '42704', 'role/user "ghost" does not exist'],
  ])('%s answers a GRANT to a missing role with %s', async (version, code, message) => {
    const cluster = await start('22.2', version);
    const c = await clients.connect(cluster);
    expect((await c.query('SELECT version()')).rows[0].version).toContain(version);
    await expect(c.query('GRANT SYSTEM BACKUP TO ghost')).rejects.toMatchObject({ code, message });
  });

  it('23.1.12 knows CONTROLJOB as a system privilege; 23.1.11 only as a role option', async () => {
    for (const [version, known] of [
      ['v23.1.11', false],
      ['v23.1.12', true],
    ] as const) {
      const cluster = await start('23.1', version);
      cluster.engine.addUser({ name: 'ops', password: 'pw-1234' });
      const c = await clients.connect(cluster);
      const q = c.query('GRANT SYSTEM CONTROLJOB TO ops');
      if (known) await expect(q).resolves.toMatchObject({ command: 'GRANT' });
      else await expect(q).rejects.toMatchObject({ code: '42601' });
    }
  });

  it.each([
    ['24.1', 'v24.1.9', 'rejected'],
    ['24.1', 'v24.1.10', 'no-op'],
    ['24.3', 'v24.3.2', 'rejected'],
    ['24.3', 'v24.3.3', 'functional'],
    ['25.2', 'v25.2.1', 'functional'],
  ] as const)('%s %s: AWS_USE_PATH_STYLE is %s', async (profile, version, how) => {
    const cluster = await start(profile, version);
    const c = await clients.connect(cluster);
    const run = async (value: string) => {
      const { rows } = await c.query('BACKUP INTO $1 WITH detached', [
        s3Uri(s3, `ps/${version}/${value}`, `&AWS_USE_PATH_STYLE=${value}`),
      ]);
      return waitJob(c, rows[0].job_id);
    };
    const on = await run('true');
    const off = await run('false');
    if (how === 'rejected') {
      for (const end of [on, off])
        expect(end).toMatchObject({
          status: 'failed',
          error: 'unknown S3 query parameters: AWS_USE_PATH_STYLE',
        });
    } else if (how === 'no-op') {
      // Accepted for forward compatibility; the SDK of that version uses path style anyway.
      expect(on.status).toBe('succeeded');
      expect(off.status).toBe('succeeded');
    } else {
      expect(on.status).toBe('succeeded');
      expect(off).toMatchObject({ status: 'failed', error: expect.stringContaining('no such host') });
    }
  });
});

describe('the licence model without XXC02 errors', () => {
  it('starts at 23.1.29, 23.2.15, 24.1.7, 24.2.5 and 24.3.0 (licensing-faqs.md)', async () => {
    const { profileFor } = await import('./profiles.js');
    expect(profileFor('22.2').licenceChecks).toBe(true);
    expect(profileFor('23.1', 28).licenceChecks).toBe(true);
    expect(profileFor('23.1', 29).licenceChecks).toBe(false);
    expect(profileFor('23.2', 14).licenceChecks).toBe(true);
    expect(profileFor('23.2', 15).licenceChecks).toBe(false);
    expect(profileFor('24.1', 6).licenceChecks).toBe(true);
    expect(profileFor('24.1', 7).licenceChecks).toBe(false);
    expect(profileFor('24.3', 0).licenceChecks).toBe(false);
  });
});
