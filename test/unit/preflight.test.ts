/**
 * The dry run's rules, per version: who may cancel, which privileges BACKUP needs, when a licence
 * is needed and when it is unknown, which storage check a version parses; and a checklist in which
 * text from outside never becomes Markdown structure.
 */
import { describe, expect, it } from 'vitest';
import { parseClusterVersion } from '../../src/cluster.js';
import { readConfig } from '../../src/inputs.js';
import type { UserFacts } from '../../src/preflight-checks.js';
import {
  backupPrivilegeCheck,
  cancelCheck,
  licenceCheck,
  parseList,
  renderChecklist,
  storageCheckForm,
  verifyCheck,
} from '../../src/preflight-checks.js';
import { grantConnectionCheck, grantSideMayCancel, verifyClusterCheck } from '../../src/preflight-others.js';
import { SecretRegistry } from '../../src/secrets.js';
import type { Config } from '../../src/config.js';

function config(over: Record<string, string> = {}): Config {
  const all: Record<string, string> = {
    'connection-string': 'postgresql://bk:pw@db.internal:26257/defaultdb?sslmode=verify-full',
    collection: 's3://bucket/path',
    'aws-access-key-id': 'AKIAEXAMPLE',
    'aws-secret-access-key': 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    'aws-region': 'eu-west-1',
    ...over,
  };
  return readConfig((n) => all[n] ?? '', {}, new SecretRegistry()).config;
}

const v = (tag: string) => parseClusterVersion(`CockroachDB CCL ${tag} (x86_64-pc-linux-gnu)`);

function facts(over: Partial<UserFacts> = {}): UserFacts {
  return {
    user: 'bk',
    admin: false,
    roleOptions: new Set(),
    systemPrivileges: new Set(),
    databaseBackup: new Map(),
    licence: 'crl-0-x',
    notes: [],
    ...over,
  };
}

describe('cancel: CONTROLJOB per version', () => {
  const c = config();
  it('22.2 and 23.1 before 23.1.12 take the role option only', () => {
    for (const tag of ['v22.2.19', 'v23.1.11']) {
      const check = cancelCheck(c, v(tag), facts({ systemPrivileges: new Set(['CONTROLJOB']) }));
      expect(check.state, tag).toBe('failed');
      expect(check.statements).toEqual(['ALTER ROLE "bk" WITH CONTROLJOB;']);
      expect(cancelCheck(c, v(tag), facts({ roleOptions: new Set(['CONTROLJOB']) })).state).toBe('passed');
    }
  });
  it('from 23.1.12 the system privilege too; from 25.1 owners may cancel', () => {
    const sys = facts({ systemPrivileges: new Set(['CONTROLJOB']) });
    expect(cancelCheck(c, v('v23.1.12'), sys).state).toBe('passed');
    expect(cancelCheck(c, v('v24.3.1'), facts()).statements).toEqual(['GRANT SYSTEM CONTROLJOB TO "bk";']);
    expect(cancelCheck(c, v('v25.1.0'), facts()).state).toBe('passed');
  });
  it('no cancel wanted: skipped; a grant-connection-string retries a refused cancel', () => {
    const off = config({ 'cancel-on-abort': 'false', 'on-timeout': 'leave' });
    expect(cancelCheck(off, v('v22.2.19'), facts()).state).toBe('skipped');
    const fallback = config({
      'grant-connection-string': 'postgresql://root:pw@db.internal:26257/defaultdb',
    });
    expect(cancelCheck(fallback, v('v22.2.19'), facts(), true).state).toBe('passed');
    // A grant connection whose user could not cancel either does not make it pass.
    const refused = cancelCheck(fallback, v('v22.2.19'), facts(), false);
    expect(refused.state).toBe('failed');
    expect(refused.detail).toContain('the grant-connection-string user root may not cancel it either');
  });
  it('unreadable role options: unknown, not failed', () => {
    expect(cancelCheck(c, v('v22.2.19'), facts({ roleOptions: undefined })).state).toBe('unknown');
  });
});

describe('BACKUP privileges', () => {
  it('cluster backup: the system privilege; databases: BACKUP on each; endpoint: EXTERNALIOIMPLICITACCESS', () => {
    expect(backupPrivilegeCheck(config(), facts()).statements).toEqual(['GRANT SYSTEM BACKUP TO "bk";']);
    const dbs = config({ databases: 'shop, billing', 's3-endpoint': 'http://minio:9000' });
    const f = facts({
      databaseBackup: new Map([
        ['shop', true],
        ['billing', false],
      ]),
    });
    expect(backupPrivilegeCheck(dbs, f).statements).toEqual([
      'GRANT BACKUP ON DATABASE "billing" TO "bk";',
      'GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO "bk";',
    ]);
    expect(backupPrivilegeCheck(config(), facts({ admin: true })).state).toBe('passed');
  });
  it('grant-to the same user grants them first; unreadable views are unknown', () => {
    expect(backupPrivilegeCheck(config({ 'grant-to': 'bk' }), facts()).state).toBe('passed');
    expect(backupPrivilegeCheck(config(), facts({ systemPrivileges: undefined })).state).toBe('unknown');
  });
});

describe('licence', () => {
  const c = config();
  it('24.3 and later need none; before, an empty licence fails with the input to change', () => {
    expect(licenceCheck(c, v('v24.3.0'), facts({ licence: '' }), false, undefined).state).toBe('passed');
    const none = licenceCheck(c, v('v23.2.6'), facts({ licence: '' }), true, undefined);
    expect(none.state).toBe('failed');
    expect(none.fix).toContain('set revision-history: false, and use backup-type: full');
  });
  it('unreadable: unknown unless the statement-time check answered', () => {
    const hidden = facts({ licence: undefined });
    expect(licenceCheck(c, v('v23.2.6'), hidden, false, undefined).state).toBe('passed');
    expect(licenceCheck(c, v('v23.2.6'), hidden, true, undefined).state).toBe('unknown');
    const refused = Object.assign(new Error('requires an enterprise license'), { code: 'XXC02' });
    expect(licenceCheck(c, v('v23.2.6'), hidden, false, refused).state).toBe('failed');
    const noOptions = config({ 'revision-history': 'false' });
    expect(licenceCheck(noOptions, v('v22.2.19'), hidden, false, undefined).state).toBe('passed');
  });
});

it('storage check per version: SHOW BACKUP CONNECTION to 24.3 (a syntax error before 22.2.7), CHECK from 25.1', () => {
  expect(storageCheckForm(v('v22.2.6'))).toBe('show-backup');
  expect(storageCheckForm(v('v22.2.7'))).toBe('show-backup');
  expect(storageCheckForm(v('v24.3.5'))).toBe('show-backup');
  expect(storageCheckForm(v('v25.1.0'))).toBe('check');
});

it('SHOW ROLES options: a STRING on 22.2, a STRING[] later', () => {
  expect(parseList('CONTROLJOB, NOLOGIN')).toEqual(['CONTROLJOB', 'NOLOGIN']);
  expect(parseList('{controljob,createdb}')).toEqual(['CONTROLJOB', 'CREATEDB']);
  expect(parseList(['admin'])).toEqual(['ADMIN']);
  expect(parseList(null)).toEqual([]);
});

it('the checklist escapes text from outside: no table cell, link, HTML or code is opened by it', () => {
  const hostile = 'node 2: | **bold** [x](http://e) <img src=x> `tick` ::error::boom\nnext | line';
  const md = renderChecklist(
    {
      checks: [
        {
          name: 'Node access to the collection',
          state: 'failed',
          detail: hostile,
          statements: ['GRANT `x` | y;'],
        },
        { name: 'Pruning', state: 'skipped', detail: 'no prune-keep-last.' },
      ],
      statements: ['BACKUP INTO $1  -- $1 = s3://b/p?AWS_SECRET_ACCESS_KEY=redacted'],
      grants: [],
    },
    { config: config() },
  );
  const rows = md.split('\n').filter((l) => l.startsWith('| ❌') || l.startsWith('| ⏭️'));
  expect(rows).toHaveLength(2);
  // Every `|` of the outside text is escaped: the row keeps its 4 cell borders.
  expect(rows[0]!.split(/(?<!\\)\|/)).toHaveLength(5);
  expect(rows[0]).toContain('\\*\\*bold\\*\\*');
  expect(rows[0]).toContain('&lt;img src=x&gt;');
  expect(rows[0]).toContain('\\[x\\](http://e)');
  expect(rows[0]).toContain('``GRANT `x` \\| y;``');
  expect(md).toContain('## CockroachDB backup: dry run (1 of 2 checks failed)');
  expect(md).toMatch(/```sql\nBACKUP INTO \$1 {2}-- \$1 = s3:\/\/b\/p\?AWS_SECRET_ACCESS_KEY=redacted\n```/);
});

it('verify: restore needs RESTORE (or CREATEDB) here; on another verifying cluster its own check decides', () => {
  const show = (): void => undefined;
  const restore = config({ verify: 'restore' });
  const lacking = verifyCheck(restore, facts(), show, 'uri');
  expect(lacking.state).toBe('failed');
  expect(lacking.statements).toEqual(['GRANT SYSTEM RESTORE TO "bk";']);
  expect(verifyCheck(restore, facts({ roleOptions: new Set(['CREATEDB']) }), show, 'uri').state).toBe(
    'passed',
  );
  const elsewhere = config({
    verify: 'restore',
    'verify-connection-string': 'postgresql://bk:pw@staging.internal:26257/defaultdb?sslmode=verify-full',
  });
  const there = verifyCheck(elsewhere, facts(), show, 'uri');
  expect(there.state).toBe('passed');
  expect(there.detail).not.toContain('restore check');
  expect(verifyCheck(config({ verify: 'none' }), facts(), show, 'uri').state).toBe('skipped');
});

describe('the other connections (verify- and grant-connection-string)', () => {
  const elsewhere = config({
    verify: 'restore',
    'verify-connection-string':
      'postgresql://checker:pw@staging.internal:26257/defaultdb?sslmode=verify-full',
  });
  const side = (tag: string, f: Partial<UserFacts>) => ({
    version: v(tag),
    facts: facts({ user: 'checker', ...f }),
  });

  it('verifying cluster: the restore check version rule, then RESTORE or CREATEDB there', () => {
    const ok = verifyClusterCheck(
      elsewhere,
      v('v24.3.1'),
      side('v25.2.0', { systemPrivileges: new Set(['RESTORE']) }),
    );
    expect(ok.state).toBe('passed');
    expect(
      verifyClusterCheck(elsewhere, v('v24.3.1'), side('v25.2.0', { roleOptions: new Set(['CREATEDB']) }))
        .state,
    ).toBe('passed');
    const older = verifyClusterCheck(elsewhere, v('v24.3.1'), side('v23.2.0', { admin: true }));
    expect(older.state).toBe('failed');
    expect(older.detail).toContain('cannot restore a backup taken on v24.3.1');
    const lacking = verifyClusterCheck(elsewhere, v('v24.3.1'), side('v24.3.1', {}));
    expect(lacking.state).toBe('failed');
    expect(lacking.statements).toEqual(['GRANT SYSTEM RESTORE TO "checker";']);
    expect(
      verifyClusterCheck(elsewhere, v('v24.3.1'), side('v24.3.1', { systemPrivileges: undefined })).state,
    ).toBe('unknown');
  });

  it('grant connection: admin passes; a non-admin fails when used; cancel counts only if it could', () => {
    const c = config({
      'grant-to': 'bk',
      'grant-connection-string': 'postgresql://helper:pw@db.internal:26257/x',
    });
    expect(grantConnectionCheck(c, side('v24.3.1', { admin: true })).state).toBe('passed');
    const helper = grantConnectionCheck(c, side('v24.3.1', { user: 'helper' }));
    expect(helper.state).toBe('failed');
    expect(helper.statements).toEqual(['GRANT admin TO "helper";']);
    expect(grantSideMayCancel(v('v22.2.19'), side('v22.2.19', {}))).toBe(false);
    expect(
      grantSideMayCancel(v('v22.2.19'), side('v22.2.19', { roleOptions: new Set(['CONTROLJOB']) })),
    ).toBe(true);
    // The system privilege form exists from 23.1.12 only.
    const sys = side('v23.1.11', { systemPrivileges: new Set(['CONTROLJOB']) });
    expect(grantSideMayCancel(v('v23.1.11'), sys)).toBe(false);
    expect(grantSideMayCancel(v('v23.1.12'), sys)).toBe(true);
    expect(grantSideMayCancel(v('v22.2.19'), undefined)).toBe(false);
  });
});
