/**
 * The clean-up side of the restore check (restore-check.ts): what the main step saves for the post
 * step (the restore jobs and scratch databases not yet cleaned up), and the post step's clean-up of
 * a main step that was killed or ran out of time.
 */
import type { SqlSession } from './cluster.js';
import { ApplicationNames } from './cluster.js';
import { errorLine, errorMessage } from './errors.js';
import { readConfig } from './inputs.js';
import type { CancelResult } from './cancel.js';
import { cancelWithFallback } from './cancel.js';
import { TERMINAL_STATUSES, toJobRow } from './wait.js';
import type { Deps } from './runtime.js';
import { applicationNameBase, DEFAULT_TIMINGS } from './runtime.js';
import { SecretRegistry } from './secrets.js';
import { readMainState } from './state.js';
import {
  databaseExistsStatement,
  dropScratchStatement,
  jobByIdStatement,
  restoreJobByScratchStatement,
} from './sql.js';
import type { Config } from './config.js';

export interface ScratchEntry {
  /** The scratch database name (`crdb_backup_verify_<run id>_<n>`). */
  db: string;
  /** The restore job, once created. */
  job?: string;
}

/** Drops the scratch database if it is there; true when it dropped it. */
export async function dropIfPresent(s: SqlSession, scratch: string): Promise<boolean> {
  const rows = await s.query(databaseExistsStatement(scratch));
  if (rows.length === 0) return false;
  await s.query(dropScratchStatement(scratch));
  return true;
}

export async function jobStatus(s: SqlSession, jobId: string): Promise<string | undefined> {
  const rows = await s.query(jobByIdStatement(jobId), { clientTimeoutMs: 3_000 });
  return rows[0] ? toJobRow(rows[0]).status : undefined;
}

/**
 * The post step's part: cancel the restore jobs a killed main step left and drop the scratch
 * databases of those that succeeded. Returns the lines it logged (empty when nothing was left).
 */
export async function cleanUpRestoreChecks(c: {
  saved: string;
  session: () => Promise<SqlSession>;
  cancel: (jobId: string) => Promise<CancelResult>;
  log: (m: string) => void;
}): Promise<string[]> {
  let entries: ScratchEntry[];
  try {
    entries = (JSON.parse(c.saved) as ScratchEntry[]).filter(
      (e) => typeof e.db === 'string' && (e.job === undefined || /^\d+$/.test(e.job)),
    );
  } catch {
    return [];
  }
  const lines: string[] = [];
  for (const e of entries) {
    try {
      // Killed while RESTORE was in flight: its job is found by the scratch name it restores into.
      if (e.job === undefined) {
        const rows = await (await c.session()).query(restoreJobByScratchStatement(e.db));
        if (rows.length === 0) continue;
        e.job = String(rows[0]!.job_id);
      }
      const s = await c.session();
      let status = await jobStatus(s, e.job);
      if (status !== undefined && !TERMINAL_STATUSES.has(status)) {
        const result = await c.cancel(e.job);
        lines.push(`Restore job ${e.job} (restore check) was still ${status}: cancel ${result.kind}.`);
        status = await jobStatus(await c.session(), e.job);
      }
      if (status === 'succeeded' && (await dropIfPresent(await c.session(), e.db)))
        lines.push(`Scratch database ${e.db} of the restore check dropped.`);
    } catch (err) {
      lines.push(`Could not clean up restore job ${e.job} / scratch database ${e.db}: ${errorMessage(err)}.`);
    }
  }
  for (const l of lines) c.log(l);
  return lines;
}

/**
 * The post step's clean-up of a restore check the main step left (killed, or its own clean-up ran
 * out of time): runs whatever the main step's ending, since only the entries still saved remain.
 */
export async function postRestoreCheck(deps: Deps): Promise<void> {
  const saved = readMainState(deps.io).restoreChecks;
  if (!saved || saved === '[]') return;
  const secrets = new SecretRegistry((v) => deps.io.setSecret(v));
  let config: Config;
  try {
    config = readConfig(deps.getInput, deps.env, secrets).config;
  } catch {
    deps.io.warning(
      `Post step: the restore check left ${saved.slice(0, 300)} to clean up, but the inputs cannot be read.`,
    );
    return;
  }
  const names = new ApplicationNames(`${applicationNameBase(deps.env, deps.random ?? Math.random)} post`);
  const open: SqlSession[] = [];
  let current: SqlSession | undefined;
  const session = async (): Promise<SqlSession> => {
    if (current && !current.broken) return current;
    current = await deps.connector({
      connection: config.verifyConnection,
      applicationName: names.next(),
      connectTimeoutMs: DEFAULT_TIMINGS.connectTimeoutMs,
    });
    open.push(current);
    return current;
  };
  try {
    const lines = await cleanUpRestoreChecks({
      saved,
      session,
      cancel: (jobId) =>
        cancelWithFallback({
          connector: deps.connector,
          jobId,
          connections: [config.verifyConnection],
          applicationName: () => names.next(),
          connectTimeoutMs: DEFAULT_TIMINGS.cancelTimeoutMs,
          timeoutMs: DEFAULT_TIMINGS.cancelTimeoutMs,
          log: (m) => deps.io.info(secrets.scrub(m)),
          describe: (err) => errorLine(err, secrets),
        }),
      log: (m) => deps.io.warning(secrets.scrub(`Post step: ${m}`)),
    });
    if (lines.length > 0 && config.summary) {
      try {
        await deps.io.writeSummary(
          secrets.scrub(
            `## ⚠️ CockroachDB backup: post step (restore check)\n\n${lines.map((l) => `- ${l}`).join('\n')}\n`,
          ),
        );
      } catch {
        // the lines are in the log already
      }
    }
  } finally {
    for (const s of open) void s.close().catch(() => undefined);
  }
}
