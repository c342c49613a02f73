/**
 * `verify: restore` through the bundle (README, "Three levels: `manifest`, `files`, `restore`"): per database a
 * `RESTORE … WITH schema_only, verify_backup_table_data, new_db_name, detached` job on the test
 * cluster, which reads and checksums every data file of the chain; then the scratch database dropped.
 * Every ending is checked against the cluster's own jobs and catalog: no scratch database survives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProfileName } from '../support/cluster/index.js';
import type { E2eEnv } from './harness.js';
import { BUCKET, runScenario, startE2eEnv, startScenario, until } from './harness.js';

const SCRATCH = /^crdb_backup_verify_/;

/** Names of scratch databases the cluster still has, public or OFFLINE (a running restore's). */
function scratchLeft(env: E2eEnv, names: string[] = []): string[] {
  const listed = env.cluster.engine.catalog
    .list()
    .map((d) => d.name)
    .filter((n) => SCRATCH.test(n));
  const offline = names.filter((n) => env.cluster.engine.catalog.taken(n));
  return [...new Set([...listed, ...offline])];
}

function restoreJobs(env: E2eEnv, since = 0) {
  return env.cluster.jobs().filter((j) => j.type === 'RESTORE' && j.created.getTime() >= since);
}

describe.each<ProfileName>(['22.2', '23.2', '25.2'])('verify: restore on %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, jobDurationMs: 600 });
    env.cluster.engine.catalog.setTables('shop', [
      { name: 'orders', rows: 120 },
      { name: 'customers', rows: 40 },
    ]);
  });
  afterAll(async () => env?.close());

  it('a full backup is proven restorable: one restore job per database, the scratch database dropped', async () => {
    const since = Date.now();
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), databases: 'shop', verify: 'restore' }),
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.outputs.status).toBe('succeeded');
    expect(r.outputs.verified).toBe('true');
    const jobs = restoreJobs(env, since);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.status).toBe('succeeded');
    expect(jobs[0]!.description).toMatch(
      /^RESTORE DATABASE shop FROM '\/\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2}' IN 's3:\/\/backups\/coll-\d+\?.*AS OF SYSTEM TIME '\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\+00:00'.*new_db_name = 'crdb_backup_verify_\d+_1'.*schema_only.*verify_backup_table_data/,
    );
    // The exact AS OF SYSTEM TIME the BACKUP was sent with, to the microsecond.
    const backup = env.cluster.jobs().find((j) => j.type === 'BACKUP' && j.id === r.outputs['job-id'])!;
    const aost = /AS OF SYSTEM TIME ('[^']+')/.exec(backup.description)![1]!;
    expect(jobs[0]!.description).toContain(`AS OF SYSTEM TIME ${aost}`);
    expect(r.stdout).toMatch(
      /restore check: shop restorable \(2 table\(s\) restored schema-only, [\d.]+ (B|KiB|MiB) read and checksummed, [\d.]+ s, job \d+\)/,
    );
    expect(r.summary).toMatch(/restore check: shop restorable/);
    expect(scratchLeft(env)).toEqual([]);
    expect(r.state['restore-check']).toBe('[]');
  });

  it('a cluster backup checks every database but system; an encrypted incremental restores its whole chain', async () => {
    const collection = env.collection();
    const full = await runScenario(env, {
      inputs: env.inputs({ collection, 'encryption-passphrase': 'correct horse battery', verify: 'restore' }),
    });
    expect(full.errors).toEqual([]);
    const fullRestores = restoreJobs(env).filter((j) => j.description.includes(collection.slice(5)));
    const dbs = fullRestores.map((j) => /^RESTORE DATABASE (\S+)/.exec(j.description)![1]).sort();
    expect(dbs).toEqual(['defaultdb', 'shop']);
    expect(fullRestores.every((j) => j.description.includes("encryption_passphrase = '*****'"))).toBe(true);
    const since = Date.now();
    const inc = await runScenario(env, {
      inputs: env.inputs({
        collection,
        databases: '',
        'backup-type': 'incremental',
        'encryption-passphrase': 'correct horse battery',
        verify: 'restore',
      }),
    });
    expect(inc.errors).toEqual([]);
    expect(inc.outputs.verified).toBe('true');
    const incRestores = restoreJobs(env, since);
    expect(incRestores.map((j) => j.status)).toEqual(['succeeded', 'succeeded']);
    // FROM the full backup, AS OF the incremental's end time: the chain up to this layer.
    expect(incRestores[0]!.description).toContain(`FROM '${inc.outputs['backup-path']}'`);
    expect(incRestores[0]!.description).toContain(
      inc.outputs['end-time']!.replace('T', ' ').replace('Z', '+00:00'),
    );
    expect(scratchLeft(env)).toEqual([]);
  });

  it.each(['deleted', 'corrupted'] as const)(
    'a data object %s while the restore job reads: verified false, the step fails, status succeeded, scratch gone',
    async (fault) => {
      const path = `${fault}-${profile.replace('.', '')}`;
      const since = Date.now();
      const running = startScenario(env, {
        inputs: env.inputs({ collection: env.collection(path), databases: 'shop', verify: 'restore' }),
      });
      // check_files (which runs first) has passed once the restore job exists; it reads its first
      // file no sooner than one step of the job later, so every data file is changed before it reads.
      await until(() => restoreJobs(env, since).length > 0, 30_000, 'the restore job');
      const keys = env.s3.listKeys(BUCKET, `${path}/`).filter((k) => /\/data\/[^/]+\.sst$/.test(k));
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) {
        if (fault === 'deleted') env.s3.deleteObject(BUCKET, k);
        else env.s3.putObject(BUCKET, k, 'not what the backup wrote');
      }
      const r = await running.done;
      expect(r.code).toBe(1);
      expect(r.outputs.status).toBe('succeeded');
      expect(r.outputs.verified).toBe('false');
      const job = restoreJobs(env, since)[0]!;
      expect(job.status).toBe('failed');
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(/backup job succeeded but verification failed/);
      expect(r.errors[0]).toContain(
        `restore check of database shop failed: restore job ${job.id} ended with status failed`,
      );
      expect(r.errors[0]).toMatch(fault === 'deleted' ? /opening SSTs: NoSuchKey/ : /checksum mismatch/);
      expect(r.summary).toMatch(/restore check of database shop failed/);
      expect(scratchLeft(env, [/new_db_name = '([^']+)'/.exec(job.description)![1]!])).toEqual([]);
      expect(r.state['restore-check']).toBe('[]');
    },
  );
});
