/** TLS as libpq's sslmode says, against the test cluster serving a certificate from a test CA. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestPki } from '../support/tls.js';
import { makeTestPki } from '../support/tls.js';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv } from './harness.js';

describe('TLS', () => {
  let pki: TestPki;
  let env: E2eEnv;
  beforeAll(async () => {
    pki = makeTestPki();
    env = await startE2eEnv({
      profile: '25.2',
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert },
      requireTls: true,
    });
  });
  afterAll(async () => {
    await env?.close();
    pki?.cleanup();
  });
  const url = (sslmode: string, host = 'localhost') =>
    env.cluster.url('root', { params: { sslmode } }).replace('127.0.0.1', host);

  it('verifies the server against ca-cert with sslmode=verify-full', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'connection-string': url('verify-full'),
        'ca-cert': pki.caCert,
      }),
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.warnings.some((w) => /sslmode/.test(w))).toBe(false);
  });

  it('verifies an IP address SAN too', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'connection-string': url('verify-full', '127.0.0.1'),
        'ca-cert': pki.caCert,
      }),
    });
    expect(r.code).toBe(0);
  });

  it('fails with a certificate error that says what to check when the CA is wrong', async () => {
    const before = env.cluster.wire.stats.connectionsAuthenticated;
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'connection-string': url('verify-full'),
        'ca-cert': pki.otherCaCert,
      }),
    });
    expect(r.code).not.toBe(0);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/certificate/i);
    expect(r.errors[0]).toMatch(/ca-cert/);
    expect(env.cluster.wire.stats.connectionsAuthenticated).toBe(before);
  });

  it('sslmode=require encrypts without verifying, with a warning', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), 'connection-string': url('require') }),
    });
    expect(r.code).toBe(0);
    expect(r.warnings.some((w) => /sslmode=require/.test(w) && /verify-full/.test(w))).toBe(true);
  });

  it('sslmode=disable against a cluster that requires TLS fails clearly', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), 'connection-string': url('disable') }),
    });
    expect(r.code).not.toBe(0);
    expect(r.errors[0]).toMatch(/SSL connection required|Could not connect/);
  });
});
