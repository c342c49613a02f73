/** Shared pieces of the cluster self-tests: pg clients, S3 URIs, waiting for jobs. */
import pg from 'pg';
import type { S3TestServer } from '../s3/server.js';
import { TEST_S3_CREDENTIAL } from '../s3/server.js';
import type { ProfileName, TestCluster } from './index.js';

export class Clients {
  private readonly open: pg.Client[] = [];

  /** A pg client that returns every value as text, as the wire sends it. */
  async connect(
    cluster: TestCluster,
    user = 'root',
    opts: { password?: string; database?: string } = {},
  ): Promise<pg.Client> {
    const c = new pg.Client({
      connectionString: cluster.url(user, {
        ...(opts.password !== undefined ? { password: opts.password } : {}),
        ...(opts.database ? { database: opts.database } : {}),
      }),
      types: { getTypeParser: () => (v: string) => v } as never,
    });
    c.on('error', () => undefined);
    await c.connect();
    this.open.push(c);
    return c;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.end().catch(() => undefined)));
  }
}

/** 24.3+ default to virtual-hosted addressing, which the test server (127.0.0.1) cannot serve. */
export const pathStyleFor = (profile: ProfileName): string =>
  ['24.3', '25.2'].includes(profile) ? '&AWS_USE_PATH_STYLE=true' : '';

export function s3Uri(s3: S3TestServer, path: string, extra = '', bucket = 'bk'): string {
  return `s3://${bucket}/${path}?AWS_ACCESS_KEY_ID=${TEST_S3_CREDENTIAL.accessKeyId}&AWS_SECRET_ACCESS_KEY=${encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey)}&AWS_ENDPOINT=${encodeURIComponent(s3.endpoint)}${extra}`;
}

export type JobRow = Record<string, string | null>;

export async function jobRow(c: pg.Client, id: string): Promise<JobRow | undefined> {
  const { rows } = await c.query(
    'SELECT job_id, status, error, description, fraction_completed, started FROM crdb_internal.jobs WHERE job_id = $1',
    [id],
  );
  return rows[0] as JobRow | undefined;
}

export async function waitFor(
  c: pg.Client,
  id: string,
  done: (row: JobRow) => boolean,
  what = 'the job',
): Promise<JobRow> {
  for (let i = 0; i < 400; i++) {
    const row = await jobRow(c, id);
    if (row && done(row)) return row;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what} (${id})`);
}

export const TERMINAL = ['succeeded', 'failed', 'canceled', 'revert-failed'];

export const waitJob = (c: pg.Client, id: string): Promise<JobRow> =>
  waitFor(c, id, (r) => TERMINAL.includes(r.status ?? ''), 'the job to end');

/** A detached BACKUP whose job runs for `ms`; resolves once the job has started. */
export async function longJob(
  cluster: TestCluster,
  c: pg.Client,
  uri: string,
  ms = 20_000,
  shortMs = 300,
): Promise<string> {
  cluster.engine.setJobDuration(ms);
  try {
    const { rows } = await c.query('BACKUP INTO $1 WITH detached', [uri]);
    const id = rows[0].job_id as string;
    await waitFor(c, id, (r) => r.started !== null, 'the job to start');
    return id;
  } finally {
    cluster.engine.setJobDuration(shortMs);
  }
}
