/**
 * Prove the backup after the job succeeded (DESIGN.md `verify`), and prune
 * old chains only after that proof.
 */
import type { ClusterLink } from './cluster.js';
import { errorText as describeErrorPlain } from './cluster.js';
import type { StorageSettings } from './destination.js';
import { storageSettings } from './destination.js';
import type { CaptureTime } from './job.js';
import { parseClusterTime } from './job.js';
import type { PruneSummary } from './report.js';
import type { Statement } from './sql.js';
import { showBackupsStatement } from './sql.js';
import type { ObjectStore } from './storage.js';
import { executePrune, listChains, planPrune, verifyLayerObjects } from './storage.js';
import type { Config } from './types.js';

export interface VerifyInput {
  config: Config;
  link: ClusterLink;
  uri: string;
  fullSubdir: string;
  kind: 'full' | 'incremental';
  capture: CaptureTime | undefined;
  openStore: (settings: StorageSettings) => Promise<ObjectStore>;
  signal: AbortSignal;
  reconnectBudgetMs: number;
  log: (message: string) => void;
  showBackup: (subdir: string, checkFiles: boolean) => Statement;
}

export interface VerifyOutcome {
  verified: 'true' | 'false' | 'skipped';
  checks: string[];
  problem?: string;
  sizeBytes?: number;
  objectCount?: number;
  /** Incremental layer folder relative to the collection, e.g. `/incrementals/2026/11/24-114045.12/20261124/120000.00`. */
  incrementalPath?: string;
}

class VerifyProblem extends Error {}

export async function verifyBackup(v: VerifyInput): Promise<VerifyOutcome> {
  const checks: string[] = [];
  if (v.config.verify === 'none') return { verified: 'skipped', checks: ['none (verify: none)'] };
  const out: VerifyOutcome = { verified: 'true', checks };
  // The cluster and the bucket are asked at once: on a real cluster SHOW BACKUPS lists the bucket too.
  const sqlChecks: string[] = [];
  const bucketChecks: string[] = [];
  const results = await Promise.allSettled([
    verifyWithSql(v, sqlChecks),
    v.config.collection.kind === 's3' ? verifyInBucket(v, bucketChecks, out) : Promise.resolve(),
  ]);
  checks.push(...sqlChecks, ...bucketChecks);
  if (v.config.collection.kind !== 's3')
    checks.push('bucket not read (external:// collection: the connection holds the storage settings)');
  for (const r of results) {
    if (r.status === 'fulfilled') continue;
    if (!(r.reason instanceof VerifyProblem)) throw r.reason;
    return { ...out, verified: 'false', checks, problem: r.reason.message };
  }
  return out;
}

const query = (v: VerifyInput, stmt: Statement) =>
  v.link.withReconnect('verification', (s) => s.query(stmt), {
    budgetMs: v.reconnectBudgetMs,
    signal: v.signal,
  });

async function verifyWithSql(v: VerifyInput, checks: string[]): Promise<void> {
  if (v.kind === 'full') {
    const rows = await query(v, showBackupsStatement(v.uri));
    const paths = rows.map((r) => normaliseSubdir(String(r.path)));
    if (!paths.includes(normaliseSubdir(v.fullSubdir))) {
      throw new VerifyProblem(
        `SHOW BACKUPS IN the collection does not list ${v.fullSubdir} (it lists ${paths.length} backup(s)).`,
      );
    }
    checks.push('listed by SHOW BACKUPS');
  } else {
    const rows = await query(v, v.showBackup(v.fullSubdir, false));
    const found = rows.some(
      (r) => String(r.backup_type) === 'incremental' && sameTime(r.end_time, v.capture),
    );
    if (!found) {
      throw new VerifyProblem(
        `SHOW BACKUP FROM ${v.fullSubdir} shows no incremental layer ending at ${v.capture?.iso ?? 'the captured time'}.`,
      );
    }
    checks.push(`incremental layer listed by SHOW BACKUP FROM ${v.fullSubdir}`);
  }
  if (v.config.verify === 'files') {
    try {
      await query(v, v.showBackup(v.fullSubdir, true));
    } catch (err) {
      throw new VerifyProblem(`SHOW BACKUP … WITH check_files failed: ${describeErrorPlain(err)}`);
    }
    checks.push('all files present (SHOW BACKUP … WITH check_files)');
  }
}

function sameTime(value: unknown, capture: CaptureTime | undefined): boolean {
  if (capture === undefined) return true;
  const t = parseClusterTime(value == null ? undefined : String(value));
  if (!t) return false;
  const diff = t.micros - capture.micros;
  // SHOW BACKUP may print end times with less precision than the AOST we sent.
  return diff > -1_000_000n && diff < 1_000_000n;
}

async function verifyInBucket(v: VerifyInput, checks: string[], out: VerifyOutcome): Promise<void> {
  const settings = storageSettings(v.config);
  if (!settings) return;
  const store = await v.openStore(settings);
  let incrementalSubdir: string | undefined;
  if (v.kind === 'incremental') {
    incrementalSubdir = await findIncrementalFolder(store, settings.prefix, v.fullSubdir, v.capture);
    if (incrementalSubdir === undefined) {
      throw new VerifyProblem(
        `no incremental folder for ${v.capture?.iso ?? 'this backup'} under incrementals${v.fullSubdir}/ in the bucket.`,
      );
    }
    out.incrementalPath = `/incrementals${normaliseSubdir(v.fullSubdir)}/${incrementalSubdir}`;
  }
  let result;
  try {
    result = await verifyLayerObjects(store, settings.prefix, {
      fullSubdir: v.fullSubdir,
      incrementalSubdir,
    });
  } catch (err) {
    throw new VerifyProblem(`could not read the backup from the bucket: ${describeErrorPlain(err)}`);
  }
  if (!result.ok)
    throw new VerifyProblem(result.problem ?? `BACKUP_MANIFEST missing at ${result.manifestKey}`);
  out.sizeBytes = result.sizeBytes;
  out.objectCount = result.objectCount;
  checks.push(`BACKUP_MANIFEST read from the bucket (${result.objectCount} objects)`);
}

/** The incremental layer of this capture time: `YYYYMMDD/HHMMSS.ss` with an optional `-<start>` suffix (25.2+). */
async function findIncrementalFolder(
  store: ObjectStore,
  prefix: string,
  fullSubdir: string,
  capture: CaptureTime | undefined,
): Promise<string | undefined> {
  if (!capture) return undefined;
  const [date, time] = capture.literal.split(' ');
  const day = date!.replace(/-/g, '');
  const name = `${time!.slice(0, 8).replace(/:/g, '')}.${time!.slice(9, 11)}`;
  const dayPrefix = `${prefix}incrementals${normaliseSubdir(fullSubdir)}/${day}/`;
  for await (const entry of store.list(dayPrefix, { delimiter: '/' })) {
    const folder = entry.commonPrefix?.slice(dayPrefix.length).replace(/\/$/, '');
    if (folder !== undefined && (folder === name || folder.startsWith(`${name}-`))) return `${day}/${folder}`;
  }
  return undefined;
}

function normaliseSubdir(s: string): string {
  return `/${s.replace(/^\/+|\/+$/g, '')}`;
}

export interface PruneInput {
  config: Config;
  openStore: (settings: StorageSettings) => Promise<ObjectStore>;
  protectFullSubdir: string;
  now: Date;
  log: (message: string) => void;
  verified: boolean;
}

/** Prune after a verified backup only; returns what the summary shows, or undefined when nothing ran. */
export async function pruneAfterBackup(p: PruneInput): Promise<PruneSummary | undefined> {
  const settings = storageSettings(p.config);
  if (!settings) return undefined;
  if (!p.verified) {
    p.log("Pruning skipped: this run's backup was not verified.");
    return undefined;
  }
  const store = await p.openStore(settings);
  const chains = await listChains(store, settings.prefix);
  const plan = planPrune(chains, {
    keepLast: p.config.pruneKeepLast,
    olderThanMs: p.config.pruneOlderThanMs,
    now: p.now,
    protectFullSubdir: p.protectFullSubdir,
  });
  for (const c of plan.remove)
    p.log(
      `${p.config.pruneDryRun ? 'Would delete' : 'Deleting'} chain ${c.fullSubdir}: ${plan.reasons.get(c.fullSubdir) ?? ''}`,
    );
  const result = await executePrune(store, settings.prefix, plan, { dryRun: p.config.pruneDryRun });
  return {
    dryRun: result.dryRun,
    kept: plan.keep.map((c) => ({ path: c.fullSubdir, sizeBytes: c.sizeBytes })),
    deleted: plan.remove.map((c) => ({ path: c.fullSubdir, sizeBytes: c.sizeBytes, objects: c.objectCount })),
    failures: result.failed.map((f) => `${f.key}: ${f.code} ${f.message}`),
    note: 'On a versioned bucket, deleting only adds delete markers: the old versions stay until a lifecycle rule expires them.',
  };
}
