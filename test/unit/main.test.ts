/**
 * run() with every dependency injected: a scripted cluster, an in-memory
 * object store, a virtual clock and a recording runner.
 */
import { describe, expect, it } from 'vitest';
import type { Row } from '../../src/cluster.js';
import { run } from '../../src/main.js';
import type { Statement } from '../../src/sql.js';
import type { ObjectStore } from '../../src/storage.js';
import { fakeConnector, RecordingIO, sqlError, VirtualClock } from '../support/fakes.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const PASSWORD = 'p@ss/word';

function inputs(over: Record<string, string> = {}): (name: string) => string {
  const all: Record<string, string> = {
    'connection-string': `postgresql://root:${encodeURIComponent(PASSWORD)}@db.internal:26257/defaultdb?sslmode=verify-full`,
    collection: 's3://bucket/path',
    'aws-access-key-id': 'AKIAEXAMPLE',
    'aws-secret-access-key': SECRET,
    'aws-region': 'eu-west-1',
    ...over,
  };
  return (name) => all[name] ?? '';
}

interface ClusterScript {
  statuses: string[];
  version?: string;
  backupError?: Error;
}

function cluster(script: ClusterScript) {
  const sent: Statement[] = [];
  let reads = 0;
  const connector = fakeConnector((stmt) => {
    sent.push(stmt);
    const t = stmt.text;
    if (t.startsWith('SELECT version()'))
      return [
        {
          version:
            script.version ?? 'CockroachDB CCL v25.2.1 (x86_64-pc-linux-gnu, built 2025/06/01, go1.23)',
        },
      ];
    if (t.startsWith('SELECT now()')) return [{ now: '2026-11-24 11:40:45.123456+00' }];
    if (t.includes("status IN ('pending'")) return [];
    if (t.startsWith('BACKUP')) {
      if (script.backupError) throw script.backupError;
      return [{ job_id: '1012345678901234567' }];
    }
    if (t.startsWith('SET') || t.startsWith('CANCEL')) return [];
    if (t.startsWith('SHOW JOB WHEN COMPLETE'))
      throw sqlError('57014', 'query execution canceled due to statement timeout');
    if (t.startsWith('SHOW BACKUPS')) return [{ path: '/2026/11/24-114035.12' }];
    if (t.includes('crdb_internal.jobs WHERE job_id')) {
      const status = script.statuses[Math.min(reads++, script.statuses.length - 1)]!;
      const row: Row = {
        job_id: '1012345678901234567',
        status,
        fraction_completed: status === 'succeeded' ? 1 : 0.3,
        error: status === 'failed' ? `failed to put s3 object: AccessDenied (key ${SECRET})` : null,
        created: '2026-11-24 11:40:46.000000+00',
        started: '2026-11-24 11:40:47.000000+00',
        finished: ['succeeded', 'failed'].includes(status) ? '2026-11-24 11:42:09.412000+00' : null,
        description:
          "BACKUP INTO '/2026/11/24-114035.12' IN 's3://bucket/path?AWS_ACCESS_KEY_ID=AKIAEXAMPLE&AWS_SECRET_ACCESS_KEY=redacted' AS OF SYSTEM TIME '2026-11-24 11:40:35.123456+00:00' WITH OPTIONS (revision_history = true, detached)",
      };
      return [row];
    }
    throw sqlError('42601', `unexpected statement ${t}`);
  });
  return { connector, sent };
}

const fakeStore = (): ObjectStore =>
  ({
    async *list() {
      /* nothing */
    },
    get: async () => Buffer.from('manifest'),
    deleteMany: async () => ({ deleted: [], errors: [] }),
    requestCounts: () => ({}),
  }) as unknown as ObjectStore;

async function runWith(
  script: ClusterScript,
  over: Record<string, string> = {},
  signal = new AbortController().signal,
  openStore: (sentSoFar: Statement[]) => Promise<ObjectStore> = async () => fakeStore(),
) {
  const io = new RecordingIO();
  const { connector, sent } = cluster(script);
  const code = await run(
    {
      io,
      getInput: inputs({ verify: 'none', ...over }),
      env: {
        GITHUB_REPOSITORY: 'acme/shop',
        GITHUB_RUN_ID: '42',
        GITHUB_RUN_ATTEMPT: '2',
        GITHUB_SERVER_URL: 'https://github.com',
      },
      connector,
      openStore: () => openStore(sent),
      clock: new VirtualClock(),
      signal,
      random: () => 0.5,
    },
    {
      connectTimeoutMs: 1000,
      reconnectBudgetMs: 5000,
      sessionGoneTimeoutMs: 5000,
      cancelTimeoutMs: 1000,
      whenCompleteSliceMs: 15_000,
    },
  );
  return { code, io, connector, sent };
}

describe('run()', () => {
  it('masks every secret before the first connection', async () => {
    const { io, connector } = await runWith({ statuses: ['running', 'succeeded'] });
    const firstGroup = io.events.findIndex((e) => e.startsWith('group:'));
    const masked = io.events.slice(0, firstGroup).filter((e) => e.startsWith('secret:'));
    expect(masked.length).toBeGreaterThanOrEqual(4);
    expect(connector.requests.length).toBeGreaterThan(0);
  });

  it('names every connection after the run for the DBA', async () => {
    const { connector } = await runWith({ statuses: ['succeeded'] });
    expect(connector.requests[0]!.applicationName).toBe('crdb-backup-action acme/shop run 42-2 c1');
  });

  it('reports a succeeded job with exact outputs', async () => {
    const { code, io, sent } = await runWith({ statuses: ['running', 'running', 'succeeded'] });
    expect(io.failed).toEqual([]);
    expect(code).toBe(0);
    expect(io.outputs).toMatchObject({
      'job-id': '1012345678901234567',
      status: 'succeeded',
      verified: 'skipped',
      duration: '83.412',
      'started-at': '2026-11-24T11:40:47.000000Z',
      'finished-at': '2026-11-24T11:42:09.412000Z',
      'end-time': '2026-11-24T11:40:35.123456Z',
      'collection-path': 's3://bucket/path',
      'backup-path': '/2026/11/24-114035.12',
      'backup-uri': 's3://bucket/path/2026/11/24-114035.12',
    });
    const backup = sent.find((s) => s.text.startsWith('BACKUP'))!;
    expect(backup.text).not.toContain(SECRET);
    expect(backup.params[0]).toContain(encodeURIComponent(SECRET));
    expect(io.state['job-id']).toBe('1012345678901234567');
    expect(io.state['main-done']).toBe('true');
    expect(io.summary).toContain("AS OF SYSTEM TIME '2026-11-24 11:40:35.123456+00:00'");
    expect(io.summary).toContain('https://github.com/acme/shop/actions/runs/42/attempts/2');
  });

  it('opens the bucket once, while the job still runs, for verification and pruning alike', async () => {
    const jobReadsWhenOpened: number[] = [];
    const jobReads = (sent: Statement[]) => sent.filter((x) => x.text.includes('WHERE job_id')).length;
    const { sent } = await runWith(
      { statuses: ['running', 'running', 'succeeded'] },
      { verify: 'manifest', 'prune-keep-last': '3' },
      undefined,
      async (sentSoFar) => {
        jobReadsWhenOpened.push(jobReads(sentSoFar));
        return fakeStore();
      },
    );
    expect(jobReadsWhenOpened).toHaveLength(1);
    // Opened after the first read of the running job, before the read that saw it succeed.
    expect(jobReadsWhenOpened[0]).toBeLessThan(jobReads(sent));
  });

  it('rejects bad input without connecting', async () => {
    const { code, io, connector } = await runWith(
      { statuses: [] },
      { 'as-of-system-time': "-10s'; DROP DATABASE x; --" },
    );
    expect(code).toBe(1);
    expect(connector.requests).toHaveLength(0);
    expect(io.failed).toHaveLength(1);
    expect(io.failed[0]).toContain('as-of-system-time');
  });

  it('fails on a failed job and scrubs the secret out of the cluster error', async () => {
    const { code, io } = await runWith({ statuses: ['running', 'failed'] });
    expect(code).toBe(1);
    expect(io.outputs.status).toBe('failed');
    expect(io.failed).toHaveLength(1);
    expect(io.failed[0]).toContain('AccessDenied');
    expect(io.failed.join()).not.toContain(SECRET);
    expect(io.summary).not.toContain(SECRET);
  });

  it('turns the licence error into advice', async () => {
    const { code, io } = await runWith({
      statuses: [],
      version: 'CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27, go1.19)',
      backupError: sqlError('XXC02', 'use of BACKUP with revision_history requires an enterprise license.'),
    });
    expect(code).toBe(1);
    expect(io.failed[0]).toMatch(/revision-history: false/);
  });

  it('names PostgreSQL and sends no BACKUP', async () => {
    const { code, io, sent } = await runWith({
      statuses: [],
      version: 'PostgreSQL 16.2 on x86_64-pc-linux-gnu',
    });
    expect(code).toBe(1);
    expect(io.failed[0]).toMatch(/PostgreSQL 16.2, not CockroachDB/);
    expect(sent.some((s) => s.text.startsWith('BACKUP'))).toBe(false);
  });

  it('cancels its own job on abort through a fresh connection', async () => {
    const controller = new AbortController();
    let reads = 0;
    const io = new RecordingIO();
    const { connector, sent } = cluster({ statuses: ['running'] });
    const wrapped = (async (req: Parameters<typeof connector>[0]) => {
      const s = await connector(req);
      const query = s.query.bind(s);
      s.query = async (stmt: Statement) => {
        if (stmt.text.includes('WHERE job_id') && ++reads === 2) controller.abort();
        return query(stmt);
      };
      return s;
    }) as typeof connector;
    const code = await run(
      {
        io,
        getInput: inputs({ verify: 'none' }),
        env: {},
        connector: wrapped,
        openStore: async () => fakeStore(),
        clock: new VirtualClock(),
        signal: controller.signal,
      },
      {
        connectTimeoutMs: 1000,
        reconnectBudgetMs: 5000,
        sessionGoneTimeoutMs: 5000,
        cancelTimeoutMs: 1000,
        whenCompleteSliceMs: 15_000,
      },
    );
    expect(code).toBe(1);
    expect(sent.filter((s) => s.text === 'CANCEL JOB $1')).toHaveLength(1);
    expect(connector.requests.length).toBeGreaterThanOrEqual(2);
    expect(io.summary).toContain('aborted');
    expect(io.summary).toContain('1012345678901234567');
  });
});
