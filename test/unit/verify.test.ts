/**
 * verifyBackup and pruneAfterBackup with a scripted cluster link and object
 * store: errors become `verified: 'false'` or a PruneFailure, never a crash;
 * an abort still propagates; implicit auth without runner credentials.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ClusterLink, Row } from '../../src/cluster.js';
import { AbortedError } from '../../src/errors.js';
import type { StorageSettings } from '../../src/destination.js';
import { captureTimeFromMicros } from '../../src/submit.js';
import type { Statement } from '../../src/sql.js';
import type { ObjectStore } from '../../src/storage.js';
import { openObjectStore } from '../../src/storage.js';
import type { VerifyInput } from '../../src/verify.js';
import { verifyBackup, verifyLayerObjects } from '../../src/verify.js';
import type { S3TestServer } from '../support/s3/server.js';
import { startS3Server } from '../support/s3/server.js';
import {
  testConfig as config,
  fakeStore,
  implicitAuth as implicit,
  noCredentials,
  serverSettings,
} from '../support/store-fakes.js';
import { sqlError } from '../support/fakes.js';

const FULL = '/2026/11/24-114035.12';

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

const s3Error = (name: string, status: number, message: string) =>
  Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });

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
  const settings = (over: Partial<StorageSettings> = {}): StorageSettings => serverSettings(s3, over);
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

  it('verifies a layer by its own manifest and says what is missing', async () => {
    s3.putObject('bucket', 'v/2026/01/01-000000.00/data/1.sst', 'abc');
    s3.putObject('bucket', 'v/2026/01/01-000000.00/BACKUP_MANIFEST', 'm');
    const ok = await verifyLayerObjects(await openObjectStore(settings()), 'v/', {
      fullSubdir: '/2026/01/01-000000.00',
    });
    expect(ok).toMatchObject({ ok: true, objectCount: 2, sizeBytes: 4 });
    s3.deleteObject('bucket', 'v/2026/01/01-000000.00/BACKUP_MANIFEST');
    const bad = await verifyLayerObjects(await openObjectStore(settings()), 'v/', {
      fullSubdir: '/2026/01/01-000000.00',
    });
    expect(bad.ok).toBe(false);
    expect(bad.problem).toMatch(/BACKUP_MANIFEST is missing/);
  });
});
