/**
 * The main path (submit, wait, report, verify), end to end: the bundled action against the
 * project's test cluster and S3 server, on every version profile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROFILE_NAMES } from '../support/cluster/index.js';
import type { E2eEnv } from './harness.js';
import { BUCKET, runScenario, startE2eEnv, startScenario, until } from './harness.js';

const SUBDIR = /^\/\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

describe.each(PROFILE_NAMES)('happy path on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile });
  });
  afterAll(async () => env?.close());

  it('takes a full cluster backup, waits, verifies and reports it', async () => {
    const collection = env.collection();
    const r = await runScenario(env, { inputs: env.inputs({ collection }) });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    const o = r.outputs;
    expect(o['job-id']).toMatch(/^\d{16,19}$/);
    expect(BigInt(o['job-id']!)).toBeGreaterThan(2n ** 53n);
    expect(env.cluster.jobs().map((j) => j.id)).toEqual([o['job-id']]);
    expect(o.status).toBe('succeeded');
    expect(o.verified).toBe('true');
    expect(Number(o.duration)).toBeGreaterThan(0.5);
    expect(o['started-at']).toMatch(ISO);
    expect(o['finished-at']).toMatch(ISO);
    expect(o['end-time']).toMatch(ISO);
    expect(o['collection-path']).toBe(collection);
    expect(o['backup-path']).toMatch(SUBDIR);
    expect(o['backup-uri']).toBe(`${collection}${o['backup-path']}`);
    expect(Number(o['size-bytes'])).toBeGreaterThan(0);
    expect(Number(o['object-count'])).toBeGreaterThan(2);
    const prefix = `${collection.slice(`s3://${BUCKET}/`.length)}${o['backup-path']}/`;
    expect(env.s3.hasObject(BUCKET, `${prefix}BACKUP_MANIFEST`)).toBe(true);
    // The end time fixes the folder: /YYYY/MM/DD-HHMMSS.ss of end-time.
    const end = o['end-time']!;
    expect(o['backup-path']).toBe(
      `/${end.slice(0, 4)}/${end.slice(5, 7)}/${end.slice(8, 10)}-${end.slice(11, 13)}${end.slice(14, 16)}${end.slice(17, 19)}.${end.slice(20, 22)}`,
    );
    for (const needle of [o['job-id']!, o['backup-path']!, 'RESTORE FROM', profile.replace('.', '\\.')]) {
      expect(r.summary).toMatch(new RegExp(needle.replace(/[/]/g, '\\/')));
    }
    expect(r.summary).toContain('AS OF SYSTEM TIME');
  });
});

describe('main path on 25.2', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({
      profile: '25.2',
      databases: ['defaultdb', 'shop', 'Weird Name'],
    });
  });
  afterAll(async () => env?.close());

  it('fails when the cluster cannot write to the bucket (job failed)', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'aws-secret-access-key': 'wrong-secret-0123456789/abc+def',
      }),
    });
    expect(r.code).not.toBe(0);
    expect(r.outputs.status).toBe('failed');
    expect(r.outputs['job-id']).toMatch(/^\d+$/);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/status failed/);
    expect(r.errors[0]).toMatch(/credentials|bucket/);
    expect(r.summary).toContain('failed');
  });

  it('fails when someone else cancels the job', async () => {
    const before = env.cluster.jobs().length;
    const running = startScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
    await until(() => env.cluster.jobs().length > before, 20_000, 'the backup job');
    const job = env.cluster.jobs()[before]!;
    env.cluster.engine.cancelJobAsOtherUser(job.id);
    const r = await running.done;
    expect(r.code).not.toBe(0);
    expect(r.outputs['job-id']).toBe(job.id);
    expect(r.outputs.status).toBe('canceled');
    expect(r.errors[0]).toMatch(/canceled/);
  });

  it('explains a missing privilege, and grant-to fixes it', async () => {
    const asUser = env.cluster.url('backup_user');
    const denied = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'connection-string': asUser,
        's3-endpoint': '',
        's3-path-style': 'true',
      }),
    });
    expect(denied.code).not.toBe(0);
    expect(denied.errors).toHaveLength(1);
    expect(denied.errors[0]).toMatch(/GRANT SYSTEM BACKUP TO backup_user/);
    expect(env.cluster.jobs().filter((j) => j.user === 'backup_user')).toHaveLength(0);

    const granted = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'connection-string': asUser,
        'grant-to': 'backup_user',
        'grant-connection-string': env.cluster.url('root'),
      }),
    });
    expect(granted.errors).toEqual([]);
    expect(granted.code).toBe(0);
    expect(granted.stdout).toContain('GRANT SYSTEM BACKUP TO "backup_user"');
    expect(granted.stdout).toContain('GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO "backup_user"');
    // cancel-on-abort is on: a cancel may be needed, and 25.1+ owners may cancel only after the upgrade is finalized.
    expect(granted.stdout).toContain('GRANT SYSTEM CONTROLJOB TO "backup_user"');
    expect(env.cluster.jobs().filter((j) => j.user === 'backup_user')).toHaveLength(1);
  });

  it('wait: false submits, writes job-id and exits 0 while the job runs', async () => {
    const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection(), wait: 'false' }) });
    expect(r.code).toBe(0);
    expect(r.outputs.status).toBe('running');
    expect(r.outputs.verified).toBe('skipped');
    const job = env.cluster.jobs().find((j) => j.id === r.outputs['job-id']);
    expect(job).toBeDefined();
    await until(
      () => env.cluster.jobs().find((j) => j.id === r.outputs['job-id'])!.status === 'succeeded',
      20_000,
      'job end',
    );
  });

  it('appends an incremental backup to the latest full backup', async () => {
    const collection = env.collection();
    const full = await runScenario(env, { inputs: env.inputs({ collection }) });
    expect(full.code).toBe(0);
    const inc = await runScenario(env, { inputs: env.inputs({ collection, 'backup-type': 'incremental' }) });
    expect(inc.errors).toEqual([]);
    expect(inc.code).toBe(0);
    expect(inc.outputs['backup-path']).toBe(full.outputs['backup-path']);
    expect(inc.outputs['end-time']! > full.outputs['end-time']!).toBe(true);
    expect(inc.summary).toContain('/incrementals');
    const path = collection.slice(`s3://${BUCKET}/`.length);
    const incKeys = env.s3.listKeys(BUCKET, `${path}/incrementals${full.outputs['backup-path']}/`);
    expect(incKeys.some((k) => k.endsWith('/BACKUP_MANIFEST'))).toBe(true);
    expect(inc.outputs.verified).toBe('true');
  });

  it('fails clearly when an incremental has no full backup to extend', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), 'backup-type': 'incremental' }),
    });
    expect(r.code).not.toBe(0);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/no full backup/);
  });

  it('backup-type auto takes a full backup first, then an incremental', async () => {
    const collection = env.collection();
    const first = await runScenario(env, { inputs: env.inputs({ collection, 'backup-type': 'auto' }) });
    const second = await runScenario(env, { inputs: env.inputs({ collection, 'backup-type': 'auto' }) });
    expect([first.code, second.code]).toEqual([0, 0]);
    expect(second.outputs['backup-path']).toBe(first.outputs['backup-path']);
    expect(second.summary).toContain('incremental');
  });

  it('backs up databases whose names need quoting', async () => {
    const logStart = env.cluster.statementLog.length;
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection(), databases: 'shop, "Weird Name"' }),
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    const backup = env.cluster.statementLog.slice(logStart).find((e) => /^BACKUP/.test(e.sql));
    expect(backup?.sql).toContain('BACKUP DATABASE "shop", "Weird Name" INTO $1');
    expect(r.summary).toContain('RESTORE DATABASE "shop", "Weird Name"');
  });

  it('warns but succeeds without GITHUB_STEP_SUMMARY', async () => {
    const r = await runScenario(env, {
      inputs: env.inputs({ collection: env.collection() }),
      summaryFile: false,
    });
    expect(r.code).toBe(0);
    expect(r.warnings.some((w) => /summary/i.test(w))).toBe(true);
  });

  it('sends the URI and passphrase as bind parameters and the time as an absolute literal', async () => {
    const logStart = env.cluster.statementLog.length;
    const r = await runScenario(env, {
      inputs: env.inputs({
        collection: env.collection(),
        'encryption-passphrase': 'correct horse/battery+staple',
      }),
    });
    expect(r.code).toBe(0);
    const backup = env.cluster.statementLog.slice(logStart).find((e) => /^BACKUP/.test(e.sql))!;
    expect(backup.sql).toMatch(
      /^BACKUP INTO \$1 AS OF SYSTEM TIME '\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\+00:00' WITH detached, revision_history, encryption_passphrase = \$2$/,
    );
    expect(backup.params[1]).toBe('correct horse/battery+staple');
  });
});
