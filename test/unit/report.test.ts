import { describe, expect, it } from 'vitest';
import {
  formatBytes,
  ProgressReporter,
  renderSummary,
  restoreStatement,
  writeOutputs,
} from '../../src/report.js';
import type { ActionIO, RunReport } from '../../src/report.js';
import { quoteIdent } from '../../src/sql.js';

const success: RunReport = {
  outcome: 'succeeded',
  outputs: {
    'job-id': '1012345678901234567',
    status: 'succeeded',
    verified: 'true',
    duration: '83.412',
    'collection-path': 's3://bucket/path',
    'backup-path': '/2026/11/24-114045.12',
    'backup-uri': 's3://bucket/path/2026/11/24-114045.12',
    'end-time': '2026-11-24T11:40:45.123456Z',
    'size-bytes': '2048',
    'object-count': '7',
  },
  clusterVersion: 'CockroachDB CCL v25.2.1',
  backupKind: 'full',
  databases: [],
  verifyChecks: ['listed by SHOW BACKUPS'],
  restoreStatement: "RESTORE FROM '/2026/11/24-114045.12' IN 's3://bucket/path?…' AS OF SYSTEM TIME '…';",
  runUrl: 'https://github.com/acme/shop/actions/runs/1',
  notes: [],
};

describe('renderSummary', () => {
  it('shows status, job, version, collection, path, time, duration, size, restore and run link', () => {
    const md = renderSummary(success);
    for (const needle of [
      'succeeded',
      '`1012345678901234567`',
      'CockroachDB CCL v25.2.1',
      '`s3://bucket/path`',
      '`/2026/11/24-114045.12`',
      '2026-11-24T11:40:45.123456Z',
      '83.412 s',
      '2.0 KiB in 7 objects',
      '```sql',
      '[Workflow run](https://github.com/acme/shop/actions/runs/1)',
    ]) {
      expect(md).toContain(needle);
    }
  });
  it('offers no RESTORE statement for a backup that failed', () => {
    expect(renderSummary({ ...success, outcome: 'failed' })).not.toContain('RESTORE');
    expect(renderSummary(success)).toContain('RESTORE');
  });
  it('shows the error of a failure and escapes table cells', () => {
    const md = renderSummary({ ...success, outcome: 'failed', error: 'boom | bang', clusterVersion: 'a|b' });
    expect(md).toContain('❌');
    expect(md).toContain('boom | bang');
    expect(md).toContain('a\\|b');
  });
});

describe('restoreStatement', () => {
  it('pins the backup with AS OF SYSTEM TIME and names databases', () => {
    expect(
      restoreStatement({
        databases: ['shop'],
        quoteIdent,
        collectionForRestore: 's3://b/p?AWS_ACCESS_KEY_ID=<key-id>',
        fullSubdir: '/2026/11/24-114045.12',
        endTimeLiteral: '2026-11-24 11:40:45.123456+00:00',
        encrypted: 'passphrase',
      }),
    ).toBe(
      "RESTORE DATABASE \"shop\" FROM '/2026/11/24-114045.12' IN 's3://b/p?AWS_ACCESS_KEY_ID=<key-id>' AS OF SYSTEM TIME '2026-11-24 11:40:45.123456+00:00' WITH encryption_passphrase = '<passphrase>';",
    );
  });
});

describe('writeOutputs', () => {
  it('writes defined outputs through the scrubber', () => {
    const set: [string, string][] = [];
    const io = { setOutput: (n: string, v: string) => set.push([n, v]) } as unknown as ActionIO;
    writeOutputs(io, { 'job-id': '1', status: 'failed: s3cret', duration: undefined }, (t) =>
      t.replace('s3cret', '***'),
    );
    expect(set).toEqual([
      ['job-id', '1'],
      ['status', 'failed: ***'],
    ]);
  });
});

describe('ProgressReporter', () => {
  it('prints on change and at most every quiet period otherwise, with rate and ETA', () => {
    let t = 0;
    const lines: string[] = [];
    const p = new ProgressReporter(
      (l) => lines.push(l),
      () => t,
      30_000,
    );
    const job = (f: number) => ({
      jobId: '9',
      status: 'running',
      fractionCompleted: f,
      error: null,
      description: '',
    });
    p.update(job(0));
    t = 10_000;
    p.update(job(0));
    t = 60_000;
    p.update(job(0.5));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/running, 50\.0%, 50\.0%\/min, ETA ~1m00s/);
  });
  it('formats bytes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MiB');
  });
});
