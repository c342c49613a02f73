import { describe, expect, it } from 'vitest';
import { fullSubdirFor } from '../../src/layout.js';
import { backupStatement } from '../../src/sql.js';
import { captureTimeFromMicros, earlierThan, submitBackup } from '../../src/submit.js';
import { parseClusterTime } from '../../src/time.js';
import type { JobRow } from '../../src/wait.js';
import { sqlError } from '../support/fakes.js';
import { job, linkFor, quiet } from '../support/jobs.js';

describe('capture time and subdirectory', () => {
  it('truncates to two fraction digits like Go /2006/01/02-150405.00', () => {
    expect(fullSubdirFor('2026-11-24 11:40:45.129999+00:00')).toBe('/2026/11/24-114045.12');
    const c = captureTimeFromMicros(BigInt(Date.parse('2026-01-02T03:04:05Z')) * 1000n + 670000n);
    expect(c.literal).toBe('2026-01-02 03:04:05.670000+00:00');
    expect(c.fullSubdir).toBe('/2026/01/02-030405.67');
    expect(c.iso).toBe('2026-01-02T03:04:05.670000Z');
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
