/**
 * Records what a cluster answers to the statements the action and the test
 * cluster rely on — columns, types, row counts, error codes and texts, with
 * ids and times normalised — so a real CockroachDB and the test cluster can
 * be diffed (see .github/workflows/integration.yml).
 *   --url <connection string> | --test-cluster <vXX.Y.Z>   --out <file>
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import type { ProfileName } from '../test/support/cluster/index.js';
import { startTestCluster } from '../test/support/cluster/index.js';

const arg = (n: string): string | undefined => {
  const i = process.argv.indexOf(n);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

const PROBES: { sql: string; params?: string[] }[] = [
  { sql: 'SELECT version()' },
  { sql: 'SELECT crdb_internal.is_admin()' },
  { sql: 'SHOW JOBS' },
  {
    sql: "SELECT job_id, status, fraction_completed, error, created, started, finished, modified, description FROM crdb_internal.jobs WHERE job_type = 'BACKUP'",
  },
  { sql: 'SHOW JOB WHEN COMPLETE $1', params: ['1'] },
  { sql: 'CANCEL JOB $1', params: ['1'] },
  { sql: 'GRANT SYSTEM BACKUP TO nobody_here' },
  { sql: 'SHOW BACKUPS IN $1', params: ['s3://backups/none?AUTH=bogus'] },
  {
    sql: "BACKUP INTO 's3://b/p?AWS_ACCESS_KEY_ID=x&AWS_SECRET_ACCESS_KEY=y&NOT_A_PARAM=1' AS OF SYSTEM TIME '10s' WITH detached",
  },
  {
    sql: 'SELECT session_id, application_name FROM crdb_internal.cluster_sessions WHERE application_name = $1',
    params: ['nobody'],
  },
];

function normalise(text: string): string {
  return text
    .replace(/\d{15,20}/g, '<id>')
    .replace(/\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00(:00)?)?/g, '<ts>')
    .replace(/cluster=[0-9a-f-]+/g, 'cluster=<id>');
}

async function record(url: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  const out: unknown[] = [];
  for (const p of PROBES) {
    try {
      const r = await client.query(p.sql, p.params);
      out.push({
        statement: p.sql,
        columns: r.fields.map((f) => [f.name, f.dataTypeID]),
        rows: r.rowCount === 0 ? 0 : 'some',
      });
    } catch (err) {
      const e = err as { code?: string; message: string };
      out.push({ statement: p.sql, error: { code: e.code, message: normalise(e.message) } });
    }
  }
  await client.end();
  return out;
}

const outFile = arg('--out') ?? 'transcript.json';
let url = arg('--url');
let close: (() => Promise<void>) | undefined;
if (!url) {
  const tag = arg('--test-cluster') ?? 'v25.2.1';
  const m = /^v(\d+\.\d+)\.(\d+)/.exec(tag);
  const cluster = await startTestCluster({
    profile: (m?.[1] ?? '25.2') as ProfileName,
    users: [{ name: 'root', admin: true }],
    auth: 'trust',
  });
  url = cluster.url('root');
  close = () => cluster.close();
}
const transcript = await record(url);
writeFileSync(outFile, JSON.stringify(transcript, null, 2) + '\n');
await close?.();
console.log(`wrote ${outFile} (${transcript.length} statements)`);
