import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isMissingCredentials, listChains, s3ClientConfig, storageErrorText } from '../../src/storage.js';
import type { S3TestServer } from '../support/s3/server.js';
import { startS3Server } from '../support/s3/server.js';
import { serverStore } from '../support/store-fakes.js';
import { seedCollection } from '../support/seed.js';

describe('S3 client settings', () => {
  const base = { bucket: 'b', prefix: '', region: 'eu-west-1', forcePathStyle: false };
  it('follows region redirects on AWS, not with a custom endpoint', () => {
    expect(s3ClientConfig(base).followRegionRedirects).toBe(true);
    const custom = s3ClientConfig({ ...base, endpoint: 'http://127.0.0.1:9000', forcePathStyle: true });
    expect(custom.followRegionRedirects).toBeUndefined();
    expect(custom.endpoint).toBe('http://127.0.0.1:9000');
  });
  it('describes SDK errors by code, HTTP status and message, and recognises missing credentials', () => {
    const e = Object.assign(new Error('Access Denied'), {
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    expect(storageErrorText(e)).toBe('AccessDenied (HTTP 403): Access Denied');
    const creds = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    });
    expect(isMissingCredentials(creds)).toBe(true);
    expect(isMissingCredentials(new Error('Could not load credentials from any providers'))).toBe(true);
    expect(isMissingCredentials(e)).toBe(false);
  });
});

describe('storage against the S3 test server', () => {
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['b'] });
  });
  afterAll(async () => s3?.close());
  beforeEach(() => {
    s3.resetCounts();
    s3.clearFaults();
  });
  const store = () => serverStore(s3);

  it.each([
    [30, 2000],
    [300, 20],
  ])(
    'lists %i chains × %i objects with requests that grow with backups, not objects',
    async (chains, objects) => {
      const prefix = `seed-${chains}x${objects}`;
      seedCollection(s3, 'b', prefix, {
        chains,
        objectsPerChain: objects,
        startDate: new Date('2025-01-01T00:00:00Z'),
        spacingHours: 1,
      });
      s3.resetCounts();
      const found = await listChains(await store(), `${prefix}/`);
      expect(found).toHaveLength(chains);
      expect(found.every((c) => c.hasManifest)).toBe(true);
      // year + month + day levels, one per full backup, plus the incrementals walk
      expect(s3.counts.ListObjectsV2).toBeLessThanOrEqual(chains + 10);
      console.log(
        `[measure] listChains ${chains}×${objects}: ${s3.counts.ListObjectsV2} ListObjectsV2, ${s3.counts.total} requests`,
      );
    },
  );

  it('retries a 500 on list, and fails clearly when it persists', async () => {
    seedCollection(s3, 'b', 'r', {
      chains: 2,
      objectsPerChain: 5,
      startDate: new Date('2025-02-01T00:00:00Z'),
    });
    s3.inject({ op: 'ListObjectsV2', status: 500, times: 1 });
    expect(await listChains(await store(), 'r/')).toHaveLength(2);
    s3.inject({ op: 'ListObjectsV2', status: 500 });
    await expect(listChains(await store(), 'r/')).rejects.toThrow();
  });
});
