/**
 * The dry run's first checks: connecting with the run's TLS rules, then the cluster's version and
 * edition. Every later cluster check needs the session and the version they give.
 */
import { adviceForConnectError } from './advice.js';
import type { ClusterLink, ClusterVersion, SqlSession } from './cluster.js';
import { parseClusterVersion, versionAtLeast } from './cluster.js';
import { errorMessage } from './errors.js';
import type { Check } from './preflight-checks.js';
import type { Config } from './config.js';

export interface ConnectionFacts {
  /** Undefined when the cluster cannot be checked: no connection, or an unreadable or too old version. */
  session?: SqlSession;
  /** Set once `version()` was read, even when it is too old. */
  version?: ClusterVersion;
}

export async function connectionChecks(
  link: ClusterLink,
  c: Config['connection'],
  opts: {
    budgetMs: number;
    signal: AbortSignal;
    describe: (err: unknown) => string;
    add: (check: Check) => void;
  },
): Promise<ConnectionFacts> {
  const { add } = opts;
  const tls =
    c.sslmode === 'verify-full' || c.sslmode === 'verify-ca'
      ? `TLS, server certificate verified (sslmode=${c.sslmode}${c.caCert ? ', ca-cert' : ''})`
      : c.sslmode === 'require'
        ? 'TLS without verifying the server (sslmode=require)'
        : `sslmode=${c.sslmode}`;
  let session: SqlSession;
  try {
    session = await link.withReconnect('connecting', async (s) => s, {
      budgetMs: opts.budgetMs,
      signal: opts.signal,
    });
  } catch (err) {
    const advice = adviceForConnectError(err);
    add({
      name: 'Connection and TLS',
      state: 'failed',
      detail: `Could not connect to ${c.host}:${c.port} as ${c.user} (${tls}): ${opts.describe(err)}`,
      ...(advice ? { fix: advice } : {}),
    });
    return {};
  }
  add({
    name: 'Connection and TLS',
    state: 'passed',
    detail: `${c.user}@${c.host}:${c.port}, ${tls}.`,
  });
  const rows = await session.query({ text: 'SELECT version() AS version', params: [] });
  const text = String(rows[0]?.version ?? '');
  let v: ClusterVersion;
  try {
    v = parseClusterVersion(text);
  } catch (err) {
    add({ name: 'Version and edition', state: 'failed', detail: errorMessage(err) });
    return {};
  }
  const edition = /\bOSS\b/.test(v.full) ? 'OSS' : /\bCCL\b/.test(v.full) ? 'CCL' : 'edition unknown';
  if (!versionAtLeast(v, 22, 2)) {
    add({
      name: 'Version and edition',
      state: 'failed',
      detail: `CockroachDB ${v.tag} (${edition}) is too old: crdb-backup-action supports 22.2 and later.`,
      fix: 'Upgrade the cluster to 22.2 or later.',
    });
    return { version: v };
  }
  const newer = v.major > 25 ? ' (newer than the versions this action was tested with)' : '';
  add({
    name: 'Version and edition',
    state: 'passed',
    detail: `CockroachDB ${v.tag}, ${edition}${newer}.`,
  });
  return { session, version: v };
}
