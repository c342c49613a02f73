import { describe, expect, it } from 'vitest';
import type { Row } from '../../src/cluster.js';
import type { JobRow } from '../../src/wait.js';
import type { PlanContext } from '../../src/plan.js';
import { endMillisOfFolder } from '../../src/layout.js';
import {
  appendTarget,
  captureFromDescription,
  decideIfRunning,
  decideYield,
  newest,
  PlanError,
  planBackup,
  plannedFullSubdir,
  planFromDescription,
  sameTargets,
  targetsOf,
} from '../../src/plan.js';
import type { Statement } from '../../src/sql.js';

function ctx(
  over: Partial<PlanContext>,
  answers: { fulls: string[]; show?: Row[]; now?: string },
): PlanContext {
  return {
    backupType: 'auto',
    databases: [],
    collectionDisplay: 's3://b/p',
    query: async (stmt: Statement): Promise<Row[]> => {
      if (stmt.text.startsWith('SHOW BACKUPS')) return answers.fulls.map((path) => ({ path }));
      if (stmt.text.startsWith('SELECT now()')) return [{ now: answers.now ?? null }];
      return answers.show ?? [];
    },
    showBackups: { text: 'SHOW BACKUPS IN $1', params: ['u'] },
    showBackup: (subdir) => ({ text: 'SHOW BACKUP FROM $1 IN $2', params: [subdir, 'u'] }),
    log: () => undefined,
    ...over,
  };
}
const db = (name: string, type = 'full'): Row => ({
  object_name: name,
  object_type: 'database',
  backup_type: type,
  is_full_cluster: false,
});

describe('plan', () => {
  it('reads end times from folder names', () => {
    expect(endMillisOfFolder('/2026/11/24-114045.12')).toBe(Date.parse('2026-11-24T11:40:45.120Z'));
    expect(endMillisOfFolder('2026/11/24-114045.12')).toBe(Date.parse('2026-11-24T11:40:45.120Z'));
    expect(endMillisOfFolder('/LATEST')).toBeUndefined();
  });
  it('compares targets as sets; a cluster backup only matches a cluster backup', () => {
    expect(
      sameTargets({ cluster: false, databases: ['a', 'b'] }, { cluster: false, databases: ['b', 'a'] }),
    ).toBe(true);
    expect(sameTargets({ cluster: false, databases: ['a'] }, { cluster: false, databases: ['a', 'b'] })).toBe(
      false,
    );
    expect(sameTargets({ cluster: true, databases: ['a'] }, { cluster: false, databases: ['a'] })).toBe(
      false,
    );
    expect(targetsOf([db('shop'), db('shop', 'incremental'), db('x', 'incremental')])).toEqual({
      cluster: false,
      databases: ['shop'],
    });
  });
  it('auto: a new full backup when the newest full is older than full-backup-every, by the cluster clock', async () => {
    const answers = { fulls: ['/2026/11/01-000000.00', '/2026/11/08-000000.00'], show: [db('shop')] };
    const young = await planBackup(
      ctx(
        { databases: ['shop'], fullBackupEveryMs: 7 * 86_400_000 },
        { ...answers, now: '2026-11-14 23:00:00+00' },
      ),
    );
    expect(young).toMatchObject({ kind: 'incremental', fullSubdir: '/2026/11/08-000000.00' });
    const old = await planBackup(
      ctx(
        { databases: ['shop'], fullBackupEveryMs: 7 * 86_400_000 },
        { ...answers, now: '2026-11-15 00:00:01+00' },
      ),
    );
    expect(old.kind).toBe('full');
    expect(old.reason).toContain('ended 7d ago (cluster clock), more than full-backup-every (7d)');
  });
  it('incremental onto other targets fails naming both; auto takes a full', async () => {
    const answers = { fulls: ['/2026/11/08-000000.00'], show: [db('shop')] };
    await expect(
      planBackup(ctx({ backupType: 'incremental', databases: ['shop', 'billing'] }, answers)),
    ).rejects.toThrow(PlanError);
    await expect(
      planBackup(ctx({ backupType: 'incremental', databases: ['shop', 'billing'] }, answers)),
    ).rejects.toThrow(/holds database "shop", and this run backs up databases "billing", "shop"/);
    expect((await planBackup(ctx({ databases: ['billing'] }, answers))).kind).toBe('full');
  });
});

const job = (jobId: string, createdMicros: bigint, status = 'running'): JobRow => ({
  jobId,
  status,
  fractionCompleted: null,
  error: null,
  created: { iso: '', micros: createdMicros },
  description: '',
});

describe('if-running, before submitting', () => {
  const a = job('11', 1_000n);
  const b = job('22', 2_000n, 'paused');
  it('starts when nothing else runs, whatever the mode', () => {
    for (const mode of ['start', 'fail', 'attach', 'wait'] as const)
      expect(decideIfRunning(mode, [], 's3://b/p')).toEqual({
        kind: 'start',
        log: 'No other backup job is running into s3://b/p.',
      });
  });
  it('start: starts another, naming the running jobs', () => {
    expect(decideIfRunning('start', [a, b], 's3://b/p')).toEqual({
      kind: 'start',
      log: 'Backup job(s) 11 (running), 22 (paused) already running into this collection; starting another (if-running: start).',
    });
  });
  it('fail: fails naming the jobs and the collection', () => {
    expect(decideIfRunning('fail', [a], 's3://b/p')).toEqual({
      kind: 'fail',
      message:
        'if-running: fail: backup job(s) 11 (running) are already running into s3://b/p. Wait for them, or set if-running to attach, wait or start.',
    });
  });
  it('attach: follows the newest job; wait: waits for every one', () => {
    expect(decideIfRunning('attach', [b, a], 's3://b/p')).toEqual({ kind: 'attach', job: b });
    expect(decideIfRunning('attach', [a, b], 's3://b/p')).toEqual({ kind: 'attach', job: b });
    expect(decideIfRunning('wait', [a, b], 's3://b/p')).toEqual({ kind: 'wait', jobs: [a, b] });
  });
  it('newest goes by creation time, a job without one counting as oldest', () => {
    const none: JobRow = { ...job('33', 0n), created: undefined };
    expect(newest([none, a]).jobId).toBe('11');
    expect(newest([a, b, none]).jobId).toBe('22');
  });
});

describe('if-running, after a concurrent submit', () => {
  const other = job('11', 1_000n);
  it('start keeps both jobs', () => {
    expect(decideYield('start', other, '99', 's3://b/p')).toEqual({
      kind: 'keep',
      log: 'Backup job 11 into this collection was started just before job 99; keeping both (if-running: start).',
    });
  });
  it('every other mode cancels its own job, then fails, attaches or submits again', () => {
    const fail = decideYield('fail', other, '99', 's3://b/p');
    expect(fail).toMatchObject({
      kind: 'cancel-own',
      log: 'Backup job 11 into this collection was started just before job 99 (another run passed the same check at the same moment); cancelling 99 (if-running: fail).',
      then: {
        kind: 'fail',
        message:
          "if-running: fail: backup job 11 into s3://b/p was started just before this run's job 99, which was cancelled. Wait for it, or set if-running to attach, wait or start.",
      },
    });
    expect(decideYield('attach', other, '99', 's3://b/p')).toMatchObject({
      kind: 'cancel-own',
      then: { kind: 'attach', job: other },
    });
    expect(decideYield('wait', other, '99', 's3://b/p')).toMatchObject({
      kind: 'cancel-own',
      log: expect.stringContaining('cancelling 99 (if-running: wait)') as unknown,
      then: { kind: 'resubmit' },
    });
  });
});

describe('plan of a job from its description', () => {
  const aost = "AS OF SYSTEM TIME '2026-11-24 11:40:35.123456+00:00' WITH OPTIONS (detached)";
  it('reads the capture time when it is absolute', () => {
    expect(captureFromDescription(`BACKUP INTO 's3://b/p' ${aost}`)).toMatchObject({
      literal: '2026-11-24 11:40:35.123456+00:00',
      fullSubdir: '/2026/11/24-114035.12',
    });
    expect(captureFromDescription("BACKUP INTO 's3://b/p' AS OF SYSTEM TIME '-10s'")).toBeUndefined();
    expect(captureFromDescription("BACKUP INTO 's3://b/p'")).toBeUndefined();
  });
  it('a folder that its capture time does not name is the full backup it extends', () => {
    expect(planFromDescription(`BACKUP INTO '/2026/11/20-000000.00' IN 's3://b/p' ${aost}`)).toEqual({
      kind: 'incremental',
      fullSubdir: '/2026/11/20-000000.00',
    });
  });
  it('a folder that its capture time names is the full backup it writes', () => {
    expect(planFromDescription(`BACKUP INTO '/2026/11/24-114035.12' IN 's3://b/p' ${aost}`)).toEqual({
      kind: 'full',
      fullSubdir: '/2026/11/24-114035.12',
    });
  });
  it('no folder, LATEST, or no absolute time: a full backup whose folder is not known', () => {
    expect(planFromDescription(`BACKUP INTO 's3://b/p' ${aost}`)).toEqual({ kind: 'full' });
    expect(planFromDescription(`BACKUP INTO 'LATEST' IN 's3://b/p' ${aost}`)).toEqual({ kind: 'full' });
    expect(planFromDescription("BACKUP INTO '/2026/11/20-000000.00' IN 's3://b/p'")).toEqual({
      kind: 'full',
      fullSubdir: '/2026/11/20-000000.00',
    });
  });
});

describe('what a plan names', () => {
  const capture = captureFromDescription("AS OF SYSTEM TIME '2026-11-24 11:40:35.123456+00:00'")!;
  it('only an incremental names a folder in BACKUP', () => {
    expect(appendTarget({ kind: 'incremental', fullSubdir: '/2026/11/20-000000.00' })).toBe(
      '/2026/11/20-000000.00',
    );
    expect(appendTarget({ kind: 'full', fullSubdir: '/2026/11/24-114035.12' })).toBeUndefined();
  });
  it("the chain's full backup: the one extended, the one named, or the capture time's", () => {
    expect(plannedFullSubdir({ kind: 'incremental', fullSubdir: '/a' }, capture)).toBe('/a');
    expect(plannedFullSubdir({ kind: 'full', fullSubdir: '/b' }, capture)).toBe('/b');
    expect(plannedFullSubdir({ kind: 'full' }, capture)).toBe('/2026/11/24-114035.12');
    expect(plannedFullSubdir({ kind: 'full' }, undefined)).toBeUndefined();
  });
});
