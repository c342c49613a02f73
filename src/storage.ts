/**
 * The bucket side: read a backup's own files to prove it, list a collection
 * as chains (a full backup with its incrementals), and prune whole chains.
 * `@aws-sdk/client-s3` is imported only when S3 is needed.
 */
import type { S3ClientConfig } from '@aws-sdk/client-s3';
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

/** An S3 SDK error as one line: code, HTTP status and message (`AccessDenied (HTTP 403): Access Denied`). */
export function storageErrorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const code = e.name && e.name !== 'Error' ? e.name : undefined;
  const head = [code, status !== undefined ? `(HTTP ${status})` : undefined].filter(Boolean).join(' ');
  const message = e.message && e.message !== e.name ? e.message : '';
  return head && message ? `${head}: ${message}` : head || message || 'unknown error';
}

/** The SDK found no credentials on the runner (no keys given, no environment, profile, or instance role). */
export function isMissingCredentials(err: unknown): boolean {
  const e = err as { name?: string; message?: string } | undefined;
  return e?.name === 'CredentialsProviderError' || /Could not load credentials/i.test(e?.message ?? '');
}

/** The S3 client settings: exported so tests can check them without sending a request. */
export function s3ClientConfig(settings: StorageSettings): S3ClientConfig {
  return {
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.forcePathStyle,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    // On AWS a wrong aws-region answers 301 (or 400 with the bucket's region): follow it rather than
    // fail. A custom endpoint has no other region to go to.
    ...(settings.endpoint ? {} : { followRegionRedirects: true }),
    // S3-compatible stores (MinIO, Ceph, R2) reject the newer default checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 4,
  };
}

export async function openObjectStore(settings: StorageSettings): Promise<ObjectStore> {
  const s3 = await import('@aws-sdk/client-s3');
  const client = new s3.S3Client(s3ClientConfig(settings));
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

/** Names of the folders directly under `prefix` (one listing with a delimiter), sorted. */
async function childNames(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix, { delimiter: '/' })) {
    const name = e.commonPrefix?.slice(prefix.length).replace(/\/$/, '');
    if (name !== undefined) out.push(name);
  }
  return out.sort();
}

async function childPrefixes(store: ObjectStore, prefix: string, pattern: RegExp): Promise<string[]> {
  return (await childNames(store, prefix)).filter((n) => pattern.test(n));
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
  /**
   * Whether `incrementals/<fullSubdir>/` exists, and which index roots (of INDEX_ROOTS) hold a
   * folder for this chain, as the walk saw them; a folder known to be absent is not listed
   * again. Undefined: unknown, listed.
   */
  hasIncrementalsFolder?: boolean;
  indexRoots?: string[];
  sizeBytes?: number;
  objectCount?: number;
}

/**
 * The chains of a collection, oldest first, found by walking the dated
 * folders with a delimiter: the cost grows with the number of backups, not
 * with the number of data files. Requests: 1 for the collection root, 1 per
 * year and per month (full backups, and again under incrementals/), 1 per
 * full backup (is its BACKUP_MANIFEST there?), 1 per chain with incrementals
 * and 1 per day of incrementals in it, and 1 per backup index root (25.4+); each of them
 * one more per 1,000 entries.
 */
export async function listChains(store: ObjectStore, prefix: string): Promise<Chain[]> {
  const chains = new Map<string, Chain>();
  const root = await childNames(store, prefix);
  for (const year of root.filter((n) => YEAR.test(n))) {
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
          hasIncrementalsFolder: false,
          indexRoots: [],
        });
      }
    }
  }
  if (root.includes('incrementals')) await attachIncrementals(store, prefix, chains);
  const metadata = root.includes('metadata') ? await childNames(store, `${prefix}metadata/`) : [];
  for (const indexRoot of INDEX_ROOTS) {
    const present = indexRoot === 'index/' ? root.includes('index') : metadata.includes('index');
    if (!present) continue;
    const indexed = new Set(await childNames(store, `${prefix}${indexRoot}`));
    for (const c of chains.values()) {
      if (indexed.has(indexName(c.fullSubdir))) (c.indexRoots ??= []).push(indexRoot);
    }
  }
  return [...chains.values()].sort((a, b) => a.newestEndTime.getTime() - b.newestEndTime.getTime());
}

/**
 * Backup index entries of a chain (written only by 25.4 and later: backup_index.go
 * shouldWriteIndex) live in a folder named after its full subdirectory with `/` as `-`, under
 * `metadata/index/` as CockroachDB's source writes it; `index/` is also recognised, as the
 * reference has it. Both are chain keys; `metadata/latest/` never is.
 */
const INDEX_ROOTS = ['index/', 'metadata/index/'] as const;

function indexName(fullSubdir: string): string {
  return trimSlashes(fullSubdir).replace(/\//g, '-');
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
        chain.hasIncrementalsFolder = true;
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
  /** The chain LATEST names (`BACKUP … INTO LATEST` and `RESTORE … FROM LATEST` follow it): never deleted. */
  latestFullSubdir?: string;
  /** Chains a running backup job writes into, with the job ids: skipped this time. */
  busy?: ReadonlyMap<string, string>;
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
  if (policy.latestFullSubdir !== undefined && c.fullSubdir === `/${trimSlashes(policy.latestFullSubdir)}`)
    return { keep: true, reason: 'named by LATEST' };
  const busyJobs = policy.busy?.get(c.fullSubdir);
  if (busyJobs !== undefined)
    return { keep: true, reason: `a running backup job (${busyJobs}) writes into it: skipped this time` };
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
    folders.push(`${prefix}${indexRoot}${indexName(chain.fullSubdir)}/`);
  const out: { key: string; size: number }[] = [];
  for (const folder of folders) {
    for await (const e of store.list(folder))
      if (e.key !== undefined) out.push({ key: e.key, size: e.size ?? 0 });
  }
  return out;
}
