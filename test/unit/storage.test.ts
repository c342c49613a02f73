import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Chain } from '../../src/storage.js';
import {
  executePrune,
  listChains,
  openObjectStore,
  planPrune,
  verifyLayerObjects,
} from '../../src/storage.js';
import type { S3TestServer } from '../support/s3/server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../support/s3/server.js';
import { seedCollection } from '../support/seed.js';

const chain = (subdir: string, end: string, hasManifest = true): Chain => ({
  fullSubdir: subdir,
  incrementals: [],
  newestEndTime: new Date(end),
  hasManifest,
});

describe('planPrune', () => {
  const chains = [
    chain('/2026/01/01-000000.00', '2026-01-01T00:00:00Z'),
    chain('/2026/01/02-000000.00', '2026-01-02T00:00:00Z'),
    chain('/2026/01/03-000000.00', '2026-01-03T00:00:00Z', false),
    chain('/2026/01/04-000000.00', '2026-01-04T00:00:00Z'),
    chain('/2026/01/05-000000.00', '2026-01-05T00:00:00Z'),
  ];
  const now = new Date('2026-01-05T12:00:00Z');
  const removed = (p: ReturnType<typeof planPrune>) => p.remove.map((c) => c.fullSubdir);

  it('keep-last counts the protected chain and skips folders without a manifest', () => {
    const p = planPrune(chains, { keepLast: 2, now, protectFullSubdir: '/2026/01/05-000000.00' });
    expect(removed(p)).toEqual(['/2026/01/01-000000.00', '/2026/01/02-000000.00']);
    expect(p.reasons.get('/2026/01/03-000000.00')).toMatch(/BACKUP_MANIFEST/);
  });
  it('older-than goes by the newest layer', () => {
    const p = planPrune(chains, {
      olderThanMs: 3 * 86_400_000,
      now,
      protectFullSubdir: '/2026/01/05-000000.00',
    });
    expect(removed(p)).toEqual(['/2026/01/01-000000.00', '/2026/01/02-000000.00']);
  });
  it('with both, a chain goes only when both say so', () => {
    const p = planPrune(chains, {
      keepLast: 1,
      olderThanMs: 3.75 * 86_400_000,
      now,
      protectFullSubdir: '/2026/01/05-000000.00',
    });
    expect(removed(p)).toEqual(['/2026/01/01-000000.00']);
  });
  it('never removes the protected chain or the newest', () => {
    const p = planPrune(chains, { keepLast: 1, now, protectFullSubdir: '/2026/01/01-000000.00' });
    expect(removed(p)).not.toContain('/2026/01/01-000000.00');
    expect(removed(p)).not.toContain('/2026/01/05-000000.00');
  });
  it('refuses to prune a collection without any completed backup', () => {
    const p = planPrune([chain('/2026/01/01-000000.00', '2026-01-01T00:00:00Z', false)], {
      keepLast: 1,
      now,
      protectFullSubdir: '/x',
    });
    expect(p.remove).toEqual([]);
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
  const store = () =>
    openObjectStore({
      bucket: 'b',
      prefix: '',
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: TEST_S3_CREDENTIAL,
    });

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

  it('verifies a layer by its own manifest and says what is missing', async () => {
    s3.putObject('b', 'v/2026/01/01-000000.00/data/1.sst', 'abc');
    s3.putObject('b', 'v/2026/01/01-000000.00/BACKUP_MANIFEST', 'm');
    const ok = await verifyLayerObjects(await store(), 'v/', { fullSubdir: '/2026/01/01-000000.00' });
    expect(ok).toMatchObject({ ok: true, objectCount: 2, sizeBytes: 4 });
    s3.deleteObject('b', 'v/2026/01/01-000000.00/BACKUP_MANIFEST');
    const bad = await verifyLayerObjects(await store(), 'v/', { fullSubdir: '/2026/01/01-000000.00' });
    expect(bad.ok).toBe(false);
    expect(bad.problem).toMatch(/BACKUP_MANIFEST is missing/);
  });

  it('deletes whole chains in batches, never a sibling collection or metadata/latest', async () => {
    const subdirs = seedCollection(s3, 'b', 'p', {
      chains: 5,
      objectsPerChain: 1500,
      incrementalsPerChain: 2,
      startDate: new Date('2025-02-01T00:00:00Z'),
    });
    seedCollection(s3, 'b', 'p-archive', {
      chains: 2,
      objectsPerChain: 5,
      startDate: new Date('2025-01-01T00:00:00Z'),
    });
    const st = await store();
    const chains = await listChains(st, 'p/');
    const plan = planPrune(chains, {
      keepLast: 2,
      now: new Date('2025-03-01T00:00:00Z'),
      protectFullSubdir: subdirs[4]!,
    });
    expect(plan.remove).toHaveLength(3);
    const dry = await executePrune(st, 'p/', plan, { dryRun: true });
    expect(dry.deletedObjects).toBe(0);
    expect(s3.listKeys('b', `p${subdirs[0]}/`).length).toBeGreaterThan(0);
    s3.resetCounts();
    const result = await executePrune(st, 'p/', plan, { dryRun: false });
    expect(result.failed).toEqual([]);
    expect(s3.counts.DeleteObjects).toBe(6); // 3 chains × 1,504 keys in batches of 1,000
    for (const s of subdirs.slice(0, 3)) {
      expect(s3.listKeys('b', `p${s}/`)).toEqual([]);
      expect(s3.listKeys('b', `p/incrementals${s}/`)).toEqual([]);
    }
    expect(s3.listKeys('b', `p${subdirs[4]}/`).length).toBeGreaterThan(0);
    expect(s3.listKeys('b', 'p-archive/').length).toBeGreaterThan(0);
    expect(s3.listKeys('b', 'p/metadata/latest/')).toHaveLength(5);
  });

  it('reports per-key delete failures precisely', async () => {
    const subdirs = seedCollection(s3, 'b', 'q', {
      chains: 3,
      objectsPerChain: 10,
      startDate: new Date('2025-02-01T00:00:00Z'),
    });
    s3.inject({ op: 'DeleteObjects', keyPrefix: `q${subdirs[0]}/data/`, status: 403, code: 'AccessDenied' });
    const st = await store();
    const plan = planPrune(await listChains(st, 'q/'), {
      keepLast: 2,
      now: new Date(),
      protectFullSubdir: subdirs[2]!,
    });
    const result = await executePrune(st, 'q/', plan, { dryRun: false });
    expect(result.failed.length).toBe(7);
    expect(result.failed[0]).toMatchObject({ code: 'AccessDenied' });
    expect(result.failed[0]!.key).toContain(`q${subdirs[0]}/data/`);
  });

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
