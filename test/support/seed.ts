/**
 * Seeds a backup collection into the S3 test server: chains of a full backup
 * and incrementals. Each chain has exactly `objectsPerChain` objects: in its
 * full folder BACKUP-LOCK, data files, BACKUP_MANIFEST-CHECKSUM and
 * BACKUP_MANIFEST (3 manifest-or-lock objects); per incremental one data file
 * and a BACKUP_MANIFEST; with `index`, one index entry per layer.
 */
import type { S3TestServer } from './s3/server.js';

export interface SeedOptions {
  chains: number;
  objectsPerChain: number;
  incrementalsPerChain?: number;
  startDate: Date;
  /** Hours between chains (default 24). */
  spacingHours?: number;
  /**
   * Write backup index entries (25.4+), one per layer: under `index/<subdir with ->/` (true, as some
   * descriptions of 25.x place them) or under `metadata/index/<subdir with ->/` ('metadata', as CockroachDB does).
   */
  index?: boolean | 'metadata';
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

export function subdirFor(d: Date): string {
  return `/${d.getUTCFullYear()}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}-${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}.00`;
}

function incrementalFolder(d: Date): string {
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}/${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}.00`;
}

/** Returns the full-backup subdirectories, oldest first. */
export function seedCollection(s3: S3TestServer, bucket: string, prefix: string, o: SeedOptions): string[] {
  const base = prefix ? `${prefix.replace(/\/+$/, '')}/` : '';
  const spacing = (o.spacingHours ?? 24) * 3_600_000;
  const subdirs: string[] = [];
  const incs = o.incrementalsPerChain ?? 0;
  for (let c = 0; c < o.chains; c++) {
    const at = new Date(o.startDate.getTime() + c * spacing);
    const subdir = subdirFor(at);
    subdirs.push(subdir);
    const full = `${base}${subdir.slice(1)}/`;
    const indexEntries = o.index ? 1 + incs : 0;
    const dataObjects = Math.max(0, o.objectsPerChain - 3 - incs * 2 - indexEntries);
    s3.putObject(bucket, `${full}BACKUP-LOCK-${1000 + c}`, '');
    for (let i = 0; i < dataObjects; i++) s3.putObject(bucket, `${full}data/${i}.sst`, 'x'.repeat(16));
    s3.putObject(bucket, `${full}BACKUP_MANIFEST-CHECKSUM`, 'c');
    s3.putObject(bucket, `${full}BACKUP_MANIFEST`, 'manifest');
    for (let k = 1; k <= incs; k++) {
      const incAt = new Date(at.getTime() + k * 3_600_000);
      const folder = `${base}incrementals/${subdir.slice(1)}/${incrementalFolder(incAt)}/`;
      s3.putObject(bucket, `${folder}data/0.sst`, 'y');
      s3.putObject(bucket, `${folder}BACKUP_MANIFEST`, 'manifest');
    }
    for (let k = 0; k < indexEntries; k++) {
      const end = new Date(at.getTime() + k * 3_600_000).toISOString().replace(/\D/g, '').slice(0, 14);
      const root = o.index === 'metadata' ? 'metadata/index' : 'index';
      s3.putObject(
        bucket,
        `${base}${root}/${subdir.slice(1).replace(/\//g, '-')}/${end}_metadata.pb`,
        subdir,
      );
    }
    s3.putObject(bucket, `${base}metadata/latest/LATEST-${(0xffffffffff - c).toString(16)}`, subdir);
  }
  return subdirs;
}
