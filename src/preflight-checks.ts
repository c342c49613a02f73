/**
 * What a dry run reads about the user and what each statement of a run needs, per version: the
 * rules, kept apart from the order of the checks (preflight.ts). Everything here reads; nothing
 * grants or writes.
 */
import type { Row, SqlSession } from './cluster.js';
import { errorText, sqlState, versionAtLeast } from './cluster.js';
import { quoteIdent } from './sql.js';
import type { ClusterVersion, Config } from './types.js';

export type CheckState = 'passed' | 'failed' | 'skipped' | 'unknown';

/** One line of the checklist. `detail` and `fix` are plain text: the summary escapes them. */
export interface Check {
  name: string;
  state: CheckState;
  detail: string;
  /** What to change, when failed: a sentence. */
  fix?: string;
  /** Statements that fix it (`GRANT …`), shown as code. */
  statements?: string[];
}

/** What the cluster says about the connecting user; `undefined` where it would not say. */
export interface UserFacts {
  user: string;
  admin: boolean | undefined;
  roleOptions: Set<string> | undefined;
  systemPrivileges: Set<string> | undefined;
  /** Database → holds BACKUP on it (has_database_privilege), undefined when unreadable. */
  databaseBackup: Map<string, boolean | undefined>;
  /** Empty string: no licence; undefined: this user may not read it. */
  licence: string | undefined;
  notes: string[];
}

async function tryQuery(
  session: SqlSession,
  text: string,
  params: string[] = [],
): Promise<{ rows: Row[] } | { error: unknown }> {
  try {
    return { rows: await session.query({ text, params }, { clientTimeoutMs: 15_000 }) };
  } catch (err) {
    return { error: err };
  }
}

/** `{a,b}`, `a, b` (22.2's STRING) or a string[]: the names, upper-cased. */
export function parseList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((v) => String(v).trim().toUpperCase()).filter(Boolean);
  if (value === null || value === undefined) return [];
  return String(value)
    .replace(/^\{|\}$/g, '')
    .split(',')
    .map((v) => v.trim().replace(/^"|"$/g, '').toUpperCase())
    .filter(Boolean);
}

/** Reads SHOW ROLES, SHOW SYSTEM GRANTS FOR, has_database_privilege and the licence setting. */
export async function readUserFacts(
  session: SqlSession,
  user: string,
  databases: readonly string[],
): Promise<UserFacts> {
  const facts: UserFacts = {
    user,
    admin: undefined,
    roleOptions: undefined,
    systemPrivileges: undefined,
    databaseBackup: new Map(),
    licence: undefined,
    notes: [],
  };
  const roles = await tryQuery(session, 'SHOW ROLES');
  if ('rows' in roles) {
    const row = roles.rows.find((r) => String(r.username) === user);
    if (row) {
      facts.roleOptions = new Set(parseList(row.options));
      facts.admin = user === 'root' || parseList(row.member_of).includes('ADMIN');
    }
  } else facts.notes.push(`SHOW ROLES was refused (${errorText(roles.error)})`);
  const grants = await tryQuery(session, `SHOW SYSTEM GRANTS FOR ${quoteIdent(user)}`);
  if ('rows' in grants)
    facts.systemPrivileges = new Set(grants.rows.map((r) => String(r.privilege_type).toUpperCase()));
  else facts.notes.push(`SHOW SYSTEM GRANTS was refused (${errorText(grants.error)})`);
  for (const db of databases) {
    const has = await tryQuery(
      session,
      "SELECT has_database_privilege($1::STRING, $2::STRING, 'BACKUP') AS ok",
      [user, db],
    );
    facts.databaseBackup.set(
      db,
      'rows' in has ? has.rows[0]?.ok === true || has.rows[0]?.ok === 't' : undefined,
    );
  }
  const licence = await tryQuery(session, 'SHOW CLUSTER SETTING enterprise.license');
  if ('rows' in licence) {
    const row = licence.rows[0] ?? {};
    facts.licence = String(row['enterprise.license'] ?? Object.values(row)[0] ?? '');
  } else if (sqlState(licence.error) !== '42501') {
    facts.notes.push(`the licence setting could not be read (${errorText(licence.error)})`);
  }
  return facts;
}

function hasSystem(f: UserFacts, priv: string): boolean | undefined {
  if (f.admin) return true;
  if (f.systemPrivileges === undefined) return undefined;
  return f.systemPrivileges.has(priv) || f.systemPrivileges.has('ALL');
}

function grantee(config: Config, user: string): string {
  return quoteIdent(config.grantTo ?? user);
}

/** Whether grant-to would grant the missing privileges to this very user before the backup. */
function grantToCovers(config: Config, user: string): boolean {
  return config.grantTo !== undefined && config.grantTo === user;
}

/**
 * BACKUP: admin; a cluster backup needs the BACKUP system privilege; a database backup BACKUP on
 * each database (or the system privilege); s3-endpoint or s3-auth: implicit also
 * EXTERNALIOIMPLICITACCESS (pkg/backup/backup_planning.go checkPrivilegesForBackup;
 * pkg/cloud/cloudprivilege/privileges.go CheckDestinationPrivileges).
 */
export function backupPrivilegeCheck(config: Config, f: UserFacts): Check {
  const name = `BACKUP privileges of ${f.user}`;
  if (f.admin) return { name, state: 'passed', detail: `${f.user} is an admin.` };
  const who = grantee(config, f.user);
  const missing: string[] = [];
  let unknown = false;
  const systemBackup = hasSystem(f, 'BACKUP');
  if (config.databases.length === 0) {
    if (systemBackup === undefined) unknown = true;
    else if (!systemBackup) missing.push(`GRANT SYSTEM BACKUP TO ${who}`);
  } else if (!systemBackup) {
    const lacking = config.databases.filter((d) => f.databaseBackup.get(d) === false);
    if (config.databases.some((d) => f.databaseBackup.get(d) === undefined)) unknown = true;
    if (lacking.length > 0)
      missing.push(`GRANT BACKUP ON DATABASE ${lacking.map(quoteIdent).join(', ')} TO ${who}`);
  }
  const implicit = config.s3Auth === 'implicit' || config.s3Endpoint !== undefined;
  if (implicit) {
    const ext = hasSystem(f, 'EXTERNALIOIMPLICITACCESS');
    if (ext === undefined) unknown = true;
    else if (!ext) missing.push(`GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO ${who}`);
  }
  const what =
    config.databases.length === 0
      ? 'a cluster backup needs the BACKUP system privilege'
      : 'a database backup needs BACKUP on each database (or the BACKUP system privilege)';
  const ext = implicit ? '; s3-endpoint or s3-auth: implicit needs EXTERNALIOIMPLICITACCESS' : '';
  if (missing.length > 0) {
    if (grantToCovers(config, f.user))
      return {
        name,
        state: 'passed',
        detail: `${f.user} lacks them now (${what}${ext}); grant-to: ${f.user} grants them before the backup.`,
      };
    return {
      name,
      state: 'failed',
      detail: `${f.user} is not an admin and ${what}${ext}.`,
      fix: `As an admin run the statements below, or set grant-to: ${config.grantTo ?? f.user} with an admin grant-connection-string.`,
      statements: missing.map((s) => `${s};`),
    };
  }
  if (unknown)
    return {
      name,
      state: 'unknown',
      detail: `The privilege views would not say (${f.notes.join('; ') || 'no answer'}); the statement-time check below decides.`,
    };
  return { name, state: 'passed', detail: `${what}${ext}: held.` };
}

/**
 * CANCEL JOB for cancel-on-abort and on-timeout: cancel (cockroach-surface-resolved.md §2): 22.2 and
 * 23.1 before 23.1.12 need the CONTROLJOB role option; from 23.1.12 the role option or the system
 * privilege; from 25.1 owners may cancel their own jobs.
 */
export function cancelCheck(config: Config, v: ClusterVersion, f: UserFacts): Check {
  const name = 'CANCEL JOB (cancel-on-abort, on-timeout: cancel)';
  const why = [
    config.cancelOnAbort ? 'cancel-on-abort: true' : '',
    config.onTimeout === 'cancel' ? 'on-timeout: cancel' : '',
  ]
    .filter(Boolean)
    .join(', ');
  if (!why)
    return { name, state: 'skipped', detail: 'cancel-on-abort is false and on-timeout is leave: no cancel.' };
  if (f.admin) return { name, state: 'passed', detail: `${f.user} is an admin (${why}).` };
  if (versionAtLeast(v, 25, 1))
    return {
      name,
      state: 'passed',
      detail: `${v.tag}: owners may cancel their own jobs once the 25.1 upgrade is finalized (${why}).`,
    };
  const systemForm = versionAtLeast(v, 23, 1, 12);
  const role = f.roleOptions?.has('CONTROLJOB');
  const system = systemForm ? f.systemPrivileges?.has('CONTROLJOB') : false;
  if (role || system) return { name, state: 'passed', detail: `${f.user} holds CONTROLJOB (${why}).` };
  if (f.roleOptions === undefined || (systemForm && f.systemPrivileges === undefined))
    return {
      name,
      state: 'unknown',
      detail: `Whether ${f.user} holds CONTROLJOB could not be read (${f.notes.join('; ') || 'no answer'}).`,
    };
  const grant = systemForm
    ? `GRANT SYSTEM CONTROLJOB TO ${grantee(config, f.user)};`
    : `ALTER ROLE ${grantee(config, f.user)} WITH CONTROLJOB;`;
  if (grantToCovers(config, f.user))
    return { name, state: 'passed', detail: `grant-to: ${f.user} grants CONTROLJOB before the backup.` };
  if (config.grantConnectionGiven)
    return {
      name,
      state: 'passed',
      detail: `${f.user} lacks CONTROLJOB on ${v.tag}; a refused cancel is retried as the grant-connection-string user.`,
    };
  return {
    name,
    state: 'failed',
    detail: `On ${v.tag} a non-admin may not cancel even its own job without CONTROLJOB (${why}); the run would leave its job running on abort or timeout.`,
    fix: 'As an admin run the statement below, or set cancel-on-abort: false and on-timeout: leave.',
    statements: [grant],
  };
}

/** The options that need an enterprise licence before 24.3 (reference §9). */
export function licensedOptions(config: Config, incremental: boolean): string[] {
  const out: string[] = [];
  if (config.revisionHistory) out.push('revision_history (revision-history: true)');
  if (config.encryptionPassphrase !== undefined || config.kmsUri !== undefined)
    out.push('encryption (encryption-passphrase / kms-uri)');
  if (incremental) out.push('incremental backups (backup-type)');
  return out;
}

export function licenceFix(options: string[]): string {
  const changes = options.map((o) =>
    o.startsWith('revision_history')
      ? 'set revision-history: false'
      : o.startsWith('encryption')
        ? 'remove encryption-passphrase / kms-uri'
        : 'use backup-type: full',
  );
  return `Add an enterprise licence to the cluster (24.3 and later need none for backups), or ${changes.join(', and ')}.`;
}

/** Which statement checks node access on this version, if any. */
export function storageCheckForm(v: ClusterVersion): 'check' | 'show-backup' | undefined {
  if (versionAtLeast(v, 25, 1)) return 'check';
  if (versionAtLeast(v, 22, 2, 7)) return 'show-backup';
  return undefined;
}

/** The IAM action a node's storage-check error points at. */
export function missingIamAction(error: string): string {
  if (/upload|writ|put/i.test(error)) return 's3:PutObject';
  if (/reader|read|get/i.test(error)) return 's3:GetObject';
  if (/delet/i.test(error)) return 's3:DeleteObject';
  return 's3:PutObject and s3:GetObject';
}
