import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  capabilities,
  connectTimeoutMs,
  isConnectionError,
  NotCockroachError,
  parseClusterVersion,
  tlsOptionsFor,
  versionAtLeast,
} from '../../src/cluster.js';
import type { ConnectionConfig } from '../../src/config.js';

const base: ConnectionConfig = {
  input: 'connection-string',
  host: 'db.example.com',
  port: 26257,
  database: 'defaultdb',
  user: 'u',
  sslmode: 'verify-full',
  params: {},
};

describe('parseClusterVersion', () => {
  it('reads CockroachDB versions', () => {
    const v = parseClusterVersion(
      'CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27 01:53:43, go1.19.10)',
    );
    expect(v).toMatchObject({ major: 23, minor: 1, patch: 11, tag: 'v23.1.11' });
    expect(versionAtLeast(v, 23, 1, 12)).toBe(false);
    expect(versionAtLeast(v, 22, 2)).toBe(true);
  });
  it('names PostgreSQL when pointed at it', () => {
    expect(() => parseClusterVersion('PostgreSQL 15.4 on x86_64-pc-linux-gnu')).toThrow(NotCockroachError);
    expect(() => parseClusterVersion('PostgreSQL 15.4 on x86_64-pc-linux-gnu')).toThrow(
      /PostgreSQL 15.4, not CockroachDB/,
    );
  });
});

describe('tlsOptionsFor (libpq sslmode)', () => {
  it('disable is plain', () => expect(tlsOptionsFor({ ...base, sslmode: 'disable' })).toBe(false));
  it('require encrypts without verifying, unless a CA is given', () => {
    expect(tlsOptionsFor({ ...base, sslmode: 'require' })).toMatchObject({ rejectUnauthorized: false });
    expect(tlsOptionsFor({ ...base, sslmode: 'require', caCert: 'CA' })).toMatchObject({
      rejectUnauthorized: true,
      ca: 'CA',
    });
  });
  it('verify-ca checks the chain but not the host name', () => {
    const o = tlsOptionsFor({ ...base, sslmode: 'verify-ca', caCert: 'CA' });
    expect(o).toMatchObject({ rejectUnauthorized: true, ca: 'CA' });
    expect((o as { checkServerIdentity: () => unknown }).checkServerIdentity()).toBeUndefined();
  });
  it('verify-full checks the host name and sends a client certificate when given', () => {
    const o = tlsOptionsFor({ ...base, caCert: 'CA', clientCert: 'C', clientKey: 'K' });
    expect(o).toMatchObject({
      rejectUnauthorized: true,
      ca: 'CA',
      servername: 'db.example.com',
      cert: 'C',
      key: 'K',
    });
    expect(o).not.toHaveProperty('checkServerIdentity');
  });
});

describe('connection errors and backoff', () => {
  it('tells a dead connection from an answer of the server', () => {
    expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(
      isConnectionError(
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      ),
    ).toBe(true);
    expect(isConnectionError(Object.assign(new Error('permission denied'), { code: '42501' }))).toBe(false);
    expect(isConnectionError(Object.assign(new Error('server shutting down'), { code: '57P01' }))).toBe(true);
  });
  it('backs off with jitter up to 5 s', () => {
    expect(backoffMs(1, () => 0)).toBe(125);
    expect(backoffMs(1, () => 1)).toBe(250);
    expect(backoffMs(20, () => 1)).toBe(5000);
  });
});

describe('connectTimeoutMs', () => {
  it("uses the connection string's connect_timeout in seconds, never libpq's endless 0", () => {
    expect(connectTimeoutMs({ ...base, params: { connect_timeout: '3' } }, 10_000)).toBe(3000);
    expect(connectTimeoutMs({ ...base, params: { connect_timeout: '0' } }, 10_000)).toBe(10_000);
    expect(connectTimeoutMs(base, 10_000)).toBe(10_000);
  });
});

describe('capabilities', () => {
  const at = (tag: string) =>
    capabilities(parseClusterVersion(`CockroachDB CCL ${tag} (x86_64-pc-linux-gnu)`));
  it('refuses versions before 22.2 and warns after 25.x', () => {
    expect(at('v22.1.20').unsupported).toBe(
      'CockroachDB v22.1.20 is too old: crdb-backup-action supports 22.2 and later.',
    );
    expect(at('v22.2.0').unsupported).toBeUndefined();
    expect(at('v25.4.1').untested).toBeUndefined();
    expect(at('v26.1.0').untested).toBe(
      'CockroachDB v26.1.0 is newer than the versions this action was tested with (22.2 to 25.x).',
    );
  });
  it('waits with WHEN COMPLETE from 23.2; grants CONTROLJOB as a system privilege from 23.1.12', () => {
    expect(at('v23.1.30').whenComplete).toBe(false);
    expect(at('v23.2.0').whenComplete).toBe(true);
    expect(at('v23.1.11').controlJob).toBe('role-option');
    expect(at('v23.1.12').controlJob).toBe('system');
    expect(at('v24.1.0').controlJob).toBe('system');
  });
});
