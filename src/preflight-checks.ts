/**
 * What a dry run reads about the user and what each statement of a run needs, per version: the
 * rules, kept apart from the order of the checks (preflight.ts). Everything here reads; nothing
 * grants or writes.
 */
import type { ClusterVersion, Row, SqlSession } from './cluster.js';
import { sqlState, versionAtLeast } from './cluster.js';
import { errorMessage } from './errors.js';
import { escapeMarkdown, fenced } from './summary.js';
import type { Statement } from './sql.js';
import { quoteIdent, showBackupsStatement, showBackupStatement } from './sql.js';
import type { Config } from './config.js';

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
  } else facts.notes.push(`SHOW ROLES was refused (${errorMessage(roles.error)})`);
  const grants = await tryQuery(session, `SHOW SYSTEM GRANTS FOR ${quoteIdent(user)}`);
  if ('rows' in grants)
    facts.systemPrivileges = new Set(grants.rows.map((r) => String(r.privilege_type).toUpperCase()));
  else facts.notes.push(`SHOW SYSTEM GRANTS was refused (${errorMessage(grants.error)})`);
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
    facts.notes.push(`the licence setting could not be read (${errorMessage(licence.error)})`);
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
 * CANCEL JOB for cancel-on-abort and on-timeout: cancel: 22.2 and 23.1 before 23.1.12 need the
 * CONTROLJOB role option; from 23.1.12 the role option or the system privilege; from 25.1 owners
 * may cancel their own jobs.
 */
export function cancelCheck(config: Config, v: ClusterVersion, f: UserFacts, grantMayCancel = false): Check {
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
  // The retry on the grant connection only helps when that user really could cancel (admin or CONTROLJOB).
  if (config.grantConnectionGiven && grantMayCancel)
    return {
      name,
      state: 'passed',
      detail: `${f.user} lacks CONTROLJOB on ${v.tag}; a refused cancel is retried as the grant-connection-string user ${config.grantConnection.user}, who may cancel it.`,
    };
  return {
    name,
    state: 'failed',
    detail: `On ${v.tag} a non-admin may not cancel even its own job without CONTROLJOB (${why})${config.grantConnectionGiven ? `, and the grant-connection-string user ${config.grantConnection.user} may not cancel it either` : ''}; the run would leave its job running on abort or timeout.`,
    fix: 'As an admin run the statement below, or set cancel-on-abort: false and on-timeout: leave.',
    statements: [grant],
  };
}

/** The options that need an enterprise licence before 24.3 (pkg/ccl/utilccl/license_check.go). */
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

/**
 * Which storage check to send: CHECK EXTERNAL CONNECTION from 25.1, SHOW BACKUP CONNECTION before
 * (22.2.7 to 24.3). Earlier patches answer the latter with a syntax error (42601), which the dry
 * run reports as "node access unchecked": the answer, not a patch table, decides.
 */
export function storageCheckForm(v: ClusterVersion): 'check' | 'show-backup' {
  return versionAtLeast(v, 25, 1) ? 'check' : 'show-backup';
}

/** The IAM action a node's storage-check error points at. */
export function missingIamAction(error: string): string {
  if (/upload|writ|put/i.test(error)) return 's3:PutObject';
  if (/reader|read|get/i.test(error)) return 's3:GetObject';
  if (/delet/i.test(error)) return 's3:DeleteObject';
  return 's3:PutObject and s3:GetObject';
}

/**
 * Before 24.3 revision_history, encryption and incrementals need an enterprise licence
 * (pkg/ccl/utilccl/license_check.go).
 */
export function licenceCheck(
  config: Config,
  v: ClusterVersion,
  f: UserFacts,
  incremental: boolean,
  refusal: unknown,
): Check {
  const name = 'Licence for the BACKUP options';
  const options = licensedOptions(config, incremental);
  if (versionAtLeast(v, 24, 3)) {
    return { name, state: 'passed', detail: `${v.tag}: backups need no enterprise licence from 24.3.` };
  }
  if (options.length === 0) {
    return { name, state: 'passed', detail: 'no option of this backup needs an enterprise licence.' };
  }
  const licence = f.licence;
  const needs = `${options.join(', ')} need(s) an enterprise licence on ${v.tag}`;
  if (licence !== undefined && licence !== '') {
    return { name, state: 'passed', detail: `${needs}: the cluster has one.` };
  }
  if (licence === '' || sqlState(refusal) === 'XXC02') {
    return {
      name,
      state: 'failed',
      detail: `${needs}, and the cluster has none.`,
      fix: licenceFix(options),
    };
  }
  // This user may not read the licence (admin, MODIFYCLUSTERSETTING or VIEWCLUSTERSETTING).
  if (refusal === undefined && !options.some((o) => o.startsWith('incremental'))) {
    return { name, state: 'passed', detail: `${needs}: the statement-time check accepted them.` };
  }
  return {
    name,
    state: 'unknown',
    detail: `${needs}; ${f.user} may not read the licence setting (it needs VIEWCLUSTERSETTING), so whether it is there is unknown.`,
  };
}

/**
 * SHOW BACKUPS / SHOW BACKUP check the same destination privileges as BACKUP
 * (cloudprivilege.CheckDestinationPrivileges: admin, or EXTERNALIOIMPLICITACCESS for s3-endpoint
 * and implicit auth); the restore check needs RESTORE (or CREATEDB) and drops only its own
 * scratch database (owners may).
 */
export function verifyCheck(
  config: Config,
  f: UserFacts,
  show: (stmt: Statement) => void,
  uri: string,
): Check {
  const mode = String(config.verify);
  const name = `verify: ${mode}`;
  if (mode === 'none') {
    return { name, state: 'skipped', detail: 'verify: none: nothing is checked after the job.' };
  }
  show(showBackupsStatement(uri));
  show(
    showBackupStatement(uri, '<backup-path>', {
      checkFiles: mode !== 'manifest',
      encryptionPassphrase: config.encryptionPassphrase,
      kmsUri: config.kmsUri,
    }),
  );
  const implicit = config.s3Auth === 'implicit' || config.s3Endpoint !== undefined;
  const ext = f.admin || !implicit || f.systemPrivileges?.has('EXTERNALIOIMPLICITACCESS');
  const who = quoteIdent(config.grantTo ?? f.user);
  if (!ext) {
    const unknownExt = f.systemPrivileges === undefined;
    return {
      name,
      state: unknownExt ? 'unknown' : 'failed',
      detail: `SHOW BACKUP with s3-endpoint or s3-auth: implicit needs EXTERNALIOIMPLICITACCESS${unknownExt ? ', which could not be read' : `, which ${f.user} lacks`}.`,
      ...(unknownExt
        ? {}
        : {
            fix: 'As an admin run the statement below.',
            statements: [`GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO ${who};`],
          }),
    };
  }
  // On another verifying cluster the restore check's own row (preflight-others.ts) says whether it may.
  if (mode === 'restore' && !config.verifyConnectionGiven) {
    const may = f.admin || f.systemPrivileges?.has('RESTORE') || f.roleOptions?.has('CREATEDB');
    if (!may && !(config.grantTo !== undefined && config.grantTo === f.user)) {
      return {
        name,
        state: f.systemPrivileges === undefined ? 'unknown' : 'failed',
        detail: `the restore check runs RESTORE DATABASE … WITH schema_only, verify_backup_table_data, which needs the RESTORE system privilege (or CREATEDB); ${f.user} holds neither.`,
        fix: 'As an admin run the statement below, or set verify: files.',
        statements: [`GRANT SYSTEM RESTORE TO ${who};`],
      };
    }
  }
  return {
    name,
    state: 'passed',
    detail: `SHOW BACKUP${mode === 'manifest' ? '' : ' … WITH check_files'}${mode === 'restore' && !config.verifyConnectionGiven ? ' and the restore check' : ''}: ${f.admin ? `${f.user} is an admin` : 'the privileges are held'}.`,
  };
}

const MARK: Record<Check['state'], string> = {
  passed: '✅ passed',
  failed: '❌ failed',
  skipped: '⏭️ skipped',
  unknown: '❔ unknown',
};

/** Inline code that neither a backtick nor a `|` in the text can break (GitHub reads `\|` in cells). */
function codeCell(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${text.replace(/\|/g, '\\|').replace(/\s*\r?\n\s*/g, ' ')}${pad}${ticks}`;
}

function cell(text: string): string {
  return escapeMarkdown(text).replace(/ {2}\n/g, ' ');
}

/** The checklist: one row per check, readable in a pull request. */
export function renderChecklist(
  r: { checks: Check[]; statements: string[]; grants: string[]; version?: string },
  meta: { config: Config; runUrl?: string },
): string {
  const failed = r.checks.filter((c) => c.state === 'failed').length;
  const head =
    failed === 0
      ? `all ${r.checks.length} checks passed or were skipped`
      : `${failed} of ${r.checks.length} checks failed`;
  const lines = [
    `## CockroachDB backup: dry run (${head})`,
    '',
    `Nothing was changed: no job, no GRANT, nothing left in ${cell(meta.config.collection.display)}.${r.version ? ` Cluster: ${cell(r.version)}.` : ''}`,
    '',
    '| | Check | Result |',
    '|---|---|---|',
  ];
  for (const c of r.checks) {
    const fix = c.fix ? `<br>**To change:** ${cell(c.fix)}` : '';
    const stmts = c.statements ? `<br>${c.statements.map(codeCell).join('<br>')}` : '';
    lines.push(`| ${MARK[c.state]} | ${cell(c.name)} | ${cell(c.detail)}${fix}${stmts} |`);
  }
  lines.push('');
  if (r.statements.length > 0) {
    lines.push(
      '### Statements the run would send (redacted)',
      '',
      ...fenced('sql', r.statements.join('\n')),
      '',
    );
  }
  if (r.grants.length > 0) {
    lines.push('### GRANTs that grant-to would run (not run)', '', ...fenced('sql', r.grants.join('\n')), '');
  }
  if (meta.runUrl !== undefined) lines.push(`[Workflow run](${meta.runUrl})`, '');
  return lines.join('\n');
}
