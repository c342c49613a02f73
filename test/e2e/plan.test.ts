/**
 * Full or incremental, end to end: an incremental goes only onto a full
 * backup with the same targets, and `full-backup-every` starts new chains on
 * cadence, which pruning then deletes (the README's nightly recipe).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT } from '../support/action-runner.js';
import type { E2eEnv } from './harness.js';
import { BUCKET, runScenario, startE2eEnv } from './harness.js';

const DAY = 86_400_000;

/** The `with:` of the action's step in the README's nightly workflow, without what names the cluster. */
function readmeNightlyInputs(): Record<string, string> {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### A nightly backup with pruning'));
  const yml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
  const workflow = parse(yml) as {
    jobs: { backup: { steps: { uses: string; with: Record<string, unknown> }[] } };
  };
  const step = workflow.jobs.backup.steps.find((s) => s.uses.includes('crdb-backup-action'))!;
  const inputs: Record<string, string> = {};
  for (const [k, v] of Object.entries(step.with)) {
    if (!['connection-string', 'ca-cert', 'collection'].includes(k)) inputs[k] = String(v);
  }
  return inputs;
}

describe.each(['22.2', '25.2'] as const)('backup targets and cadence on %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ profile, jobDurationMs: 300, databases: ['defaultdb', 'shop', 'billing'] });
  });
  afterAll(async () => env?.close());

  it('incremental onto a full backup of other databases fails before submitting, naming both', async () => {
    const collection = env.collection();
    const first = await runScenario(env, { inputs: env.inputs({ collection, databases: 'shop' }) });
    expect(first.code).toBe(0);
    const jobsBefore = env.cluster.jobs().length;
    const r = await runScenario(env, {
      inputs: env.inputs({ collection, databases: 'shop, billing', 'backup-type': 'incremental' }),
    });
    expect(r.code).toBe(1);
    expect(env.cluster.jobs()).toHaveLength(jobsBefore);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain(
      `the newest full backup ${first.outputs['backup-path']} holds database "shop"`,
    );
    expect(r.errors[0]).toContain('this run backs up databases "billing", "shop"');
    expect(r.outputs.status).toBe('error');
    expect(r.outputs['backup-path']).toBeUndefined();
  });

  it('auto takes a new full backup when the targets differ, and says why', async () => {
    const collection = env.collection();
    const first = await runScenario(env, { inputs: env.inputs({ collection, databases: 'shop' }) });
    expect(first.code).toBe(0);
    const cluster = await runScenario(env, { inputs: env.inputs({ collection, 'backup-type': 'auto' }) });
    expect(cluster.errors).toEqual([]);
    expect(cluster.code).toBe(0);
    expect(cluster.outputs['backup-path']).not.toBe(first.outputs['backup-path']);
    const why = `the newest full backup ${first.outputs['backup-path']} holds database "shop", and this run backs up the whole cluster`;
    expect(cluster.stdout).toContain(why);
    expect(cluster.summary).toContain(why);
    expect(cluster.summary).toMatch(/\| Backup \| full, full cluster/);
    // Same targets again: an incremental onto the cluster backup.
    const again = await runScenario(env, { inputs: env.inputs({ collection, 'backup-type': 'auto' }) });
    expect(again.code).toBe(0);
    expect(again.outputs['backup-path']).toBe(cluster.outputs['backup-path']);
    expect(again.summary).toMatch(/\| Backup \| incremental, full cluster/);
  });

  it("the README's nightly recipe: a new chain every 7 days, and pruning deletes the old ones", async () => {
    const collection = env.collection('nightly');
    const prefix = 'nightly';
    // The README's nightly example as it stands (its connection and bucket aside), one run a simulated day.
    const recipe = { ...readmeNightlyInputs(), collection };
    expect(recipe).toMatchObject({
      'backup-type': 'auto',
      'full-backup-every': '7d',
      'prune-keep-last': '2',
    });
    const fulls: string[] = [];
    const deletedOn: Record<number, string[]> = {};
    try {
      for (let day = 0; day < 16; day++) {
        if (day > 0) env.cluster.moveClock(DAY);
        const r = await runScenario(env, { inputs: env.inputs(recipe) });
        expect(r.errors, `day ${day}`).toEqual([]);
        expect(r.code, `day ${day}`).toBe(0);
        const path = r.outputs['backup-path']!;
        const newChain = !fulls.includes(path);
        // A new chain on day 0, 7 and 14; incrementals onto the current one in between.
        expect(newChain, `day ${day}: new chain`).toBe(day % 7 === 0);
        if (newChain) {
          fulls.push(path);
          if (day > 0) expect(r.stdout).toMatch(/more than full-backup-every \(7d\): starting a new chain/);
        }
        const m = /Deleted (\d+) chain\(s\), kept (\d+)\./.exec(r.summary);
        expect(m, `day ${day}: pruning summary`).not.toBeNull();
        if (Number(m![1]) > 0)
          deletedOn[day] = [...r.summary.matchAll(/\| `([^`]+)` \| deleted \|/g)].map((x) => x[1]!);
        expect(Number(m![2]), `day ${day}: chains kept`).toBe(Math.min(2, fulls.length));
      }
    } finally {
      env.cluster.moveClock(-15 * DAY);
    }
    // The first chain went when the third started; nothing else was deleted.
    expect(deletedOn).toEqual({ 14: [fulls[0]] });
    const left = new Set(
      env.s3
        .listKeys(BUCKET, `${prefix}/`)
        .filter((k) => k.endsWith('/BACKUP_MANIFEST') && !k.includes('/incrementals/'))
        .map((k) => k.slice(prefix.length, -'/BACKUP_MANIFEST'.length)),
    );
    expect(left).toEqual(new Set([fulls[1], fulls[2]]));
    // The kept chains hold every night since the second one began: 7 + 2 layers.
    const layers = env.s3.listKeys(BUCKET, `${prefix}/`).filter((k) => k.endsWith('/BACKUP_MANIFEST'));
    expect(layers).toHaveLength(9);
  }, 300_000);
});
