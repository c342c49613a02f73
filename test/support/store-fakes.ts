/**
 * Fakes shared by the unit tests of verification and pruning: a config read
 * from a few inputs, and an object store that answers from callbacks and
 * records the calls it gets.
 */
import type { Config } from '../../src/config.js';
import { readConfig } from '../../src/inputs.js';
import { SecretRegistry } from '../../src/secrets.js';
import type { StorageSettings } from '../../src/destination.js';
import type { ListEntry, ObjectStore } from '../../src/storage.js';
import { openObjectStore } from '../../src/storage.js';
import type { S3TestServer } from './s3/server.js';
import { TEST_S3_CREDENTIAL } from './s3/server.js';

/** A run's config from these inputs over a backup into s3://bucket/path with static keys; '' unsets one. */
export function testConfig(over: Record<string, string> = {}): Config {
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

/** The inputs of s3-auth: implicit, without the static keys. */
export const implicitAuth = { 's3-auth': 'implicit', 'aws-access-key-id': '', 'aws-secret-access-key': '' };

export interface FakeStoreOptions {
  list?: (prefix: string, opts?: { delimiter?: string }) => ListEntry[] | Error;
  get?: (key: string) => Buffer | undefined | Error;
}

/** By default every listed folder holds a BACKUP_MANIFEST and every read returns bytes. */
export function fakeStore(o: FakeStoreOptions = {}): ObjectStore & { calls: string[] } {
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

/** What the SDK throws when the runner has no AWS credentials at all. */
export const noCredentials = (): Error =>
  Object.assign(new Error('Could not load credentials from any providers'), {
    name: 'CredentialsProviderError',
  });

/** Storage settings for the collection s3://bucket/path/ on a test S3 server, with its credential. */
export function serverSettings(s3: S3TestServer, over: Partial<StorageSettings> = {}): StorageSettings {
  return {
    bucket: 'bucket',
    prefix: 'path/',
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: TEST_S3_CREDENTIAL,
    ...over,
  };
}

/** A real S3 client on bucket `b` of a test S3 server, at the bucket root. */
export function serverStore(s3: S3TestServer): Promise<ObjectStore> {
  return openObjectStore({ ...serverSettings(s3), bucket: 'b', prefix: '' });
}
