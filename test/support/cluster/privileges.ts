/**
 * Users' privileges on the test cluster: GRANT / REVOKE SYSTEM, GRANT BACKUP ON DATABASE, USAGE on external
 * connections, the CONTROLJOB role option, SHOW SYSTEM GRANTS, and the checks BACKUP runs at statement time.
 */
import { controlJobAsSystemPrivilege } from './profiles.js';
import type { QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import type { S3Destination } from './jobs.js';
import { parseIdent, splitList, syntaxError } from './sqltext.js';
import type { EngineState, Session, User } from './engine-state.js';
import { tagOnly } from './engine-state.js';

export function isAdmin(e: EngineState, user: string): boolean {
  return e.users.get(user)?.admin ?? false;
}

export function hasSystem(e: EngineState, user: string, priv: string): boolean {
  return isAdmin(e, user) || (e.users.get(user)?.system.has(priv) ?? false);
}

function roleFor(e: EngineState, text: string): User {
  const name = parseIdent(text);
  const user = e.users.get(name);
  if (!user) {
    const old = e.profile.name === '22.2' && e.profile.patch < 3;
    throw old
      ? new SqlError('XXUUU', `user or role ${name} does not exist`)
      : new SqlError('42704', `role/user "${name}" does not exist`);
  }
  return user;
}

export function grantSystem(e: EngineState, s: Session, sql: string): QueryResult {
  const m = /^(GRANT|REVOKE)\s+SYSTEM\s+(.+?)\s+(TO|FROM)\s+(.+?)(\s+WITH\s+GRANT\s+OPTION)?$/i.exec(sql);
  if (!m) throw syntaxError(sql);
  const grant = m[1]!.toUpperCase() === 'GRANT';
  const privs = splitList(m[2]!).map((p) => p.toUpperCase());
  const known = [
    'BACKUP',
    'RESTORE',
    'EXTERNALCONNECTION',
    'EXTERNALIOIMPLICITACCESS',
    'VIEWACTIVITY',
    'MODIFYCLUSTERSETTING',
  ];
  if (e.profile.major >= 23) known.push('VIEWJOB');
  if (controlJobAsSystemPrivilege(e.profile)) known.push('CONTROLJOB');
  for (const p of privs) {
    if (!known.includes(p)) throw new SqlError('42601', `invalid privilege type ${p} for global`);
  }
  const targets = splitList(m[4]!).map((r) => roleFor(e, r));
  const grantor = e.users.get(s.info.user)!;
  for (const p of privs) {
    if (!grantor.admin && grantor.system.get(p) !== true) {
      throw new SqlError('01007', `user ${s.info.user} missing WITH GRANT OPTION privilege on ${p}`);
    }
  }
  for (const t of targets) {
    for (const p of privs) {
      if (grant) t.system.set(p, Boolean(m[5]) || (t.system.get(p) ?? false));
      else t.system.delete(p);
    }
  }
  return tagOnly(grant ? 'GRANT' : 'REVOKE');
}

export function grantDatabase(e: EngineState, s: Session, sql: string): QueryResult {
  const m = /^GRANT\s+BACKUP\s+ON\s+DATABASE\s+(.+?)\s+TO\s+(.+)$/i.exec(sql);
  if (!m) throw syntaxError(sql);
  if (!isAdmin(e, s.info.user))
    throw new SqlError('01007', `user ${s.info.user} missing WITH GRANT OPTION privilege on BACKUP`);
  const dbs = splitList(m[1]!).map(parseIdent);
  for (const d of dbs) if (!e.databases.has(d)) throw new SqlError('3D000', `database "${d}" does not exist`);
  for (const t of splitList(m[2]!).map((r) => roleFor(e, r))) {
    for (const d of dbs) {
      const set = t.databases.get(d) ?? new Set<string>();
      set.add('BACKUP');
      t.databases.set(d, set);
    }
  }
  return tagOnly('GRANT');
}

/** `GRANT USAGE ON EXTERNAL CONNECTION c TO r` / `REVOKE … FROM r` (docs: create-external-connection.md). */
export function grantConnectionUsage(e: EngineState, s: Session, sql: string): QueryResult {
  const m =
    /^(GRANT|REVOKE)\s+USAGE\s+ON\s+EXTERNAL\s+CONNECTION\s+(.+?)\s+(TO|FROM)\s+(.+?)(\s+WITH\s+GRANT\s+OPTION)?$/i.exec(
      sql,
    );
  if (!m || (m[1]!.toUpperCase() === 'GRANT') !== (m[3]!.toUpperCase() === 'TO')) throw syntaxError(sql);
  const grant = m[1]!.toUpperCase() === 'GRANT';
  const names = splitList(m[2]!).map(parseIdent);
  for (const n of names) {
    if (!e.externalConnections.has(n))
      throw new SqlError('42704', `external connection with name ${n} does not exist`);
  }
  const roles = splitList(m[4]!).map((r) => roleFor(e, r));
  if (!isAdmin(e, s.info.user)) {
    for (const n of names) {
      if (!e.connectionUsage.get(n)?.has(s.info.user))
        throw new SqlError('01007', `user ${s.info.user} missing WITH GRANT OPTION privilege on USAGE`);
    }
  }
  for (const n of names) {
    const users = e.connectionUsage.get(n) ?? new Set<string>();
    for (const r of roles) {
      if (grant) users.add(r.name);
      else users.delete(r.name);
    }
    e.connectionUsage.set(n, users);
  }
  return tagOnly(grant ? 'GRANT' : 'REVOKE');
}

/** Non-admins need USAGE on an external connection, checked at statement time (pkg/cloud/cloudprivilege, CheckDestinationPrivileges), for
 * BACKUP and SHOW BACKUP(S) alike (docs: show-backup.md). */
export function checkConnectionUsage(e: EngineState, user: string, uri: string): void {
  if (isAdmin(e, user) || !/^external:\/\//i.test(uri)) return;
  let name: string;
  try {
    name = new URL(uri).hostname;
  } catch {
    return;
  }
  if (!e.connectionUsage.get(name)?.has(user))
    throw new SqlError('42501', `user ${user} does not have USAGE privilege on external_connection ${name}`);
}

export function roleOption(e: EngineState, s: Session, role: string, on: boolean): QueryResult {
  if (!isAdmin(e, s.info.user))
    throw new SqlError('42501', `user ${s.info.user} does not have CREATEROLE privilege`);
  const u = roleFor(e, role);
  if (on) u.roleOptions.add('CONTROLJOB');
  else u.roleOptions.delete('CONTROLJOB');
  return tagOnly('ALTER ROLE');
}

export function showSystemGrants(e: EngineState, forText: string | undefined): QueryResult {
  const users = forText ? splitList(forText).map((r) => roleFor(e, r)) : [...e.users.values()];
  const rows: (string | null)[][] = [];
  for (const u of users) for (const [p, g] of u.system) rows.push([u.name, p, g ? 't' : 'f']);
  return {
    fields: [
      { name: 'grantee', typeOid: Oid.text },
      { name: 'privilege_type', typeOid: Oid.text },
      { name: 'is_grantable', typeOid: Oid.bool },
    ],
    rows,
    tag: `SHOW ${rows.length}`,
  };
}

/** Privilege checks CockroachDB runs at statement time for a non-admin. */
export function checkBackupPrivileges(
  e: EngineState,
  user: string,
  databases: string[],
  dest: S3Destination | undefined,
  uri: string,
  tables: string[] = [],
): void {
  if (isAdmin(e, user)) return;
  if (databases.length === 0 && tables.length === 0 && !hasSystem(e, user, 'BACKUP')) {
    throw new SqlError(
      '42501',
      `only users with the admin role or the BACKUP system privilege are allowed to perform full cluster backups: user ${user} does not have BACKUP system privilege`,
    );
  }
  for (const d of databases) {
    const ok = hasSystem(e, user, 'BACKUP') || e.users.get(user)?.databases.get(d)?.has('BACKUP');
    if (!ok) throw new SqlError('42501', `user ${user} does not have BACKUP privilege on database ${d}`);
  }
  for (const t of tables) {
    // Table privileges are not modelled: the BACKUP system privilege stands in for them.
    if (!hasSystem(e, user, 'BACKUP'))
      throw new SqlError(
        '42501',
        `user ${user} does not have BACKUP privilege on relation ${t.split('.').pop()}`,
      );
  }
  if (uri.startsWith('external://')) return checkConnectionUsage(e, user, uri);
  const implicit = dest?.params.get('AUTH') === 'implicit' || dest?.params.has('AWS_ENDPOINT');
  if (implicit && !hasSystem(e, user, 'EXTERNALIOIMPLICITACCESS')) {
    throw new SqlError(
      '42501',
      'only users with the admin role or the EXTERNALIOIMPLICITACCESS system privilege are allowed to access the specified s3 URI',
    );
  }
}
