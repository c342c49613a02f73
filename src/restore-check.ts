/**
 * The restore check (`verify: restore`): per database of the backup,
 * `RESTORE … WITH schema_only, verify_backup_table_data, new_db_name = <scratch>, detached` on the
 * verifying cluster, waited for as the backup was, then the scratch database dropped. Every ending
 * cancels the restore job it started and drops the scratch databases it created; what is still
 * to clean up is saved for the post step (state.ts: restoreChecks), which calls cleanUpRestoreChecks.
 */
import type { ApplicationNames, ClusterLink, ClusterVersion, SqlSession } from './cluster.js';
import { parseClusterVersion, versionAtLeast } from './cluster.js';
import { AbortedError, errorLine, errorMessage } from './errors.js';
import type { CancelResult } from './cancel.js';
import { cancelWithFallback } from './cancel.js';
import type { CaptureTime } from './submit.js';
import { parseClusterTime } from './time.js';
import type { WaitContext, WaitOutcome } from './wait.js';
import { waitForJob } from './wait.js';
import { formatBytes } from './summary.js';
import type { Deps, Timings } from './runtime.js';
import type { ScratchEntry } from './restore-cleanup.js';
import { dropIfPresent } from './restore-cleanup.js';
import { saveState } from './state.js';
import type { SecretRegistry } from './secrets.js';
import type { Statement } from './sql.js';
import { databaseExistsStatement, restoreCheckStatement, showBackupStatement } from './sql.js';
import type { Config } from './config.js';

export interface RestoreCheckDeps {
  config: Config;
  /** The source cluster: SHOW BACKUP lists the databases and their sizes there. */
  sourceLink: ClusterLink;
  sourceVersion: ClusterVersion;
  /** The verifying cluster's link (the source's when verify-connection-string is not given). */
  verifyLink: ClusterLink;
  uri: string;
  fullSubdir: string;
  capture: CaptureTime;
  showBackup: (subdir: string) => Statement;
  runId: string;
  /** Waits for a job on the verifying cluster as for the backup, within what is left of `timeout`. */
  wait: (jobId: string, version: ClusterVersion) => Promise<WaitOutcome>;
  /** CANCEL JOB on the verifying cluster, on a connection that is not busy. */
  cancel: (jobId: string) => Promise<CancelResult>;
  saveState: (name: string, value: string) => void;
  now: () => number;
  signal: AbortSignal;
  reconnectBudgetMs: number;
  log: (message: string) => void;
}

export interface RestoredDatabase {
  database: string;
  scratch: string;
  jobId?: string;
  tables: number;
  bytes: number;
  seconds?: number;
  error?: string;
}

export interface RestoreCheckOutcome {
  ok: boolean;
  databases: RestoredDatabase[];
  /** One line: what failed, with the database and CockroachDB's error. */
  problem?: string;
  /** Lines for the summary's checks. */
  checks: string[];
}

class CheckFailed extends Error {}

export async function runRestoreCheck(d: RestoreCheckDeps): Promise<RestoreCheckOutcome> {
  const entries: ScratchEntry[] = [];
  const save = (): void => saveState(d, 'restoreChecks', JSON.stringify(entries));
  const results: RestoredDatabase[] = [];
  const checks: string[] = [];
  try {
    const verifyVersion = await readVersion(d);
    const objects = await backupObjects(d);
    const databases = d.config.databases.length > 0 ? [...d.config.databases] : [...objects.keys()];
    if (databases.length === 0) throw new CheckFailed('SHOW BACKUP lists no database to restore.');
    for (let i = 0; i < databases.length; i++) {
      const database = databases[i]!;
      const scratch = scratchName(d.runId, i + 1);
      const sizes = objects.get(database) ?? { tables: 0, bytes: 0 };
      const r: RestoredDatabase = { database, scratch, ...sizes };
      results.push(r);
      await refuseExisting(d, scratch);
      const entry: ScratchEntry = { db: scratch };
      entries.push(entry);
      save();
      const started = d.now();
      const stmt = restoreCheckStatement(d.uri, {
        database,
        fullSubdir: d.fullSubdir,
        asOf: d.capture.literal,
        scratch,
        ...(d.config.encryptionPassphrase !== undefined
          ? { encryptionPassphrase: d.config.encryptionPassphrase }
          : {}),
        ...(d.config.kmsUri !== undefined ? { kmsUri: d.config.kmsUri } : {}),
      });
      d.log(`${stmt.text}  -- $1 = the collection, $2 = ${d.fullSubdir}`);
      let rows;
      try {
        rows = await (await d.verifyLink.session()).query(stmt);
      } catch (err) {
        if (err instanceof AbortedError) throw err;
        // Refused: no job, so no database of this run (an answer lost in flight stays for the post step).
        if (sqlStateOf(err) !== undefined) {
          entries.splice(entries.indexOf(entry), 1);
          save();
        }
        throw new CheckFailed(`RESTORE of ${database} was refused: ${withGrant(errorMessage(err), d)}`);
      }
      const jobId = String(rows[0]?.job_id ?? '');
      if (!/^\d+$/.test(jobId)) throw new CheckFailed(`RESTORE of ${database} returned no job id.`);
      entry.job = jobId;
      r.jobId = jobId;
      save();
      d.log(`Restore job ${jobId} checks ${database} into the scratch database ${scratch}.`);
      const outcome = await d.wait(jobId, verifyVersion);
      r.seconds = (d.now() - started) / 1000;
      if (outcome.kind === 'aborted') throw new AbortedError();
      if (outcome.kind === 'timeout')
        throw new CheckFailed(`timeout: restore job ${jobId} for ${database} did not finish within timeout.`);
      if (outcome.kind === 'vanished')
        throw new CheckFailed(`restore job ${jobId} for ${database} is no longer returned by the cluster.`);
      if (outcome.job.status !== 'succeeded') {
        r.error = outcome.job.error ?? '(no error text)';
        throw new CheckFailed(
          `restore check of database ${database} failed: restore job ${jobId} ended with status ${outcome.job.status}: ${r.error}`,
        );
      }
      await dropScratch(d.verifyLink, scratch, d);
      entries.splice(entries.indexOf(entry), 1);
      save();
      const line = `restore check: ${database} restorable (${r.tables} table(s) restored schema-only, ${formatBytes(r.bytes)} read and checksummed, ${r.seconds.toFixed(1)} s, job ${jobId}); scratch database ${scratch} dropped`;
      d.log(line);
      checks.push(line);
    }
    return { ok: true, databases: results, checks };
  } catch (err) {
    const aborted = err instanceof AbortedError || d.signal.aborted;
    const cleanup = await cleanUp(d, entries, save);
    const cause = aborted
      ? 'the workflow run was cancelled during the restore check'
      : err instanceof CheckFailed
        ? err.message
        : `the restore check could not run: ${errorMessage(err)}`;
    const problem = `${cause.replace(/[.\s]+$/, '')}. ${cleanup}`.trim();
    checks.push(`restore check failed: ${problem}`);
    return { ok: false, databases: results, problem, checks };
  }
}

/**
 * `crdb_backup_verify_<run id>_<n>`: the run id is GitHub's (digits); a local run has its own.
 * Lower case, so that the quoted and unquoted forms are the same name.
 */
export function scratchName(runId: string, n: number): string {
  const id =
    runId
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 30) || 'local';
  const name = `crdb_backup_verify_${id}_${n}`;
  if (!/^crdb_backup_verify_[a-z0-9]+_\d+$/.test(name)) throw new Error(`internal: bad scratch name ${name}`);
  return name;
}

async function readVersion(d: RestoreCheckDeps): Promise<ClusterVersion> {
  if (!d.config.verifyConnectionGiven) return d.sourceVersion;
  const session = await d.verifyLink.session();
  const rows = await session.query({ text: 'SELECT version() AS version', params: [] });
  const v = parseClusterVersion(String(rows[0]?.version ?? ''));
  const refusal = restoreVersionRefusal(v, d.sourceVersion);
  if (refusal) throw new CheckFailed(refusal);
  d.log(`Restore check on ${v.full.replace(/ \(.*$/, '')} (verify-connection-string).`);
  return v;
}

/**
 * The release each release can restore backups from, at the oldest (its MinSupported version:
 * pkg/clusterversion/cockroach_versions.go; docs "Restoring backups across versions"): the previous
 * release, or after an innovation release the one before it. A backup from a newer version is refused
 * (restore_planning.go checkBackupManifestVersionCompatability).
 */
const RESTORES_FROM: Record<string, string> = {
  '22.2': '22.1',
  '23.1': '22.2',
  '23.2': '23.1',
  '24.1': '23.2',
  '24.2': '24.1',
  '24.3': '24.1',
  '25.1': '24.3',
  '25.2': '24.3',
  '25.3': '25.2',
  '25.4': '25.2',
};

/** Why the verifying cluster cannot restore a backup taken on `source`, or undefined when it can. */
export function restoreVersionRefusal(verifier: ClusterVersion, source: ClusterVersion): string | undefined {
  const name = (v: ClusterVersion) => `${v.major}.${v.minor}`;
  const before = (a: ClusterVersion, major: number, minor: number) =>
    a.major < major || (a.major === major && a.minor < minor);
  if (before(verifier, source.major, source.minor))
    return `verify-connection-string: CockroachDB ${verifier.tag} cannot restore a backup taken on ${source.tag} (a backup from a newer version is refused). Verify on a cluster of ${name(source)} or the next major version.`;
  const min = RESTORES_FROM[name(verifier)];
  const [mm, mn] = (min ?? `${verifier.major - 1}.${verifier.minor}`).split('.').map(Number) as [
    number,
    number,
  ];
  if (before(source, mm, mn))
    return `verify-connection-string: CockroachDB ${verifier.tag} restores backups from ${min ?? 'the previous major version'} and later, not from ${source.tag}. Verify on a cluster of ${name(source)} or the next major version.`;
  return undefined;
}

interface Sizes {
  tables: number;
  bytes: number;
}

/**
 * The databases of the backup (without `system`) with their tables and bytes, from SHOW BACKUP's
 * database and table rows of every layer up to this one (CockroachDB's SHOW BACKUP documentation,
 * "Response").
 */
async function backupObjects(d: RestoreCheckDeps): Promise<Map<string, Sizes>> {
  const rows = await d.sourceLink.withReconnect(
    'listing the backup for the restore check',
    (s) => s.query(d.showBackup(d.fullSubdir)),
    {
      budgetMs: d.reconnectBudgetMs,
      signal: d.signal,
    },
  );
  const out = new Map<string, Sizes>();
  const tables = new Map<string, Set<string>>();
  for (const row of rows) {
    const end = parseClusterTime(row.end_time == null ? undefined : String(row.end_time));
    // A later layer (another run's) is not part of the chain up to this one.
    if (end && end.micros > d.capture.micros + 1_000_000n) continue;
    const db = String(row.database_name ?? '');
    const type = String(row.object_type ?? '');
    if (type === 'database') {
      const name = String(row.object_name ?? db);
      if (name !== 'system' && !out.has(name)) out.set(name, { tables: 0, bytes: 0 });
      continue;
    }
    if (type !== 'table' || db === 'system' || db === '') continue;
    const s = out.get(db) ?? { tables: 0, bytes: 0 };
    out.set(db, s);
    s.bytes += Number(row.size_bytes ?? 0) || 0;
    const names = tables.get(db) ?? new Set<string>();
    tables.set(db, names);
    names.add(`${String(row.parent_schema_name ?? '')}.${String(row.object_name ?? '')}`);
    s.tables = names.size;
  }
  return out;
}

async function refuseExisting(d: RestoreCheckDeps, scratch: string): Promise<void> {
  const session = await d.verifyLink.session();
  const rows = await session.query(databaseExistsStatement(scratch));
  if (rows.length > 0)
    throw new CheckFailed(
      `the scratch database ${scratch} already exists on the verifying cluster; this run did not create it and will not drop it. Drop it (DROP DATABASE ${scratch} CASCADE) if it is a leftover of an earlier run, and run again.`,
    );
}

async function dropScratch(link: ClusterLink, scratch: string, d: { signal: AbortSignal }): Promise<void> {
  await link.withReconnect('dropping the scratch database', (s) => dropIfPresent(s, scratch), {
    budgetMs: 30_000,
    signal: d.signal,
  });
}

/**
 * After a failure, timeout or abort: cancel the restore job still running (a cancelled or failed
 * restore drops its new database itself: restore_job.go OnFailOrCancel), and drop the scratch
 * database of a restore job that succeeded. What cannot be done is left in the state for the post step.
 */
async function cleanUp(d: RestoreCheckDeps, entries: ScratchEntry[], save: () => void): Promise<string> {
  const said: string[] = [];
  for (const entry of [...entries]) {
    if (entry.job === undefined) {
      // RESTORE was sent and never answered: its job may exist; the post step looks it up by name.
      said.push(`The answer to RESTORE into ${entry.db} never came; the post step looks for its job.`);
      continue;
    }
    const result = await d.cancel(entry.job);
    if (result.kind === 'requested' || result.kind === 'reverting') {
      // A cancelled or failed restore drops its new database itself (restore_job.go OnFailOrCancel).
      said.push(
        `Restore job ${entry.job} was cancelled; it removes its scratch database ${entry.db} as it reverts.`,
      );
      entries.splice(entries.indexOf(entry), 1);
    } else if (result.kind === 'already-finished') {
      if (result.status !== 'succeeded') {
        entries.splice(entries.indexOf(entry), 1);
        continue;
      }
      try {
        if (await dropIfPresent(await freshSession(d), entry.db))
          said.push(`Scratch database ${entry.db} dropped.`);
        entries.splice(entries.indexOf(entry), 1);
      } catch (err) {
        said.push(
          `Scratch database ${entry.db} could not be dropped (${errorMessage(err)}); the post step tries again.`,
        );
      }
    } else {
      said.push(
        `Restore job ${entry.job} could not be cancelled (${result.kind}); the post step tries again.`,
      );
    }
  }
  save();
  return said.join(' ');
}

/** A session for the clean-up, not the one a wait may have left busy. */
async function freshSession(d: RestoreCheckDeps): Promise<SqlSession> {
  if (d.signal.aborted) d.verifyLink.abandon();
  return d.verifyLink.session();
}

/** The exact GRANT for a refusal for lack of privilege (42501). */
function sqlStateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function withGrant(text: string, d: RestoreCheckDeps): string {
  if (!/CREATEDB|RESTORE|privilege/i.test(text)) return text;
  const user = d.config.verifyConnection.user;
  return `${text.replace(/[.\s]+$/, '')}. Run as an admin on the verifying cluster: GRANT SYSTEM RESTORE TO ${user}; (or set grant-to: ${user}).`;
}

/** Whether the version waits with WHEN COMPLETE (as for the backup, 23.2+). */
export function waitsWhenComplete(v: ClusterVersion): boolean {
  return versionAtLeast(v, 23, 2);
}

/** What main.ts hands over to build the restore check from the step's own parts. */
export interface RunnerParts {
  config: Config;
  deps: Deps;
  timings: Timings;
  names: ApplicationNames;
  secrets: SecretRegistry;
  capture: CaptureTime;
  sourceLink: ClusterLink;
  sourceVersion: ClusterVersion;
  verifyLink: ClusterLink;
  uri: string;
  fullSubdir: string;
  /** The backup's wait context: the restore jobs are waited for with the same code and settings. */
  /** Its `timeoutMs` is what is left of `timeout`, which runs from the first statement. */
  waitContext: (jobId: string) => WaitContext;
  log: (message: string) => void;
}

export function runRestoreCheckFor(p: RunnerParts): Promise<RestoreCheckOutcome> {
  const { config, deps } = p;
  const connections = config.verifyConnectionGiven
    ? [config.verifyConnection]
    : config.grantConnectionGiven
      ? [config.connection, config.grantConnection]
      : [config.connection];
  return runRestoreCheck({
    config,
    sourceLink: p.sourceLink,
    sourceVersion: p.sourceVersion,
    verifyLink: p.verifyLink,
    uri: p.uri,
    fullSubdir: p.fullSubdir,
    capture: p.capture,
    showBackup: (subdir) =>
      showBackupStatement(p.uri, subdir, {
        checkFiles: false,
        ...(config.encryptionPassphrase !== undefined
          ? { encryptionPassphrase: config.encryptionPassphrase }
          : {}),
        ...(config.kmsUri !== undefined ? { kmsUri: config.kmsUri } : {}),
      }),
    runId: deps.env.GITHUB_RUN_ID ?? `local${Math.floor((deps.random ?? Math.random)() * 1e9)}`,
    wait: (jobId, version) =>
      waitForJob({
        ...p.waitContext(jobId),
        link: p.verifyLink,
        useWhenComplete: waitsWhenComplete(version),
      }),
    cancel: (jobId) =>
      cancelWithFallback({
        connector: deps.connector,
        jobId,
        connections,
        applicationName: () => p.names.next(),
        connectTimeoutMs: Math.min(p.timings.connectTimeoutMs, p.timings.cancelTimeoutMs),
        timeoutMs: p.timings.cancelTimeoutMs,
        log: p.log,
        describe: (err) => errorLine(err, p.secrets),
      }),
    saveState: (name, value) => deps.io.saveState(name, value),
    now: () => deps.clock.now(),
    signal: deps.signal,
    reconnectBudgetMs: p.timings.reconnectBudgetMs,
    log: p.log,
  });
}
