import { describe, expect, it } from 'vitest';
import { parseClusterVersion } from '../../src/cluster.js';
import { readConfig } from '../../src/inputs.js';
import { restoreVersionRefusal, scratchName } from '../../src/restore-check.js';
import { cleanUpRestoreChecks } from '../../src/restore-cleanup.js';
import { SecretRegistry } from '../../src/secrets.js';
import type { SqlSession } from '../../src/cluster.js';
import { dropScratchStatement, restoreCheckStatement, restoreGrantStatements } from '../../src/sql.js';

const BASE: Record<string, string> = {
  'connection-string': 'postgresql://root:pw@db.example.com:26257/defaultdb?sslmode=verify-full',
  collection: 's3://backups/cluster',
  'aws-access-key-id': 'AKIAEXAMPLE000000001',
  'aws-secret-access-key': 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  'aws-region': 'us-east-1',
};

function read(over: Record<string, string>) {
  const masked: string[] = [];
  const secrets = new SecretRegistry((v) => masked.push(v));
  const run = () => readConfig((n) => ({ ...BASE, ...over })[n] ?? '', {}, secrets);
  return { run, masked };
}

const v = (tag: string) => parseClusterVersion(`CockroachDB CCL ${tag} (x86_64-pc-linux-gnu)`);

describe('verify: restore inputs', () => {
  it('takes verify: restore and a verify-connection-string, masking its password', () => {
    const { run, masked } = read({
      verify: 'restore',
      'verify-connection-string':
        'postgresql://checker:stag1ng-pw@staging.example.com:26257/defaultdb?sslmode=verify-full',
    });
    const { config } = run();
    expect(config.verify).toBe('restore');
    expect(config.verifyConnectionGiven).toBe(true);
    expect(config.verifyConnection).toMatchObject({ host: 'staging.example.com', user: 'checker' });
    expect(masked).toContain('stag1ng-pw');
  });

  it('defaults the verifying cluster to the connection-string', () => {
    const { config } = read({ verify: 'restore' }).run();
    expect(config.verifyConnectionGiven).toBe(false);
    expect(config.verifyConnection).toBe(config.connection);
  });

  it('rejects verify-connection-string without verify: restore', () => {
    expect(() =>
      read({ 'verify-connection-string': 'postgresql://root@staging.example.com:26257/defaultdb' }).run(),
    ).toThrow(/verify-connection-string.*only with verify: restore, and verify is manifest/);
  });
});

describe('restore check statements', () => {
  it('binds the collection, subdirectory and key; inlines only the validated time and scratch name', () => {
    const stmt = restoreCheckStatement('s3://b/p?AWS_SECRET_ACCESS_KEY=x', {
      database: 'Weird "Name"',
      fullSubdir: '/2026/11/24-114045.12',
      asOf: '2026-11-24 11:40:45.123456+00:00',
      scratch: 'crdb_backup_verify_1234_1',
      encryptionPassphrase: 'hunter2',
    });
    expect(stmt.text).toBe(
      `RESTORE DATABASE "Weird ""Name""" FROM $2 IN $1 AS OF SYSTEM TIME '2026-11-24 11:40:45.123456+00:00' WITH schema_only, verify_backup_table_data, new_db_name = 'crdb_backup_verify_1234_1', detached, encryption_passphrase = $3`,
    );
    expect(stmt.params).toEqual(['s3://b/p?AWS_SECRET_ACCESS_KEY=x', '/2026/11/24-114045.12', 'hunter2']);
  });

  it('refuses a scratch name it did not make, for RESTORE and DROP alike', () => {
    const o = { database: 'shop', fullSubdir: '/x', asOf: '2026-11-24 11:40:45.123456+00:00' };
    expect(() => restoreCheckStatement('s3://b', { ...o, scratch: "x'; DROP DATABASE shop; --" })).toThrow(
      /not a scratch name/,
    );
    expect(() => dropScratchStatement('shop')).toThrow(/not a scratch name/);
    expect(dropScratchStatement('crdb_backup_verify_9_2').text).toBe(
      'DROP DATABASE "crdb_backup_verify_9_2" CASCADE',
    );
  });

  it('scratch names: crdb_backup_verify_<run id>_<n>, lower case, whatever the run id holds', () => {
    expect(scratchName('1234567890', 1)).toBe('crdb_backup_verify_1234567890_1');
    expect(scratchName('Local-ABC"; x', 3)).toBe('crdb_backup_verify_localabcx_3');
    expect(scratchName('', 2)).toBe('crdb_backup_verify_local_2');
  });

  it('grant-to on the verifying cluster: RESTORE, and what the storage and a cancel need', () => {
    expect(
      restoreGrantStatements('ci', { implicitAccess: true, controlJob: 'system' }).map((s) => s.text),
    ).toEqual([
      'GRANT SYSTEM RESTORE TO "ci"',
      'GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO "ci"',
      'GRANT SYSTEM CONTROLJOB TO "ci"',
    ]);
  });
});

describe('restoreVersionRefusal', () => {
  it('accepts the same version and the next one that upgrades from it', () => {
    expect(restoreVersionRefusal(v('v23.2.4'), v('v23.2.1'))).toBeUndefined();
    expect(restoreVersionRefusal(v('v24.1.0'), v('v23.2.1'))).toBeUndefined();
    expect(restoreVersionRefusal(v('v25.2.0'), v('v24.3.1'))).toBeUndefined();
  });
  it('refuses an older verifying cluster and one more than a release ahead', () => {
    expect(restoreVersionRefusal(v('v23.2.0'), v('v24.1.0'))).toMatch(
      /v23\.2\.0 cannot restore a backup taken on v24\.1\.0/,
    );
    expect(restoreVersionRefusal(v('v25.2.0'), v('v23.2.1'))).toMatch(
      /v25\.2\.0 restores backups from 24\.3 and later, not from v23\.2\.1/,
    );
  });
});

describe('cleanUpRestoreChecks (post step)', () => {
  function fakeSession(statuses: Record<string, string>, dbs: Set<string>, log: string[]): SqlSession {
    return {
      applicationName: 'x',
      broken: false,
      async query(stmt: { text: string; params: readonly string[] }) {
        log.push(stmt.text);
        if (stmt.text.includes('description LIKE'))
          return stmt.params[0] === "%new_db_name = 'crdb_backup_verify_1_4'%"
            ? [{ job_id: '14', status: 'running' }]
            : [];
        if (stmt.text.includes('crdb_internal.jobs'))
          return statuses[stmt.params[0]!]
            ? [{ job_id: stmt.params[0], status: statuses[stmt.params[0]!] }]
            : [];
        if (stmt.text.startsWith('SELECT datname'))
          return dbs.has(stmt.params[0]!) ? [{ datname: stmt.params[0] }] : [];
        if (stmt.text.startsWith('DROP DATABASE')) {
          dbs.delete(/"([^"]+)"/.exec(stmt.text)![1]!);
          return [];
        }
        throw new Error(`unexpected ${stmt.text}`);
      },
      async close() {},
    } as unknown as SqlSession;
  }

  it('cancels a running restore job, drops the scratch of a succeeded one, and never one whose job failed', async () => {
    const statuses: Record<string, string> = {
      '11': 'running',
      '12': 'succeeded',
      '13': 'failed',
      '14': 'running',
    };
    const dbs = new Set(['crdb_backup_verify_1_2', 'crdb_backup_verify_1_3']);
    const log: string[] = [];
    const cancelled: string[] = [];
    const lines = await cleanUpRestoreChecks({
      saved: JSON.stringify([
        { db: 'crdb_backup_verify_1_1', job: '11' },
        { db: 'crdb_backup_verify_1_2', job: '12' },
        { db: 'crdb_backup_verify_1_3', job: '13' },
        { db: 'crdb_backup_verify_1_4' },
      ]),
      session: async () => fakeSession(statuses, dbs, log),
      cancel: async (id) => {
        cancelled.push(id);
        statuses[id] = 'canceled';
        return { kind: 'requested' };
      },
      log: () => undefined,
    });
    // Job 14's RESTORE answer never came: it is found by its scratch name and cancelled too.
    expect(cancelled).toEqual(['11', '14']);
    // Job 13 failed: crdb_backup_verify_1_3 is not the run's (its restore never created it).
    expect([...dbs]).toEqual(['crdb_backup_verify_1_3']);
    expect(log.filter((t) => t.startsWith('DROP'))).toEqual([
      'DROP DATABASE "crdb_backup_verify_1_2" CASCADE',
    ]);
    expect(lines.join('\n')).toMatch(
      /Restore job 11 .* cancel requested[\s\S]*crdb_backup_verify_1_2 .*dropped/,
    );
  });
});
