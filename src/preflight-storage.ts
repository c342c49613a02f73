/**
 * The storage side of a dry run: every node's access to the collection (the cluster's own storage
 * check), the runner's list and read, and what pruning would delete. Only the storage check writes,
 * and its nodes delete what they wrote.
 */
import type { ClusterVersion, SqlSession } from './cluster.js';
import { sqlState } from './cluster.js';
import type { StorageSettings } from './destination.js';
import { descriptionTargetsCollection, storageSettings } from './destination.js';
import type { CaptureTime } from './submit.js';
import { readLatestFullSubdir } from './layout.js';
import type { Plan } from './plan.js';
import type { Check } from './preflight-checks.js';
import { missingIamAction, storageCheckForm } from './preflight-checks.js';
import { planPrune, pruningEnabled, readPruneFacts } from './prune.js';
import type { Statement } from './sql.js';
import type { Chain, ObjectStore } from './storage.js';
import { listChains, storageErrorText } from './storage.js';
import type { Config } from './config.js';

type Describe = (err: unknown) => string;

/**
 * Every node writes, reads and deletes a small test file at the collection: CHECK EXTERNAL
 * CONNECTION from 25.1 (cockroach PR #138696), SHOW BACKUP CONNECTION on 22.2.7–24.3 (PR #97517).
 */
export async function nodeAccessCheck(
  session: SqlSession,
  v: ClusterVersion,
  uri: string,
  describe: Describe,
): Promise<Check> {
  const name = 'Node access to the collection';
  const form = storageCheckForm(v);
  const stmt: Statement = {
    text: `${form === 'check' ? 'CHECK EXTERNAL CONNECTION' : 'SHOW BACKUP CONNECTION'} $1 WITH transfer = '1KiB'`,
    params: [uri],
  };
  try {
    const rows = await session.query(stmt, { clientTimeoutMs: 120_000 });
    const bad = rows.filter((r) => !(r.ok === true || r.ok === 't'));
    const nodes = new Set(rows.map((r) => String(r.node))).size;
    if (bad.length === 0) {
      const noDelete = rows.filter((r) => !(r.can_delete === true || r.can_delete === 't')).length;
      return {
        name,
        state: 'passed',
        detail: `${nodes} node(s) wrote, read and deleted 1 KiB in the collection.${noDelete ? ` ${noDelete} could not delete its test file (s3:DeleteObject).` : ''}`,
      };
    }
    const each = bad.map((r) => `node ${String(r.node)} (${String(r.locality)}): ${String(r.error)}`);
    const actions = [...new Set(bad.map((r) => missingIamAction(String(r.error))))].join(', ');
    return {
      name,
      state: 'failed',
      detail: `${bad.length} of ${nodes} node(s) could not use the collection: ${each.join('; ')}`,
      fix: `Give those nodes a route to the bucket and the credentials ${actions} on it (the bucket policy or the nodes' IAM role).`,
    };
  } catch (err) {
    if (sqlState(err) === '42601') {
      return {
        name,
        state: 'skipped',
        detail: `${v.tag} does not parse the storage check: node access is unchecked.`,
      };
    }
    return { name, state: 'failed', detail: `the storage check was refused: ${describe(err)}` };
  }
}

/** The runner lists and reads the collection for verify (s3://) and pruning. */
export async function runnerAccessCheck(
  config: Config,
  openStore: (settings: StorageSettings) => Promise<ObjectStore>,
): Promise<Check> {
  const name = "Runner's access to the collection";
  const settings = storageSettings(config);
  // Pruning runs only after a verified backup.
  const verifying = config.verify !== 'none';
  const needs = [
    verifying ? `verify: ${config.verify}` : '',
    verifying && pruningEnabled(config) ? 'pruning' : '',
  ]
    .filter(Boolean)
    .join(' and ');
  if (!settings) {
    return { name, state: 'skipped', detail: 'an external:// collection is read by the cluster only.' };
  }
  if (!needs) {
    return {
      name,
      state: 'skipped',
      detail: 'neither verification nor pruning reads the bucket from the runner.',
    };
  }
  const where = `s3://${settings.bucket}/${settings.prefix}`;
  const arn = `arn:aws:s3:::${settings.bucket}`;
  let store: ObjectStore;
  let manifest: string | undefined;
  try {
    store = await openStore(settings);
    let seen = 0;
    for await (const e of store.list(settings.prefix)) {
      if (e.key?.endsWith('/BACKUP_MANIFEST')) manifest = e.key;
      if (manifest !== undefined || ++seen >= 1000) break;
    }
  } catch (err) {
    return {
      name,
      state: 'failed',
      detail: `the runner could not list ${where} (${needs} need it): ${storageErrorText(err)}`,
      fix: `Allow s3:ListBucket on ${arn} (prefix ${settings.prefix || '*'}) for the runner's credentials (aws-access-key-id or the role of configure-aws-credentials).`,
    };
  }
  if (manifest === undefined) {
    return { name, state: 'passed', detail: `listed ${where}; no backup to read there yet.` };
  }
  try {
    await store.get(manifest);
    return { name, state: 'passed', detail: `listed ${where} and read ${manifest}.` };
  } catch (err) {
    return {
      name,
      state: 'failed',
      detail: `the runner listed ${where} but could not read ${manifest}: ${storageErrorText(err)}`,
      fix: `Allow s3:GetObject on ${arn}/${settings.prefix}* for the runner's credentials.`,
    };
  }
}

/** What pruning would delete after this run: the pruning plan over the chains, with this run's chain. */
export async function pruneCheck(
  session: SqlSession,
  config: Config,
  openStore: (settings: StorageSettings) => Promise<ObjectStore>,
  plan: Plan | undefined,
  capture: CaptureTime,
  describe: Describe,
): Promise<Check> {
  const name = 'Pruning';
  const settings = storageSettings(config);
  if (!pruningEnabled(config)) {
    return { name, state: 'skipped', detail: 'no prune-keep-last or prune-older-than.' };
  }
  if (config.verify === 'none' || !settings) {
    return {
      name,
      state: 'skipped',
      detail: 'pruning runs only after a verified backup (verify: none).',
    };
  }
  try {
    const facts = await readPruneFacts(session, (d) => descriptionTargetsCollection(d, config.collection));
    const store = await openStore(settings);
    const chains = await listChains(store, settings.prefix);
    const latest = await readLatestFullSubdir(store, settings.prefix);
    const protect = plan?.kind === 'incremental' ? plan.fullSubdir : capture.fullSubdir;
    const end = new Date(Number(capture.micros / 1000n));
    const own = chains.find((c) => c.fullSubdir === protect);
    if (own) own.newestEndTime = end;
    else
      chains.push({
        fullSubdir: protect,
        incrementals: [],
        newestEndTime: end,
        hasManifest: true,
      } as Chain);
    const busy = new Map(facts.busy);
    const intoLatest = busy.get('LATEST');
    busy.delete('LATEST');
    if (intoLatest !== undefined && latest !== undefined) busy.set(latest, intoLatest);
    const pruned = planPrune(chains, {
      keepLast: config.pruneKeepLast,
      olderThanMs: config.pruneOlderThanMs,
      now: facts.now,
      protectFullSubdir: protect,
      ...(latest !== undefined ? { latestFullSubdir: latest } : {}),
      busy,
    });
    const gone = pruned.remove.map((c) => `${c.fullSubdir} (${pruned.reasons.get(c.fullSubdir) ?? ''})`);
    return {
      name,
      state: 'passed',
      detail:
        gone.length === 0
          ? `would delete nothing; ${pruned.keep.length} chain(s) kept.`
          : `would delete ${gone.length} chain(s): ${gone.join('; ')}; ${pruned.keep.length} kept.${config.pruneDryRun ? ' (prune-dry-run: the run would only list them.)' : ''}`,
    };
  } catch (err) {
    return {
      name,
      state: 'failed',
      detail: `could not plan the pruning: ${err instanceof Error && '$metadata' in err ? storageErrorText(err) : describe(err)}`,
    };
  }
}
