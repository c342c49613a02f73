/**
 * verifyBackup and pruneAfterBackup with a scripted cluster link and object
 * store: errors become `verified: 'false'` or a PruneFailure, never a crash;
 * an abort still propagates; implicit auth without runner credentials.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ClusterLink, Row } from '../../src/cluster.js';
import { AbortedError } from '../../src/errors.js';
import type { StorageSettings } from '../../src/destination.js';
import { readConfig } from '../../src/inputs.js';
import { captureTimeFromMicros } from '../../src/submit.js';
import { SecretRegistry } from '../../src/secrets.js';
import type { Statement } from '../../src/sql.js';
import type { ListEntry, ObjectStore } from '../../src/storage.js';
import { openObjectStore } from '../../src/storage.js';
import type { Config } from '../../src/config.js';
import type { VerifyInput } from '../../src/verify.js';
import { PruneFailure, pruneAfterBackup, verifyBackup } from '../../src/verify.js';
import type { S3TestServer } from '../support/s3/server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../support/s3/server.js';
import { seedCollection } from '../support/seed.js';
import { sqlError } from '../support/fakes.js';

const FULL = '/2026/11/24-114035.12';

function config(over: Record<string, string> = {}): Config {
  const all: Record<string, string> = {
    'connection-string': 'postgresql://root:pw@db.internal:26257/defaultdb?sslmode=verify-full',
    collection: 's3://bucket/path',
    'aws-access-key-id': 'AKIAEXAMPLE',
    'aws-secret-access-key': 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    'aws-region': 'eu-west-1',
    ...over,
  };
  for (const [k, v] of Object.entries(all)) if (v === '') delete all[k];
  return readConfig((n) => all[n] ?? '', {}, new SecretRegistry()).config;
}

const implicit = { 's3-auth': 'implicit', 'aws-access-key-id': '', 'aws-secret-access-key': '' };

/** A link whose queries answer through `respond`. */
function link(respond: (stmt: Statement) => Row[] | Promise<Row[]>): ClusterLink & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    withReconnect: async <T>(_what: string, fn: (s: { query: typeof respond }) => Promise<T>) =>
      fn({
        query: async (stmt: Statement) => {
          sent.push(stmt.text);
          return respond(stmt);
        },
      }),
  } as unknown as ClusterLink & { sent: string[] };
}

const listsTheBackup = () => link((s) => (s.text.startsWith('SHOW BACKUPS') ? [{ path: FULL }] : []));

interface FakeStoreOptions {
  list?: (prefix: string, opts?: { delimiter?: string }) => ListEntry[] | Error;
  get?: (key: string) => Buffer | undefined | Error;
}

function fakeStore(o: FakeStoreOptions = {}): ObjectStore & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async *list(prefix, opts) {
      calls.push(`list ${prefix}`);
      const out = o.list ? o.list(prefix, opts) : [{ key: `${prefix}BACKUP_MANIFEST`, size: 8 }];
      if (out instanceof Error) throw out;
      yield* out;
    },
    async get(key) {
      calls.push(`get ${key}`);
      const out = o.get ? o.get(key) : Buffer.from('manifest');
      if (out instanceof Error) throw out;
      return out;
    },
    deleteMany: async (keys) => ({ deleted: keys, errors: [] }),
    requestCounts: () => ({}),
  };
}

const s3Error = (name: string, status: number, message: string) =>
  Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });

const noCredentials = () =>
  Object.assign(new Error('Could not load credentials from any providers'), {
    name: 'CredentialsProviderError',
  });

function input(over: Partial<VerifyInput> & { store?: ObjectStore } = {}): VerifyInput {
  const store = over.store ?? fakeStore();
  return {
    config: config(),
    link: listsTheBackup(),
    uri: 's3://bucket/path?AWS_ACCESS_KEY_ID=AKIAEXAMPLE',
    fullSubdir: FULL,
    kind: 'full',
    capture: undefined,
    openStore: async () => store,
    signal: new AbortController().signal,
    reconnectBudgetMs: 1000,
    log: () => undefined,
    showBackup: (subdir, checkFiles) => ({
      text: `SHOW BACKUP FROM '${subdir}' IN $1${checkFiles ? ' WITH check_files' : ''}`,
      params: [],
    }),
    ...over,
  };
}

describe('verifyBackup', () => {
  it('passes with the SQL check and the bucket read, in that order', async () => {
    const r = await verifyBackup(input());
    expect(r.verified).toBe('true');
    expect(r.checks).toEqual(['listed by SHOW BACKUPS', 'BACKUP_MANIFEST read from the bucket (1 objects)']);
    expect(r.sizeBytes).toBe(8);
  });

  it('turns an SQL error of SHOW BACKUPS into "verification could not run", and still reads the bucket', async () => {
    const store = fakeStore();
    const r = await verifyBackup(
      input({
        store,
        link: link(() => {
          throw sqlError('XXUUU', 'failed to list the collection');
        }),
      }),
    );
    expect(r.verified).toBe('false');
    expect(r.problem).toBe('verification could not run: failed to list the collection [SQLSTATE XXUUU]');
    expect(store.calls.some((c) => c.startsWith('get '))).toBe(true);
    expect(r.checks).toEqual(['BACKUP_MANIFEST read from the bucket (1 objects)']);
  });

  it('turns an SQL error of SHOW BACKUP FROM (incremental) into "verification could not run"', async () => {
    const capture = captureTimeFromMicros(1795952445123456n);
    const r = await verifyBackup(
      input({
        kind: 'incremental',
        capture,
        link: link(() => {
          throw sqlError('58P01', 'path does not contain a completed backup');
        }),
        store: fakeStore({ list: () => [] }),
      }),
    );
    expect(r.verified).toBe('false');
    expect(r.problem).toMatch(/^verification could not run: path does not contain a completed backup/);
  });

  it('turns a failure to open the store into "verification could not run"', async () => {
    const r = await verifyBackup(
      input({ openStore: () => Promise.reject(new Error('Cannot find package @aws-sdk/client-s3')) }),
    );
    expect(r.verified).toBe('false');
    expect(r.problem).toBe('verification could not run: Cannot find package @aws-sdk/client-s3');
    expect(r.checks).toEqual(['listed by SHOW BACKUPS']);
  });

  it('turns an S3 error while listing or reading into "verification could not run" with code and status', async () => {
    const listing = await verifyBackup(
      input({
        store: fakeStore({ list: () => s3Error('InternalError', 500, 'We encountered an internal error') }),
      }),
    );
    expect(listing).toMatchObject({
      verified: 'false',
      problem: 'verification could not run: InternalError (HTTP 500): We encountered an internal error',
    });
    const reading = await verifyBackup(
      input({ store: fakeStore({ get: () => s3Error('AccessDenied', 403, 'Access Denied') }) }),
    );
    expect(reading.problem).toBe('verification could not run: AccessDenied (HTTP 403): Access Denied');
  });

  it('turns an S3 error in finding the incremental folder into "verification could not run"', async () => {
    const capture = captureTimeFromMicros(1795952445123456n);
    const r = await verifyBackup(
      input({
        kind: 'incremental',
        capture,
        link: link(() => [{ backup_type: 'incremental', end_time: capture.literal }]),
        store: fakeStore({
          list: (prefix) =>
            prefix.includes('/incrementals/')
              ? s3Error('SlowDown', 503, 'Please reduce your request rate.')
              : [],
        }),
      }),
    );
    expect(r.verified).toBe('false');
    expect(r.problem).toBe(
      'verification could not run: SlowDown (HTTP 503): Please reduce your request rate.',
    );
    expect(r.checks).toEqual([`incremental layer listed by SHOW BACKUP FROM ${FULL}`]);
  });

  it('names the missing BACKUP_MANIFEST key, and joins the problems of both sides', async () => {
    const r = await verifyBackup(input({ link: link(() => []), store: fakeStore({ get: () => undefined }) }));
    expect(r.verified).toBe('false');
    expect(r.problem).toContain(`SHOW BACKUPS IN the collection does not list ${FULL}`);
    expect(r.problem).toContain(`no object path${FULL}/BACKUP_MANIFEST`);
  });

  it('lets an abort propagate', async () => {
    await expect(
      verifyBackup(
        input({
          link: link(() => {
            throw new AbortedError();
          }),
        }),
      ),
    ).rejects.toBeInstanceOf(AbortedError);
  });

  it('skips the bucket read when s3-auth is implicit and the runner has no credentials', async () => {
    const logs: string[] = [];
    const r = await verifyBackup(
      input({
        config: config(implicit),
        store: fakeStore({ get: noCredentials }),
        log: (m) => logs.push(m),
      }),
    );
    expect(r.verified).toBe('true');
    expect(r.checks).toEqual([
      'listed by SHOW BACKUPS',
      'bucket not read: s3-auth is implicit and the runner has no AWS credentials',
    ]);
    expect(r.sizeBytes).toBeUndefined();
    expect(logs.join('\n')).toMatch(/configure-aws-credentials/);
  });

  it('fails when credentials cannot be loaded although s3-auth is specified', async () => {
    const r = await verifyBackup(input({ store: fakeStore({ get: noCredentials }) }));
    expect(r.verified).toBe('false');
    expect(r.problem).toBe(
      'verification could not run: CredentialsProviderError: Could not load credentials from any providers',
    );
  });
});

describe('pruneAfterBackup', () => {
  const prune = (over: Partial<Parameters<typeof pruneAfterBackup>[0]> = {}) =>
    pruneAfterBackup({
      config: config({ 'prune-keep-last': '1' }),
      openStore: async () => fakeStore({ list: () => [] }),
      protectFullSubdir: FULL,
      now: new Date('2026-11-24T12:00:00Z'),
      log: () => undefined,
      verified: true,
      ...over,
    });

  it('fails clearly when s3-auth is implicit and the runner has no credentials', async () => {
    const err = await prune({
      config: config({ ...implicit, 'prune-keep-last': '1' }),
      openStore: async () => fakeStore({ list: noCredentials }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PruneFailure);
    expect((err as Error).message).toMatch(
      /^The backup succeeded and was verified, but pruning failed while listing the backups in s3:\/\/bucket\/path\/: pruning needs AWS credentials on the runner with s3-auth: implicit/,
    );
    expect((err as Error).message).toMatch(/aws-actions\/configure-aws-credentials/);
    expect((err as Error).message).toMatch(/Nothing was deleted\.$/);
  });

  it('says the backup succeeded when the store cannot be opened', async () => {
    await expect(prune({ openStore: () => Promise.reject(new Error('no SDK')) })).rejects.toThrow(
      'The backup succeeded and was verified, but pruning failed while opening the bucket bucket: no SDK. Nothing was deleted.',
    );
  });
});

describe('against the S3 test server', () => {
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['bucket'] });
  });
  afterAll(async () => s3?.close());
  afterEach(() => {
    s3.clearFaults();
    vi.unstubAllEnvs();
  });
  const settings = (over: Partial<StorageSettings> = {}): StorageSettings => ({
    bucket: 'bucket',
    prefix: 'path/',
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: TEST_S3_CREDENTIAL,
    ...over,
  });
  const withServer = (over: Record<string, string> = {}) =>
    config({ 's3-endpoint': s3.endpoint, 'aws-region': s3.region, ...over });

  it('recognises the real SDK error for a runner without credentials (implicit auth)', async () => {
    for (const name of [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_PROFILE',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
      'AWS_ROLE_ARN',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
    ])
      vi.stubEnv(name, undefined);
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', '/nonexistent/credentials');
    vi.stubEnv('AWS_CONFIG_FILE', '/nonexistent/config');
    const store = await openObjectStore(settings({ credentials: undefined }));
    const r = await verifyBackup(input({ config: withServer(implicit), openStore: async () => store }));
    expect(r.verified).toBe('true');
    expect(r.checks).toContain('bucket not read: s3-auth is implicit and the runner has no AWS credentials');
  });

  it('reports a persistent 500 on listing as a pruning failure after a verified backup', async () => {
    seedCollection(s3, 'bucket', 'path', {
      chains: 3,
      objectsPerChain: 5,
      startDate: new Date('2024-01-01'),
    });
    s3.inject({ op: 'ListObjectsV2', status: 500 });
    const err = await pruneAfterBackup({
      config: withServer({ 'prune-keep-last': '1' }),
      openStore: () => openObjectStore(settings()),
      protectFullSubdir: FULL,
      now: new Date(),
      log: () => undefined,
      verified: true,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PruneFailure);
    expect((err as Error).message).toBe(
      'The backup succeeded and was verified, but pruning failed while listing the backups in s3://bucket/path/: InternalError (HTTP 500): injected fault for ListObjectsV2. Nothing was deleted.',
    );
  });

  it('sizes kept chains, reports partial deletion per chain, and logs its request counts', async () => {
    const subdirs = seedCollection(s3, 'bucket', 'sizes', {
      chains: 4,
      objectsPerChain: 12,
      startDate: new Date('2024-02-01'),
    });
    s3.inject({
      op: 'DeleteObjects',
      keyPrefix: `sizes${subdirs[0]}/data/`,
      status: 403,
      code: 'AccessDenied',
    });
    const logs: string[] = [];
    const summary = await pruneAfterBackup({
      config: withServer({ collection: 's3://bucket/sizes', 'prune-keep-last': '2' }),
      openStore: () => openObjectStore(settings({ prefix: 'sizes/' })),
      protectFullSubdir: subdirs[3]!,
      now: new Date(),
      log: (m) => logs.push(m),
      verified: true,
    });
    expect(summary!.kept.map((c) => [c.path, c.objects, c.sizeBytes])).toEqual([
      [subdirs[2], 12, 9 * 16 + 9],
      [subdirs[3], 12, 9 * 16 + 9],
    ]);
    expect(summary!.deleted.map((c) => [c.path, c.outcome])).toEqual([
      [subdirs[0], 'partially deleted (1 of 12 objects)'],
      [subdirs[1], 'deleted'],
    ]);
    expect(summary!.failures).toHaveLength(9);
    expect(summary!.failedObjects!.every((f) => f.code === 'AccessDenied')).toBe(true);
    expect(summary!.failureMessage).toMatch(
      /^The backup succeeded and was verified, but pruning failed: 9 object\(s\) could not be deleted \(AccessDenied × 9\)/,
    );
    expect(summary!.failureMessage).toContain(`${subdirs[0]} partially deleted (1 of 12 objects)`);
    expect(s3.hasObject('bucket', `sizes${subdirs[0]}/BACKUP_MANIFEST`)).toBe(true);
    expect(
      logs.some((l) =>
        // GetObject: the newest LATEST file, read so that the chain it names is kept.
        /^S3 requests for verification and pruning: ListObjectsV2 \d+, GetObject 1, DeleteObjects 2\.$/.test(
          l,
        ),
      ),
    ).toBe(true);
  });
});
