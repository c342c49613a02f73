import { describe, expect, it } from 'vitest';
import {
  aostLiteral,
  backupStatement,
  cancelJobStatement,
  formatTimestampMicros,
  grantStatements,
  jobByIdStatement,
  quoteIdent,
  showBackupStatement,
  statementTimeoutStatement,
} from '../../src/sql.js';

const AT = '2026-11-24 11:40:35.123456+00:00';

describe('quoteIdent', () => {
  it('always quotes and doubles embedded quotes', () => {
    expect(quoteIdent('shop')).toBe('"shop"');
    expect(quoteIdent('Weird "Name"')).toBe('"Weird ""Name"""');
    expect(quoteIdent('a; DROP DATABASE x')).toBe('"a; DROP DATABASE x"');
  });
  it('refuses control characters and empty names', () => {
    expect(() => quoteIdent('a\nb')).toThrow();
    expect(() => quoteIdent('')).toThrow();
  });
});

describe('backupStatement', () => {
  it('binds the URI and secrets and inlines only the validated timestamp', () => {
    const s = backupStatement('s3://b/p?AWS_SECRET_ACCESS_KEY=top%2Fsecret', {
      databases: [],
      asOf: AT,
      revisionHistory: true,
      encryptionPassphrase: 'pass phrase',
    });
    expect(s.text).toBe(
      `BACKUP INTO $1 AS OF SYSTEM TIME '${AT}' WITH detached, revision_history, encryption_passphrase = $2`,
    );
    expect(s.params).toEqual(['s3://b/p?AWS_SECRET_ACCESS_KEY=top%2Fsecret', 'pass phrase']);
  });
  it('targets quoted databases and appends to a named full backup', () => {
    const s = backupStatement('external://bk', {
      databases: ['shop', 'Weird Name'],
      asOf: AT,
      appendTo: '/2026/11/24-114035.12',
      revisionHistory: false,
      kmsUri: 'aws-kms:///arn?AUTH=implicit',
    });
    expect(s.text).toBe(
      `BACKUP DATABASE "shop", "Weird Name" INTO $2 IN $1 AS OF SYSTEM TIME '${AT}' WITH detached, kms = $3`,
    );
    expect(s.params).toEqual(['external://bk', '/2026/11/24-114035.12', 'aws-kms:///arn?AUTH=implicit']);
  });
  it('refuses an AOST that is not a plain UTC timestamp', () => {
    expect(() => aostLiteral("-10s'; DROP DATABASE x; --")).toThrow();
    expect(() =>
      backupStatement('u', { databases: [], asOf: "2026-11-24 11:40:35' --", revisionHistory: false }),
    ).toThrow();
  });
});

describe('other statements', () => {
  it('keeps job ids as bound integer strings', () => {
    expect(jobByIdStatement('1012345678901234567').params).toEqual(['1012345678901234567']);
    expect(cancelJobStatement('1012345678901234567').text).toBe('CANCEL JOB $1');
    expect(() => cancelJobStatement('1; DROP')).toThrow();
  });
  it('formats microsecond timestamps', () => {
    expect(formatTimestampMicros(BigInt(Date.parse('2026-01-02T03:04:05Z')) * 1000n + 7n)).toBe(
      '2026-01-02 03:04:05.000007+00:00',
    );
  });
  it('builds SHOW BACKUP with bound passphrase and check_files', () => {
    const s = showBackupStatement('s3://b', '/2026/11/24-114035.12', {
      checkFiles: true,
      encryptionPassphrase: 'pw',
    });
    expect(s).toEqual({
      text: 'SHOW BACKUP FROM $1 IN $2 WITH check_files, encryption_passphrase = $3',
      params: ['/2026/11/24-114035.12', 's3://b', 'pw'],
    });
  });
  it('only accepts integer statement timeouts', () => {
    expect(statementTimeoutStatement(15000).text).toBe('SET statement_timeout = 15000');
    expect(() => statementTimeoutStatement(1.5)).toThrow();
  });
  it('grants exactly what the backup needs', () => {
    expect(
      grantStatements('ci', { databases: [], implicitAccess: false, controlJob: 'none' }).map((s) => s.text),
    ).toEqual(['GRANT SYSTEM BACKUP TO "ci"']);
    expect(
      grantStatements('ci', {
        databases: ['shop', 'b'],
        implicitAccess: true,
        controlJob: 'role-option',
      }).map((s) => s.text),
    ).toEqual([
      'GRANT BACKUP ON DATABASE "shop", "b" TO "ci"',
      'GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO "ci"',
      'ALTER ROLE "ci" WITH CONTROLJOB',
    ]);
    expect(
      grantStatements('ci', { databases: [], implicitAccess: false, controlJob: 'system' }).map(
        (s) => s.text,
      ),
    ).toContain('GRANT SYSTEM CONTROLJOB TO "ci"');
  });
});
