/**
 * The collection's layout: full-backup folder names as CockroachDB writes and
 * lists them, and the LATEST pointer.
 */
import type { ObjectStore } from './storage.js';

/**
 * A full backup's folder as the outputs, the summary and RESTORE name it: `/2026/11/24-114045.12`,
 * with one leading `/`. CockroachDB lists it without one for a collection at the bucket root.
 */
export function normalizeFullSubdir(path: string): string {
  return `/${path.trim().replace(/^\/+/, '')}`;
}

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

/** Go's `/2006/01/02-150405.00` of the end time: fraction truncated to 2 digits. */
export function fullSubdirFor(literal: string): string {
  const [date, time] = literal.split(' ');
  const [y, mo, d] = date!.split('-');
  const hms = time!.slice(0, 8).replace(/:/g, '');
  const cs = time!.slice(9, 11);
  return `/${y}/${mo}/${d}-${hms}.${cs}`;
}
