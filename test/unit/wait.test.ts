import { describe, expect, it } from 'vitest';
import type { Row } from '../../src/cluster.js';
import { jobDurationSeconds, parseClusterTime } from '../../src/time.js';
import type { JobRow } from '../../src/wait.js';
import { AdaptivePoller, jobStateAtTimeout, toJobRow, waitForJob } from '../../src/wait.js';
import { sqlError } from '../support/fakes.js';
import { defaults, job, linkFor, quiet } from '../support/jobs.js';

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
