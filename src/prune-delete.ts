/**
 * Deleting the chains a prune plan removes, and measuring the ones it keeps:
 * only keys of the recognised layout, in DeleteObjects batches, manifests last.
 */
import { INDEX_ROOTS, indexFolderName, trimSlashes } from './layout.js';
import type { PrunePlan } from './prune.js';
import type { Chain, ObjectStore } from './storage.js';
import { storageErrorText } from './storage.js';

export interface ObjectFailure {
  key: string;
  code: string;
  message: string;
}

export interface ChainOutcome {
  fullSubdir: string;
  /** Objects of the chain (its recognised layout) when it was listed. */
  objects: number;
  sizeBytes: number;
  /** Objects deleted (0 in a dry run). */
  deleted: number;
  /** `deleted`: every object; `partial`: some objects stay, with its BACKUP_MANIFEST; `not-deleted`: untouched. */
  state: 'deleted' | 'partial' | 'not-deleted' | 'dry-run';
}

export interface PruneResult {
  dryRun: boolean;
  deletedObjects: number;
  failed: ObjectFailure[];
  /** One per chain of plan.remove, in its order. */
  chains: ChainOutcome[];
  plan: PrunePlan;
  /** Set when pruning stopped on an error that is not about one object (a listing failed). */
  interrupted?: { during: string; error: unknown };
}

const DELETE_BATCH = 1000;

const MANIFEST_NAME = /(^|\/)BACKUP_MANIFEST(-CHECKSUM)?$/;

/**
 * Delete each removed chain's objects (only keys of the recognised layout)
 * with DeleteObjects, at most 1,000 keys a request. Keys of several chains
 * share a request, so many small chains cost few requests. A chain's
 * BACKUP_MANIFEST and BACKUP_MANIFEST-CHECKSUM keys (of the full backup and
 * of each incremental layer) go only after every other object of that chain
 * was deleted, in a batch of their own: a chain that could not be deleted
 * completely keeps its manifest, so it is still recognised as a complete
 * backup (not mistaken for one in progress) and pruned again next run.
 * Requests: ceil(other keys / 1000) + ceil(manifest keys / 1000) over all
 * removed chains, plus the listing of each (one per 1,000 objects per folder).
 */
export async function executePrune(
  store: ObjectStore,
  prefix: string,
  plan: PrunePlan,
  opts: { dryRun: boolean },
): Promise<PruneResult> {
  const failed: ObjectFailure[] = [];
  const outcomes: ChainOutcome[] = plan.remove.map((c) => ({
    fullSubdir: c.fullSubdir,
    objects: 0,
    sizeBytes: 0,
    deleted: 0,
    state: opts.dryRun ? 'dry-run' : 'not-deleted',
  }));
  const result: PruneResult = { dryRun: opts.dryRun, deletedObjects: 0, failed, chains: outcomes, plan };
  interface Tracked {
    outcome: ChainOutcome;
    /** Keys sent or queued, other than manifests, whose answer is not in yet. */
    outstanding: number;
    failures: number;
    manifests: string[];
  }
  const owner = new Map<string, Tracked>();
  let pending: string[] = [];
  let pendingManifests: string[] = [];
  const ready: Tracked[] = [];

  const send = async (keys: string[]): Promise<void> => {
    let answer: { deleted: string[]; errors: ObjectFailure[] };
    try {
      answer = await store.deleteMany(keys);
    } catch (err) {
      const e = err as { name?: string };
      const message = storageErrorText(err);
      answer = { deleted: [], errors: keys.map((key) => ({ key, code: e.name ?? 'Error', message })) };
    }
    const settled = new Set<string>();
    for (const key of answer.deleted) {
      const t = owner.get(key);
      if (!t || settled.has(key)) continue;
      settled.add(key);
      t.outcome.deleted += 1;
      result.deletedObjects += 1;
    }
    for (const f of answer.errors) {
      const t = owner.get(f.key);
      failed.push(f);
      if (!t || settled.has(f.key)) continue;
      settled.add(f.key);
      t.failures += 1;
    }
    // A key that the answer does not mention was not deleted either.
    for (const key of keys) {
      const t = owner.get(key);
      if (!t) continue;
      if (!settled.has(key)) {
        t.failures += 1;
        failed.push({ key, code: 'NotReported', message: 'DeleteObjects did not report this key' });
      }
      if (!MANIFEST_NAME.test(key)) t.outstanding -= 1;
      owner.delete(key);
      if (t.outstanding === 0 && !MANIFEST_NAME.test(key) && !ready.includes(t)) ready.push(t);
    }
  };
  const flushData = async (): Promise<void> => {
    const batch = pending;
    pending = [];
    if (batch.length > 0) await send(batch);
  };
  const flushManifests = async (all: boolean): Promise<void> => {
    for (const t of ready.splice(0)) if (t.failures === 0) pendingManifests.push(...t.manifests);
    while (pendingManifests.length >= DELETE_BATCH || (all && pendingManifests.length > 0)) {
      const batch = pendingManifests.slice(0, DELETE_BATCH);
      pendingManifests = pendingManifests.slice(DELETE_BATCH);
      await send(batch);
    }
  };

  for (const [i, chain] of plan.remove.entries()) {
    const outcome = outcomes[i]!;
    let keys: { key: string; size: number }[];
    try {
      keys = await chainKeys(store, prefix, chain);
    } catch (err) {
      result.interrupted = { during: `listing the objects of chain ${chain.fullSubdir}`, error: err };
      break;
    }
    recordSize(chain, keys);
    outcome.objects = chain.objectCount!;
    outcome.sizeBytes = chain.sizeBytes!;
    if (opts.dryRun) continue;
    const t: Tracked = { outcome, outstanding: 0, failures: 0, manifests: [] };
    for (const { key } of keys) {
      if (MANIFEST_NAME.test(key)) {
        t.manifests.push(key);
        continue;
      }
      t.outstanding += 1;
    }
    // The full backup's own BACKUP_MANIFEST last within its batch.
    const fullManifest = `${prefix}${trimSlashes(chain.fullSubdir)}/BACKUP_MANIFEST`;
    t.manifests.sort((a, b) => Number(a === fullManifest) - Number(b === fullManifest));
    if (t.outstanding === 0) ready.push(t);
    for (const { key } of keys) {
      owner.set(key, t);
      if (MANIFEST_NAME.test(key)) continue;
      pending.push(key);
      if (pending.length === DELETE_BATCH) await flushData();
    }
    await flushManifests(false);
  }
  if (!opts.dryRun) {
    await flushData();
    await flushManifests(true);
  }
  for (const o of outcomes) {
    if (o.state === 'dry-run') continue;
    o.state = o.deleted === 0 ? 'not-deleted' : o.deleted === o.objects ? 'deleted' : 'partial';
  }
  return result;
}

/**
 * Fills in sizeBytes and objectCount of chains by listing all their objects.
 * S3 has no request that tells the size of a prefix (ListObjectsV2 reports
 * sizes per object only, and the storage metrics are per bucket and daily),
 * so this costs a listing per chain: one request per 1,000 objects of each
 * of its folders.
 */
export async function measureChains(store: ObjectStore, prefix: string, chains: Chain[]): Promise<void> {
  for (const chain of chains) recordSize(chain, await chainKeys(store, prefix, chain));
}

function recordSize(chain: Chain, keys: { size: number }[]): void {
  chain.objectCount = keys.length;
  chain.sizeBytes = keys.reduce((n, k) => n + k.size, 0);
}

async function chainKeys(
  store: ObjectStore,
  prefix: string,
  chain: Chain,
): Promise<{ key: string; size: number }[]> {
  const full = trimSlashes(chain.fullSubdir);
  const folders = [`${prefix}${full}/`];
  if (chain.hasIncrementalsFolder !== false) folders.push(`${prefix}incrementals/${full}/`);
  for (const indexRoot of chain.indexRoots ?? INDEX_ROOTS)
    folders.push(`${prefix}${indexRoot}${indexFolderName(chain.fullSubdir)}/`);
  const out: { key: string; size: number }[] = [];
  for (const folder of folders) {
    for await (const e of store.list(folder))
      if (e.key !== undefined) out.push({ key: e.key, size: e.size ?? 0 });
  }
  return out;
}
