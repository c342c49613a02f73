/**
 * The bucket side: the S3 client, and a collection listed as chains (a full
 * backup with its incrementals). `@aws-sdk/client-s3` is imported only when
 * S3 is needed.
 */
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { StorageSettings } from './destination.js';
import { FOLDER_NAME, fullSubdirTime, incrementalTime, INDEX_ROOTS, indexFolderName } from './layout.js';

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

// ---- chains ------------------------------------------------------------------------------------------

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
  for (const year of root.filter((n) => FOLDER_NAME.year.test(n))) {
    for (const month of await childPrefixes(store, `${prefix}${year}/`, FOLDER_NAME.month)) {
      for (const day of await childPrefixes(store, `${prefix}${year}/${month}/`, FOLDER_NAME.day)) {
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
      if (indexed.has(indexFolderName(c.fullSubdir))) (c.indexRoots ??= []).push(indexRoot);
    }
  }
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
  for (const year of await childPrefixes(store, base, FOLDER_NAME.year)) {
    for (const month of await childPrefixes(store, `${base}${year}/`, FOLDER_NAME.month)) {
      for (const day of await childPrefixes(store, `${base}${year}/${month}/`, FOLDER_NAME.day)) {
        const chain = chains.get(`/${year}/${month}/${day}`);
        if (!chain) continue; // incrementals of an unknown full backup are left alone
        chain.hasIncrementalsFolder = true;
        const chainBase = `${base}${year}/${month}/${day}/`;
        for (const d of await childPrefixes(store, chainBase, FOLDER_NAME.incrementalDay)) {
          for (const t of await childPrefixes(store, `${chainBase}${d}/`, FOLDER_NAME.incrementalTime)) {
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
