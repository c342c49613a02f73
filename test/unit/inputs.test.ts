import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { readConfig, summaryWanted } from '../../src/inputs.js';
import { SecretRegistry } from '../../src/secrets.js';
import { BAD_INPUT_CASES } from '../e2e/bad-inputs.cases.js';

const BASE: Record<string, string> = {
  'connection-string': 'postgresql://root:pa%2Fss@db.example.com:26257/defaultdb?sslmode=verify-full',
  collection: 's3://backups/cluster',
  'aws-access-key-id': 'AKIAEXAMPLE000000001',
  'aws-secret-access-key': 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  'aws-region': 'us-east-1',
  's3-endpoint': 'http://127.0.0.1:9000',
};

function read(over: Record<string, string> = {}, env: Record<string, string> = {}) {
  const inputs = { ...BASE, ...over };
  const masked: string[] = [];
  const secrets = new SecretRegistry((v) => masked.push(v));
  const run = () => readConfig((n) => inputs[n] ?? '', env, secrets);
  return { run, masked, secrets };
}

describe('readConfig defaults', () => {
  it('applies every default of action.yml', () => {
    const { config } = read().run();
    expect(config).toMatchObject({
      s3PathStyle: 'auto',
      s3Auth: 'specified',
      backupType: 'full',
      databases: [],
      asOfSystemTime: { kind: 'interval', micros: 10_000_000n },
      revisionHistory: true,
      wait: true,
      pollIntervalMs: 5000,
      pausedTimeoutMs: 600_000,
      onTimeout: 'cancel',
      cancelOnAbort: true,
      ifRunning: 'start',
      verify: 'manifest',
      pruneDryRun: false,
      summary: true,
    });
    expect(config.timeoutMs).toBeUndefined();
    expect(config.connection).toMatchObject({
      host: 'db.example.com',
      port: 26257,
      user: 'root',
      password: 'pa/ss',
    });
    expect(Object.isFrozen(config.connection)).toBe(true);
  });

  it('takes credentials from the environment configure-aws-credentials exports', () => {
    const { config } = read(
      { 'aws-access-key-id': '', 'aws-secret-access-key': '', 'aws-region': '' },
      {
        AWS_ACCESS_KEY_ID: 'ASIAENV0000000000001',
        AWS_SECRET_ACCESS_KEY: 'env/secret',
        AWS_SESSION_TOKEN: 'tok',
        AWS_REGION: 'eu-west-1',
      },
    ).run();
    expect(config.aws).toMatchObject({
      accessKeyId: 'ASIAENV0000000000001',
      secretAccessKey: 'env/secret',
      sessionToken: 'tok',
      source: 'environment',
    });
    expect(config.awsRegion).toBe('eu-west-1');
  });

  it('defaults each key input to its own variable, but never pairs an input secret with the environment token', () => {
    const env = {
      AWS_ACCESS_KEY_ID: 'ASIAENV0000000000001',
      AWS_SECRET_ACCESS_KEY: 'env/secret',
      AWS_SESSION_TOKEN: 'tok',
    };
    const idOnly = read({ 'aws-secret-access-key': '' }, env).run().config.aws;
    expect(idOnly).toMatchObject({ accessKeyId: 'AKIAEXAMPLE000000001', secretAccessKey: 'env/secret' });
    expect(idOnly.sessionToken).toBe('tok');
    const secretGiven = read({ 'aws-access-key-id': '' }, env).run().config.aws;
    expect(secretGiven.accessKeyId).toBe('ASIAENV0000000000001');
    expect(secretGiven.sessionToken).toBeUndefined();
  });

  it('accepts an external:// collection with storage inputs spelled as their defaults', () => {
    const { config } = read({
      collection: 'external://backups',
      'aws-access-key-id': '',
      'aws-secret-access-key': '',
      'aws-region': '',
      's3-endpoint': '',
      'prune-dry-run': 'False',
      's3-path-style': 'auto',
      's3-auth': 'specified',
    }).run();
    expect(config.collection.kind).toBe('external');
    expect(config.pruneDryRun).toBe(false);
  });

  it('warns about a session token and about unverified TLS', () => {
    const r = read({
      'aws-session-token': 'FwoGZXIvYXdzEXAMPLE',
      'connection-string': 'postgresql://root@db.example.com/x?sslmode=require',
    }).run();
    expect(r.warnings.some((w) => /expire/.test(w))).toBe(true);
    expect(r.warnings.some((w) => /sslmode=require/.test(w))).toBe(true);
    expect(
      read({ 'connection-string': 'postgresql://root@db.example.com/x?sslmode=disable' })
        .run()
        .warnings.join(),
    ).toMatch(/unencrypted/);
  });
});

describe('every bad-input case is rejected at unit level, naming its input, without leaking a secret', () => {
  it.each(BAD_INPUT_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const { run, secrets } = read(c.inputs, c.env);
    let error: unknown;
    try {
      run();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).input).toBe(c.input);
    expect(secrets.contains((error as Error).message)).toBe(false);
  });
});

describe('parameter names', () => {
  it('treats names of Object.prototype as unknown parameters, not as known ones', () => {
    expect(() => read({ collection: 's3://backups/x?constructor=1' }).run()).toThrow(
      /unknown parameter "constructor"/,
    );
    expect(() =>
      read({ 'connection-string': 'postgresql://root@db.example.com/x?toString=1' }).run(),
    ).toThrow(/unknown parameter "toString"/);
  });
});

describe('secrets are masked before validation', () => {
  it('masks the secret of a rejected collection before the error', () => {
    const { run, masked } = read({ collection: 's3://backups/p?AWS_SECRET_ACCESS_KEY=sup3r%2Fs3cret' });
    expect(run).toThrow(/aws-secret-access-key/);
    expect(masked).toContain('sup3r/s3cret');
    expect(masked).toContain('sup3r%2Fs3cret');
  });
  it('masks the password in its raw and encoded forms', () => {
    const { run, masked } = read();
    run();
    expect(masked).toContain('pa/ss');
    expect(masked).toContain('pa%2Fss');
  });
});

describe('summaryWanted, for an ending without a config', () => {
  it.each([
    ['', true],
    ['true', true],
    [' FALSE ', false],
    ['False', false],
    ['no', true],
  ])('summary %j writes the summary: %s', (value, wanted) => {
    expect(summaryWanted((n) => (n === 'summary' ? value : ''))).toBe(wanted);
  });
});
