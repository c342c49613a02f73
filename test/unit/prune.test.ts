import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { StorageSettings } from '../../src/destination.js';
import { executePrune, measureChains } from '../../src/prune-delete.js';
import { PruneFailure, pruneAfterBackup, pruneCollection, planPrune } from '../../src/prune.js';
import type { SqlSession } from '../../src/cluster.js';
import type { Chain, ObjectStore } from '../../src/storage.js';
import { listChains, openObjectStore, storageErrorText } from '../../src/storage.js';
import type { S3TestServer } from '../support/s3/server.js';
import { startS3Server } from '../support/s3/server.js';
import {
  testConfig as config,
  fakeStore,
  implicitAuth as implicit,
  noCredentials,
  serverSettings,
  serverStore,
} from '../support/store-fakes.js';
import { seedCollection } from '../support/seed.js';

const FULL = '/2026/11/24-114035.12';

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
  it('never removes the chain LATEST names, nor one a running job writes into', () => {
    const p = planPrune(chains, {
      keepLast: 1,
      now,
      protectFullSubdir: '/2026/01/05-000000.00',
      latestFullSubdir: '2026/01/01-000000.00',
      busy: new Map([['/2026/01/02-000000.00', '1012345678901234567']]),
    });
    expect(removed(p)).toEqual(['/2026/01/04-000000.00']);
    expect(p.reasons.get('/2026/01/01-000000.00')).toBe('named by LATEST');
    expect(p.reasons.get('/2026/01/02-000000.00')).toMatch(/running backup job \(1012345678901234567\)/);
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

describe('pruneCollection (the pruning phase)', () => {
  /** A cluster link whose session answers the clock read, and no running backup jobs. */
  const link = (now: unknown = '2026-11-24 12:00:00.000000+00:00') => {
    const statements: string[] = [];
    const session: SqlSession = {
      applicationName: 'test',
      broken: false,
      close: async () => undefined,
      query: async (stmt) => {
        statements.push(stmt.text);
        return /now\(\)/.test(stmt.text) ? [{ now: now as string }] : [];
      },
    };
    return {
      statements,
      withReconnect: <T>(_what: string, fn: (s: SqlSession) => Promise<T>) => fn(session),
    };
  };
  const phase = (over: Partial<Parameters<typeof pruneCollection>[0]> = {}) =>
    pruneCollection({
      config: config({ 'prune-keep-last': '1' }),
      link: link(),
      openStore: async () => fakeStore({ list: () => [] }),
      protectFullSubdir: FULL,
      verified: true,
      reconnectBudgetMs: 1_000,
      signal: new AbortController().signal,
      log: () => undefined,
      ...over,
    });

  it('reads the cluster clock and running backups first, then returns the failure line of a pruning failure', async () => {
    const cluster = link();
    const result = await phase({ link: cluster, openStore: () => Promise.reject(new Error('no SDK')) });
    expect(cluster.statements[0]).toBe('SELECT now() AS now');
    expect(cluster.statements.length).toBeGreaterThanOrEqual(2);
    expect(result.failure).toBe(
      'The backup succeeded and was verified, but pruning failed while opening the bucket bucket: no SDK. Nothing was deleted.',
    );
    expect(result.summary).toBeUndefined();
  });

  it("throws, as it is, an error that is not pruning's own (the cluster clock could not be read)", async () => {
    await expect(phase({ link: link('not a time') })).rejects.toThrow(/could not read the cluster clock/);
  });

  it('returns nothing to record when the backup was not verified', async () => {
    const lines: string[] = [];
    expect(await phase({ verified: false, log: (m) => lines.push(m) })).toEqual({});
    expect(lines).toEqual(["Pruning skipped: this run's backup was not verified."]);
  });
});

/** A store that records each DeleteObjects batch it passes on. */
function recording(inner: ObjectStore): ObjectStore & { batches: string[][] } {
  const batches: string[][] = [];
  return {
    batches,
    list: (prefix, opts) => inner.list(prefix, opts),
    get: (key) => inner.get(key),
    deleteMany: (keys) => {
      batches.push([...keys]);
      return inner.deleteMany(keys);
    },
    requestCounts: () => inner.requestCounts(),
  };
}

const isManifest = (k: string) => /\/BACKUP_MANIFEST(-CHECKSUM)?$/.test(k);

describe('pruning against the S3 test server', () => {
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
    // 3 chains × (1,496 other keys + 4 manifest keys): ceil(4,488 / 1000) + ceil(12 / 1000)
    expect(s3.counts.DeleteObjects).toBe(6);
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

  it("deletes a chain's manifests last, only after all its other objects, in batches of at most 1,000", async () => {
    const subdirs = seedCollection(s3, 'b', 'ord', {
      chains: 4,
      objectsPerChain: 700,
      incrementalsPerChain: 2,
      startDate: new Date('2025-02-01T00:00:00Z'),
    });
    const st = recording(await store());
    const plan = planPrune(await listChains(st, 'ord/'), {
      keepLast: 1,
      now: new Date('2025-03-01T00:00:00Z'),
      protectFullSubdir: subdirs[3]!,
    });
    expect(plan.remove).toHaveLength(3);
    const result = await executePrune(st, 'ord/', plan, { dryRun: false });
    expect(result.failed).toEqual([]);
    expect(result.chains.map((c) => c.state)).toEqual(['deleted', 'deleted', 'deleted']);
    expect(result.chains.every((c) => c.deleted === 700 && c.objects === 700)).toBe(true);
    // 3 × 696 other keys share 3 batches; the 3 × 4 manifest keys come in one batch after them.
    expect(st.batches.map((b) => b.length)).toEqual([1000, 1000, 88, 12]);
    expect(st.batches.every((b) => b.length <= 1000)).toBe(true);
    for (const s of subdirs.slice(0, 3)) {
      const lastOther = Math.max(
        ...st.batches.map((b, i) => (b.some((k) => k.includes(s) && !isManifest(k)) ? i : -1)),
      );
      const firstManifest = st.batches.findIndex((b) => b.some((k) => k.includes(s) && isManifest(k)));
      expect(firstManifest).toBeGreaterThan(lastOther);
      // the full backup's manifest, its checksum and each incremental layer's manifest
      const manifests = st.batches.flat().filter((k) => k.includes(s) && isManifest(k));
      expect(manifests).toHaveLength(4);
      expect(manifests).toContain(`ord${s}/BACKUP_MANIFEST`);
      expect(manifests).toContain(`ord${s}/BACKUP_MANIFEST-CHECKSUM`);
    }
    expect(st.batches.slice(0, -1).flat().some(isManifest)).toBe(false);
  });

  it('keeps the manifest of a chain it could not delete completely, so the chain is found again', async () => {
    const subdirs = seedCollection(s3, 'b', 'part', {
      chains: 3,
      objectsPerChain: 30,
      incrementalsPerChain: 1,
      startDate: new Date('2025-02-01T00:00:00Z'),
    });
    s3.inject({
      op: 'DeleteObjects',
      keyPrefix: `part${subdirs[0]}/data/1`,
      status: 403,
      code: 'AccessDenied',
    });
    const st = await store();
    const plan = planPrune(await listChains(st, 'part/'), {
      keepLast: 1,
      now: new Date(),
      protectFullSubdir: subdirs[2]!,
    });
    const result = await executePrune(st, 'part/', plan, { dryRun: false });
    // data/1.sst and data/10.sst … data/19.sst of the oldest chain (25 data objects)
    expect(result.failed).toHaveLength(11);
    expect(result.failed.every((f) => f.code === 'AccessDenied')).toBe(true);
    expect(result.chains[0]).toMatchObject({ state: 'partial', objects: 30, deleted: 30 - 11 - 3 });
    expect(result.chains[1]).toMatchObject({ state: 'deleted', objects: 30, deleted: 30 });
    expect(s3.hasObject('b', `part${subdirs[0]}/BACKUP_MANIFEST`)).toBe(true);
    expect(s3.hasObject('b', `part${subdirs[0]}/BACKUP_MANIFEST-CHECKSUM`)).toBe(true);
    expect(s3.listKeys('b', `part/incrementals${subdirs[0]}/`).filter(isManifest)).toHaveLength(1);
    expect(s3.hasObject('b', `part${subdirs[1]}/BACKUP_MANIFEST`)).toBe(false);
    s3.clearFaults();
    const again = await listChains(st, 'part/');
    expect(again.map((c) => c.fullSubdir)).toEqual([subdirs[0], subdirs[2]]);
    expect(again[0]!.hasManifest).toBe(true);
    const retry = await executePrune(
      st,
      'part/',
      planPrune(again, { keepLast: 1, now: new Date(), protectFullSubdir: subdirs[2]! }),
      { dryRun: false },
    );
    expect(retry.chains[0]).toMatchObject({ state: 'deleted', objects: 14, deleted: 14 });
    expect(s3.listKeys('b', `part${subdirs[0]}/`)).toEqual([]);
  });

  it('lets many small chains share DeleteObjects requests and lists no folder known to be absent', async () => {
    const subdirs = seedCollection(s3, 'b', 'small', {
      chains: 60,
      objectsPerChain: 20,
      startDate: new Date('2024-01-01T00:00:00Z'),
      spacingHours: 2,
    });
    const st = await store();
    const chains = await listChains(st, 'small/');
    expect(chains.every((c) => c.hasIncrementalsFolder === false && c.indexRoots?.length === 0)).toBe(true);
    const plan = planPrune(chains, { keepLast: 10, now: new Date(), protectFullSubdir: subdirs[59]! });
    s3.resetCounts();
    const result = await executePrune(st, 'small/', plan, { dryRun: false });
    expect(result.deletedObjects).toBe(50 * 20);
    // 50 × 18 other keys in 1 request, 50 × 2 manifest keys in 1
    expect(s3.counts.DeleteObjects).toBe(2);
    // one listing per removed chain: only its full folder exists
    expect(s3.counts.ListObjectsV2).toBe(50);
  });

  it('lists the incrementals and index folders of chains that have them', async () => {
    const subdirs = seedCollection(s3, 'b', 'idx', {
      chains: 3,
      objectsPerChain: 12,
      incrementalsPerChain: 1,
      index: true,
      startDate: new Date('2024-01-01T00:00:00Z'),
    });
    const st = await store();
    const chains = await listChains(st, 'idx/');
    expect(chains.every((c) => c.hasIncrementalsFolder && c.indexRoots?.join() === 'index/')).toBe(true);
    const plan = planPrune(chains, { keepLast: 1, now: new Date(), protectFullSubdir: subdirs[2]! });
    const result = await executePrune(st, 'idx/', plan, { dryRun: false });
    expect(result.chains.map((c) => [c.state, c.objects])).toEqual([
      ['deleted', 12],
      ['deleted', 12],
    ]);
    expect(s3.listKeys('b', `idx/index/${subdirs[0]!.slice(1).replace(/\//g, '-')}/`)).toEqual([]);
    expect(s3.listKeys('b', `idx/index/${subdirs[2]!.slice(1).replace(/\//g, '-')}/`)).toHaveLength(2);
  });

  it('deletes index entries under metadata/index/, where CockroachDB writes them, and never metadata/latest', async () => {
    const subdirs = seedCollection(s3, 'b', 'midx', {
      chains: 3,
      objectsPerChain: 12,
      incrementalsPerChain: 1,
      index: 'metadata',
      startDate: new Date('2024-01-01T00:00:00Z'),
    });
    const st = await store();
    const chains = await listChains(st, 'midx/');
    expect(chains.every((c) => c.indexRoots?.join() === 'metadata/index/')).toBe(true);
    const plan = planPrune(chains, { keepLast: 1, now: new Date(), protectFullSubdir: subdirs[2]! });
    const result = await executePrune(st, 'midx/', plan, { dryRun: false });
    expect(result.chains.map((c) => [c.state, c.objects])).toEqual([
      ['deleted', 12],
      ['deleted', 12],
    ]);
    const flat = (d: string) => d.slice(1).replace(/\//g, '-');
    expect(s3.listKeys('b', `midx/metadata/index/${flat(subdirs[0]!)}/`)).toEqual([]);
    expect(s3.listKeys('b', `midx/metadata/index/${flat(subdirs[2]!)}/`)).toHaveLength(2);
    expect(s3.listKeys('b', 'midx/metadata/latest/')).toHaveLength(3);
  });

  it('measures kept chains by listing them', async () => {
    const subdirs = seedCollection(s3, 'b', 'size', {
      chains: 2,
      objectsPerChain: 1203,
      incrementalsPerChain: 1,
      startDate: new Date('2024-01-01T00:00:00Z'),
    });
    const st = await store();
    const chains = await listChains(st, 'size/');
    s3.resetCounts();
    await measureChains(st, 'size/', chains);
    expect(chains.map((c) => c.objectCount)).toEqual([1203, 1203]);
    // data: 1198 × 16 B; lock 0; checksum 1; manifest 8; incremental: 1 + 8
    expect(chains[0]!.sizeBytes).toBe(1198 * 16 + 1 + 8 + 1 + 8);
    // per chain: 2 pages of the full folder, 1 of its incrementals
    expect(s3.counts.ListObjectsV2).toBe(6);
    expect(subdirs).toHaveLength(2);
  });

  it('stops, without throwing, when listing a chain fails, and says what it was doing', async () => {
    const subdirs = seedCollection(s3, 'b', 'stop', {
      chains: 3,
      objectsPerChain: 10,
      startDate: new Date('2024-01-01T00:00:00Z'),
    });
    const st = await store();
    const plan = planPrune(await listChains(st, 'stop/'), {
      keepLast: 1,
      now: new Date(),
      protectFullSubdir: subdirs[2]!,
    });
    s3.inject({ op: 'ListObjectsV2', keyPrefix: `stop${subdirs[1]}/`, status: 500 });
    const result = await executePrune(st, 'stop/', plan, { dryRun: false });
    expect(result.interrupted?.during).toBe(`listing the objects of chain ${subdirs[1]}`);
    expect(storageErrorText(result.interrupted?.error)).toMatch(/HTTP 500/);
    expect(result.chains.map((c) => c.state)).toEqual(['deleted', 'not-deleted']);
    expect(s3.listKeys('b', `stop${subdirs[1]}/`)).toHaveLength(10);
  });
});

describe('pruneAfterBackup against the S3 test server', () => {
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
