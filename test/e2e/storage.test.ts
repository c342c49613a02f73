/**
 * Verification and pruning through the bundle: seeded collections, the
 * backup's own manifest, chain-aware deletion, dry run, external:// and
 * S3 errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { TEST_S3_CREDENTIAL } from '../support/s3/server.js';
import { seedCollection } from '../support/seed.js';
import type { E2eEnv } from './harness.js';
import { BUCKET, runScenario, startE2eEnv } from './harness.js';

describe('verification and pruning', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile: '25.2', jobDurationMs: 800 });
  });
  afterAll(async () => env?.close());

  it.each([
    [30, 2000],
    [300, 20],
  ])(
    'prunes a collection of %i chains × %i objects down to prune-keep-last, by whole chains',
    async (chains, objects) => {
      const path = `seeded-${chains}`;
      const seeded = seedCollection(env.s3, BUCKET, path, {
        chains,
        objectsPerChain: objects,
        incrementalsPerChain: 1,
        startDate: new Date('2025-06-01T00:00:00Z'),
        spacingHours: 6,
      });
      env.s3.putObject(BUCKET, `${path}-archive/2025/01/01-000000.00/BACKUP_MANIFEST`, 'sibling');
      env.s3.resetCounts();
      const r = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': '5' }),
      });
      expect(r.errors).toEqual([]);
      expect(r.code).toBe(0);
      const left = env.s3.listKeys(BUCKET, `${path}/`);
      const fulls = new Set(
        left.map((k) => /^[^/]+\/(\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2})\//.exec(k)?.[1]).filter(Boolean),
      );
      expect(fulls.size).toBe(5); // the new chain + the 4 newest seeded ones
      expect(fulls.has(r.outputs['backup-path']!.slice(1))).toBe(true);
      expect(fulls.has(seeded.at(-1)!.slice(1))).toBe(true);
      expect(left.some((k) => k.startsWith(`${path}/incrementals/${seeded[0]!.slice(1)}/`))).toBe(false);
      expect(left.filter((k) => k.startsWith(`${path}/metadata/latest/`)).length).toBe(chains + 1);
      expect(env.s3.hasObject(BUCKET, `${path}-archive/2025/01/01-000000.00/BACKUP_MANIFEST`)).toBe(true);
      expect(r.summary).toMatch(new RegExp(`Deleted ${chains - 4} chain\\(s\\), kept 5`));
      expect(r.summary).toMatch(/delete markers/);
      const c = env.s3.counts;
      console.log(
        `[measure] ${chains}×${objects} through the bundle: ${c.ListObjectsV2} ListObjectsV2, ${c.DeleteObjects} DeleteObjects, ${c.GetObject} GetObject, ${c.total} requests`,
      );
    },
  );

  it('prune-dry-run lists and deletes nothing; older-than and keep-last combine', async () => {
    const path = 'dry';
    seedCollection(env.s3, BUCKET, path, {
      chains: 6,
      objectsPerChain: 5,
      startDate: new Date('2025-06-01T00:00:00Z'),
    });
    const before = env.s3.listKeys(BUCKET, `${path}/`).length;
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(path),
        'prune-keep-last': '2',
        'prune-older-than': '3650d',
        'prune-dry-run': 'true',
      }),
    });
    expect(r.code).toBe(0);
    // Nothing is older than ten years: with both inputs nothing goes, and a dry run deletes nothing anyway.
    expect(r.summary).toMatch(/dry run/);
    expect(r.summary).toMatch(/Would delete 0 chain/);
    expect(env.s3.listKeys(BUCKET, `${path}/`).length).toBeGreaterThan(before);
    const r2 = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(path),
        'prune-keep-last': '2',
        'prune-dry-run': 'true',
      }),
    });
    expect(r2.summary).toMatch(/Would delete 6 chain/); // 6 seeded + 2 new chains, keep 2
    expect(env.s3.listKeys(BUCKET, `${path}/2025/`).length).toBeGreaterThan(0);
  });

  it('fails verification when the backup cannot be read back, and never prunes then', async () => {
    const path = 'noverify';
    seedCollection(env.s3, BUCKET, path, {
      chains: 3,
      objectsPerChain: 5,
      startDate: new Date('2025-06-01T00:00:00Z'),
    });
    const remove = env.s3.inject({
      op: 'GetObject',
      keyPrefix: `${path}/2026/`,
      status: 403,
      code: 'AccessDenied',
    });
    try {
      const r = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': '1' }),
      });
      expect(r.code).not.toBe(0);
      expect(r.outputs.status).toBe('succeeded');
      expect(r.outputs.verified).toBe('false');
      expect(r.errors[0]).toMatch(/verification failed/);
      expect(env.s3.listKeys(BUCKET, `${path}/2025/`).length).toBeGreaterThan(0);
    } finally {
      remove();
    }
  });

  it('verify: files runs check_files; verify: none skips', async () => {
    const files = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), verify: 'files' }),
    });
    expect(files.code).toBe(0);
    expect(files.summary).toMatch(/check_files/);
    const none = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), verify: 'none' }),
    });
    expect(none.outputs.verified).toBe('skipped');
    expect(none.outputs['size-bytes']).toBeUndefined();
  });

  it('backs up into an external:// collection', async () => {
    const root = new pg.Client({ connectionString: env.cluster.url('root') });
    root.on('error', () => undefined);
    await root.connect();
    const uri = `s3://${BUCKET}/ext?AWS_ACCESS_KEY_ID=${TEST_S3_CREDENTIAL.accessKeyId}&AWS_SECRET_ACCESS_KEY=${encodeURIComponent(TEST_S3_CREDENTIAL.secretAccessKey)}&AWS_ENDPOINT=${encodeURIComponent(env.s3.endpoint)}&AWS_USE_PATH_STYLE=true`;
    await root.query(`CREATE EXTERNAL CONNECTION nightly AS '${uri}'`);
    await root.end();
    const r = await runScenario(env, {
      inputs: {
        'connection-string': env.cluster.url('root'),
        collection: 'external://nightly',
        verify: 'files',
      },
      extraSecrets: [TEST_S3_CREDENTIAL.secretAccessKey],
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs['collection-path']).toBe('external://nightly');
    expect(r.outputs['backup-uri']).toBe(`external://nightly${r.outputs['backup-path']}`);
    expect(r.summary).toMatch(/bucket not read/);
    expect(
      env.s3.listKeys(BUCKET, `ext${r.outputs['backup-path']}/`).some((k) => k.endsWith('BACKUP_MANIFEST')),
    ).toBe(true);
  });

  it('reports a job that the cluster stops returning as an error', async () => {
    env.cluster.engine.setJobDuration(5000);
    const before = env.cluster.jobs().length;
    const { startScenario, until } = await import('./harness.js');
    const run = startScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    await until(() => env.cluster.jobs().length > before, 20_000, 'a job');
    env.cluster.engine.deleteJobRecord(env.cluster.jobs()[before]!.id);
    const r = await run.done;
    env.cluster.engine.setJobDuration(800);
    expect(r.code).not.toBe(0);
    expect(r.errors[0]).toMatch(/no longer returned/);
  });
});
