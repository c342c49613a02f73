import { describe, expect, it } from 'vitest';
import { finalOutputs, neutraliseCommands, writeOutputs } from '../../src/report.js';
import type { PruneSummary } from '../../src/prune.js';
import type { RunReport } from '../../src/report.js';
import type { ActionIO } from '../../src/runtime.js';
import { quoteIdent, restoreStatement } from '../../src/sql.js';
import { fenced, formatBytes, MAX_FAILURE_LINES, renderSummary } from '../../src/summary.js';
import { ProgressReporter } from '../../src/wait.js';

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
  it('says a backup whose pruning failed succeeded, and still offers its RESTORE', () => {
    const md = renderSummary({
      ...success,
      outcome: 'prune-failed',
      error: 'Pruning failed. Nothing was deleted.',
    });
    expect(md).toContain('backup succeeded, but pruning failed');
    expect(md).toContain('RESTORE');
    // One sentence a line (a hard line break) in the error paragraph, which wraps.
    expect(md).toContain('Pruning failed.  \nNothing was deleted.');
    expect(md).not.toContain('```text');
  });
  it('shows only the status row when nothing was known (bad input)', () => {
    const md = renderSummary({
      outcome: 'error',
      outputs: {},
      databases: [],
      verifyChecks: [],
      notes: [],
      error: 'Input `x`: bad.',
    });
    expect(md).toContain('| Backup job | Details |\n|---|---|\n| Status | `error` |\n\nNothing was started');
    expect(md).not.toMatch(/\|[ ]*\|/);
  });
  it('offers no RESTORE statement for a backup that failed', () => {
    const failed = {
      ...success,
      outcome: 'failed' as const,
      outputs: { ...success.outputs, status: 'failed' },
    };
    expect(renderSummary(failed)).not.toContain('RESTORE');
    expect(renderSummary(failed)).toContain('| Planned backup path (no backup there) |');
    expect(renderSummary({ ...success, outcome: 'verify-failed' })).not.toContain('RESTORE');
    expect(renderSummary(success)).toContain('RESTORE');
  });
  it('shows the error of a failure and escapes table cells', () => {
    const md = renderSummary({ ...success, outcome: 'failed', error: 'boom | bang', clusterVersion: 'a|b' });
    expect(md).toContain('❌');
    expect(md).toContain('boom \\| bang');
    expect(md).toContain('a\\|b');
  });
});

describe('renderSummary: pruning', () => {
  const prune = (over: Partial<PruneSummary> = {}): string =>
    renderSummary({
      ...success,
      prune: {
        dryRun: false,
        kept: [
          {
            path: '/2026/11/24-114045.12',
            sizeBytes: 3 * 1024 * 1024,
            objects: 40,
            reason: 'the newest chain',
          },
        ],
        deleted: [
          {
            path: '/2026/10/01-000000.00',
            sizeBytes: 2048,
            objects: 12,
            deletedObjects: 12,
            outcome: 'deleted',
          },
        ],
        failures: [],
        note: 'On a versioned bucket, deleting only adds delete markers.',
        ...over,
      },
    });

  it('shows the size and object count of kept chains as well as deleted ones', () => {
    const md = prune();
    expect(md).toContain('Deleted 1 chain(s), kept 1.');
    expect(md).toContain('| `/2026/11/24-114045.12` | kept (the newest chain) | 40 | 3.0 MiB |');
    expect(md).toContain('| `/2026/10/01-000000.00` | deleted | 12 | 2.0 KiB |');
    expect(md).toContain('delete markers');
  });

  it('says per chain what was partially deleted', () => {
    const md = prune({
      deleted: [
        { path: '/2026/10/01-000000.00', objects: 12, deletedObjects: 12, outcome: 'deleted' },
        {
          path: '/2026/10/02-000000.00',
          objects: 1998,
          deletedObjects: 1000,
          outcome: 'partially deleted (1000 of 1998 objects)',
        },
      ],
      failures: ['k1: AccessDenied Access Denied'],
      failedObjects: [{ key: 'k1', code: 'AccessDenied' }],
    });
    expect(md).toContain('Deleted 1 chain(s), partially deleted 1, kept 1.');
    expect(md).toContain('| `/2026/10/02-000000.00` | partially deleted (1000 of 1998 objects) | 1998 |');
    expect(md).toMatch(/keep their BACKUP_MANIFEST/);
  });

  it('caps the failure list and counts the rest by error code', () => {
    const failedObjects = [
      ...Array.from({ length: 990 }, (_, i) => ({
        key: `p/2026/10/02-000000.00/data/${i}.sst`,
        code: 'AccessDenied',
      })),
      ...Array.from({ length: 3 }, (_, i) => ({
        key: `p/2026/10/02-000000.00/x/${i}`,
        code: 'InternalError',
      })),
    ];
    const md = prune({
      failures: failedObjects.map((f) => `${f.key}: ${f.code} injected`),
      failedObjects,
    });
    const lines = md.split('\n').filter((l) => l.startsWith('- '));
    expect(lines).toHaveLength(MAX_FAILURE_LINES + 1);
    expect(MAX_FAILURE_LINES).toBe(20);
    expect(lines.at(-1)).toBe('- … and 973 more failures: AccessDenied × 970, InternalError × 3');
    expect(md).toContain('Failures (993 object(s) not deleted):');
  });

  it('shows why pruning stopped', () => {
    const md = prune({ error: 'The backup succeeded and was verified, but pruning failed while listing …' });
    expect(md).toContain('**Pruning stopped:** The backup succeeded and was verified, but pruning failed');
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
      "RESTORE DATABASE \"shop\" FROM '/2026/11/24-114045.12'\n  IN 's3://b/p?AWS_ACCESS_KEY_ID=<key-id>'\n  AS OF SYSTEM TIME '2026-11-24 11:40:45.123456+00:00'\n  WITH encryption_passphrase = '<passphrase>';",
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

describe('texts from outside', () => {
  it('never become workflow commands in a log line, on any line of a multi-line text', () => {
    const hostile = 'job failed:\n::stop-commands::x\n  ::add-mask::abc\r\n::error::pwned\nsee ##[error]here';
    const out = neutraliseCommands(hostile);
    for (const line of out.split(/\r?\n/)) {
      expect(line).not.toMatch(/^\s*::/);
      expect(line).not.toContain('##[');
    }
    expect(out).toContain('» ::stop-commands::x');
    expect(out.split('\n')).toHaveLength(hostile.split('\n').length);
    expect(neutraliseCommands('Backup job 1 created.')).toBe('Backup job 1 created.');
  });

  it('cannot close a code fence or make Markdown in the summary', () => {
    const error = 'oops ```\n# Heading\n<img src=x onerror=alert(1)>\n- [link](http://evil) **bold** | cell';
    const md = renderSummary({ ...success, outcome: 'failed', outputs: { status: 'failed' }, error });
    const section = md.slice(md.indexOf('### Error'));
    expect(section).not.toMatch(/^#\s/m);
    expect(section).not.toContain('<img');
    expect(section).not.toMatch(/^- /m);
    expect(section).toContain('\\`\\`\\`');
    expect(section).toContain('\\[link\\](http://evil)');
    const block = fenced('sql', 'a ```` b');
    expect(block[0]).toBe('`````sql');
    expect(block[2]).toBe('`````');
  });
});

describe('outputs in every ending', () => {
  const base = {
    'job-id': '1',
    'backup-path': '/p',
    'backup-uri': 's3://b/p',
    'end-time': 't',
    'size-bytes': '1',
    'object-count': '2',
  };
  it.each([
    ['succeeded', { status: 'succeeded' }, 'succeeded', true],
    ['prune-failed', { status: 'succeeded' }, 'succeeded', true],
    ['verify-failed', { status: 'succeeded' }, 'succeeded', true],
    ['failed', { status: 'failed' }, 'failed', false],
    ['failed', { status: 'canceled' }, 'canceled', false],
    ['failed', { status: 'revert-failed' }, 'revert-failed', false],
    ['timeout', { status: 'timeout' }, 'timeout', false],
    ['aborted', { status: 'running' }, 'aborted', false],
    ['aborted', {}, 'aborted', false],
    ['submitted', { status: 'running' }, 'running', true],
    ['error', {}, 'error', false],
  ] as const)('%s with %j: status %s, backup outputs %s', (outcome, outputs, status, backup) => {
    const o = finalOutputs({ outcome, outputs: { ...base, ...outputs } });
    expect(o.status).toBe(status);
    expect(o['job-id']).toBe('1');
    for (const k of ['backup-path', 'backup-uri', 'end-time', 'size-bytes', 'object-count'] as const)
      expect(o[k] !== undefined, k).toBe(backup);
  });
});

describe('progress line', () => {
  it('counts elapsed time from the start of the wait, even when the first read comes at the end', () => {
    let t = 0;
    const lines: string[] = [];
    const p = new ProgressReporter(
      (l) => lines.push(l),
      () => t,
    );
    t = 5_000;
    p.update({ jobId: '7', status: 'succeeded', fractionCompleted: 1 } as never);
    expect(lines).toEqual(['Job 7: succeeded, 100.0% (elapsed 5s)']);
  });
});

describe('summary scrubbing', () => {
  it('scrubs a secret out of a text from outside before escaping it for Markdown', () => {
    const secret = 'wrong/secret+with=chars&more_x*y';
    const error = `Backup job 1 ended with status failed: s3://b/p?AWS_SECRET_ACCESS_KEY=${secret} refused.`;
    const scrub = (t: string): string => t.split(secret).join('***');
    const md = renderSummary({ ...success, outcome: 'failed', outputs: { status: 'failed' }, error }, scrub);
    expect(md).not.toContain('wrong/secret');
    expect(md).toContain('AWS\\_SECRET\\_ACCESS\\_KEY=\\*\\*\\*');
  });
});
