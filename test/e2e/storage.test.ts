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

  /** Per-operation counts the bundle's own S3 client logged (verification and pruning). */
  const loggedCounts = (stdout: string): Record<string, number> => {
    const m = /S3 requests for verification and pruning: ([^\n]*)\./.exec(stdout);
    expect(m, 'the action logs its S3 request counts').not.toBeNull();
    return Object.fromEntries(
      m![1]!.split(', ').map((p) => {
        const [op, n] = p.split(' ');
        return [op!, Number(n)];
      }),
    );
  };

  it.each([
    [30, 2000],
    [300, 20],
  ])(
    'prunes a collection of %i chains × %i objects down to prune-keep-last, by whole chains',
    async (chains, objects) => {
      const path = `seeded-${chains}`;
      const keepLast = 5;
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
        inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': String(keepLast) }),
      });
      expect(r.errors).toEqual([]);
      expect(r.code).toBe(0);
      const left = env.s3.listKeys(BUCKET, `${path}/`);
      const fulls = new Set(
        left.map((k) => /^[^/]+\/(\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2})\//.exec(k)?.[1]).filter(Boolean),
      );
      expect(fulls.size).toBe(keepLast); // the new chain + the 4 newest seeded ones
      expect(fulls.has(r.outputs['backup-path']!.slice(1))).toBe(true);
      expect(fulls.has(seeded.at(-1)!.slice(1))).toBe(true);
      expect(left.some((k) => k.startsWith(`${path}/incrementals/${seeded[0]!.slice(1)}/`))).toBe(false);
      expect(left.filter((k) => k.startsWith(`${path}/metadata/latest/`)).length).toBe(chains + 1);
      expect(env.s3.hasObject(BUCKET, `${path}-archive/2025/01/01-000000.00/BACKUP_MANIFEST`)).toBe(true);
      expect(r.summary).toMatch(new RegExp(`Deleted ${chains - 4} chain\\(s\\), kept 5`));
      expect(r.summary).toMatch(/delete markers/);
      // Kept chains have their size in the summary too.
      expect(r.summary).toMatch(
        new RegExp(
          `\\| \`${seeded.at(-1)}\` \\| kept \\(among the newest 5\\) \\| ${objects} \\| [\\d.]+ (B|KiB|MiB) \\|`,
        ),
      );
      expect(r.summary).toMatch(
        new RegExp(`\\| \`${r.outputs['backup-path']}\` \\| kept \\(the chain this run took`),
      );

      // ---- request counts -------------------------------------------------------------------------
      const deleted = chains - (keepLast - 1);
      const pages = Math.ceil(objects / 1000);
      // Every seeded chain has 3 manifest keys (full BACKUP_MANIFEST and -CHECKSUM, one incremental's
      // BACKUP_MANIFEST), deleted after its other objects; keys of several chains share a request.
      const expectedDeletes = Math.ceil((deleted * (objects - 3)) / 1000) + Math.ceil((deleted * 3) / 1000);
      // Listing: about 4 requests per chain (its BACKUP_MANIFEST, its incrementals' two folder levels, its
      // incrementals folder when it is pruned), a few per year and month, and the objects of the deleted
      // chains and of the 5 kept ones (sizes), one request per 1,000 objects of a folder.
      const listBound = 4 * (chains + 1) + 12 + deleted * pages + keepLast * (pages + 2);
      const c = env.s3.counts;
      const logged = loggedCounts(r.stdout);
      // The test cluster lists the whole collection for SHOW BACKUPS (no delimiter); the rest is the action's,
      // plus the job's own look into its new folder.
      const clusterWholeListings = env.s3.requests.filter(
        (q) => q.op === 'ListObjectsV2' && q.prefix === `${path}/` && q.delimiter === undefined,
      ).length;
      const actionSideLists = c.ListObjectsV2 - clusterWholeListings;
      console.log(
        `[measure] ${chains}×${objects} through the bundle: action ${logged.ListObjectsV2} ListObjectsV2 (bound ${listBound}), ` +
          `${logged.DeleteObjects} DeleteObjects (expected ${expectedDeletes}), ${logged.GetObject} GetObject; ` +
          `server ${c.ListObjectsV2} ListObjectsV2 (${clusterWholeListings} of them the cluster's SHOW BACKUPS), ` +
          `${c.DeleteObjects} DeleteObjects, ${c.GetObject} GetObject, ${c.total} requests in all`,
      );
      expect(c.DeleteObjects).toBe(expectedDeletes);
      expect(logged.DeleteObjects).toBe(expectedDeletes);
      expect(logged.ListObjectsV2).toBeLessThanOrEqual(listBound);
      expect(actionSideLists - logged.ListObjectsV2).toBeGreaterThanOrEqual(0);
      expect(actionSideLists - logged.ListObjectsV2).toBeLessThanOrEqual(2);
      expect(logged.GetObject).toBe(2); // this run's BACKUP_MANIFEST, and the newest LATEST file
      expect(c.GetObject).toBeLessThanOrEqual(3);
    },
  );

  it('keeps the manifest of a chain whose objects could not all be deleted, and prunes it next run', async () => {
    const path = 'denied';
    const seeded = seedCollection(env.s3, BUCKET, path, {
      chains: 4,
      objectsPerChain: 1500,
      startDate: new Date('2024-01-01T00:00:00Z'),
    });
    const dataFiles = 1500 - 3;
    const remove = env.s3.inject({
      op: 'DeleteObjects',
      keyPrefix: `${path}${seeded[0]}/data/`,
      status: 403,
      code: 'AccessDenied',
    });
    let first;
    try {
      first = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': '2' }),
      });
    } finally {
      remove();
    }
    expect(first.code).not.toBe(0);
    expect(first.outputs.status).toBe('succeeded');
    expect(first.outputs.verified).toBe('true');
    expect(first.errors[0]).toMatch(new RegExp(`pruning failed.*${dataFiles} object\\(s\\)`, 'i'));
    expect(first.summary).toContain(`| \`${seeded[0]}\` | partially deleted (1 of 1500 objects) |`);
    expect(first.summary).toContain(`| \`${seeded[1]}\` | deleted |`);
    const failureLines = first.summary.split('\n').filter((l) => l.startsWith(`- ${path}${seeded[0]}/data/`));
    expect(failureLines).toHaveLength(20);
    expect(first.summary).toContain(
      `- … and ${dataFiles - 20} more failures: AccessDenied × ${dataFiles - 20}`,
    );
    expect(env.s3.hasObject(BUCKET, `${path}${seeded[0]}/BACKUP_MANIFEST`)).toBe(true);
    expect(env.s3.hasObject(BUCKET, `${path}${seeded[0]}/BACKUP_MANIFEST-CHECKSUM`)).toBe(true);
    expect(env.s3.listKeys(BUCKET, `${path}${seeded[1]}/`)).toEqual([]);

    const second = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': '2' }),
    });
    expect(second.errors).toEqual([]);
    expect(second.code).toBe(0);
    // Still recognised as a complete backup, so pruned this time: what is left of it (BACKUP-LOCK went).
    expect(second.summary).toContain(`| \`${seeded[0]}\` | deleted | ${dataFiles + 2} |`);
    expect(env.s3.listKeys(BUCKET, `${path}${seeded[0]}/`)).toEqual([]);
  });

  it('says the backup succeeded and was verified when listing fails during pruning', async () => {
    const path = 'listfail';
    seedCollection(env.s3, BUCKET, path, {
      chains: 3,
      objectsPerChain: 5,
      startDate: new Date('2024-01-01T00:00:00Z'),
    });
    // Only pruning walks the seeded year; verification reads this run's folder.
    const remove = env.s3.inject({ op: 'ListObjectsV2', keyPrefix: `${path}/2024/`, status: 500 });
    let r;
    try {
      r = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': '1' }),
      });
    } finally {
      remove();
    }
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('succeeded');
    expect(r.outputs.verified).toBe('true');
    expect(r.errors[0]).toMatch(
      new RegExp(
        `^The backup succeeded and was verified, but pruning failed while listing the backups in s3://${BUCKET}/${path}/: InternalError \\(HTTP 500\\)`,
      ),
    );
    expect(r.errors[0]).toMatch(/Nothing was deleted\.$/);
    // The summary does not call a good backup failed, and still says how to restore it.
    expect(r.summary).toContain('CockroachDB backup succeeded, but pruning failed');
    expect(r.summary).toContain('RESTORE FROM');
    expect(env.s3.listKeys(BUCKET, `${path}/2024/`)).toHaveLength(15);
  });

  it('fails verification and names the key when the backup has no BACKUP_MANIFEST', async () => {
    const path = 'nomanifest';
    seedCollection(env.s3, BUCKET, path, {
      chains: 2,
      objectsPerChain: 5,
      startDate: new Date('2024-01-01T00:00:00Z'),
    });
    const remove = env.s3.inject({ op: 'GetObject', keyPrefix: `${path}/`, status: 404, code: 'NoSuchKey' });
    let r;
    try {
      r = await runScenario(env, {
        inputs: env.inputs({ collection: env.collection(path), 'prune-keep-last': '1' }),
      });
    } finally {
      remove();
    }
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('succeeded');
    expect(r.outputs.verified).toBe('false');
    const key = `${path}${r.outputs['backup-path']}/BACKUP_MANIFEST`;
    expect(r.errors[0]).toContain(`verification failed: BACKUP_MANIFEST is missing: no object ${key}`);
    expect(r.summary).toContain(key.replace(/_/g, '\\_')); // plain text in the summary: `_` escaped
    expect(env.s3.listKeys(BUCKET, `${path}/2024/`)).toHaveLength(10); // never pruned
  });

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
    expect(files.summary).toMatch(/check\\_files/); // escaped in the Verified cell
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

describe('pruning the backup index of CockroachDB 25.4', () => {
  let env254: E2eEnv;
  beforeAll(async () => {
    env254 = await startE2eEnv({ profile: '25.4', jobDurationMs: 800 });
  });
  afterAll(async () => env254?.close());

  it("removes a pruned chain's backup index entries (metadata/index/, 25.4+) and never metadata/latest", async () => {
    const path = 'indexed';
    const inputs = env254.inputs({ collection: env254.collection(path) });
    const first = await runScenario(env254, { inputs });
    expect(first.code).toBe(0);
    const second = await runScenario(env254, { inputs: { ...inputs, 'prune-keep-last': '1' } });
    expect(second.errors).toEqual([]);
    const flat = (p: string) => p.slice(1).replace(/\//g, '-');
    const oldIndex = `${path}/metadata/index/${flat(first.outputs['backup-path']!)}/`;
    const newIndex = `${path}/metadata/index/${flat(second.outputs['backup-path']!)}/`;
    expect(env254.s3.listKeys(BUCKET, oldIndex)).toEqual([]);
    expect(env254.s3.listKeys(BUCKET, newIndex)).toHaveLength(1);
    expect(env254.s3.listKeys(BUCKET, `${path}/metadata/latest/`)).toHaveLength(2);
    expect(second.summary).toContain(`| \`${first.outputs['backup-path']}\` | deleted |`);
  });
});
