/**
 * Records what a cluster answers to the statements crdb-backup-action sends
 * (and to the failing variants whose error texts it turns into advice):
 * column names and type OIDs, row counts, chosen columns of sample rows, and
 * error codes and messages, with ids, times, hosts and build details
 * normalised. The integration workflow records a real CockroachDB and then
 * the test cluster of the same version and diffs the two files, so any
 * difference shows where the test cluster must follow the real one.
 *
 *   npx tsx scripts/transcript.ts --url <connection string> --collection <s3 URI with credentials> [--out f]
 *   npx tsx scripts/transcript.ts --test-cluster v25.2.1 [--out f]
 *
 * With --url the cluster must be able to write to the collection (the
 * integration workflow uses MinIO with minioadmin/minioadmin). A user
 * `backup_user` without privileges is created there for the non-admin probes.
 * With --test-cluster the test cluster and S3 server start in this process.
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import type { ProfileName } from '../test/support/cluster/index.js';
import { PROFILE_NAMES, startTestCluster } from '../test/support/cluster/index.js';
import { startS3Server } from '../test/support/s3/server.js';
import { parseClusterVersion } from '../src/cluster.js';
import { acceptsPathStyleParam } from '../src/destination.js';

export interface Recorded {
  step: string;
  statement: string;
  user: string;
  columns?: [name: string, dataTypeID: number][];
  rowCount?: number | 'some';
  rows?: Record<string, string | null>[];
  error?: { code: string | undefined; message: string };
  job?: { status: string | null; error: string | null };
}

interface Probe {
  step: string;
  /** A function when the text needs the AS OF SYSTEM TIME read by an earlier probe. */
  sql: string | (() => string);
  params?: () => string[];
  /** `backup_user` runs it (no privileges); default root. */
  asUser?: 'backup_user';
  /** Which columns of the rows to keep (after normalisation); none: only the count. */
  keep?: string[];
  /** Rows to keep before projecting (e.g. one object type of SHOW BACKUP). */
  filter?: (row: Record<string, string | null>) => boolean;
  /** Record `some` instead of the row count (it depends on the cluster's other jobs). */
  countVaries?: boolean;
  /** A BACKUP that may return a job: wait for it and record how it ended. */
  waitForJob?: boolean;
  /** Called with the raw rows: remember a job id or a subdirectory for later probes. */
  after?: (rows: Record<string, string | null>[]) => void;
}

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

/** Replace what legitimately differs between two runs or two hosts by its shape. */
export function normalise(text: string, names: Record<string, string> = {}): string {
  let out = text;
  for (const [value, name] of Object.entries(names)) if (value) out = out.split(value).join(name);
  return out
    .replace(/(CockroachDB \w+ v\d+\.\d+\.\d+)[^\n]*/g, '$1 (<build>)')
    .replace(/\/\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2}/g, '/<subdir>')
    .replace(/\/\d{8}\/\d{6}\.\d{2}/g, '/<incremental>')
    .replace(/\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?/g, (_m, f: string | undefined) =>
      f ? '<date> <time>.<fraction>' : '<date> <time>',
    )
    .replace(/\b\d{19}\.\d{10}\b/g, '<hlc>')
    .replace(/\b\d{15,20}\b/g, '<id>')
    .replace(/\b[0-9a-f]{32}\b/g, '<hex>')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '<uuid>');
}

function withUser(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = '';
  return u.toString();
}

/** `s3://b/p?q` → `s3://b/p-<suffix>?q`: a collection next to this one. */
function beside(uri: string, suffix: string): string {
  return uri.replace(/\/?(\?|$)/, `-${suffix}$1`);
}

function withParam(uri: string, key: string, value: string): string {
  return `${uri}${uri.includes('?') ? '&' : '?'}${key}=${encodeURIComponent(value)}`;
}

/**
 * The statements, in order: later probes use what earlier ones returned.
 * `collection` carries AWS_USE_PATH_STYLE when the version accepts it, as the
 * action sends it; `plain` never does.
 */
function probes(collection: string, emptyCollection: string, plain: string): Probe[] {
  const s: {
    now?: string;
    fullAt?: string;
    fullJob?: string;
    incJob?: string;
    subdir?: string;
    restoreJob?: string;
  } = {};
  const aost = (): string => s.now!;
  // The action sends an absolute literal in UTC: the cluster's now() minus the interval.
  const readClock = (rows: Record<string, string | null>[]): void => {
    const t = new Date(
      Date.parse(
        String(rows[0]!.now)
          .replace(' ', 'T')
          .replace(/\+00(:00)?$/, 'Z'),
      ),
    );
    t.setUTCSeconds(t.getUTCSeconds() - 1);
    s.now = `${t.toISOString().replace('T', ' ').replace('Z', '')}000+00:00`;
  };
  const backupInto = (): string => `BACKUP INTO $1 AS OF SYSTEM TIME '${aost()}' WITH detached`;
  return [
    { step: 'version', sql: 'SELECT version() AS version', keep: ['version'] },
    { step: 'admin check', sql: 'SELECT crdb_internal.is_admin()', keep: ['crdb_internal.is_admin'] },
    { step: 'cluster clock', sql: 'SELECT now() AS now', keep: ['now'], after: readClock },
    { step: 'statement timeout', sql: 'SET statement_timeout = 60000' },
    {
      step: 'full backup (admin)',
      sql: backupInto,
      params: () => [collection],
      keep: ['job_id'],
      after: (rows) => {
        s.fullJob = String(rows[0]!.job_id);
        s.fullAt = aost();
      },
    },
    {
      step: 'wait for the full backup',
      sql: 'SHOW JOB WHEN COMPLETE $1',
      params: () => [s.fullJob!],
      keep: ['job_id', 'job_type', 'description', 'status', 'fraction_completed', 'error', 'finished'],
    },
    {
      step: 'job by id',
      sql: 'SELECT job_id, status, fraction_completed, error, created, started, finished, modified, description FROM crdb_internal.jobs WHERE job_id = $1',
      params: () => [s.fullJob!],
      keep: [
        'job_id',
        'status',
        'fraction_completed',
        'error',
        'created',
        'started',
        'finished',
        'description',
      ],
    },
    {
      step: 'SHOW JOB columns',
      sql: 'SELECT * FROM [SHOW JOB $1]',
      params: () => [s.fullJob!],
      keep: ['status', 'job_type', 'created', 'finished'],
    },
    { step: 'SHOW JOBS columns', sql: 'SHOW JOBS', countVaries: true },
    {
      step: 'unfinished backups',
      sql: "SELECT job_id, status, fraction_completed, error, created, started, finished, modified, description FROM crdb_internal.jobs WHERE job_type = 'BACKUP' AND status IN ('pending', 'running', 'paused', 'pause-requested', 'cancel-requested', 'reverting', 'retry-running', 'retry-reverting')",
    },
    {
      step: 'backup by its AS OF SYSTEM TIME',
      sql: "SELECT job_id, status, fraction_completed, error, created, started, finished, modified, description FROM crdb_internal.jobs WHERE job_type = 'BACKUP' AND created > $1 AND description LIKE $2",
      params: () => ['2000-01-01 00:00:00+00:00', `%AS OF SYSTEM TIME '${aost()}'%`],
      keep: ['status', 'description'],
    },
    {
      step: 'sessions by application_name',
      sql: 'SELECT session_id, application_name FROM crdb_internal.cluster_sessions WHERE application_name = $1',
      params: () => ['crdb-backup-action transcript'],
      keep: ['application_name'],
    },
    {
      step: 'SHOW BACKUPS',
      sql: 'SHOW BACKUPS IN $1',
      params: () => [collection],
      keep: ['path'],
      after: (rows) => {
        s.subdir = String(rows.at(-1)?.path ?? '');
      },
    },
    {
      step: 'SHOW BACKUP of the full backup',
      sql: 'SHOW BACKUP FROM $1 IN $2',
      params: () => [s.subdir!, collection],
      filter: (r) => r.object_name === 'shop',
      keep: [
        'database_name',
        'object_name',
        'object_type',
        'backup_type',
        'start_time',
        'end_time',
        'is_full_cluster',
      ],
    },
    {
      step: 'SHOW BACKUP with check_files',
      sql: 'SHOW BACKUP FROM $1 IN $2 WITH check_files',
      params: () => [s.subdir!, collection],
      filter: (r) => r.object_name === 'shop',
      keep: ['database_name', 'object_type', 'backup_type'],
    },
    { step: 'cluster clock, later', sql: 'SELECT now() AS now', keep: ['now'], after: readClock },
    {
      step: 'incremental backup',
      sql: () => `BACKUP INTO $2 IN $1 AS OF SYSTEM TIME '${aost()}' WITH detached`,
      params: () => [collection, s.subdir!],
      keep: ['job_id'],
      after: (rows) => {
        s.incJob = String(rows[0]!.job_id);
      },
    },
    {
      step: 'wait for the incremental',
      sql: 'SHOW JOB WHEN COMPLETE $1',
      params: () => [s.incJob!],
      keep: ['job_type', 'description', 'status', 'error'],
    },
    {
      step: 'SHOW BACKUP lists the incremental layer',
      sql: 'SHOW BACKUP FROM $1 IN $2',
      params: () => [s.subdir!, collection],
      filter: (r) => r.object_name === 'shop',
      keep: ['database_name', 'backup_type', 'start_time', 'end_time'],
    },
    { step: 'cancel a finished job', sql: 'CANCEL JOB $1', params: () => [s.fullJob!] },
    { step: 'wait for a job that does not exist', sql: 'SHOW JOB WHEN COMPLETE $1', params: () => ['1'] },
    {
      step: 'unknown S3 parameter',
      waitForJob: true,
      sql: backupInto,
      params: () => [withParam(beside(collection, 'bad-param'), 'NOT_A_PARAM', '1')],
      keep: ['job_id'],
    },
    {
      step: 'AWS_USE_PATH_STYLE (accepted from 24.1.10, 24.2.8, 24.3.3, 25.1)',
      waitForJob: true,
      sql: backupInto,
      params: () => [withParam(beside(plain, 'path-style'), 'AWS_USE_PATH_STYLE', 'true')],
      keep: ['job_id'],
    },
    {
      step: 'incremental without a full backup',
      waitForJob: true,
      sql: 'BACKUP INTO LATEST IN $1 WITH detached',
      params: () => [emptyCollection],
      keep: ['job_id'],
    },
    {
      step: 'SHOW BACKUPS of an empty collection',
      sql: 'SHOW BACKUPS IN $1',
      params: () => [emptyCollection],
    },
    { step: 'grant to a missing role', sql: 'GRANT SYSTEM BACKUP TO no_such_role' },
    { step: 'grant on a missing database', sql: 'GRANT BACKUP ON DATABASE no_such_db TO backup_user' },
    {
      step: 'cluster backup without BACKUP privilege',
      waitForJob: true,
      asUser: 'backup_user',
      sql: backupInto,
      params: () => [beside(collection, 'non-admin')],
      keep: ['job_id'],
    },
    {
      step: 'cancel without CONTROLJOB',
      asUser: 'backup_user',
      sql: 'CANCEL JOB $1',
      params: () => [s.fullJob!],
    },
    // The restore check (issue 16) and the dry run (issue 17): what the test cluster answers in
    // restore.ts, catalog.ts, external-check.ts, privilege-views.ts and transactions.ts.
    {
      step: 'restore check of the full backup',
      waitForJob: true,
      sql: () =>
        `RESTORE DATABASE defaultdb FROM $1 IN $2 AS OF SYSTEM TIME '${s.fullAt!}' WITH schema_only, verify_backup_table_data, new_db_name = 'transcript_restore', detached`,
      params: () => [s.subdir!, collection],
      keep: ['job_id'],
      after: (rows) => {
        s.restoreJob = String(rows[0]?.job_id ?? '');
      },
    },
    {
      step: 'restore job by id',
      sql: 'SELECT job_type, status, fraction_completed, error, description FROM crdb_internal.jobs WHERE job_id = $1',
      params: () => [s.restoreJob!],
      keep: ['job_type', 'status', 'fraction_completed', 'error', 'description'],
    },
    {
      step: 'the restored database is listed',
      sql: 'SELECT database_name, owner FROM [SHOW DATABASES] WHERE database_name = $1',
      params: () => ['transcript_restore'],
      keep: ['database_name', 'owner'],
    },
    {
      step: 'pg_database lookup',
      sql: 'SELECT datname FROM pg_database WHERE datname = $1',
      params: () => ['transcript_restore'],
      keep: ['datname'],
    },
    {
      step: 'restore onto an existing name',
      sql: () =>
        `RESTORE DATABASE defaultdb FROM $1 IN $2 AS OF SYSTEM TIME '${s.fullAt!}' WITH schema_only, verify_backup_table_data, new_db_name = 'transcript_restore', detached`,
      params: () => [s.subdir!, collection],
    },
    { step: 'drop the restored database', sql: 'DROP DATABASE transcript_restore CASCADE' },
    { step: 'drop a database that does not exist', sql: 'DROP DATABASE transcript_restore CASCADE' },
    {
      step: 'restore a database the backup does not hold',
      sql: () =>
        `RESTORE DATABASE no_such_db FROM $1 IN $2 AS OF SYSTEM TIME '${s.fullAt!}' WITH schema_only, verify_backup_table_data, new_db_name = 'transcript_x', detached`,
      params: () => [s.subdir!, collection],
    },
    { step: 'cluster clock, after the backups', sql: 'SELECT now() AS now', keep: ['now'], after: readClock },
    {
      step: 'restore at a time no layer covers',
      sql: () =>
        `RESTORE DATABASE defaultdb FROM $1 IN $2 AS OF SYSTEM TIME '${aost()}' WITH schema_only, verify_backup_table_data, new_db_name = 'transcript_x', detached`,
      params: () => [s.subdir!, collection],
    },
    {
      step: 'verify_backup_table_data without schema_only',
      sql: () =>
        `RESTORE DATABASE defaultdb FROM $1 IN $2 AS OF SYSTEM TIME '${s.fullAt!}' WITH verify_backup_table_data, new_db_name = 'transcript_x', detached`,
      params: () => [s.subdir!, collection],
    },
    {
      step: 'restore without RESTORE or CREATEDB',
      asUser: 'backup_user',
      sql: () =>
        `RESTORE DATABASE defaultdb FROM $1 IN $2 AS OF SYSTEM TIME '${s.fullAt!}' WITH schema_only, verify_backup_table_data, new_db_name = 'transcript_x', detached`,
      params: () => [s.subdir!, collection],
    },
    {
      step: 'CHECK EXTERNAL CONNECTION (25.1 and later)',
      sql: "CHECK EXTERNAL CONNECTION $1 WITH transfer = '1KiB'",
      params: () => [beside(collection, 'check')],
      filter: (r) => r.node === '1',
      keep: ['ok', 'error', 'transferred', 'can_delete'],
      countVaries: true,
    },
    {
      step: 'SHOW BACKUP CONNECTION (22.2.7 to 24.3)',
      sql: "SHOW BACKUP CONNECTION $1 WITH transfer = '1KiB'",
      params: () => [beside(collection, 'check')],
      filter: (r) => r.node === '1',
      keep: ['ok', 'error', 'transferred', 'can_delete'],
      countVaries: true,
    },
    {
      step: 'storage check without EXTERNALIOIMPLICITACCESS',
      asUser: 'backup_user',
      sql: "CHECK EXTERNAL CONNECTION $1 WITH transfer = '1KiB'",
      params: () => [beside(collection, 'check')],
    },
    {
      step: 'SHOW ROLES columns',
      sql: 'SHOW ROLES',
      countVaries: true,
      filter: (r) => r.username === 'backup_user',
      keep: ['options', 'member_of'],
    },
    {
      step: 'database grants of a user',
      sql: 'SHOW GRANTS ON DATABASE defaultdb FOR backup_user',
      keep: ['privilege_type'],
    },
    {
      step: 'has_database_privilege',
      sql: 'SELECT has_database_privilege($1, $2, $3) AS ok',
      params: () => ['backup_user', 'defaultdb', 'CREATE'],
      keep: ['ok'],
    },
    { step: 'licence as a non-admin', asUser: 'backup_user', sql: 'SHOW CLUSTER SETTING enterprise.license' },
    { step: 'begin (dry-run statement check)', sql: 'BEGIN' },
    {
      step: 'detached BACKUP inside the transaction',
      sql: backupInto,
      params: () => [beside(collection, 'rolled-back')],
      keep: [],
    },
    { step: 'roll it back', sql: 'ROLLBACK' },
    {
      step: 'no job after the rollback',
      sql: 'SELECT job_id FROM crdb_internal.jobs WHERE description LIKE $1',
      params: () => ['%rolled-back%'],
    },
    {
      step: 'a job the user cannot see',
      asUser: 'backup_user',
      sql: 'SELECT job_id, status, fraction_completed, error, created, started, finished, modified, description FROM crdb_internal.jobs WHERE job_id = $1',
      params: () => [s.fullJob!],
    },
  ];
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'crdb-backup-action transcript',
    // Compare the text the server sends, not what pg makes of it.
    types: { getTypeParser: () => (value: string) => value },
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Runs the probes; `at(suffix)` names a collection of this run (credentials in its query). */
export async function record(
  url: string,
  at: (suffix: string) => string,
  names: Record<string, string>,
): Promise<Recorded[]> {
  const clients = { root: await connect(url), backup_user: await connect(withUser(url, 'backup_user')) };
  const out: Recorded[] = [];
  const norm = (v: string | null): string | null => (v === null ? null : normalise(v, names));
  try {
    const { rows } = await clients.root.query<{ version: string }>('SELECT version() AS version');
    const pathStyle = acceptsPathStyleParam(parseClusterVersion(rows[0]!.version));
    const effective = (uri: string): string =>
      pathStyle ? withParam(uri, 'AWS_USE_PATH_STYLE', 'true') : uri;
    for (const p of probes(effective(at('main')), effective(at('empty')), at('main'))) {
      const user = p.asUser ?? 'root';
      const statement = typeof p.sql === 'function' ? p.sql() : p.sql;
      const entry: Recorded = { step: p.step, statement: normalise(statement, names), user };
      try {
        const r = await clients[user].query({ text: statement, values: p.params?.() ?? [] });
        const rows = (r.rows ?? []) as Record<string, string | null>[];
        entry.columns = (r.fields ?? []).map((f) => [f.name, f.dataTypeID]);
        entry.rowCount = p.countVaries ? (rows.length > 0 ? 'some' : 0) : rows.length;
        if (p.keep) {
          entry.rows = rows
            .filter(p.filter ?? (() => true))
            .map((row) => Object.fromEntries(p.keep!.map((k) => [k, norm(row[k] ?? null)])));
        }
        p.after?.(rows);
        if (p.waitForJob && rows[0]?.job_id) {
          const done = await clients[user].query({
            text: 'SHOW JOB WHEN COMPLETE $1',
            values: [rows[0].job_id],
          });
          const job = (done.rows[0] ?? {}) as Record<string, string | null>;
          entry.job = { status: norm(job.status ?? null), error: norm(job.error ?? null) };
        }
      } catch (err) {
        const e = err as { code?: string; message: string };
        entry.error = { code: e.code, message: normalise(e.message, names) };
      }
      out.push(entry);
    }
  } finally {
    await Promise.all(Object.values(clients).map((c) => c.end().catch(() => undefined)));
  }
  return out;
}

async function main(): Promise<void> {
  const outFile = arg('--out') ?? 'transcript.json';
  let url = arg('--url');
  let collection = arg('--collection');
  const cleanup: (() => Promise<void>)[] = [];
  if (!url) {
    const tag = arg('--test-cluster') ?? 'v25.2.1';
    const m = /^v(\d+\.\d+)\.(\d+)$/.exec(tag);
    if (!m || !PROFILE_NAMES.includes(m[1] as ProfileName)) {
      throw new Error(
        `--test-cluster takes a version tag of a profile (${PROFILE_NAMES.join(', ')}), e.g. v25.2.1`,
      );
    }
    const credential = { accessKeyId: 'minioadmin', secretAccessKey: 'minioadmin' };
    const s3 = await startS3Server({ buckets: ['backups'], credentials: [credential] });
    const cluster = await startTestCluster({
      profile: m[1] as ProfileName,
      version: `CockroachDB CCL ${tag} (x86_64-pc-linux-gnu, built 2025/01/01 00:00:00, go1.22)`,
      users: [{ name: 'root', admin: true }, { name: 'backup_user' }],
      auth: 'trust',
      jobDurationMs: 500,
    });
    cleanup.push(
      () => cluster.close(),
      () => s3.close(),
    );
    url = cluster.url('root', { password: null, params: { sslmode: 'disable' } });
    collection =
      `s3://backups/transcript?AWS_ACCESS_KEY_ID=minioadmin&AWS_SECRET_ACCESS_KEY=minioadmin` +
      `&AWS_ENDPOINT=${encodeURIComponent(s3.endpoint)}&AWS_REGION=us-east-1`;
  } else {
    if (!collection) throw new Error('--url needs --collection <s3 URI with credentials>');
    const admin = await connect(url);
    await admin.query('CREATE USER IF NOT EXISTS backup_user');
    await admin.end();
  }
  const endpoint = new URL(collection.replace(/^s3:/, 'http:')).searchParams.get('AWS_ENDPOINT') ?? '';
  // Every run writes into collections of its own, so re-runs against one bucket compare alike.
  const run = `run-${Date.now().toString(36)}`;
  const base = collection;
  const at = (suffix: string): string => base.replace(/^(s3:\/\/[^?]*?)\/?(\?|$)/, `$1/${run}-${suffix}$2`);
  const names = { [encodeURIComponent(endpoint)]: '<endpoint>', [endpoint]: '<endpoint>', [run]: '<run>' };
  try {
    const transcript = await record(url, at, names);
    // One line per column keeps the diff readable.
    const json = JSON.stringify(transcript, null, 2).replace(
      /\[\n\s+("[^"]*"),\n\s+(\d+)\n\s+\]/g,
      '[$1, $2]',
    );
    writeFileSync(outFile, json + '\n');
    console.log(`wrote ${outFile} (${transcript.length} statements)`);
  } finally {
    for (const c of cleanup) await c();
  }
}

if (process.argv[1]?.endsWith('transcript.ts')) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
