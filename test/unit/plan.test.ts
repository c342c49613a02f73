import { describe, expect, it } from 'vitest';
import type { Row } from '../../src/cluster.js';
import type { PlanContext } from '../../src/plan.js';
import { endMillisOfFolder, PlanError, planBackup, sameTargets, targetsOf } from '../../src/plan.js';
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
    expect(young).toMatchObject({ kind: 'incremental', appendTo: '/2026/11/08-000000.00' });
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
