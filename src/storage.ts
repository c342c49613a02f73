/**
 * The bucket side: read a backup's own files to prove it, list a collection
 * as chains (a full backup with its incrementals), and prune whole chains.
 * `@aws-sdk/client-s3` is imported only when S3 is needed.
 */
import type { StorageSettings } from './destination.js';

export interface ListEntry {
  key?: string;
  size?: number;
  commonPrefix?: string;
}

/** What this module needs from S3; tests may provide their own. */
export interface ObjectStore {
  list(prefix: string, opts?: { delimiter?: string }): AsyncIterable<ListEntry>;
  get(key: string): Promise<Buffer | undefined>;
  deleteMany(
    keys: string[],
  ): Promise<{ deleted: string[]; errors: { key: string; code: string; message: string }[] }>;
  requestCounts(): Record<string, number>;
}

const MAX_PAGES = 100_000;

export async function openObjectStore(settings: StorageSettings): Promise<ObjectStore> {
  const s3 = await import('@aws-sdk/client-s3');
  const client = new s3.S3Client({
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.forcePathStyle,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    // S3-compatible stores (MinIO, Ceph, R2) reject the newer default checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 4,
  });
  const counts: Record<string, number> = {};
  const count = (op: string): void => {
    counts[op] = (counts[op] ?? 0) + 1;
  };
  const bucket = settings.bucket;
  return {
    async *list(prefix, opts) {
      let token: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        count('ListObjectsV2');
        const out = await client.send(
          new s3.ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ...(opts?.delimiter ? { Delimiter: opts.delimiter } : {}),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
        for (const p of out.CommonPrefixes ?? []) if (p.Prefix) yield { commonPrefix: p.Prefix };
        for (const o of out.Contents ?? []) if (o.Key) yield { key: o.Key, size: o.Size ?? 0 };
        if (!out.IsTruncated || !out.NextContinuationToken) return;
        token = out.NextContinuationToken;
      }
      throw new Error(`listing ${prefix} did not end after ${MAX_PAGES} pages`);
    },
    async get(key) {
      count('GetObject');
      try {
        const out = await client.send(new s3.GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await out.Body!.transformToByteArray());
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name === 'NoSuchKey' || name === 'NotFound') return undefined;
        throw err;
      }
    },
    async deleteMany(keys) {
      count('DeleteObjects');
      const out = await client.send(
        new s3.DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: false },
        }),
      );
      return {
        deleted: (out.Deleted ?? []).map((d) => d.Key ?? ''),
        errors: (out.Errors ?? []).map((e) => ({
          key: e.Key ?? '',
          code: e.Code ?? 'Error',
          message: e.Message ?? '',
        })),
      };
    },
    requestCounts: () => ({ ...counts }),
  };
}

// ---- layout ------------------------------------------------------------------------------------------

const YEAR = /^\d{4}$/;
const MONTH = /^\d{2}$/;
const DAY = /^\d{2}-\d{6}\.\d{2}$/;
const INC_DAY = /^\d{8}$/;
const INC_TIME = /^\d{6}\.\d{2}(-\d{8}-\d{6}\.\d{2})?$/;

export interface LayerRef {
  /** `/2026/11/24-114045.12` */
  fullSubdir: string;
  /** `20261124/120000.00[-…]` under `incrementals/<fullSubdir>/` */
  incrementalSubdir?: string;
}

export function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}

export function layerPrefix(prefix: string, layer: LayerRef): string {
  const full = trimSlashes(layer.fullSubdir);
  return layer.incrementalSubdir === undefined
    ? `${prefix}${full}/`
    : `${prefix}incrementals/${full}/${trimSlashes(layer.incrementalSubdir)}/`;
}

/** `/2026/11/24-114045.12` → end time. */
export function fullSubdirTime(subdir: string): Date | undefined {
  const m = /^\/?(\d{4})\/(\d{2})\/(\d{2})-(\d{2})(\d{2})(\d{2})\.(\d{2})$/.exec(subdir);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]! * 10)) : undefined;
}

/** `20261124/120000.00[-…]` → end time. */
export function incrementalTime(folder: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})\/(\d{2})(\d{2})(\d{2})\.(\d{2})/.exec(folder);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]! * 10)) : undefined;
}

async function childPrefixes(store: ObjectStore, prefix: string, pattern: RegExp): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix, { delimiter: '/' })) {
    const name = e.commonPrefix?.slice(prefix.length).replace(/\/$/, '');
    if (name !== undefined && pattern.test(name)) out.push(name);
  }
  return out.sort();
}

// ---- verification ------------------------------------------------------------------------------------

export interface VerifyResult {
  ok: boolean;
  manifestKey: string;
  sizeBytes: number;
  objectCount: number;
  problem?: string;
}

/** Reads the layer's own BACKUP_MANIFEST and sums the size and count of the layer's objects. */
export async function verifyLayerObjects(
  store: ObjectStore,
  prefix: string,
  layer: LayerRef,
): Promise<VerifyResult> {
  const folder = layerPrefix(prefix, layer);
  const manifestKey = `${folder}BACKUP_MANIFEST`;
  const manifest = await store.get(manifestKey);
  let sizeBytes = 0;
  let objectCount = 0;
  for await (const e of store.list(folder)) {
    if (e.key === undefined) continue;
    sizeBytes += e.size ?? 0;
    objectCount += 1;
  }
  if (manifest === undefined) {
    return {
      ok: false,
      manifestKey,
      sizeBytes,
      objectCount,
      problem: `BACKUP_MANIFEST is missing: no object ${manifestKey} (the folder holds ${objectCount} objects).`,
    };
  }
  if (manifest.length === 0) {
    return {
      ok: false,
      manifestKey,
      sizeBytes,
      objectCount,
      problem: `BACKUP_MANIFEST at ${manifestKey} is empty.`,
    };
  }
  return { ok: true, manifestKey, sizeBytes, objectCount };
}

// ---- chains ------------------------------------------------------------------------------------------

export interface Chain {
  fullSubdir: string;
  /** Incremental folders under incrementals/<fullSubdir>/, oldest first. */
  incrementals: string[];
  newestEndTime: Date;
  hasManifest: boolean;
  sizeBytes?: number;
  objectCount?: number;
}

/**
 * The chains of a collection, oldest first, found by walking the dated
 * folders with a delimiter: the cost grows with the number of backups, not
 * with the number of data files.
 */
export async function listChains(store: ObjectStore, prefix: string): Promise<Chain[]> {
  const chains = new Map<string, Chain>();
  for (const year of await childPrefixes(store, prefix, YEAR)) {
    for (const month of await childPrefixes(store, `${prefix}${year}/`, MONTH)) {
      for (const day of await childPrefixes(store, `${prefix}${year}/${month}/`, DAY)) {
        const fullSubdir = `/${year}/${month}/${day}`;
        const end = fullSubdirTime(fullSubdir);
        if (!end) continue;
        chains.set(fullSubdir, {
          fullSubdir,
          incrementals: [],
          newestEndTime: end,
          hasManifest: await hasObject(store, `${prefix}${year}/${month}/${day}/`, 'BACKUP_MANIFEST'),
        });
      }
    }
  }
  await attachIncrementals(store, prefix, chains);
  return [...chains.values()].sort((a, b) => a.newestEndTime.getTime() - b.newestEndTime.getTime());
}

async function hasObject(store: ObjectStore, folder: string, name: string): Promise<boolean> {
  for await (const e of store.list(folder, { delimiter: '/' })) if (e.key === `${folder}${name}`) return true;
  return false;
}

async function attachIncrementals(
  store: ObjectStore,
  prefix: string,
  chains: Map<string, Chain>,
): Promise<void> {
  const base = `${prefix}incrementals/`;
  for (const year of await childPrefixes(store, base, YEAR)) {
    for (const month of await childPrefixes(store, `${base}${year}/`, MONTH)) {
      for (const day of await childPrefixes(store, `${base}${year}/${month}/`, DAY)) {
        const chain = chains.get(`/${year}/${month}/${day}`);
        if (!chain) continue; // incrementals of an unknown full backup are left alone
        const chainBase = `${base}${year}/${month}/${day}/`;
        for (const d of await childPrefixes(store, chainBase, INC_DAY)) {
          for (const t of await childPrefixes(store, `${chainBase}${d}/`, INC_TIME)) {
            const folder = `${d}/${t}`;
            chain.incrementals.push(folder);
            const end = incrementalTime(folder);
            if (end && end > chain.newestEndTime) chain.newestEndTime = end;
          }
        }
      }
    }
  }
}

// ---- pruning -----------------------------------------------------------------------------------------

export interface PrunePolicy {
  keepLast?: number;
  olderThanMs?: number;
  now: Date;
  /** The chain this run took or extended: never deleted. */
  protectFullSubdir: string;
}

export interface PrunePlan {
  keep: Chain[];
  remove: Chain[];
  /** Why each chain is kept or removed, by fullSubdir. */
  reasons: Map<string, string>;
}

/** Decide which chains go. With both policies a chain goes only when both say so. */
export function planPrune(chains: Chain[], policy: PrunePolicy): PrunePlan {
  const reasons = new Map<string, string>();
  const complete = chains
    .filter((c) => c.hasManifest)
    .sort((a, b) => b.newestEndTime.getTime() - a.newestEndTime.getTime());
  const keep: Chain[] = [];
  const remove: Chain[] = [];
  const protectedSubdir = `/${trimSlashes(policy.protectFullSubdir)}`;
  if (complete.length === 0 || (policy.keepLast === undefined && policy.olderThanMs === undefined)) {
    for (const c of chains)
      reasons.set(
        c.fullSubdir,
        complete.length === 0
          ? 'no completed backup in this collection: nothing is pruned'
          : 'no prune policy',
      );
    return { keep: [...chains], remove: [], reasons };
  }
  const rank = new Map(complete.map((c, i) => [c.fullSubdir, i]));
  const cutoff = policy.olderThanMs !== undefined ? policy.now.getTime() - policy.olderThanMs : undefined;
  for (const c of chains) {
    const why = keepReason(c, rank.get(c.fullSubdir), protectedSubdir, policy, cutoff);
    reasons.set(c.fullSubdir, why.reason);
    (why.keep ? keep : remove).push(c);
  }
  return { keep, remove, reasons };
}

function keepReason(
  c: Chain,
  rank: number | undefined,
  protectedSubdir: string,
  policy: PrunePolicy,
  cutoff: number | undefined,
): { keep: boolean; reason: string } {
  if (c.fullSubdir === protectedSubdir) return { keep: true, reason: 'the chain this run took or extended' };
  if (!c.hasManifest || rank === undefined)
    return { keep: true, reason: 'no BACKUP_MANIFEST: possibly a backup in progress' };
  if (rank === 0) return { keep: true, reason: 'the newest chain' };
  const byCount = policy.keepLast === undefined ? undefined : rank >= policy.keepLast;
  const byAge = cutoff === undefined ? undefined : c.newestEndTime.getTime() < cutoff;
  const goes = (byCount ?? true) && (byAge ?? true);
  if (!goes) {
    return {
      keep: true,
      reason: byCount === false ? `among the newest ${policy.keepLast}` : 'newer than prune-older-than',
    };
  }
  const parts = [
    byCount ? `older than the newest ${policy.keepLast}` : '',
    byAge ? 'newest layer older than prune-older-than' : '',
  ];
  return { keep: false, reason: parts.filter(Boolean).join(' and ') };
}

export interface PruneResult {
  dryRun: boolean;
  deletedObjects: number;
  failed: { key: string; code: string; message: string }[];
  plan: PrunePlan;
}

const DELETE_BATCH = 1000;

/** Delete each removed chain's objects (only keys of the recognised layout), in batches of 1,000. */
export async function executePrune(
  store: ObjectStore,
  prefix: string,
  plan: PrunePlan,
  opts: { dryRun: boolean },
): Promise<PruneResult> {
  const failed: PruneResult['failed'] = [];
  let deletedObjects = 0;
  for (const chain of plan.remove) {
    const keys = await chainKeys(store, prefix, chain);
    chain.objectCount = keys.length;
    chain.sizeBytes = keys.reduce((n, k) => n + k.size, 0);
    if (opts.dryRun) continue;
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH).map((k) => k.key);
      try {
        const out = await store.deleteMany(batch);
        deletedObjects += out.deleted.length;
        failed.push(...out.errors);
      } catch (err) {
        const e = err as { name?: string; message?: string };
        failed.push(
          ...batch.map((key) => ({ key, code: e.name ?? 'Error', message: e.message ?? String(err) })),
        );
      }
    }
  }
  return { dryRun: opts.dryRun, deletedObjects, failed, plan };
}

async function chainKeys(
  store: ObjectStore,
  prefix: string,
  chain: Chain,
): Promise<{ key: string; size: number }[]> {
  const full = trimSlashes(chain.fullSubdir);
  const folders = [`${prefix}${full}/`, `${prefix}incrementals/${full}/`];
  const out: { key: string; size: number }[] = [];
  for (const folder of folders) {
    for await (const e of store.list(folder))
      if (e.key !== undefined) out.push({ key: e.key, size: e.size ?? 0 });
  }
  // 25.x backup index entries of this chain: `index/<subdir with / as ->/…`.
  const indexFolder = `${prefix}index/${full.replace(/\//g, '-')}/`;
  for await (const e of store.list(indexFolder))
    if (e.key !== undefined) out.push({ key: e.key, size: e.size ?? 0 });
  return out;
}
