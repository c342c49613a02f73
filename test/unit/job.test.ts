import { describe, expect, it } from 'vitest';
import { ApplicationNames, ClusterLink } from '../../src/cluster.js';
import type { JobRow } from '../../src/job.js';
import {
  AdaptivePoller,
  CANCEL_DEADLINE_MS,
  cancelResultText,
  cancelWithFallback,
  captureTimeFromMicros,
  fullSubdirFor,
  jobDurationSeconds,
  jobStateAtTimeout,
  parseClusterTime,
  toJobRow,
  waitForJob,
} from '../../src/job.js';
import type { ConnectRequest, Connector, Row, SqlSession } from '../../src/cluster.js';
import type { ConnectionConfig } from '../../src/config.js';
import type { Statement } from '../../src/sql.js';
import { fakeConnector, sqlError, VirtualClock } from '../support/fakes.js';
import { backupStatement } from '../../src/sql.js';
import { earlierThan, submitBackup } from '../../src/submit.js';

const quiet = { info: () => undefined, warning: () => undefined };

describe('parseClusterTime', () => {
  it('reads TIMESTAMP as UTC and keeps microseconds', () => {
    const t = parseClusterTime('2026-11-24 11:40:45.123456');
    expect(t?.iso).toBe('2026-11-24T11:40:45.123456Z');
    expect(t?.micros).toBe(BigInt(Date.parse('2026-11-24T11:40:45Z')) * 1000n + 123456n);
  });
  it('applies TIMESTAMPTZ offsets', () => {
    expect(parseClusterTime('2026-11-24 13:40:45+02')?.iso).toBe('2026-11-24T11:40:45Z');
    expect(parseClusterTime('2026-11-24 11:40:45.5-01:30')?.iso).toBe('2026-11-24T13:10:45.500Z');
  });
  it('rejects garbage and empty values', () => {
    expect(parseClusterTime('yesterday')).toBeUndefined();
    expect(parseClusterTime(null)).toBeUndefined();
  });
});

describe('capture time and subdirectory', () => {
  it('truncates to two fraction digits like Go /2006/01/02-150405.00', () => {
    expect(fullSubdirFor('2026-11-24 11:40:45.129999+00:00')).toBe('/2026/11/24-114045.12');
    const c = captureTimeFromMicros(BigInt(Date.parse('2026-01-02T03:04:05Z')) * 1000n + 670000n);
    expect(c.literal).toBe('2026-01-02 03:04:05.670000+00:00');
    expect(c.fullSubdir).toBe('/2026/01/02-030405.67');
    expect(c.iso).toBe('2026-01-02T03:04:05.670000Z');
  });
});

describe('toJobRow', () => {
  it('keeps int8 job ids exact and computes the duration from the cluster times', () => {
    const row: Row = {
      job_id: '1012345678901234567',
      status: 'succeeded',
      fraction_completed: 1,
      error: '',
      created: '2026-11-24 11:40:45.000000',
      started: '2026-11-24 11:40:46.000000',
      finished: '2026-11-24 11:42:08.412000',
      description: 'BACKUP INTO …',
    };
    const job = toJobRow(row);
    expect(job.jobId).toBe('1012345678901234567');
    expect(job.error).toBeNull();
    expect(jobDurationSeconds(job)).toBe('83.412');
  });
});

function job(status: string, fraction = 0.5, extra: Partial<Row> = {}): Row {
  return {
    job_id: '900000000000000001',
    status,
    fraction_completed: fraction,
    error: null,
    created: '2026-11-24 11:40:45.000000',
    started: null,
    finished: status === 'succeeded' || status === 'failed' ? '2026-11-24 11:41:00.000000' : null,
    description: 'BACKUP INTO',
    ...extra,
  };
}

function linkFor(respond: Parameters<typeof fakeConnector>[0], clock = new VirtualClock()) {
  const connector = fakeConnector(respond);
  const link = new ClusterLink(connector, {} as never, new ApplicationNames('test'), clock, quiet, {
    connectTimeoutMs: 1000,
    random: () => 0.5,
  });
  return { connector, link, clock };
}

const defaults = (clock: VirtualClock) => ({
  clock,
  log: quiet,
  signal: new AbortController().signal,
  reconnectBudgetMs: 10_000,
});

describe('jobStateAtTimeout', () => {
  const at = (status: string, fraction: number | null = null): JobRow => ({
    jobId: '1',
    status,
    fractionCompleted: fraction,
    error: null,
    modified: parseClusterTime('2026-11-24 11:40:45.123456+00:00'),
    description: '',
  });
  it('says what the job was doing, and since when for a held job', () => {
    expect(jobStateAtTimeout(at('paused'))).toBe('it was paused since 2026-11-24T11:40:45.123456Z');
    expect(jobStateAtTimeout(at('pause-requested'))).toBe(
      'it was pausing (pause-requested since 2026-11-24T11:40:45.123456Z)',
    );
    expect(jobStateAtTimeout(at('reverting'))).toMatch(/^it was being rolled back \(reverting since /);
    expect(jobStateAtTimeout(at('running', 0.45))).toBe('it was running, 45% done');
    expect(jobStateAtTimeout(at('running'))).toBe('it was running');
    expect(jobStateAtTimeout(at('pending'))).toBe('it had not started yet (pending)');
  });
});

describe('waitForJob', () => {
  it('polls until a terminal status and returns the final row', async () => {
    const statuses = ['running', 'running', 'running', 'succeeded'];
    const { link, clock, connector } = linkFor(() => [job(statuses.shift() ?? 'succeeded', 1)]);
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: false,
      pollIntervalMs: 5000,
      pausedTimeoutMs: 600_000,
      ...defaults(clock),
    });
    expect(out.kind).toBe('terminal');
    expect((out as { job: JobRow }).job.status).toBe('succeeded');
    expect(connector.sessions[0]!.log.every((s) => s.text.includes('crdb_internal.jobs'))).toBe(true);
    expect(connector.sessions[0]!.log).toHaveLength(4);
  });

  it('uses SHOW JOB WHEN COMPLETE bounded by statement_timeout and survives 57014', async () => {
    let reads = 0;
    const { link, clock, connector } = linkFor((stmt) => {
      if (stmt.text.startsWith('SET statement_timeout')) return [];
      // The session's own setting (e.g. from the connection string's options), put back after the wait.
      if (stmt.text === 'SHOW statement_timeout') return [{ statement_timeout: '250000' }];
      if (stmt.text.startsWith('SHOW JOB WHEN COMPLETE')) {
        clock.t += 15_000;
        throw sqlError('57014', 'query execution canceled due to statement timeout');
      }
      reads++;
      return [job(reads >= 3 ? 'succeeded' : 'running', 1)];
    });
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: true,
      pollIntervalMs: 5000,
      pausedTimeoutMs: 600_000,
      ...defaults(clock),
    });
    expect(out.kind).toBe('terminal');
    const texts = connector.sessions[0]!.log.map((s) => s.text);
    // The new job is waited on at once (no read before the first wait); a read follows each wait.
    expect(texts.slice(0, 3)).toEqual([
      'SHOW statement_timeout',
      'SET statement_timeout = 15000',
      'SHOW JOB WHEN COMPLETE $1',
    ]);
    expect(texts.filter((t) => t.startsWith('SHOW JOB WHEN COMPLETE'))).toHaveLength(3);
    // The timeout is set once, not before every wait, and the session's own value is put back at the end.
    expect(texts.filter((t) => t === 'SET statement_timeout = 15000')).toHaveLength(1);
    expect(texts[texts.length - 1]).toBe('SET statement_timeout = 250000');
  });

  it('falls back to polling when WHEN COMPLETE is refused', async () => {
    let reads = 0;
    const warnings: string[] = [];
    const { link, clock } = linkFor((stmt) => {
      if (stmt.text.startsWith('SET')) return [];
      if (stmt.text.startsWith('SHOW JOB WHEN COMPLETE')) throw sqlError('42601', 'syntax error');
      return [job(++reads >= 4 ? 'succeeded' : 'running', 1)];
    });
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: true,
      pollIntervalMs: 2000,
      pausedTimeoutMs: 600_000,
      clock,
      log: { info: () => undefined, warning: (m) => warnings.push(m) },
      signal: new AbortController().signal,
      reconnectBudgetMs: 10_000,
    });
    expect(out.kind).toBe('terminal');
    expect(warnings.some((w) => w.includes('polling instead'))).toBe(true);
  });

  it('times out with the timeout input', async () => {
    const { link, clock } = linkFor(() => [job('running', 0.1)]);
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: false,
      pollIntervalMs: 5000,
      timeoutMs: 60_000,
      pausedTimeoutMs: 600_000,
      ...defaults(clock),
    });
    expect(out).toMatchObject({ kind: 'timeout', reason: 'timeout' });
    expect(clock.now() - Date.parse('2026-11-24T11:40:00Z')).toBeGreaterThanOrEqual(60_000);
  });

  it('fails a job that stays paused past paused-timeout, warning once', async () => {
    const warnings: string[] = [];
    const { link, clock } = linkFor(() => [job('paused', 0.4)]);
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: true,
      pollIntervalMs: 5000,
      pausedTimeoutMs: 30_000,
      clock,
      log: { info: () => undefined, warning: (m) => warnings.push(m) },
      signal: new AbortController().signal,
      reconnectBudgetMs: 10_000,
    });
    expect(out).toMatchObject({ kind: 'timeout', reason: 'paused-timeout' });
    expect(warnings.filter((w) => w.includes('paused'))).toHaveLength(1);
  });

  it('reports a job that is no longer returned as vanished', async () => {
    let n = 0;
    const { link, clock } = linkFor(() => (++n > 2 ? [] : [job('running')]));
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: false,
      pollIntervalMs: 1000,
      pausedTimeoutMs: 600_000,
      ...defaults(clock),
    });
    expect(out.kind).toBe('vanished');
  });

  it('reconnects after a dropped connection and resumes on the same job id', async () => {
    let n = 0;
    const { link, clock, connector } = linkFor((stmt, session) => {
      n++;
      if (n === 2) {
        session.broken = true;
        throw new Error('Connection terminated unexpectedly');
      }
      expect(stmt.params).toEqual(['900000000000000001']);
      return [job(n >= 4 ? 'succeeded' : 'running', 1)];
    });
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: false,
      pollIntervalMs: 1000,
      pausedTimeoutMs: 600_000,
      ...defaults(clock),
    });
    expect(out.kind).toBe('terminal');
    expect(connector.requests.length).toBe(2);
    expect(connector.requests[1]!.applicationName).toBe('test c2');
  });

  it('returns aborted at once when the signal fires', async () => {
    const controller = new AbortController();
    controller.abort();
    const { link, clock } = linkFor(() => [job('running')]);
    const out = await waitForJob({
      link,
      jobId: '900000000000000001',
      useWhenComplete: true,
      pollIntervalMs: 1000,
      pausedTimeoutMs: 600_000,
      clock,
      log: quiet,
      signal: controller.signal,
      reconnectBudgetMs: 10_000,
    });
    expect(out.kind).toBe('aborted');
  });
});

describe('AdaptivePoller', () => {
  it('reads one poll-interval after the submission, then one after each answer, like a plain poller', () => {
    const p = new AdaptivePoller(5000);
    expect(p.firstDelay()).toBe(5000);
    expect(p.nextDelay()).toBe(5000);
  });
});

describe('submitBackup', () => {
  const capture = captureTimeFromMicros(BigInt(Date.parse('2026-11-24T11:40:35Z')) * 1000n);
  const stmt = backupStatement('s3://b/p?AWS_SECRET_ACCESS_KEY=x', {
    databases: [],
    asOf: capture.literal,
    revisionHistory: true,
  });
  const matches = (d: string) => d.includes("IN 's3://b/p");

  it('returns the job id of a normal submission', async () => {
    const { link, clock } = linkFor(() => [{ job_id: '1012345678901234567' }]);
    const out = await submitBackup({
      link,
      statement: stmt,
      capture,
      matchesCollection: matches,
      clock,
      log: quiet,
      sessionGoneTimeoutMs: 10_000,
      reconnectBudgetMs: 10_000,
    });
    expect(out).toEqual({ jobId: '1012345678901234567', adopted: false, attempts: 1 });
  });

  it('adopts the job of a lost answer after the lost session is gone, and never resubmits', async () => {
    let backups = 0;
    let sessionChecks = 0;
    const { link, clock } = linkFor((s, session) => {
      if (s.text.startsWith('BACKUP')) {
        backups++;
        session.broken = true;
        throw new Error('Connection terminated unexpectedly');
      }
      if (s.text.includes('cluster_sessions')) {
        expect(s.params).toEqual(['test c1']);
        return ++sessionChecks < 3 ? [{ session_id: 'x', application_name: 'test c1' }] : [];
      }
      expect(s.params[1]).toBe(`%AS OF SYSTEM TIME '${capture.literal}'%`);
      return [job('running', 0, { job_id: '777', description: "BACKUP INTO '/x' IN 's3://b/p?…'" })];
    });
    const out = await submitBackup({
      link,
      statement: stmt,
      capture,
      matchesCollection: matches,
      clock,
      log: quiet,
      sessionGoneTimeoutMs: 10_000,
      reconnectBudgetMs: 10_000,
    });
    expect(out).toEqual({ jobId: '777', adopted: true, attempts: 1 });
    expect(backups).toBe(1);
    expect(sessionChecks).toBe(3);
  });

  it('resubmits only when the lost submission created no job', async () => {
    let backups = 0;
    const { link, clock } = linkFor((s, session) => {
      if (s.text.startsWith('BACKUP')) {
        if (++backups === 1) {
          session.broken = true;
          throw new Error('Connection terminated unexpectedly');
        }
        return [{ job_id: '888' }];
      }
      return [];
    });
    const out = await submitBackup({
      link,
      statement: stmt,
      capture,
      matchesCollection: matches,
      clock,
      log: quiet,
      sessionGoneTimeoutMs: 10_000,
      reconnectBudgetMs: 10_000,
    });
    expect(out).toEqual({ jobId: '888', adopted: false, attempts: 2 });
  });

  it('does not retry an answer from the server', async () => {
    const { link, clock } = linkFor(() => {
      throw sqlError('42501', 'only users with the admin role or the BACKUP system privilege are allowed');
    });
    await expect(
      submitBackup({
        link,
        statement: stmt,
        capture,
        matchesCollection: matches,
        clock,
        log: quiet,
        sessionGoneTimeoutMs: 10_000,
        reconnectBudgetMs: 10_000,
      }),
    ).rejects.toThrow(/BACKUP system privilege/);
  });
});

describe('cancelWithFallback', () => {
  const conn = (user: string, input = 'connection-string'): ConnectionConfig => ({
    input,
    host: '127.0.0.1',
    port: 26257,
    database: 'defaultdb',
    user,
    sslmode: 'disable',
    params: {},
  });
  const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
  const refusedError = (): Error => new Error('connect ECONNREFUSED 127.0.0.1:26257');

  /** A connector whose sessions answer through `answer`; records connects, statements and their timeouts. */
  function scripted(
    answer: (stmt: Statement, req: ConnectRequest) => Promise<Row[]>,
    connect: (req: ConnectRequest, n: number) => Promise<void> = async () => undefined,
  ) {
    const requests: ConnectRequest[] = [];
    const statements: { text: string; user: string; clientTimeoutMs?: number }[] = [];
    let closed = 0;
    const connector: Connector = async (req) => {
      requests.push(req);
      await connect(req, requests.length);
      const session: SqlSession = {
        applicationName: req.applicationName,
        broken: false,
        query: (stmt, opts) => {
          statements.push({
            text: stmt.text,
            user: req.connection.user,
            clientTimeoutMs: opts?.clientTimeoutMs,
          });
          return answer(stmt, req);
        },
        close: async () => {
          closed++;
        },
      };
      return session;
    };
    return { connector, requests, statements, closed: () => closed };
  }
  const request = (connector: Connector, connections: ConnectionConfig[], totalTimeoutMs?: number) => {
    const logs: string[] = [];
    let n = 0;
    return {
      logs,
      r: {
        connector,
        jobId: '1012345678901234567',
        connections,
        applicationName: () => `test c${++n}`,
        connectTimeoutMs: 3000,
        timeoutMs: 3000,
        ...(totalTimeoutMs !== undefined ? { totalTimeoutMs } : {}),
        log: (m: string) => logs.push(m),
        describe: (e: unknown) => (e instanceof Error ? e.message : String(e)),
      },
    };
  };

  it('a pause-requested job is cancelled once it is paused, on the same connection', async () => {
    let cancels = 0;
    const { connector, requests } = scripted(async (stmt) => {
      if (stmt.text.startsWith('CANCEL') && ++cancels < 3)
        throw sqlError('XXUUU', 'job with status pause-requested cannot be requested to be canceled');
      return [];
    });
    const { r } = request(connector, [conn('backup_user')], 3000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'requested' });
    expect(cancels).toBe(3);
    expect(requests).toHaveLength(1);
  });

  it('a job still pause-requested at the deadline is reported as pausing, before the deadline', async () => {
    const { connector } = scripted(async (stmt) => {
      if (stmt.text.startsWith('CANCEL'))
        throw sqlError('XXUUU', 'job with state pause-requested cannot be requested to be canceled');
      return [];
    });
    const { r } = request(connector, [conn('backup_user')], 1000);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    expect(result).toEqual({ kind: 'pausing' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(cancelResultText(result, r.jobId, 'x', 'backup_user')).toMatch(/pausing .*STILL NEEDS A CANCEL/);
  });

  it('a reverting job is being rolled back: not reported as already ended', async () => {
    const { connector } = scripted(async (stmt) => {
      if (stmt.text.startsWith('CANCEL'))
        throw sqlError('XXUUU', 'job with status reverting cannot be requested to be canceled');
      return [];
    });
    const { r } = request(connector, [conn('backup_user')], 1000);
    const result = await cancelWithFallback(r);
    expect(result).toEqual({ kind: 'reverting' });
    expect(cancelResultText(result, r.jobId, 'x', 'backup_user')).toMatch(/already being rolled back/);
  });

  it('defaults to one deadline of about 5 s for the whole cancel', () => {
    expect(CANCEL_DEADLINE_MS).toBeGreaterThanOrEqual(3000);
    expect(CANCEL_DEADLINE_MS).toBeLessThanOrEqual(5000);
  });

  it('sends SET statement_timeout and CANCEL JOB, each bounded by what is left of the deadline', async () => {
    const c = scripted(async () => []);
    const { r } = request(c.connector, [conn('ops')], 1000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'requested' });
    expect(c.statements.map((s) => s.text)).toEqual([
      expect.stringMatching(/^SET statement_timeout/),
      expect.stringMatching(/^CANCEL JOB/),
    ]);
    expect(c.requests[0]!.connectTimeoutMs).toBeLessThanOrEqual(1000);
    for (const s of c.statements) expect(s.clientTimeoutMs).toBeLessThanOrEqual(1000);
    expect(c.closed()).toBe(1);
  });

  it('ends within the deadline when CANCEL JOB hangs, and says the job may still be running', async () => {
    const c = scripted(async (stmt) => (stmt.text.startsWith('CANCEL') ? never() : []));
    const { r } = request(c.connector, [conn('ops')], 300);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    const took = Date.now() - started;
    expect(result).toMatchObject({ kind: 'timed-out', afterMs: 300 });
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(600);
    expect(c.closed()).toBe(1);
    const text = cancelResultText(result, '1012345678901234567', 'cancel-on-abort', 'ops');
    expect(text).toMatch(/^Could not cancel within 0s/);
    expect(text).toMatch(/job 1012345678901234567 may still be running/);
    expect(text).toMatch(/CANCEL JOB 1012345678901234567;/);
  });

  it('bounds both connections together: a refusal, then a grant connection that never connects', async () => {
    const c = scripted(
      async (stmt) => {
        if (stmt.text.startsWith('CANCEL'))
          throw sqlError('42501', 'user ops does not have CONTROLJOB privilege');
        return [];
      },
      async (req) => (req.connection.user === 'root' ? never() : undefined),
    );
    const { r, logs } = request(c.connector, [conn('ops'), conn('root', 'grant-connection-string')], 400);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    expect(Date.now() - started).toBeLessThan(700);
    expect(result.kind).toBe('timed-out');
    expect(logs).toEqual([expect.stringMatching(/refused; retrying on grant-connection-string/)]);
    // The grant connection got only what was left, not its own full connect timeout.
    expect(c.requests[1]!.connectTimeoutMs).toBeLessThanOrEqual(400);
  });

  it('retries a refused connection until the cluster answers, inside the deadline', async () => {
    const c = scripted(
      async () => [],
      async (_req, n) => {
        if (n <= 2) throw refusedError();
      },
    );
    const { r } = request(c.connector, [conn('ops')], 3000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'requested' });
    expect(c.requests).toHaveLength(3);
  });

  it('gives up on refused connections at the deadline, naming the last error', async () => {
    const c = scripted(
      async () => [],
      async () => {
        throw refusedError();
      },
    );
    const { r } = request(c.connector, [conn('ops')], 1200);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(result).toMatchObject({ kind: 'timed-out', last: expect.stringMatching(/ECONNREFUSED/) });
    expect(c.requests.length).toBeGreaterThan(1);
    expect(cancelResultText(result, '42', 'x', 'ops')).toMatch(
      /^Could not cancel within 1s \(connect ECONNREFUSED[^)]*\): job 42 may still be running/,
    );
  });

  it('does not retry an answer from the server', async () => {
    const c = scripted(async (stmt) => {
      if (stmt.text.startsWith('CANCEL'))
        throw sqlError('XXUUU', 'job with status succeeded cannot be requested to be canceled');
      return [];
    });
    const { r } = request(c.connector, [conn('ops')], 3000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'already-finished', status: 'succeeded' });
    expect(c.requests).toHaveLength(1);
  });
});

describe('earlierThan (two runs at once)', () => {
  const job = (jobId: string, created: string | undefined): JobRow => ({
    jobId,
    status: 'running',
    fractionCompleted: 0,
    error: null,
    description: '',
    ...(created ? { created: parseClusterTime(created)! } : {}),
  });
  it('names the oldest unfinished backup created before ours, by creation time then id', () => {
    const rows = [
      job('30', '2026-11-24 11:40:46.000300+00'),
      job('20', '2026-11-24 11:40:46.000200+00'),
      job('10', '2026-11-24 11:40:46.000100+00'),
    ];
    expect(earlierThan(rows, '30')?.jobId).toBe('10');
    expect(earlierThan(rows, '10')).toBeUndefined();
    const tie = [job('7', '2026-11-24 11:40:46.0001+00'), job('8', '2026-11-24 11:40:46.0001+00')];
    expect(earlierThan(tie, '8')?.jobId).toBe('7');
    expect(earlierThan(tie, '7')).toBeUndefined();
  });
  it('says nothing when our job is not among the unfinished ones', () => {
    expect(earlierThan([job('1', '2026-11-24 11:40:46+00')], '2')).toBeUndefined();
  });
});
