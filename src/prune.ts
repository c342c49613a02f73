/**
 * What pruning needs from the cluster: its clock (folder names are end times in cluster time, so a
 * runner clock ahead of the cluster's would prune early) and the chains that running backup jobs
 * write into (such a chain is skipped this time).
 */
import type { SqlSession } from './cluster.js';
import { subdirFromDescription } from './destination.js';
import { findRunningBackups } from './submit.js';
import { parseClusterTime } from './time.js';
import { normalizeFullSubdir } from './layout.js';

/** Whether this run prunes at all: either retention rule is set. */
export function pruningEnabled(rules: {
  readonly pruneKeepLast?: number | undefined;
  readonly pruneOlderThanMs?: number | undefined;
}): boolean {
  return rules.pruneKeepLast !== undefined || rules.pruneOlderThanMs !== undefined;
}

export interface PruneFacts {
  now: Date;
  /** Full backup folder (or `LATEST`) → ids of the running backup jobs that write into it. */
  busy: Map<string, string>;
}

export async function readPruneFacts(
  session: SqlSession,
  matchesCollection: (description: string) => boolean,
): Promise<PruneFacts> {
  const rows = await session.query({ text: 'SELECT now() AS now', params: [] });
  const now = parseClusterTime(String(rows[0]?.now ?? ''));
  if (!now)
    throw new Error(`could not read the cluster clock (SELECT now() returned ${JSON.stringify(rows[0])})`);
  const busy = new Map<string, string>();
  for (const job of await findRunningBackups(session, matchesCollection)) {
    const subdir = /\bINTO\s+LATEST\s+IN\b/i.test(job.description)
      ? 'LATEST'
      : subdirFromDescription(job.description);
    // A full backup into no named folder writes a new one: no existing chain is touched.
    if (subdir === undefined) continue;
    const key = subdir === 'LATEST' ? 'LATEST' : normalizeFullSubdir(subdir);
    busy.set(key, busy.has(key) ? `${busy.get(key)}, ${job.jobId}` : job.jobId);
  }
  return { now: new Date(Number(now.micros / 1000n)), busy };
}
