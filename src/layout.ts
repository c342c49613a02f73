/**
 * The collection's layout: folder names as CockroachDB writes and lists them (both ways: time →
 * name, name → time), joining paths, and the LATEST pointer.
 */
import type { ObjectStore } from './storage.js';

/** `/a/b/` → `a/b`: the one way slashes are trimmed from both ends. */
export function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}

/**
 * A full backup's folder as the outputs, the summary and RESTORE name it: `/2026/11/24-114045.12`,
 * with one leading `/`. CockroachDB lists it without one for a collection at the bucket root.
 */
export function normalizeFullSubdir(path: string): string {
  return `/${path.trim().replace(/^\/+/, '')}`;
}

/**
 * A folder as compared with another: one leading `/` and no trailing one (`2026/11/24-114045.12/`
 * → `/2026/11/24-114045.12`). Unlike normalizeFullSubdir it drops a trailing `/` and keeps spaces.
 */
export function folderKey(path: string): string {
  return `/${trimSlashes(path)}`;
}

/** `s3://bucket/path/` + `/2026/11/24-114045.12` → `s3://bucket/path/2026/11/24-114045.12`. */
export function joinUri(collection: string, subdir: string): string {
  return `${collection.replace(/\/+$/, '')}/${subdir.replace(/^\/+/, '')}`;
}

// ---- folder names ------------------------------------------------------------------------------------

/** The levels of a full backup's folder `2026/11/24-114045.12`, and of an incremental's `20261124/120000.00[-…]`. */
export const FOLDER_NAME = {
  year: /^\d{4}$/,
  month: /^\d{2}$/,
  day: /^\d{2}-\d{6}\.\d{2}$/,
  incrementalDay: /^\d{8}$/,
  /** With the `-<start time>` suffix of 25.2 and later. */
  incrementalTime: /^\d{6}\.\d{2}(-\d{8}-\d{6}\.\d{2})?$/,
} as const;

/** Go's `/2006/01/02-150405.00` of the end time: fraction truncated to 2 digits. */
export function fullSubdirFor(literal: string): string {
  const [date, time] = literal.split(' ');
  const [y, mo, d] = date!.split('-');
  const hms = time!.slice(0, 8).replace(/:/g, '');
  const cs = time!.slice(9, 11);
  return `/${y}/${mo}/${d}-${hms}.${cs}`;
}

/** `/2026/11/24-114045.12` → end time. */
export function fullSubdirTime(subdir: string): Date | undefined {
  const m = /^\/?(\d{4})\/(\d{2})\/(\d{2})-(\d{2})(\d{2})(\d{2})\.(\d{2})$/.exec(subdir);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]! * 10)) : undefined;
}

/** `/2026/11/24-114045.12` → its end time in ms (UTC), or undefined for another name. */
export function endMillisOfFolder(folder: string): number | undefined {
  return fullSubdirTime(folder)?.getTime();
}

/** `20261124/120000.00[-…]` → end time. */
export function incrementalTime(folder: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})\/(\d{2})(\d{2})(\d{2})\.(\d{2})/.exec(folder);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]! * 10)) : undefined;
}

/**
 * The incremental folder of an end time given as `YYYY-MM-DD HH:MM:SS.ffffff…`: the day
 * `20261124` and the time `120000.12` (fraction truncated to 2 digits); from 25.2 CockroachDB
 * appends `-<start time>` to the time.
 */
export function incrementalFolderFor(literal: string): { day: string; time: string } {
  const [date, time] = literal.split(' ');
  return {
    day: date!.replace(/-/g, ''),
    time: `${time!.slice(0, 8).replace(/:/g, '')}.${time!.slice(9, 11)}`,
  };
}

export interface LayerRef {
  /** `/2026/11/24-114045.12` */
  fullSubdir: string;
  /** `20261124/120000.00[-…]` under `incrementals/<fullSubdir>/` */
  incrementalSubdir?: string;
}

/** The folder of one layer (a full backup or one incremental) under the collection's prefix. */
export function layerPrefix(prefix: string, layer: LayerRef): string {
  const full = trimSlashes(layer.fullSubdir);
  return layer.incrementalSubdir === undefined
    ? `${prefix}${full}/`
    : `${prefix}incrementals/${full}/${trimSlashes(layer.incrementalSubdir)}/`;
}

/**
 * Backup index entries of a chain (written only by 25.4 and later: backup_index.go
 * shouldWriteIndex) live in a folder named after its full subdirectory with `/` as `-`, under
 * `metadata/index/` as CockroachDB's source writes it; `index/` is also recognised, as the
 * reference has it. Both are chain keys; `metadata/latest/` never is.
 */
export const INDEX_ROOTS = ['index/', 'metadata/index/'] as const;

/** `/2026/11/24-114045.12` → `2026-11-24-114045.12`, its folder under an index root. */
export function indexFolderName(fullSubdir: string): string {
  return trimSlashes(fullSubdir).replace(/\//g, '-');
}

// ---- LATEST ------------------------------------------------------------------------------------------

/**
 * The full backup that LATEST names: the newest `metadata/latest/LATEST-<descending write time>`
 * (the first key in listing order), else the root `LATEST` file of older versions — the order in
 * which CockroachDB's FindLatestFile reads them (pkg/backup/backupdest/backup_destination.go). It is
 * the full backup written most recently, which need not have the newest end time. Undefined when
 * the collection has neither.
 */
export async function readLatestFullSubdir(store: ObjectStore, prefix: string): Promise<string | undefined> {
  const dir = `${prefix}metadata/latest/`;
  let newest: string | undefined;
  for await (const e of store.list(dir)) {
    if (e.key?.slice(dir.length).startsWith('LATEST-')) {
      newest = e.key;
      break;
    }
  }
  const body = await store.get(newest ?? `${prefix}LATEST`);
  const text = body?.toString('utf8').trim();
  return text ? normalizeFullSubdir(text) : undefined;
}
