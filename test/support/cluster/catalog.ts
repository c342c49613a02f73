/**
 * The test cluster's catalog beyond database names: the tables of each database (which a backup
 * records and a restore re-creates), database owners and database grants, and the statements that
 * read or change them: DROP DATABASE, SHOW DATABASES and `pg_database`.
 */
import type { ManifestDatabase, ManifestTable } from './jobs.js';
import type { QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import { parseIdent, resolveValue, VALUE } from './sqltext.js';

export interface CatalogDatabase {
  name: string;
  owner: string;
  tables: ManifestTable[];
}

/** `SHOW DATABASES` columns (show_databases.go delegate: crdb_internal.databases joined to regions). */
const SHOW_DATABASES_COLUMNS = [
  'database_name',
  'owner',
  'primary_region',
  'secondary_region',
  'regions',
  'survival_goal',
];

export class Catalog {
  private readonly owners = new Map<string, string>();
  private readonly tableDefs = new Map<string, ManifestTable[]>();
  /** Databases a running RESTORE has created OFFLINE, with the reason (`restoring`). */
  private readonly offline = new Map<string, string>();
  /** database → user → privileges granted on it (GRANT … ON DATABASE). */
  private readonly grants = new Map<string, Map<string, Set<string>>>();

  constructor(private readonly names: Set<string>) {}

  // ---- controls and accessors for tests ------------------------------------------------------------

  /** The tables of a database, as `BACKUP` records them and `RESTORE` re-creates them. */
  setTables(database: string, tables: { name: string; schema?: string; rows?: number }[]): void {
    if (!this.names.has(database)) throw new Error(`no database ${database}`);
    this.tableDefs.set(
      database,
      tables.map((t) => ({ schema: t.schema ?? 'public', name: t.name, rows: t.rows ?? 0 })),
    );
  }
  tables(database: string): ManifestTable[] {
    return [...(this.tableDefs.get(database) ?? [])];
  }
  /** Databases the test cluster starts with are owned by root, as `defaultdb` and `postgres` are. */
  owner(database: string): string {
    return this.owners.get(database) ?? 'root';
  }
  setOwner(database: string, user: string): void {
    this.owners.set(database, user);
  }
  /** Every database with its owner and tables, sorted by name. */
  list(): CatalogDatabase[] {
    return [...this.names]
      .sort()
      .map((name) => ({ name, owner: this.owner(name), tables: this.tables(name) }));
  }
  grantOnDatabase(database: string, user: string, privileges: string[]): void {
    const byUser = this.grants.get(database) ?? new Map<string, Set<string>>();
    const set = byUser.get(user) ?? new Set<string>();
    for (const p of privileges) set.add(p.toUpperCase());
    byUser.set(user, set);
    this.grants.set(database, byUser);
  }
  databasePrivileges(database: string, user: string): Set<string> {
    return new Set(this.grants.get(database)?.get(user) ?? []);
  }

  // ---- for the statement modules -------------------------------------------------------------------

  /**
   * A restore job writes its databases' descriptors OFFLINE when it starts (restore_job.go
   * createImportingDescriptors): the name is taken but not listed, and any use of it fails with
   * `database "x" is offline: restoring` (55000; seen in cockroach issue #122168). The job publishes
   * them when it succeeds and drops them when it fails or is cancelled (OnFailOrCancel).
   */
  takeOffline(name: string, reason = 'restoring'): void {
    this.offline.set(name, reason);
  }
  releaseOffline(name: string): void {
    this.offline.delete(name);
  }
  /** The name exists, public or offline (what `database "x" already exists` checks). */
  taken(name: string): boolean {
    return this.names.has(name) || this.offline.has(name);
  }

  /** What a backup of these databases (all but `system` when none are named) records. */
  snapshot(databases: readonly string[]): ManifestDatabase[] {
    const names = databases.length > 0 ? databases : [...this.names].filter((d) => d !== 'system');
    return names.map((name) => ({ name, tables: this.tables(name) }));
  }
  create(name: string, owner: string, tables: ManifestTable[]): void {
    this.names.add(name);
    this.owners.set(name, owner);
    this.tableDefs.set(name, tables);
  }
  drop(name: string): void {
    this.names.delete(name);
    this.owners.delete(name);
    this.tableDefs.delete(name);
    this.grants.delete(name);
  }

  // ---- statements ----------------------------------------------------------------------------------

  /**
   * `DROP DATABASE [IF EXISTS] name [CASCADE | RESTRICT]` (pkg/sql/drop_database.go and the
   * declarative schema changer's scbuildstmt/drop_database.go, 22.2–25.x):
   * - a missing database: `database "x" does not exist` (3D000), nothing with IF EXISTS;
   * - the DROP privilege on the database (owners and admins hold every privilege):
   *   `user u does not have DROP privilege on database x` (42501);
   * - CASCADE is the default: a non-empty database is dropped without it, unless
   *   `sql_safe_updates` is on (`rejected (sql_safe_updates = true): DROP DATABASE on non-empty
   *   database without explicit CASCADE`, 01000); RESTRICT refuses a non-empty database:
   *   `database "x" is not empty and RESTRICT was specified` (2BP01).
   */
  dropDatabase(
    user: string,
    isAdmin: boolean,
    currentDatabase: string,
    safeUpdates: boolean,
    sql: string,
    params: readonly (string | null)[],
  ): QueryResult | undefined {
    const m = new RegExp(
      `^DROP\\s+DATABASE\\s+(IF\\s+EXISTS\\s+)?("(?:[^"]|"")*"|[A-Za-z_][\\w$]*|${VALUE})(?:\\s+(CASCADE|RESTRICT))?$`,
      'i',
    ).exec(sql);
    if (!m) return undefined;
    const raw = m[2]!;
    // A placeholder is not a name: CockroachDB's grammar takes only an identifier here (sql.y).
    if (raw.startsWith('$') || raw.startsWith("'"))
      throw new SqlError('42601', `at or near "${resolveValue(raw, params) ?? ''}": syntax error`);
    const name = parseIdent(raw);
    const offline = this.offline.get(name);
    if (offline !== undefined) throw new SqlError('55000', `database "${name}" is offline: ${offline}`);
    if (!this.names.has(name)) {
      if (m[1]) return { fields: null, rows: [], tag: 'DROP DATABASE' };
      throw new SqlError('3D000', `database "${name}" does not exist`);
    }
    if (!isAdmin && this.owner(name) !== user && !this.databasePrivileges(name, user).has('DROP')) {
      throw new SqlError('42501', `user ${user} does not have DROP privilege on database ${name}`);
    }
    const behaviour = m[3]?.toUpperCase();
    if (safeUpdates && name === currentDatabase) {
      throw new SqlError('01000', 'rejected (sql_safe_updates = true): DROP DATABASE on current database');
    }
    if (this.tables(name).length > 0 && behaviour !== 'CASCADE') {
      if (behaviour === 'RESTRICT')
        throw new SqlError('2BP01', `database "${name}" is not empty and RESTRICT was specified`);
      if (safeUpdates)
        throw new SqlError(
          '01000',
          'rejected (sql_safe_updates = true): DROP DATABASE on non-empty database without explicit CASCADE',
        );
    }
    this.drop(name);
    return { fields: null, rows: [], tag: 'DROP DATABASE' };
  }

  /**
   * `SHOW DATABASES`, `SELECT … FROM [SHOW DATABASES] [WHERE database_name = …]` and
   * `SELECT datname FROM pg_database [WHERE datname = …]` (pg_catalog, the same on every version).
   */
  showDatabases(sql: string, params: readonly (string | null)[]): QueryResult | undefined {
    if (/^SHOW\s+DATABASES$/i.test(sql)) return this.databaseRows(['*'], undefined);
    const m = new RegExp(
      `^SELECT\\s+(.+?)\\s+FROM\\s+(\\[SHOW\\s+DATABASES\\]|pg_catalog\\.pg_database|pg_database)(?:\\s+WHERE\\s+(\\w+)\\s*=\\s*(${VALUE}))?$`,
      'is',
    ).exec(sql);
    if (!m) return undefined;
    const columns = m[1]!.split(',').map((c) => c.trim().toLowerCase());
    const pg = !/SHOW/i.test(m[2]!);
    const filter = m[3] ? { column: m[3].toLowerCase(), value: resolveValue(m[4]!, params) } : undefined;
    if (!pg) return this.databaseRows(columns, filter);
    const defs: Record<string, (d: CatalogDatabase) => string> = {
      datname: (d) => d.name,
      oid: (d) => String(100 + [...this.names].sort().indexOf(d.name)),
    };
    return this.rows(defs, columns, filter);
  }

  private databaseRows(
    columns: string[],
    filter: { column: string; value: string | null } | undefined,
  ): QueryResult {
    const defs: Record<string, (d: CatalogDatabase) => string | null> = {
      database_name: (d) => d.name,
      owner: (d) => d.owner,
      primary_region: () => null,
      secondary_region: () => null,
      regions: () => '{}',
      survival_goal: () => null,
    };
    const wanted = columns.length === 1 && columns[0] === '*' ? SHOW_DATABASES_COLUMNS : columns;
    return this.rows(defs, wanted, filter);
  }

  private rows(
    defs: Record<string, (d: CatalogDatabase) => string | null>,
    columns: string[],
    filter: { column: string; value: string | null } | undefined,
  ): QueryResult {
    for (const c of [...columns, ...(filter ? [filter.column] : [])])
      if (!defs[c]) throw new SqlError('42703', `column "${c}" does not exist`);
    const list = this.list().filter((d) => !filter || defs[filter.column]!(d) === filter.value);
    return {
      fields: columns.map((name) => ({ name, typeOid: name === 'oid' ? 26 : Oid.text })),
      rows: list.map((d) => columns.map((c) => defs[c]!(d))),
      tag: `SELECT ${list.length}`,
    };
  }
}
