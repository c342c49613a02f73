/**
 * What a dry run reads to learn a user's grants and role options, per version:
 * - `SHOW GRANTS ON DATABASE d [FOR u]` (database_name, grantee, privilege_type, is_grantable):
 *   the owner and admins hold ALL; grants come from GRANT … ON DATABASE (catalog.ts);
 * - `SELECT has_database_privilege(user, db, privilege)` (pg builtin, all versions);
 * - `SHOW ROLES` (username, options, member_of): role options such as CONTROLJOB and CREATEDB;
 * - `SHOW CLUSTER SETTING enterprise.license`: admins, or MODIFYCLUSTERSETTING / VIEWCLUSTERSETTING
 *   (system privilege or role option) (pkg/sql/delegate/show_cluster_settings.go; show_cluster_setting.go).
 * `SHOW SYSTEM GRANTS [FOR u]` is in privileges.ts.
 */
import type { Session } from './engine-state.js';
import type { EngineInternals } from './internals.js';
import type { QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import { parseIdent, resolveValue, splitList, VALUE } from './sqltext.js';

const DATABASE_PRIVILEGES = ['ALL', 'BACKUP', 'CONNECT', 'CREATE', 'DROP', 'RESTORE', 'ZONECONFIG'];

export class PrivilegeViews {
  constructor(private readonly e: EngineInternals) {}

  run(s: Session, sql: string, params: readonly (string | null)[]): QueryResult | undefined {
    let m: RegExpExecArray | null;
    if ((m = /^SHOW\s+GRANTS\s+ON\s+DATABASE\s+(.+?)(?:\s+FOR\s+(.+))?$/is.exec(sql)))
      return this.showDatabaseGrants(m[1]!, m[2]);
    if (/^SHOW\s+(ROLES|USERS)$/i.test(sql)) return this.showRoles();
    if (
      (m = new RegExp(
        `^SELECT\\s+has_database_privilege\\(\\s*(${VALUE})\\s*,\\s*(${VALUE})\\s*,\\s*(${VALUE})\\s*\\)(?:\\s+AS\\s+(\\w+))?$`,
        'i',
      ).exec(sql))
    ) {
      return this.hasDatabasePrivilege(
        resolveValue(m[1]!, params) ?? '',
        resolveValue(m[2]!, params) ?? '',
        resolveValue(m[3]!, params) ?? '',
        m[4],
      );
    }
    if ((m = /^SHOW\s+CLUSTER\s+SETTING\s+([\w.]+)$/i.exec(sql)))
      return this.showSetting(s, m[1]!.toLowerCase());
    return undefined;
  }

  private showDatabaseGrants(dbText: string, forText: string | undefined): QueryResult {
    const dbs = splitList(dbText).map(parseIdent);
    for (const d of dbs)
      if (!this.e.databases.has(d)) throw new SqlError('3D000', `database "${d}" does not exist`);
    const only = forText ? new Set(splitList(forText).map(parseIdent)) : undefined;
    const rows: (string | null)[][] = [];
    for (const d of dbs) {
      // The owner and the admin role hold ALL with grant option; public may CONNECT.
      const entries: [string, string, boolean][] = [
        ['admin', 'ALL', true],
        ['public', 'CONNECT', false],
        ['root', 'ALL', true],
      ];
      const owner = this.e.catalog.owner(d);
      if (owner !== 'root') entries.push([owner, 'ALL', true]);
      for (const u of this.e.users.keys()) {
        for (const p of this.e.catalog.databasePrivileges(d, u)) entries.push([u, p, false]);
        for (const p of this.e.users.get(u)!.databases.get(d) ?? []) entries.push([u, p, false]);
      }
      for (const [grantee, p, g] of entries.sort((a, b) => (a[0] + a[1] < b[0] + b[1] ? -1 : 1))) {
        if (only && !only.has(grantee)) continue;
        rows.push([d, grantee, p, g ? 't' : 'f']);
      }
    }
    return {
      fields: [
        { name: 'database_name', typeOid: Oid.text },
        { name: 'grantee', typeOid: Oid.text },
        { name: 'privilege_type', typeOid: Oid.text },
        { name: 'is_grantable', typeOid: Oid.bool },
      ],
      rows,
      tag: `SHOW ${rows.length}`,
    };
  }

  /**
   * `SHOW ROLES` (pkg/sql/delegate/show_roles.go): `options` is `array_agg(option …)`, a STRING[]
   * such as `{CONTROLJOB,CREATEDB}`; 22.2 aggregated it into one comma-separated STRING (the docs'
   * examples of that era print `NOLOGIN` without braces). The boundary (23.1) is this module's
   * reading, to be confirmed by the integration transcript. `estimated_last_login_time` appears
   * after 25.2 and is not modelled. Admins are members of `admin`.
   */
  private showRoles(): QueryResult {
    const array = this.e.profile.major >= 23;
    const rows = [...this.e.users.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((u) => {
        const opts = [...u.roleOptions].sort();
        return [u.name, array ? `{${opts.join(',')}}` : opts.join(', '), u.admin ? '{admin}' : '{}'];
      });
    return {
      fields: [
        { name: 'username', typeOid: Oid.text },
        { name: 'options', typeOid: array ? Oid.textArray : Oid.text },
        { name: 'member_of', typeOid: Oid.textArray },
      ],
      rows,
      tag: `SHOW ${rows.length}`,
    };
  }

  /** has_database_privilege: unknown privilege → 22023; unknown database → 3D000; admins hold all. */
  private hasDatabasePrivilege(
    user: string,
    db: string,
    privText: string,
    alias: string | undefined,
  ): QueryResult {
    const u = this.e.users.get(user);
    if (!u) throw new SqlError('42704', `role "${user}" does not exist`);
    if (!this.e.databases.has(db)) throw new SqlError('3D000', `database "${db}" does not exist`);
    const privs = privText.split(',').map((p) =>
      p
        .trim()
        .toUpperCase()
        .replace(/\s+WITH\s+GRANT\s+OPTION$/, ''),
    );
    for (const p of privs)
      if (!DATABASE_PRIVILEGES.includes(p) && p !== 'TEMPORARY' && p !== 'TEMP')
        throw new SqlError('22023', `unrecognized privilege type: "${p.toLowerCase()}"`);
    const held = new Set([...this.e.catalog.databasePrivileges(db, user), ...(u.databases.get(db) ?? [])]);
    const all = u.admin || this.e.catalog.owner(db) === user || held.has('ALL');
    const ok = privs.some((p) => all || held.has(p) || p === 'CONNECT');
    return {
      fields: [{ name: alias ?? 'has_database_privilege', typeOid: Oid.bool }],
      rows: [[ok ? 't' : 'f']],
      tag: 'SELECT 1',
    };
  }

  /** Non-admins need MODIFYCLUSTERSETTING or VIEWCLUSTERSETTING (system privilege or role option). */
  private showSetting(s: Session, name: string): QueryResult {
    const user = s.info.user;
    const u = this.e.users.get(user);
    const may =
      this.e.isAdmin(user) ||
      ['MODIFYCLUSTERSETTING', 'VIEWCLUSTERSETTING'].some(
        (p) => this.e.hasSystem(user, p) || u?.roleOptions.has(p),
      );
    if (!may) {
      throw new SqlError(
        '42501',
        `only users with either MODIFYCLUSTERSETTING or VIEWCLUSTERSETTING privileges are allowed to show cluster setting '${name}'`,
      );
    }
    if (name !== 'enterprise.license') throw new SqlError('42704', `unknown setting: "${name}"`);
    const value = this.e.license() ? 'crl-0-ChBbKy8rVGVzdCBMaWNlbnNlEAAYASADKAI' : '';
    return { fields: [{ name, typeOid: Oid.text }], rows: [[value]], tag: 'SHOW 1' };
  }
}
