/**
 * The dry run's checks of the other clusters a run may use: the verify-connection-string cluster
 * (where the restore check runs) and the grant-connection-string user (who runs grant-to's GRANTs
 * and retries a refused cancel). Each is connected to with the same TLS rules as the main
 * connection, and only read: SELECT version(), SHOW ROLES, SHOW SYSTEM GRANTS.
 */
import { adviceForConnectError } from './advice.js';
import type { ClusterVersion, Connector } from './cluster.js';
import { ApplicationNames, ClusterLink, parseClusterVersion, versionAtLeast } from './cluster.js';
import type { Check, UserFacts } from './preflight-checks.js';
import { readUserFacts } from './preflight-checks.js';
import { restoreVersionRefusal, scratchName } from './restore-check.js';
import type { Clock } from './runtime.js';
import type { Statement } from './sql.js';
import { quoteIdent, restoreCheckStatement } from './sql.js';
import type { Config, ConnectionConfig } from './config.js';

export interface OtherClusterContext {
  connector: Connector;
  clock: Clock;
  signal: AbortSignal;
  applicationName: string;
  connectTimeoutMs: number;
  random?: () => number;
  log: (message: string) => void;
  warning: (message: string) => void;
  describe: (err: unknown) => string;
}

export interface OtherSide {
  version?: ClusterVersion;
  facts?: UserFacts;
  /** Why the connection or the reading failed, as a failed check. */
  failure?: Check;
}

/** Connects (once, bounded), reads the version and what the cluster says about the user, closes. */
export async function readOtherSide(
  ctx: OtherClusterContext,
  connection: ConnectionConfig,
  name: string,
  label: string,
): Promise<OtherSide> {
  const link = new ClusterLink(
    ctx.connector,
    connection,
    new ApplicationNames(`${ctx.applicationName} dry-run ${label}`),
    ctx.clock,
    { info: ctx.log, warning: ctx.warning },
    { connectTimeoutMs: ctx.connectTimeoutMs, ...(ctx.random ? { random: ctx.random } : {}) },
  );
  const where = `${connection.user}@${connection.host}:${connection.port} (sslmode=${connection.sslmode})`;
  try {
    const session = await link.withReconnect(`connecting to ${label}`, async (s) => s, {
      budgetMs: 15_000,
      signal: ctx.signal,
    });
    const rows = await session.query({ text: 'SELECT version() AS version', params: [] });
    const version = parseClusterVersion(String(rows[0]?.version ?? ''));
    const facts = await readUserFacts(session, connection.user, []);
    return { version, facts };
  } catch (err) {
    const advice = adviceForConnectError(err);
    return {
      failure: {
        name,
        state: 'failed',
        detail: `Could not connect to or read ${label} as ${where}: ${ctx.describe(err)}`,
        ...(advice ? { fix: advice } : {}),
      },
    };
  } finally {
    await Promise.race([link.close(), ctx.clock.sleep(1000)]);
  }
}

/**
 * The restore check on the verify-connection-string cluster: its version must restore a backup
 * of the source's (restoreVersionRefusal, the rule the restore check applies), and its user needs
 * what the restore check needs there: admin, the RESTORE system privilege or the CREATEDB role
 * option (CockroachDB's RESTORE documentation, "Required privileges"; restoreGrantStatements).
 * RESTORE creates the scratch database, owned by the restoring user, who may therefore drop it.
 */
export function verifyClusterCheck(config: Config, source: ClusterVersion, side: OtherSide): Check {
  const c = config.verifyConnection;
  const name = `Restore check on verify-connection-string (${c.user}@${c.host}:${c.port})`;
  if (side.failure) return { ...side.failure, name };
  const v = side.version!;
  const f = side.facts!;
  const refusal = restoreVersionRefusal(v, source);
  if (refusal)
    return {
      name,
      state: 'failed',
      detail: refusal,
      fix: 'Point verify-connection-string at a cluster that can restore this backup, or set verify: files.',
    };
  const version = `CockroachDB ${v.tag} can restore a backup taken on ${source.tag}`;
  const may = restorePrivilege(f);
  const grantCovers = config.grantTo !== undefined && config.grantTo === c.user;
  if (may === true)
    return {
      name,
      state: 'passed',
      detail: `${version}; ${f.admin ? `${f.user} is an admin` : `${f.user} holds RESTORE (or CREATEDB)`}, so it may create the scratch database and, as its owner, drop it.`,
    };
  if (may === undefined)
    return {
      name,
      state: 'unknown',
      detail: `${version}; whether ${f.user} holds RESTORE could not be read (${f.notes.join('; ') || 'no answer'}).`,
    };
  if (grantCovers)
    return {
      name,
      state: 'passed',
      detail: `${version}; ${f.user} lacks RESTORE now, and grant-to: ${f.user} grants it on that cluster first.`,
    };
  return {
    name,
    state: 'failed',
    detail: `${version}, but the restore check's RESTORE … WITH schema_only, verify_backup_table_data creates a scratch database there, which needs the RESTORE system privilege (or CREATEDB); ${f.user} holds neither.`,
    fix: 'As an admin of the verify-connection-string cluster run the statement below there, or set verify: files.',
    statements: [`GRANT SYSTEM RESTORE TO ${quoteIdent(f.user)};`],
  };
}

/** Admin, the RESTORE system privilege or the CREATEDB role option; undefined when unreadable. */
export function restorePrivilege(f: UserFacts): boolean | undefined {
  if (f.admin) return true;
  if (f.systemPrivileges?.has('RESTORE') || f.systemPrivileges?.has('ALL') || f.roleOptions?.has('CREATEDB'))
    return true;
  if (f.systemPrivileges === undefined || f.roleOptions === undefined) return undefined;
  return false;
}

/**
 * The grant-connection-string user runs grant-to's GRANT SYSTEM … / GRANT … ON DATABASE and
 * ALTER ROLE … WITH CONTROLJOB, and retries a cancel the run's user was refused: all of which an
 * admin may (a non-admin needs each privilege WITH GRANT OPTION, and CONTROLJOB to cancel another
 * user's job; pkg/sql/grant_revoke_system.go, pkg/jobs/jobsauth/authorization.go).
 */
export function grantConnectionCheck(config: Config, side: OtherSide): Check {
  const c = config.grantConnection;
  const name = `grant-connection-string (${c.user})`;
  if (side.failure) return { ...side.failure, name };
  const f = side.facts!;
  const uses = [
    config.grantTo !== undefined ? `runs grant-to's GRANTs` : '',
    config.cancelOnAbort || config.onTimeout === 'cancel' ? 'retries a refused cancel' : '',
  ]
    .filter(Boolean)
    .join(' and ');
  const what = uses || 'is not used by this configuration';
  if (f.admin === true) return { name, state: 'passed', detail: `${f.user} is an admin; it ${what}.` };
  if (f.admin === undefined)
    return {
      name,
      state: 'unknown',
      detail: `whether ${f.user} is an admin could not be read (${f.notes.join('; ') || 'no answer'}); it ${what}.`,
    };
  if (!uses) return { name, state: 'passed', detail: `${f.user} is not an admin; it ${what}.` };
  return {
    name,
    state: 'failed',
    detail: `${f.user} is not an admin, and it ${uses}, which needs admin (or every privilege granted WITH GRANT OPTION and CONTROLJOB).`,
    fix: 'Use an admin user in grant-connection-string, or as an admin run the statement below.',
    statements: [`GRANT admin TO ${quoteIdent(f.user)};`],
  };
}

/** Whether the grant connection's user could cancel the run's job (admin or CONTROLJOB, per version). */
export function grantSideMayCancel(v: ClusterVersion, side: OtherSide | undefined): boolean {
  const f = side?.facts;
  if (!f) return false;
  if (f.admin === true) return true;
  return (
    f.roleOptions?.has('CONTROLJOB') === true ||
    (versionAtLeast(v, 23, 1, 12) && f.systemPrivileges?.has('CONTROLJOB') === true)
  );
}

/** The restore check's RESTORE per database (one placeholder for a cluster backup), as it would send it. */
export function restoreStatements(
  config: Config,
  uri: string,
  fullSubdir: string,
  asOf: string,
): Statement[] {
  const databases = config.databases.length > 0 ? config.databases : ['<each database of the backup>'];
  return databases.map((database, i) => {
    const stmt = restoreCheckStatement(uri, {
      database,
      fullSubdir,
      asOf,
      // The run id is the real run's; the name is shown with a placeholder for it.
      scratch: scratchName('runid', i + 1),
      ...(config.encryptionPassphrase !== undefined
        ? { encryptionPassphrase: config.encryptionPassphrase }
        : {}),
      ...(config.kmsUri !== undefined ? { kmsUri: config.kmsUri } : {}),
    });
    return { ...stmt, text: stmt.text.replace('crdb_backup_verify_runid_', 'crdb_backup_verify_<run id>_') };
  });
}
