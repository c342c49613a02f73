/**
 * The CockroachDB statement engine of the test cluster: the backup and jobs
 * statements of the references, per version profile, with users and
 * privileges, real jobs, counters and controls for tests.
 */
import type { Profile } from './profiles.js';
import { controlJobAsSystemPrivilege, versionString } from './profiles.js';
import type { Engine, Field, Notice, QueryResult, SessionInfo, UserRecord } from './protocol-types.js';
import { DropConnection, Oid, SqlError } from './protocol-types.js';
import { sessionDefaults } from './startup.js';
import type { ManifestDatabase, S3Destination } from './jobs.js';
import { JobStorage, parseDestination, passphraseHash, runBackup, sanitizeUri } from './jobs.js';
import {
  BARE_TARGETS,
  formatIdent,
  formatTs,
  fullSubdirOf,
  likeToRegExp,
  nowMicros,
  parseIdent,
  parseInterval,
  parseTimestamp,
  quoteLiteral,
  resolveValue,
  splitList,
  splitQualified,
  syntaxError,
  VALUE,
} from './sqltext.js';
import { Catalog } from './catalog.js';
import type { EngineInternals } from './internals.js';
import { Statements } from './statements.js';

export interface TestUser {
  name: string;
  password?: string;
  admin?: boolean;
  systemPrivileges?: string[];
  roleOptions?: string[];
}

export interface User {
  name: string;
  password?: string;
  admin: boolean;
  system: Map<string, boolean>; // privilege → grantable
  roleOptions: Set<string>;
  databases: Map<string, Set<string>>;
}

export interface Job {
  id: string;
  type: 'BACKUP' | 'RESTORE';
  status: string;
  description: string;
  statement: string;
  user: string;
  created: bigint;
  started?: bigint;
  finished?: bigint;
  modified: bigint;
  fraction: number;
  error: string;
  /** The destination as submitted (raw, with credentials). */
  uri: string;
  done: Promise<void>;
  control: { paused: boolean; cancelled: boolean; resume?: () => void };
}

export interface JobSnapshot {
  id: string;
  type: Job['type'];
  status: string;
  description: string;
  user: string;
  created: Date;
  finished?: Date;
  fractionCompleted: number;
  error: string;
  uri: string;
}

export interface StatementLogEntry {
  sessionId: number;
  user: string;
  applicationName: string;
  sql: string;
  params: (string | null)[];
  at: number;
  /** Job-table reads this statement made (each WHEN COMPLETE re-check counts), and job rows they scanned. */
  jobReads: number;
  jobRowsScanned: number;
}

export interface EngineOptions {
  profile: Profile;
  version?: string;
  users: TestUser[];
  databases: string[];
  license: boolean;
  jobDurationMs: number;
  whenCompleteRecheckMs: number;
  sessionLingerMs: number;
}

export interface Session {
  info: SessionInfo;
  vars: Map<string, string>;
  inTxn: boolean;
  started: bigint;
  current?: StatementLogEntry;
  closedAt?: number;
  /** Parameter type OIDs the client declared in Parse for the running statement (0 = undeclared). */
  paramTypes?: readonly number[];
}

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'revert-failed']);
/** The cluster id in licence errors. */
const CLUSTER_ID = '3c9a4b2e-0000-4000-8000-000000000001';

export class CockroachEngine implements Engine {
  readonly profile: Profile;
  readonly version: string;
  readonly users = new Map<string, User>();
  readonly databases = new Set<string>();
  readonly externalConnections = new Map<string, string>();
  /** Tables, owners and database grants (catalog.ts); `databases` stays the set of names. */
  readonly catalog: Catalog;
  /** RESTORE, DROP DATABASE, CHECK EXTERNAL CONNECTION, privilege views … (statements.ts). */
  readonly more: Statements;
  /** External connection name → users holding USAGE on it. */
  private readonly connectionUsage = new Map<string, Set<string>>();
  readonly jobs: Job[] = [];
  readonly statementLog: StatementLogEntry[] = [];
  readonly counters = { statements: 0, jobTableReads: 0, jobRowsScanned: 0 };
  private readonly sessions = new Map<number, Session>();
  private license: boolean;
  private jobDurationMs: number;
  private jobDurationJitterMs = 0;
  private progressMinIntervalMs = 15_000;
  private backupReadMsPerFile = 2;
  private readonly recheckMs: number;
  private sessionLingerMs: number;
  private nextJobId = 1012345678901234567n + BigInt(Math.floor(Math.random() * 1e6)) * 1000n;
  private loseNextAnswer: { lingerMs: number } | undefined;
  private dropNextBackupBeforeJob: { lingerMs: number } | undefined;
  private leakUri = false;
  private closed = false;

  constructor(opts: EngineOptions) {
    this.profile = opts.profile;
    this.version = opts.version ?? versionString(opts.profile);
    this.license = opts.license;
    this.jobDurationMs = opts.jobDurationMs;
    this.recheckMs = opts.whenCompleteRecheckMs;
    this.sessionLingerMs = opts.sessionLingerMs;
    for (const d of opts.databases) this.databases.add(d);
    for (const u of opts.users) this.addUser(u);
    this.catalog = new Catalog(this.databases);
    this.more = new Statements(this.internals());
  }

  /** What the statement modules may use of the engine's state (internals.ts). */
  private internals(): EngineInternals {
    return {
      profile: this.profile,
      databases: this.databases,
      catalog: this.catalog,
      jobs: this.jobs,
      users: this.users,
      externalConnections: this.externalConnections,
      connectionUsage: this.connectionUsage,
      isAdmin: (u) => this.isAdmin(u),
      hasSystem: (u, p) => this.hasSystem(u, p),
      createJob: (u, d, st, uri) => this.createJob(u, d, st, uri),
      finish: (j, st, e) => this.finish(j, st, e),
      gate: (j) => this.gate(j),
      waitBlocking: (s, j, a) => this.waitBlocking(s, j, a),
      evalAsOf: (t, p) => this.evalAsOf(t, p),
      storage: (s, uri) => this.destinationFor(s, uri),
      showBackup: (s, sub, uri, w, p) => this.showBackup(s, sub, uri, w, p),
      jobDurationMs: () => this.jobDurationMs,
      license: () => this.license,
      closed: () => this.closed,
    };
  }

  // ---- controls for tests --------------------------------------------------------------------------

  addUser(u: TestUser): void {
    this.users.set(u.name, {
      name: u.name,
      ...(u.password !== undefined ? { password: u.password } : {}),
      admin: u.admin ?? false,
      system: new Map((u.systemPrivileges ?? []).map((p) => [p.toUpperCase(), false])),
      roleOptions: new Set((u.roleOptions ?? []).map((o) => o.toUpperCase())),
      databases: new Map(),
    });
  }
  addDatabase(name: string): void {
    this.databases.add(name);
  }
  setLicense(on: boolean): void {
    this.license = on;
  }
  /**
   * How long SHOW BACKUP(S) takes per file it reads: every layer's manifest, and with check_files
   * every file of every layer (show-backup.md: check_files "validates that all files belonging to a
   * backup are in the expected location in storage"; on a real cluster it sizes each one).
   */
  setBackupReadDelay(msPerFile: number): void {
    this.backupReadMsPerFile = msPerFile;
  }
  /**
   * `coarse` (the default): fraction_completed moves as on a real cluster, in steps of at least 5 %
   * at most every 15 s. `smooth`: every 5 % step at once, for tests that watch progress in short jobs.
   */
  setProgressModel(model: 'coarse' | 'smooth'): void {
    this.progressMinIntervalMs = model === 'coarse' ? 15_000 : 0;
  }
  /** Jobs run this long; with jitter, each job adds a random 0..jitterMs, so job ends do not line up with re-checks. */
  setJobDuration(ms: number, jitterMs = 0): void {
    this.jobDurationMs = ms;
    this.jobDurationJitterMs = jitterMs;
  }
  /**
   * Fault: startup parameters with these names are ignored, as behind a connection pooler that does
   * not forward them (PgBouncer without application_name tracking): the session keeps the default.
   */
  ignoreStartupParams(names: readonly string[]): void {
    this.ignoredStartupParams = new Set(names);
  }
  private ignoredStartupParams = new Set<string>();
  private startupFilter(params: ReadonlyMap<string, string>): Map<string, string> {
    return new Map([...params].filter(([k]) => !this.ignoredStartupParams.has(k)));
  }
  setSessionLinger(ms: number): void {
    this.sessionLingerMs = ms;
  }
  /**
   * While on, full backup jobs fail as CockroachDB's destination resolution does when the planned
   * directory already holds a manifest: `A full backup already exists in <uri>. … IN '<uri>'`, with
   * the raw URI and its credentials (reference §4.4), the one job error that is not sanitized.
   */
  leakUriInErrors(on: boolean): void {
    this.leakUri = on;
  }
  /** The next BACKUP creates its job, then the connection drops before the answer; its session lingers. */
  loseNextBackupAnswer(opts: { lingerMs: number }): void {
    this.loseNextAnswer = opts;
  }
  /** The next BACKUP arrives, then the connection drops before any job is created; its session lingers. */
  loseNextBackupBeforeJob(opts: { lingerMs: number }): void {
    this.dropNextBackupBeforeJob = opts;
  }
  /**
   * The job fails and so does its revert (OnFailOrCancel): running → reverting,
   * then after `revertMs` the terminal revert-failed, with `message` as its error.
   */
  failJobDuringRevert(id: string, message: string, opts: { revertMs?: number } = {}): void {
    const job = this.job(id);
    if (TERMINAL.has(job.status)) return;
    job.control.cancelled = true;
    job.control.resume?.();
    this.setStatus(job, 'reverting');
    setTimeout(() => this.finish(job, 'revert-failed', message), opts.revertMs ?? 100).unref();
  }
  /**
   * PAUSE JOB whose pause takes a while: pause-requested for `requestedForMs`, then paused (unless
   * resumed). CockroachDB moves a job from pause-requested to paused only when its resumer notices
   * (pkg/jobs/registry.go, the adoption loop's processClaimedJobs / servePauseAndCancelRequests).
   */
  pauseJobSlowly(id: string, opts: { requestedForMs: number }): void {
    const job = this.job(id);
    if (TERMINAL.has(job.status)) return;
    job.control.paused = true;
    this.setStatus(job, 'pause-requested');
    setTimeout(() => {
      if (job.control.paused && job.status === 'pause-requested') this.setStatus(job, 'paused');
    }, opts.requestedForMs).unref();
  }
  failJob(id: string, message: string): void {
    const job = this.job(id);
    job.control.cancelled = true;
    this.finish(job, 'failed', message);
  }
  cancelJobAsOtherUser(id: string): void {
    this.requestCancel(this.job(id));
  }
  pauseJob(id: string): void {
    const job = this.job(id);
    if (TERMINAL.has(job.status)) return;
    job.control.paused = true;
    this.setStatus(job, 'pause-requested');
    setTimeout(() => job.control.paused && !TERMINAL.has(job.status) && this.setStatus(job, 'paused'), 50);
  }
  resumeJob(id: string): void {
    const job = this.job(id);
    if (job.status !== 'paused' && job.status !== 'pause-requested') return;
    job.control.paused = false;
    this.setStatus(job, 'running');
    job.control.resume?.();
  }
  deleteJobRecord(id: string): void {
    const i = this.jobs.findIndex((j) => j.id === id);
    if (i >= 0) this.jobs.splice(i, 1);
  }
  snapshots(): JobSnapshot[] {
    const date = (m: bigint | undefined) => (m === undefined ? undefined : new Date(Number(m / 1000n)));
    return this.jobs.map((j) => ({
      id: j.id,
      type: j.type,
      status: j.status,
      description: j.description,
      user: j.user,
      created: date(j.created)!,
      ...(j.finished !== undefined ? { finished: date(j.finished)! } : {}),
      fractionCompleted: j.fraction,
      error: j.error,
      uri: j.uri,
    }));
  }
  close(): void {
    this.closed = true;
    for (const j of this.jobs) {
      j.control.cancelled = true;
      j.control.resume?.();
    }
  }

  private job(id: string): Job {
    const job = this.jobs.find((j) => j.id === id);
    if (!job) throw new Error(`no job ${id}`);
    return job;
  }

  // ---- Engine --------------------------------------------------------------------------------------

  findUser(name: string): UserRecord | undefined {
    const u = this.users.get(name);
    return u ? { name: u.name, ...(u.password !== undefined ? { password: u.password } : {}) } : undefined;
  }

  startupParameters(session: SessionInfo): Record<string, string> {
    return {
      application_name: this.sessions.get(session.id)?.vars.get('application_name') ?? '',
      client_encoding: 'UTF8',
      crdb_version: this.version,
      DateStyle: 'ISO, MDY',
      IntervalStyle: 'postgres',
      is_superuser: this.users.get(session.user)?.admin ? 'on' : 'off',
      server_version: '13.0.0',
      session_authorization: session.user,
      standard_conforming_strings: 'on',
      TimeZone: 'UTC',
      integer_datetimes: 'on',
    };
  }

  openSession(session: SessionInfo): void {
    const vars = new Map<string, string>([
      ['application_name', ''],
      ['statement_timeout', '0'],
      ['timezone', 'UTC'],
      ['intervalstyle', 'postgres'],
      ...sessionDefaults(this.startupFilter(session.startupParams)),
    ]);
    this.sessions.set(session.id, { info: session, vars, inTxn: false, started: nowMicros() });
  }

  closeSession(session: SessionInfo): void {
    const s = this.sessions.get(session.id);
    if (!s) return;
    s.closedAt = Date.now();
    const linger = Number(s.vars.get('__linger') ?? this.sessionLingerMs);
    if (linger <= 0) this.sessions.delete(session.id);
    else setTimeout(() => this.sessions.delete(session.id), linger).unref();
  }

  /**
   * `paramTypes` are the OIDs the client declared in Parse (optional: the wire
   * layer may not pass them; undeclared placeholders are then typed from context).
   */
  async execute(
    info: SessionInfo,
    rawSql: string,
    params: readonly (string | null)[],
    paramTypes?: readonly number[],
  ): Promise<QueryResult> {
    const sql = rawSql.trim().replace(/;\s*$/, '');
    const session = this.sessions.get(info.id);
    if (!session) throw new SqlError('08003', 'session is closed');
    session.paramTypes = paramTypes ?? [];
    this.counters.statements++;
    const entry: StatementLogEntry = {
      sessionId: info.id,
      user: info.user,
      applicationName: session.vars.get('application_name') ?? '',
      sql,
      params: [...params],
      at: Date.now(),
      jobReads: 0,
      jobRowsScanned: 0,
    };
    this.statementLog.push(entry);
    session.current = entry;
    const started = Date.now();
    const work = this.dispatch(session, sql, params, started);
    return withStatementTimeout(work, this.statementDeadline(session, started) - started);
  }

  private async dispatch(
    s: Session,
    sql: string,
    params: readonly (string | null)[],
    arrived: number,
  ): Promise<QueryResult> {
    let m: RegExpExecArray | null;
    if ((m = /^SELECT\s+version\(\)(?:\s+AS\s+(\w+))?$/i.exec(sql)))
      return single(m[1] ?? 'version', Oid.text, this.version);
    if (/^SHOW\s+crdb_version$/i.test(sql)) return single('crdb_version', Oid.text, this.version);
    if ((m = /^SELECT\s+crdb_internal\.is_admin\(\)(?:\s+AS\s+(\w+))?$/i.exec(sql))) {
      return single(m[1] ?? 'crdb_internal.is_admin', Oid.bool, this.isAdmin(s.info.user) ? 't' : 'f');
    }
    if ((m = /^SELECT\s+now\(\)(::STRING)?(?:\s+AS\s+(\w+))?$/i.exec(sql))) {
      return single(m[2] ?? 'now', m[1] ? Oid.text : Oid.timestamptz, formatTs(nowMicros(), true));
    }
    if ((m = /^SELECT\s+cluster_logical_timestamp\(\)(?:\s+AS\s+(\w+))?$/i.exec(sql))) {
      return single(m[1] ?? 'cluster_logical_timestamp', Oid.numeric, `${nowMicros() * 1000n}.0000000000`);
    }
    if ((m = /^SET\s+(?:SESSION\s+)?(\w+)\s*(?:=|\s+TO\s+)\s*(.+)$/i.exec(sql)))
      return this.setVar(s, m[1]!.toLowerCase(), m[2]!, params);
    const more = await this.more.dispatch(s, sql, params, arrived);
    if (more) return more;
    if (/^(BEGIN|START\s+TRANSACTION)$/i.test(sql)) {
      s.inTxn = true;
      return tagOnly('BEGIN');
    }
    if (/^(COMMIT|ROLLBACK|END)$/i.test(sql)) {
      s.inTxn = false;
      return tagOnly(/^ROLLBACK/i.test(sql) ? 'ROLLBACK' : 'COMMIT');
    }
    if (/^(GRANT|REVOKE)\s+SYSTEM\s/i.test(sql)) return this.grantSystem(s, sql);
    if (/^GRANT\s+BACKUP\s+ON\s+DATABASE\s/i.test(sql)) return this.grantDatabase(s, sql);
    if (/^(GRANT|REVOKE)\s+USAGE\s+ON\s+EXTERNAL\s+CONNECTION\s/i.test(sql))
      return this.grantConnectionUsage(s, sql);
    if ((m = /^ALTER\s+(?:ROLE|USER)\s+("(?:[^"]|"")*"|\w+)\s+(?:WITH\s+)?(NO)?CONTROLJOB$/i.exec(sql)))
      return this.roleOption(s, m[1]!, !m[2]);
    if ((m = /^SHOW\s+SYSTEM\s+GRANTS(?:\s+FOR\s+(.+))?$/i.exec(sql))) return this.showSystemGrants(m[1]);
    if (/^BACKUP\s/i.test(sql)) return this.backup(s, sql, params, arrived);
    if ((m = /^SHOW\s+JOBS\s+WHEN\s+COMPLETE\s+(SELECT\s.+)$/is.exec(sql))) {
      const ids = this.select(s, m[1]!, params).rows.map((r) => r[0] ?? '');
      return this.whenComplete(s, ids, arrived);
    }
    if ((m = new RegExp(`^SHOW\\s+JOB\\s+WHEN\\s+COMPLETE\\s+(${VALUE})$`, 'i').exec(sql))) {
      return this.whenComplete(s, [resolveValue(m[1]!, params) ?? ''], arrived);
    }
    if ((m = new RegExp(`^SHOW\\s+JOB\\s+(${VALUE})$`, 'i').exec(sql)))
      return this.selectJobs(s, 'show-job', ['*'], [this.idFilter(resolveValue(m[1]!, params))], params);
    if (/^SHOW\s+JOBS$/i.test(sql)) return this.selectJobs(s, 'show-jobs', ['*'], [], params);
    if (/^SELECT\s/i.test(sql)) return this.select(s, sql, params);
    if ((m = new RegExp(`^(CANCEL|PAUSE|RESUME)\\s+JOB\\s+(${VALUE})$`, 'i').exec(sql))) {
      return this.controlJob(s, m[1]!.toUpperCase(), resolveValue(m[2]!, params) ?? '');
    }
    if ((m = new RegExp(`^SHOW\\s+BACKUPS\\s+IN\\s+(${VALUE})$`, 'i').exec(sql)))
      return this.showBackups(s, resolveValue(m[1]!, params) ?? '');
    if (
      (m = new RegExp(
        `^SHOW\\s+BACKUP\\s+FROM\\s+(LATEST|${VALUE})\\s+IN\\s+(${VALUE})(?:\\s+WITH\\s+(.+))?$`,
        'i',
      ).exec(sql))
    ) {
      return this.showBackup(s, m[1]!, resolveValue(m[2]!, params) ?? '', m[3], params);
    }
    if ((m = new RegExp(`^CREATE\\s+EXTERNAL\\s+CONNECTION\\s+(\\w+)\\s+AS\\s+(${VALUE})$`, 'i').exec(sql))) {
      return this.createExternalConnection(s, m[1]!.toLowerCase(), resolveValue(m[2]!, params) ?? '');
    }
    if ((m = /^SHOW\s+(\w+)$/i.exec(sql))) {
      const v = s.vars.get(m[1]!.toLowerCase());
      if (v !== undefined) return single(m[1]!.toLowerCase(), Oid.text, v);
    }
    throw syntaxError(sql);
  }

  // ---- session variables ---------------------------------------------------------------------------

  private setVar(s: Session, name: string, raw: string, params: readonly (string | null)[]): QueryResult {
    const value = resolveValue(raw.trim(), params) ?? '';
    if (name === 'statement_timeout') {
      const ms = /^\d+$/.test(value) ? Number(value) : intervalMs(value);
      if (ms === undefined)
        throw new SqlError('22023', `invalid value for parameter "statement_timeout": "${value}"`);
      s.vars.set(name, String(ms));
    } else {
      s.vars.set(name, value);
    }
    return tagOnly('SET');
  }

  private statementDeadline(s: Session, arrived: number): number {
    const ms = Number(s.vars.get('statement_timeout') ?? '0');
    return ms > 0 ? arrived + ms : Number.POSITIVE_INFINITY;
  }

  // ---- privileges ----------------------------------------------------------------------------------

  private isAdmin(user: string): boolean {
    return this.users.get(user)?.admin ?? false;
  }
  private hasSystem(user: string, priv: string): boolean {
    return this.isAdmin(user) || (this.users.get(user)?.system.has(priv) ?? false);
  }

  private roleFor(text: string): User {
    const name = parseIdent(text);
    const user = this.users.get(name);
    if (!user) {
      const old = this.profile.name === '22.2' && this.profile.patch < 3;
      throw old
        ? new SqlError('XXUUU', `user or role ${name} does not exist`)
        : new SqlError('42704', `role/user "${name}" does not exist`);
    }
    return user;
  }

  private grantSystem(s: Session, sql: string): QueryResult {
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
    if (this.profile.major >= 23) known.push('VIEWJOB');
    if (controlJobAsSystemPrivilege(this.profile)) known.push('CONTROLJOB');
    for (const p of privs) {
      if (!known.includes(p)) throw new SqlError('42601', `invalid privilege type ${p} for global`);
    }
    const targets = splitList(m[4]!).map((r) => this.roleFor(r));
    const grantor = this.users.get(s.info.user)!;
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

  private grantDatabase(s: Session, sql: string): QueryResult {
    const m = /^GRANT\s+BACKUP\s+ON\s+DATABASE\s+(.+?)\s+TO\s+(.+)$/i.exec(sql);
    if (!m) throw syntaxError(sql);
    if (!this.isAdmin(s.info.user))
      throw new SqlError('01007', `user ${s.info.user} missing WITH GRANT OPTION privilege on BACKUP`);
    const dbs = splitList(m[1]!).map(parseIdent);
    for (const d of dbs)
      if (!this.databases.has(d)) throw new SqlError('3D000', `database "${d}" does not exist`);
    for (const t of splitList(m[2]!).map((r) => this.roleFor(r))) {
      for (const d of dbs) {
        const set = t.databases.get(d) ?? new Set<string>();
        set.add('BACKUP');
        t.databases.set(d, set);
      }
    }
    return tagOnly('GRANT');
  }

  /** `GRANT USAGE ON EXTERNAL CONNECTION c TO r` / `REVOKE … FROM r` (reference §6). */
  private grantConnectionUsage(s: Session, sql: string): QueryResult {
    const m =
      /^(GRANT|REVOKE)\s+USAGE\s+ON\s+EXTERNAL\s+CONNECTION\s+(.+?)\s+(TO|FROM)\s+(.+?)(\s+WITH\s+GRANT\s+OPTION)?$/i.exec(
        sql,
      );
    if (!m || (m[1]!.toUpperCase() === 'GRANT') !== (m[3]!.toUpperCase() === 'TO')) throw syntaxError(sql);
    const grant = m[1]!.toUpperCase() === 'GRANT';
    const names = splitList(m[2]!).map(parseIdent);
    for (const n of names) {
      if (!this.externalConnections.has(n))
        throw new SqlError('42704', `external connection with name ${n} does not exist`);
    }
    const roles = splitList(m[4]!).map((r) => this.roleFor(r));
    if (!this.isAdmin(s.info.user)) {
      for (const n of names) {
        if (!this.connectionUsage.get(n)?.has(s.info.user))
          throw new SqlError('01007', `user ${s.info.user} missing WITH GRANT OPTION privilege on USAGE`);
      }
    }
    for (const n of names) {
      const users = this.connectionUsage.get(n) ?? new Set<string>();
      for (const r of roles) {
        if (grant) users.add(r.name);
        else users.delete(r.name);
      }
      this.connectionUsage.set(n, users);
    }
    return tagOnly(grant ? 'GRANT' : 'REVOKE');
  }

  /** Non-admins need USAGE on an external connection, checked at statement time (reference §6, resolved §7). */
  private checkConnectionUsage(user: string, uri: string): void {
    if (this.isAdmin(user) || !/^external:\/\//i.test(uri)) return;
    let name: string;
    try {
      name = new URL(uri).hostname;
    } catch {
      return;
    }
    if (!this.connectionUsage.get(name)?.has(user))
      throw new SqlError(
        '42501',
        `user ${user} does not have USAGE privilege on external_connection ${name}`,
      );
  }

  private roleOption(s: Session, role: string, on: boolean): QueryResult {
    if (!this.isAdmin(s.info.user))
      throw new SqlError('42501', `user ${s.info.user} does not have CREATEROLE privilege`);
    const u = this.roleFor(role);
    if (on) u.roleOptions.add('CONTROLJOB');
    else u.roleOptions.delete('CONTROLJOB');
    return tagOnly('ALTER ROLE');
  }

  private showSystemGrants(forText: string | undefined): QueryResult {
    const users = forText ? splitList(forText).map((r) => this.roleFor(r)) : [...this.users.values()];
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
  private checkBackupPrivileges(
    user: string,
    databases: string[],
    dest: S3Destination | undefined,
    uri: string,
    tables: string[] = [],
  ): void {
    if (this.isAdmin(user)) return;
    if (databases.length === 0 && tables.length === 0 && !this.hasSystem(user, 'BACKUP')) {
      throw new SqlError(
        '42501',
        `only users with the admin role or the BACKUP system privilege are allowed to perform full cluster backups: user ${user} does not have BACKUP system privilege`,
      );
    }
    for (const d of databases) {
      const ok = this.hasSystem(user, 'BACKUP') || this.users.get(user)?.databases.get(d)?.has('BACKUP');
      if (!ok) throw new SqlError('42501', `user ${user} does not have BACKUP privilege on database ${d}`);
    }
    for (const t of tables) {
      // Table privileges are not modelled: the BACKUP system privilege stands in for them.
      if (!this.hasSystem(user, 'BACKUP'))
        throw new SqlError(
          '42501',
          `user ${user} does not have BACKUP privilege on relation ${t.split('.').pop()}`,
        );
    }
    if (uri.startsWith('external://')) return this.checkConnectionUsage(user, uri);
    const implicit = dest?.params.get('AUTH') === 'implicit' || dest?.params.has('AWS_ENDPOINT');
    if (implicit && !this.hasSystem(user, 'EXTERNALIOIMPLICITACCESS')) {
      throw new SqlError(
        '42501',
        'only users with the admin role or the EXTERNALIOIMPLICITACCESS system privilege are allowed to access the specified s3 URI',
      );
    }
  }

  // ---- BACKUP --------------------------------------------------------------------------------------

  private async backup(
    s: Session,
    sql: string,
    params: readonly (string | null)[],
    arrived: number,
  ): Promise<QueryResult> {
    const dropBeforeJob = this.dropNextBackupBeforeJob;
    if (dropBeforeJob) {
      this.dropNextBackupBeforeJob = undefined;
      s.vars.set('__linger', String(dropBeforeJob.lingerMs));
      throw new DropConnection('connection lost after BACKUP arrived, before its job was created');
    }
    const targets = `(?:(DATABASE|TABLE)\\s+(.+?)\\s+|(${BARE_TARGETS})\\s+)?`;
    const dests = `(${VALUE}|\\((?:\\s*${VALUE}\\s*,?)+\\))`;
    const tail = `(?:\\s+AS\\s+OF\\s+SYSTEM\\s+TIME\\s+(${VALUE}))?`;
    const withOpts = `(?:\\s+WITH\\s+(?:OPTIONS\\s*\\((.*)\\)|(.*)))?$`;
    const re = new RegExp(
      `^BACKUP\\s+${targets}INTO\\s+(?:(LATEST)\\s+IN\\s+|(${VALUE})\\s+IN\\s+)?${dests}${tail}${withOpts}`,
      'is',
    );
    const m = re.exec(sql);
    let legacy: RegExpExecArray | null = null;
    if (!m) {
      if (/^BACKUP\s+(?:.*?\s)?TO\s/is.test(sql)) {
        if (this.profile.major > 24 || (this.profile.major === 24 && this.profile.minor >= 3)) {
          // Removed from the grammar in 24.3 (reference §1).
          throw new SqlError(
            '42601',
            'The `BACKUP TO` syntax is no longer supported. Please use `BACKUP INTO` to create a backup collection.',
          );
        }
        legacy = new RegExp(
          `^BACKUP\\s+${targets}TO\\s+${dests}${tail}(?:\\s+INCREMENTAL\\s+FROM\\s+(.+?))?${withOpts}`,
          'is',
        ).exec(sql);
      }
      if (!legacy) throw syntaxError(sql);
    }
    let targetKind: string | undefined;
    let targetText: string | undefined;
    let bareTargets: string | undefined;
    let latest: string | undefined;
    let subdirToken: string | undefined;
    let destToken: string | undefined;
    let aostToken: string | undefined;
    let incrementalFrom: string | undefined;
    let optsParen: string | undefined;
    let optsPlain: string | undefined;
    if (m) {
      [
        ,
        targetKind,
        targetText,
        bareTargets,
        latest,
        subdirToken,
        destToken,
        aostToken,
        optsParen,
        optsPlain,
      ] = m;
    } else {
      [, targetKind, targetText, bareTargets, destToken, aostToken, incrementalFrom, optsParen, optsPlain] =
        legacy!;
    }
    // Prepare-time typing: backupTypeCheck does not type AS OF SYSTEM TIME, so a bare placeholder
    // there has no type unless the client declared one (resolved §4).
    const bare = aostToken ? /^\$(\d+)$/.exec(aostToken.trim()) : null;
    if (bare && !(s.paramTypes?.[Number(bare[1]) - 1] ?? 0)) {
      throw new SqlError(
        '42P18',
        `could not determine data type of placeholder $${bare[1]}`,
        undefined,
        'consider adding explicit type casts to the placeholder arguments',
      );
    }
    if (destToken!.startsWith('('))
      throw new SqlError('XXUUU', 'no default URL provided for partitioned backup');
    const uri = resolveValue(destToken!, params) ?? '';
    const options = this.parseBackupOptions(optsParen ?? optsPlain ?? '', params);
    if (s.inTxn && !options.detached) {
      throw new SqlError(
        'XXUUU',
        'BACKUP cannot be used inside a multi-statement transaction without DETACHED option',
      );
    }
    if (legacy && incrementalFrom !== undefined)
      throw new SqlError('0A000', 'the test cluster does not emulate `BACKUP TO … INCREMENTAL FROM`');
    if (legacy && options.incrementalLocation !== undefined)
      throw new SqlError('XXUUU', 'incremental_location option not supported with `BACKUP TO` syntax');
    const databases = targetKind?.toUpperCase() === 'DATABASE' ? splitList(targetText!).map(parseIdent) : [];
    for (const d of databases)
      if (!this.databases.has(d)) throw new SqlError('3D000', `database "${d}" does not exist`);
    const tableText = targetKind?.toUpperCase() === 'TABLE' ? targetText : bareTargets;
    const tables = tableText ? splitList(tableText).map((t) => this.resolveTable(s, t)) : [];
    const user = s.info.user;
    let dest: S3Destination | undefined;
    let destError: SqlError | undefined;
    try {
      dest = parseDestination(uri, this.profile, this.externalConnections);
    } catch (err) {
      destError = err as SqlError;
    }
    // Non-admins have their URI checked at statement time (the privilege check parses it); admins in the job.
    // An external:// URI is not parsed by that check: only USAGE on the connection is.
    if (destError && !this.isAdmin(user) && !/^external:\/\//i.test(uri)) throw destError;
    this.checkBackupPrivileges(
      user,
      databases,
      dest,
      uri,
      tables.map((t) => t.name),
    );
    if (this.profile.licenceChecks && !this.license) {
      // The planner checks encryption (passphrase or KMS) before revision_history.
      const feature =
        options.passphrase !== undefined || options.kms
          ? 'encryption'
          : options.revisionHistory
            ? 'revision_history'
            : undefined;
      if (feature) throw new SqlError('XXC02', this.licenceMessage(feature));
    }
    const endMicros = this.evalAsOf(aostToken, params);
    const incremental = latest !== undefined || subdirToken !== undefined;
    const subdir = legacy
      ? ''
      : latest
        ? 'LATEST'
        : subdirToken
          ? '/' + (resolveValue(subdirToken, params) ?? '').replace(/^\/+/, '')
          : fullSubdirOf(endMicros);
    const targetsText =
      databases.length > 0
        ? `DATABASE ${databases.map(formatIdent).join(', ')}`
        : tables.length > 0
          ? `TABLE ${tables.map((t) => t.formatted).join(', ')}`
          : '';
    const description = this.describeBackup(
      targetsText,
      legacy ? undefined : subdir,
      uri,
      aostToken,
      options,
    );
    const job = this.createJob(user, description, sql, uri);
    const lose = this.loseNextAnswer;
    this.loseNextAnswer = undefined;
    const jobDatabases = tables.length > 0 ? [...new Set(tables.map((t) => t.database))] : databases;
    // In an explicit transaction the job starts at COMMIT and a ROLLBACK removes it (transactions.ts).
    job.done = this.more.txn.startJob(s, job, () =>
      this.runJob(job, {
        dest,
        destError,
        kind: incremental ? 'incremental' : 'full',
        subdir,
        endMicros,
        databases: jobDatabases,
        passphrase: options.passphrase,
        needsLicence: incremental && this.profile.licenceChecks && !this.license,
        legacy: Boolean(legacy),
        catalog: this.catalog.snapshot(jobDatabases),
        revisionHistory: options.revisionHistory,
      }),
    );
    if (lose) {
      s.vars.set('__linger', String(lose.lingerMs));
      throw new DropConnection('lost answer to BACKUP');
    }
    const notices: Notice[] = legacy
      ? [
          {
            message:
              'The `BACKUP TO` syntax will be removed in a future release, please switch over to using `BACKUP INTO` to create a backup collection: https://www.cockroachlabs.com/docs/stable/backup.html#considerations. Backups created using the `BACKUP TO` syntax may not be restoreable in the next major version release.',
          },
        ]
      : [];
    const result: QueryResult = options.detached
      ? { fields: [{ name: 'job_id', typeOid: Oid.int8 }], rows: [[job.id]], tag: 'BACKUP 1' }
      : await this.waitBlocking(s, job, arrived);
    return notices.length > 0 ? { ...result, notices } : result;
  }

  /** `use of BACKUP with <feature> requires an enterprise license. see …` (reference §9), XXC02. */
  private licenceMessage(feature: string): string {
    return `use of BACKUP with ${feature} requires an enterprise license. see https://cockroachlabs.com/pricing?cluster=${CLUSTER_ID} for details on how to enable enterprise features`;
  }

  /** A table target, fully qualified as the job description prints it (`db.public.t`). */
  private resolveTable(s: Session, text: string): { name: string; database: string; formatted: string } {
    const parts = splitQualified(text);
    if (parts.length === 0 || parts.length > 3) throw syntaxError(text);
    const [db, schema, table] =
      parts.length === 1
        ? [s.info.database, 'public', parts[0]!]
        : parts.length === 2
          ? [parts[0]!, 'public', parts[1]!]
          : [parts[0]!, parts[1]!, parts[2]!];
    if (!this.databases.has(db)) {
      throw new SqlError(
        '42P01',
        `failed to resolve targets specified in the BACKUP stmt: table "${text.trim()}" does not exist`,
      );
    }
    const fmt = (p: string) => (p === '*' ? '*' : formatIdent(p));
    return { name: table, database: db, formatted: [db, schema, table].map(fmt).join('.') };
  }

  private parseBackupOptions(text: string, params: readonly (string | null)[]) {
    const out: BackupOptions = {
      detached: false,
      detachedFalse: false,
      revisionHistory: false,
    };
    const seen = new Set<string>();
    for (const item of splitList(text)) {
      const m = /^(\w+)(?:\s*=\s*(.+))?$/s.exec(item);
      if (!m) throw syntaxError(item);
      const name = m[1]!.toLowerCase();
      if (seen.has(name))
        throw new SqlError('42601', `${name.replace(/_/g, ' ')} option specified multiple times`);
      seen.add(name);
      const value = m[2]?.trim();
      switch (name) {
        case 'detached':
          if (value !== undefined && !/^(TRUE|FALSE)$/i.test(value)) throw syntaxError(`detached = ${value}`);
          out.detached = value === undefined || /^TRUE$/i.test(value);
          out.detachedFalse = !out.detached;
          break;
        case 'revision_history':
          out.revisionHistory =
            value === undefined || /^(TRUE|'true')$/i.test(value) || resolveValue(value, params) === 'true';
          break;
        case 'encryption_passphrase':
          out.passphrase = resolveValue(value ?? "''", params) ?? '';
          break;
        case 'kms':
          out.kms = resolveValue(value ?? "''", params) ?? '';
          break;
        case 'incremental_location':
          out.incrementalLocation = resolveValue(value ?? "''", params) ?? '';
          break;
        default:
          throw syntaxError(item);
      }
    }
    return out;
  }

  private evalAsOf(token: string | undefined, params: readonly (string | null)[]): bigint {
    const now = nowMicros();
    if (token === undefined) return now;
    const value = resolveValue(token, params) ?? '';
    const ts = parseTimestamp(value);
    if (ts !== undefined) {
      if (ts > now) {
        throw new SqlError(
          'XXUUU',
          `AS OF SYSTEM TIME: cannot specify timestamp in the future (${formatTs(ts, false)} > ${formatTs(now, false)})`,
        );
      }
      return ts;
    }
    if (/^\d+\.\d{10}$/.test(value)) return BigInt(value.split('.')[0]!) / 1000n;
    // INT nanoseconds (a bare literal, or a placeholder the client declared as an integer).
    if (/^\d+$/.test(value)) return BigInt(value) / 1000n;
    const interval = parseInterval(value);
    if (interval !== undefined) {
      if (interval > 0n)
        throw new SqlError(
          'XXUUU',
          `AS OF SYSTEM TIME: interval value '${value}' too large, AS OF interval must be <= -1µs`,
        );
      if (interval === 0n)
        throw new SqlError(
          'XXUUU',
          `AS OF SYSTEM TIME: interval value '${value}' too small, absolute value must be >= 1µs`,
        );
      return now + interval;
    }
    throw new SqlError('XXUUU', 'AS OF SYSTEM TIME: value is neither timestamp, decimal, nor interval');
  }

  /** `subdir` undefined: the legacy `BACKUP … TO` form. */
  private describeBackup(
    targetsText: string,
    subdir: string | undefined,
    uri: string,
    aostToken: string | undefined,
    o: BackupOptions,
  ): string {
    const targets = targetsText ? `${targetsText} ` : '';
    const opts: string[] = [];
    if (o.revisionHistory) opts.push('revision_history = true');
    if (o.passphrase !== undefined) opts.push("encryption_passphrase = '*****'");
    if (o.detached) opts.push('detached');
    // An explicit `detached = FALSE` is kept in descriptions from 23.1 (resolved §5).
    else if (
      o.detachedFalse &&
      (this.profile.major > 23 || (this.profile.major === 23 && this.profile.minor >= 1))
    )
      opts.push('detached = FALSE');
    if (o.kms !== undefined) opts.push(`kms = ${quoteLiteral(sanitizeUri(o.kms))}`);
    if (o.incrementalLocation !== undefined)
      opts.push(`incremental_location = ${quoteLiteral(sanitizeUri(o.incrementalLocation))}`);
    const withClause =
      opts.length === 0
        ? ''
        : this.profile.optionsInParens
          ? ` WITH OPTIONS (${opts.join(', ')})`
          : ` WITH ${opts.join(', ')}`;
    const aost = aostToken ? ` AS OF SYSTEM TIME ${aostToken}` : '';
    const where =
      subdir === undefined
        ? `TO ${quoteLiteral(sanitizeUri(uri))}`
        : `INTO ${quoteLiteral(subdir)} IN ${quoteLiteral(sanitizeUri(uri))}`;
    return `BACKUP ${targets}${where}${aost}${withClause}`;
  }

  private createJob(user: string, description: string, statement: string, uri: string): Job {
    this.nextJobId += BigInt(1 + Math.floor(Math.random() * 1000));
    const now = nowMicros();
    const job: Job = {
      id: this.nextJobId.toString(),
      type: 'BACKUP',
      status: 'running',
      description,
      statement,
      user,
      created: now,
      modified: now,
      fraction: 0,
      error: '',
      uri,
      done: Promise.resolve(),
      control: { paused: false, cancelled: false },
    };
    this.jobs.push(job);
    return job;
  }

  private async runJob(
    job: Job,
    p: {
      dest?: S3Destination;
      destError?: SqlError;
      kind: 'full' | 'incremental';
      subdir: string;
      endMicros: bigint;
      databases: string[];
      passphrase?: string;
      needsLicence: boolean;
      /** The legacy `BACKUP … TO` form: the backup sits at the destination itself. */
      legacy?: boolean;
      catalog?: ManifestDatabase[];
      revisionHistory?: boolean;
    },
  ): Promise<void> {
    await sleep(30);
    if (job.control.cancelled || this.closed) return;
    job.started = nowMicros();
    job.modified = job.started;
    const durationMs = this.jobDurationMs + Math.random() * this.jobDurationJitterMs;
    let progressAt = Date.now();
    try {
      if (p.destError) throw p.destError;
      if (p.needsLicence) throw new Error(this.licenceMessage('incremental'));
      if (this.leakUri && p.kind === 'full' && !p.legacy) {
        // backupdest.ResolveDest interpolates the planned and the given URI unsanitized (reference §4.4).
        throw new Error(
          `A full backup already exists in ${joinUriPath(job.uri, p.subdir)}. Consider running an incremental backup to this full backup via \`BACKUP INTO '${p.subdir}' IN '${job.uri}'\``,
        );
      }
      await runBackup(
        {
          id: job.id,
          profile: this.profile,
          dest: p.dest!,
          kind: p.kind,
          subdir: p.subdir,
          endMicros: p.endMicros,
          databases: p.databases,
          ...(p.passphrase !== undefined ? { passphrase: p.passphrase } : {}),
          ...(p.legacy ? { legacy: true } : {}),
          ...(p.catalog ? { catalog: p.catalog } : {}),
          ...(p.revisionHistory ? { revisionHistory: true } : {}),
          dataFiles: 3,
        },
        {
          durationMs: () => durationMs,
          minStepMs: 0,
          progress: (f) => {
            // jobs/progress.go ProgressUpdateBatcher (cockroach-surface-resolved.md §10): a new
            // fraction_completed is written only when it is 5 % above the last one and 15 s have passed
            // since the last write (progressFractionThreshold, progressTimeThreshold). A test may ask
            // for smooth progress (no time threshold).
            if (f - job.fraction >= 0.05 && Date.now() - progressAt >= this.progressMinIntervalMs) {
              job.fraction = Math.round(f * 100) / 100;
              job.modified = nowMicros();
              progressAt = Date.now();
            }
          },
          gate: () => this.gate(job),
          resolved: (subdir) => {
            if (job.description.split("'LATEST' IN").length === 2)
              job.description = job.description.replace("'LATEST' IN", `'${subdir}' IN`);
          },
        },
      );
      if (job.control.cancelled) return;
      job.fraction = 1;
      this.finish(job, 'succeeded', '');
    } catch (err) {
      if (job.control.cancelled || err instanceof Cancelled) return;
      this.finish(job, 'failed', (err as Error).message);
    }
  }

  private async gate(job: Job): Promise<void> {
    for (let i = 0; i < 1_000_000 && job.control.paused && !job.control.cancelled; i++) {
      await new Promise<void>((resolve) => {
        job.control.resume = resolve;
        setTimeout(resolve, 200);
      });
    }
    if (job.control.cancelled || this.closed) throw new Cancelled();
  }

  private setStatus(job: Job, status: string): void {
    job.status = status;
    job.modified = nowMicros();
  }

  private finish(job: Job, status: string, error: string): void {
    if (TERMINAL.has(job.status)) return;
    job.status = status;
    job.error = error;
    job.finished = nowMicros();
    job.modified = job.finished;
  }

  private requestCancel(job: Job): void {
    if (TERMINAL.has(job.status) || job.status === 'cancel-requested' || job.status === 'reverting') return;
    job.control.cancelled = true;
    job.control.resume?.();
    this.setStatus(job, 'cancel-requested');
    setTimeout(() => {
      if (job.status === 'cancel-requested') this.setStatus(job, 'reverting');
      setTimeout(() => this.finish(job, 'canceled', 'job canceled by user'), 100).unref();
    }, 100).unref();
  }

  private async waitBlocking(s: Session, job: Job, arrived: number): Promise<QueryResult> {
    const deadline = this.statementDeadline(s, arrived);
    while (!TERMINAL.has(job.status)) {
      if (Date.now() > deadline)
        throw new SqlError('57014', 'query execution canceled due to statement timeout');
      if (s.info.signal.aborted) throw new SqlError('57014', 'query execution canceled');
      await sleep(50);
    }
    if (job.status !== 'succeeded') throw new SqlError('XXUUU', job.error || `job ${job.status}`);
    const fields: Field[] = [
      { name: 'job_id', typeOid: Oid.int8 },
      { name: 'status', typeOid: Oid.text },
      { name: 'fraction_completed', typeOid: Oid.float8 },
      { name: 'rows', typeOid: Oid.int8 },
    ];
    const row: (string | null)[] = [job.id, 'succeeded', '1', '0'];
    if (this.profile.major < 25) {
      fields.push({ name: 'index_entries', typeOid: Oid.int8 }, { name: 'bytes', typeOid: Oid.int8 });
      row.push('0', '0');
    }
    return { fields, rows: [row], tag: 'BACKUP 1' };
  }

  // ---- jobs introspection --------------------------------------------------------------------------

  private visibleJobs(user: string): Job[] {
    const u = this.users.get(user);
    if (!u) return [];
    if (u.admin || u.system.has('VIEWJOB') || u.roleOptions.has('CONTROLJOB') || u.system.has('CONTROLJOB'))
      return this.jobs;
    return this.jobs.filter((j) => j.user === user);
  }

  private countJobRead(s: Session): void {
    // Without an index (≤23.1) every read scans every job; with one, a read by id touches one row.
    const scanned = this.profile.indexedJobs ? 1 : this.jobs.length;
    this.counters.jobTableReads++;
    if (!this.profile.indexedJobs) this.counters.jobRowsScanned += scanned;
    if (s.current) {
      s.current.jobReads++;
      s.current.jobRowsScanned += scanned;
    }
  }

  /** The rewrite CockroachDB runs: re-check every second until no selected job has `finished IS NULL`. */
  private async whenComplete(s: Session, idTexts: string[], arrived: number): Promise<QueryResult> {
    const deadline = this.statementDeadline(s, arrived);
    const started = Date.now();
    const ids = new Set(idTexts.map((t) => t.trim()));
    for (;;) {
      this.countJobRead(s);
      const jobs = this.visibleJobs(s.info.user).filter((j) => ids.has(j.id));
      if (jobs.every((j) => j.finished !== undefined)) return this.jobResult('show-job', ['*'], jobs);
      if (Date.now() - started > 24 * 3600_000) throw new SqlError('55000', 'timed out waiting for jobs');
      const wait = Math.min(this.recheckMs, deadline - Date.now());
      if (wait <= 0) throw new SqlError('57014', 'query execution canceled due to statement timeout');
      await sleepUnlessAborted(wait, s.info.signal);
      if (s.info.signal.aborted || this.closed) throw new SqlError('57014', 'query execution canceled');
      if (Date.now() >= deadline)
        throw new SqlError('57014', 'query execution canceled due to statement timeout');
    }
  }

  private idFilter(id: string | null): Predicate {
    return { column: 'job_id', op: '=', values: [id ?? ''] };
  }

  private select(s: Session, sql: string, params: readonly (string | null)[]): QueryResult {
    const m =
      /^SELECT\s+(.+?)\s+FROM\s+(\[SHOW\s+JOBS?(?:\s+(\S+))?\]|crdb_internal\.jobs|crdb_internal\.cluster_sessions)(?:\s+WHERE\s+(.+?))?(?:\s+ORDER\s+BY\s+(\w+)(?:\s+(ASC|DESC))?)?(?:\s+LIMIT\s+(\d+))?$/is.exec(
        sql,
      );
    if (!m) throw syntaxError(sql);
    const [, colText, source, showArg, whereText, orderBy, dir, limit] = m;
    const columns = splitList(colText!).map((c) => c.trim());
    const predicates = whereText ? parseWhere(whereText, params) : [];
    let result: QueryResult;
    if (/cluster_sessions/i.test(source!)) {
      result = this.sessionsResult(columns, predicates);
    } else if (/^\[SHOW\s+JOB\s/i.test(source!)) {
      result = this.selectJobs(
        s,
        'show-job',
        columns,
        [this.idFilter(resolveValue(showArg!, params)), ...predicates],
        params,
      );
    } else if (/^\[SHOW\s+JOBS/i.test(source!)) {
      result = this.selectJobs(s, 'show-jobs', columns, predicates, params);
    } else {
      result = this.selectJobs(s, 'internal', columns, predicates, params);
    }
    if (orderBy) {
      const i = result.fields!.findIndex((f) => f.name === orderBy.toLowerCase());
      if (i >= 0) {
        result.rows.sort((a, b) => String(a[i]).localeCompare(String(b[i])));
        if (dir?.toUpperCase() === 'DESC') result.rows.reverse();
      }
    }
    if (limit) result.rows = result.rows.slice(0, Number(limit));
    result.tag = `SELECT ${result.rows.length}`;
    return result;
  }

  private selectJobs(
    s: Session,
    source: JobSource,
    columns: string[],
    predicates: Predicate[],
    _params: readonly (string | null)[],
  ): QueryResult {
    this.countJobRead(s);
    let jobs = this.visibleJobs(s.info.user);
    if (source === 'show-jobs') {
      const cutoff = nowMicros() - 12n * 3_600_000_000n;
      jobs = jobs.filter((j) => j.finished === undefined || j.finished > cutoff);
    }
    const defs = this.jobColumns(source);
    const matching = jobs.filter((j) =>
      predicates.every((p) => matchPredicate(p, jobValue(j, p.column, this.profile))),
    );
    if (source === 'show-jobs') {
      // ORDER BY COALESCE(finished, now()) DESC, started DESC (NULLs sort last when descending).
      const now = nowMicros();
      const key = (j: Job) => j.finished ?? now;
      matching.sort((a, b) => {
        const byEnd = key(b) - key(a);
        if (byEnd !== 0n) return byEnd > 0n ? 1 : -1;
        if (a.started === b.started) return 0;
        if (a.started === undefined) return 1;
        if (b.started === undefined) return -1;
        return b.started > a.started ? 1 : -1;
      });
    }
    return this.jobResult(source, columns, matching, defs);
  }

  private jobResult(
    source: JobSource,
    columns: string[],
    jobs: Job[],
    defs = this.jobColumns(source),
  ): QueryResult {
    const wanted =
      columns.length === 1 && columns[0] === '*'
        ? defs.map((d) => d.name)
        : columns.map((c) => c.toLowerCase());
    const fields: Field[] = wanted.map((name) => {
      const def = defs.find((d) => d.name === name);
      if (!def) throw new SqlError('42703', `column "${name}" does not exist`);
      return { name, typeOid: def.oid };
    });
    const truncate = source !== 'internal' && this.profile.newShowJobColumns;
    const rows = jobs.map((j) =>
      wanted.map((name) =>
        formatJobValue(
          j,
          name,
          this.profile,
          truncate,
          source === 'show-jobs' && this.profile.newShowJobColumns,
        ),
      ),
    );
    return { fields, rows, tag: `SELECT ${rows.length}` };
  }

  private jobColumns(source: JobSource): { name: string; oid: number }[] {
    const ts = this.profile.tzTimes ? Oid.timestamptz : Oid.timestamp;
    const p = this.profile;
    const base = (names: string[]) =>
      names.map((name) => ({ name, oid: COLUMN_OID[name] ?? (TIME_COLUMNS.has(name) ? ts : Oid.text) }));
    if (source === 'internal') {
      const cols = [
        'job_id',
        'job_type',
        'description',
        'statement',
        'user_name',
        'descriptor_ids',
        'status',
        'running_status',
        'created',
        'started',
        'finished',
        'modified',
        'fraction_completed',
        'high_water_timestamp',
        'error',
        'coordinator_id',
        'trace_id',
      ];
      if (!p.newShowJobColumns) cols.push('last_run', 'next_run', 'num_runs');
      // pkg/sql/crdb_internal.go: both the TIMESTAMP-era and the indexed TIMESTAMPTZ-era definitions of
      // crdb_internal.jobs end with execution_errors STRING[], execution_events JSONB (22.2 to 25.x).
      cols.push('execution_errors', 'execution_events');
      return base(cols);
    }
    if (!p.newShowJobColumns) {
      return base([
        'job_id',
        'job_type',
        'description',
        'statement',
        'user_name',
        'status',
        'running_status',
        'created',
        'started',
        'finished',
        'modified',
        'fraction_completed',
        'error',
        'coordinator_id',
        'trace_id',
        'last_run',
        'next_run',
        'num_runs',
        'execution_errors',
      ]);
    }
    if (source === 'show-jobs') {
      return base([
        'job_id',
        'job_type',
        'description',
        'user_name',
        'status',
        'running_status',
        'created',
        'started',
        'finished',
        'modified',
        'fraction_completed',
        'error',
        'coordinator_id',
      ]);
    }
    return base([
      'job_id',
      'job_type',
      'description',
      'statement',
      'user_name',
      'status',
      'running_status',
      'created',
      'started',
      'finished',
      'modified',
      'fraction_completed',
      'error',
      'coordinator_id',
      'trace_id',
      'execution_errors',
    ]);
  }

  private sessionsResult(columns: string[], predicates: Predicate[]): QueryResult {
    const ts = this.profile.tzTimes ? Oid.timestamptz : Oid.timestamp;
    const defs: { name: string; oid: number; value: (s: Session) => string | null }[] = [
      { name: 'node_id', oid: Oid.int8, value: () => '1' },
      { name: 'session_id', oid: Oid.text, value: (s) => `17${s.info.id.toString(16).padStart(30, '0')}` },
      { name: 'user_name', oid: Oid.text, value: (s) => s.info.user },
      { name: 'client_address', oid: Oid.text, value: () => '127.0.0.1:0' },
      { name: 'application_name', oid: Oid.text, value: (s) => s.vars.get('application_name') ?? '' },
      { name: 'active_queries', oid: Oid.text, value: () => '' },
      { name: 'session_start', oid: ts, value: (s) => formatTs(s.started, this.profile.tzTimes) },
    ];
    const wanted =
      columns.length === 1 && columns[0] === '*'
        ? defs.map((d) => d.name)
        : columns.map((c) => c.toLowerCase());
    const chosen = wanted.map((w) => {
      const d = defs.find((x) => x.name === w);
      if (!d) throw new SqlError('42703', `column "${w}" does not exist`);
      return d;
    });
    const sessions = [...this.sessions.values()].filter((s) =>
      predicates.every((p) => matchPredicate(p, defs.find((d) => d.name === p.column)?.value(s) ?? null)),
    );
    return {
      fields: chosen.map((d) => ({ name: d.name, typeOid: d.oid })),
      rows: sessions.map((s) => chosen.map((d) => d.value(s))),
      tag: `SELECT ${sessions.length}`,
    };
  }

  // ---- CANCEL / PAUSE / RESUME ---------------------------------------------------------------------

  private controlJob(s: Session, verb: string, idText: string): QueryResult {
    const user = s.info.user;
    const id = idText.trim();
    const job = this.jobs.find((j) => j.id === id);
    this.authorizeControl(user, job, id);
    if (!job) throw new SqlError('XXUUU', `job with ID ${id} does not exist`);
    const word = this.profile.stateWord ? 'state' : 'status';
    if (verb === 'CANCEL') {
      // pkg/jobs/update.go CancelRequested: a no-op for cancel-requested and canceled; only pending, running
      // and paused jobs may be cancel-requested (pause-requested and reverting are refused with this text).
      if (job.status === 'cancel-requested' || job.status === 'canceled') return tagOnly('CANCEL JOBS 1');
      if (!['pending', 'running', 'paused'].includes(job.status)) {
        throw new SqlError('XXUUU', `job with ${word} ${job.status} cannot be requested to be canceled`);
      }
      this.requestCancel(job);
      return tagOnly('CANCEL JOBS 1');
    }
    if (verb === 'PAUSE') {
      if (job.status === 'paused' || job.status === 'pause-requested') return tagOnly('PAUSE JOBS 1');
      if (!['pending', 'running', 'reverting'].includes(job.status)) {
        throw new SqlError('XXUUU', `job with ${word} ${job.status} cannot be requested to be paused`);
      }
      this.pauseJob(job.id);
      return tagOnly('PAUSE JOBS 1');
    }
    if (job.status === 'running' || job.status === 'reverting') return tagOnly('RESUME JOBS 1');
    if (job.status !== 'paused')
      throw new SqlError('XXUUU', `job with ${word} ${job.status} cannot be resumed`);
    this.resumeJob(job.id);
    return tagOnly('RESUME JOBS 1');
  }

  /** Who may control a job, per version (cockroach-surface-resolved.md §2). */
  private authorizeControl(user: string, job: Job | undefined, id: string): void {
    const u = this.users.get(user)!;
    if (u.admin) return;
    const roleOption = u.roleOptions.has('CONTROLJOB');
    const systemPriv = controlJobAsSystemPrivilege(this.profile) && u.system.has('CONTROLJOB');
    if (this.profile.name === '22.2') {
      if (!roleOption) throw new SqlError('42501', `user ${user} does not have CONTROLJOB privilege`);
      if (job && this.isAdmin(job.user))
        throw new SqlError('42501', 'only admins can control jobs owned by other admins');
      return;
    }
    if (job && this.profile.ownersControlJobs && job.user === user) return;
    if (job && this.isAdmin(job.user))
      throw new SqlError('42501', 'only admins can control jobs owned by other admins');
    if (roleOption || systemPriv) return;
    throw new SqlError('42501', `user ${user} does not have privileges for job ${id}`);
  }

  // ---- SHOW BACKUPS / SHOW BACKUP ------------------------------------------------------------------

  private destinationFor(s: Session, uri: string): JobStorage {
    this.checkConnectionUsage(s.info.user, uri);
    const dest = parseDestination(uri, this.profile, this.externalConnections);
    if (!this.isAdmin(s.info.user) && !uri.startsWith('external://')) {
      const implicit = dest.params.get('AUTH') === 'implicit' || dest.params.has('AWS_ENDPOINT');
      if (implicit && !this.hasSystem(s.info.user, 'EXTERNALIOIMPLICITACCESS')) {
        throw new SqlError(
          '42501',
          'only users with the admin role or the EXTERNALIOIMPLICITACCESS system privilege are allowed to access the specified s3 URI',
        );
      }
    }
    return new JobStorage(dest, this.profile);
  }

  private async showBackups(s: Session, uri: string): Promise<QueryResult> {
    const store = this.destinationFor(s, uri);
    const paths = await storageCall(() => store.fullBackups());
    // One manifest read per full backup listed.
    await sleep(this.backupReadMsPerFile * paths.length);
    return {
      fields: [{ name: 'path', typeOid: Oid.text }],
      rows: paths.map((p) => [p]),
      tag: `SELECT ${paths.length}`,
    };
  }

  private async showBackup(
    s: Session,
    subdirToken: string,
    uri: string,
    withText: string | undefined,
    params: readonly (string | null)[],
  ): Promise<QueryResult> {
    const store = this.destinationFor(s, uri);
    let subdir = /^LATEST$/i.test(subdirToken)
      ? await storageCall(() => store.latest())
      : resolveValue(subdirToken, params);
    if (!subdir)
      throw new SqlError('58P01', `path does not contain a completed latest backup: ${sanitizeUri(uri)}`);
    subdir = '/' + subdir.replace(/^\/+/, '');
    const opts = new Map<string, string | null>();
    for (const item of splitList(withText ?? '')) {
      const m = /^(\w+)(?:\s*=\s*(.+))?$/s.exec(item);
      if (m) opts.set(m[1]!.toLowerCase(), m[2] ? resolveValue(m[2], params) : null);
    }
    const layers = await storageCall(() => store.chain(subdir!));
    if (layers.length === 0) {
      throw new SqlError(
        'XXUUU',
        `failed to read backup from "${subdir}": path does not contain a completed backup`,
      );
    }
    const encryption = layers[0]!.manifest.encryption;
    if (encryption !== undefined) {
      const given = opts.get('encryption_passphrase');
      if (given === undefined && !opts.has('kms')) {
        throw new SqlError(
          'XXUUU',
          'file appears encrypted -- try specifying one of "encryption_passphrase" or "kms"',
        );
      }
      if (given !== undefined && passphraseHash(given ?? '') !== encryption) {
        throw new SqlError(
          'XXUUU',
          'failed to decrypt — check passphrase/key: cipher: message authentication failed',
        );
      }
    }
    const checkFiles = opts.has('check_files');
    const filesRead = layers.reduce((n, l) => n + 1 + (checkFiles ? l.manifest.files.length : 0), 0);
    await sleep(this.backupReadMsPerFile * filesRead);
    if (checkFiles) {
      const missing: string[] = [];
      for (const layer of layers) {
        const present = new Set((await storageCall(() => store.list(`${layer.folder}/`))).map((k) => k.key));
        for (const f of layer.manifest.files)
          if (!present.has(`${layer.folder}/${f.path}`)) missing.push(`${layer.folder}/${f.path}`);
      }
      if (missing.length > 0) {
        throw new SqlError(
          'XXUUU',
          `The following files are missing from the backup:\n\t${missing.slice(0, 10).join('\n\t')}`,
        );
      }
    }
    const ts = this.profile.tzTimes ? Oid.timestamptz : Oid.timestamp;
    const fields: Field[] = [
      { name: 'database_name', typeOid: Oid.text },
      { name: 'parent_schema_name', typeOid: Oid.text },
      { name: 'object_name', typeOid: Oid.text },
      { name: 'object_type', typeOid: Oid.text },
      { name: 'backup_type', typeOid: Oid.text },
      { name: 'start_time', typeOid: ts },
      { name: 'end_time', typeOid: ts },
      { name: 'size_bytes', typeOid: Oid.int8 },
      { name: 'rows', typeOid: Oid.int8 },
      { name: 'is_full_cluster', typeOid: Oid.bool },
    ];
    if (checkFiles) fields.push({ name: 'file_bytes', typeOid: Oid.int8 });
    const rows: (string | null)[][] = [];
    for (const layer of layers) {
      const m = layer.manifest;
      const objects = m.databases.length > 0 ? m.databases : [...this.databases];
      const size = m.files.reduce((n, f) => n + f.size, 0);
      for (const db of objects) {
        const row: (string | null)[] = [
          null,
          null,
          db,
          'database',
          m.kind,
          m.startMicros === '0' ? null : formatTs(BigInt(m.startMicros), this.profile.tzTimes),
          formatTs(BigInt(m.endMicros), this.profile.tzTimes),
          String(size),
          '0',
          m.isFullCluster ? 't' : 'f',
        ];
        if (checkFiles) row.push(String(size));
        rows.push(row);
      }
    }
    return { fields, rows, tag: `SELECT ${rows.length}` };
  }

  private async createExternalConnection(s: Session, name: string, uri: string): Promise<QueryResult> {
    if (!this.hasSystem(s.info.user, 'EXTERNALCONNECTION')) {
      throw new SqlError('42501', `user ${s.info.user} does not have EXTERNALCONNECTION system privilege`);
    }
    if (this.externalConnections.has(name))
      throw new SqlError(
        '42710',
        `failed to create external connection: external connection with connection name ${name} already exists`,
      );
    const store = new JobStorage(parseDestination(uri, this.profile, this.externalConnections), this.profile);
    await storageCall(async () => {
      await store.put('crdb_external_storage_location', 'check');
      await store.list('');
    });
    this.externalConnections.set(name, uri);
    // The creator owns the connection and may use it.
    this.connectionUsage.set(name, new Set([s.info.user]));
    return tagOnly('CREATE EXTERNAL CONNECTION');
  }
}

class Cancelled extends Error {}

/**
 * CockroachDB applies the session's statement_timeout to every statement ("statement_timeout: the
 * amount of time a statement can run before being stopped", docs src/current/v25.2/session-variables.md;
 * pkg/sql/conn_executor_exec.go cancels the statement's context when the timer fires): 57014.
 */
function withStatementTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return work;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      work.catch(() => undefined);
      reject(new SqlError('57014', 'query execution canceled due to statement timeout'));
    }, ms);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

interface BackupOptions {
  detached: boolean;
  /** `detached = FALSE` written out. */
  detachedFalse: boolean;
  revisionHistory: boolean;
  passphrase?: string;
  kms?: string;
  incrementalLocation?: string;
}

type JobSource = 'internal' | 'show-job' | 'show-jobs';

interface Predicate {
  column: string;
  op: '=' | '<>' | '>' | '>=' | '<' | '<=' | 'IN' | 'LIKE' | 'IS NULL' | 'IS NOT NULL';
  values: string[];
}

function parseWhere(text: string, params: readonly (string | null)[]): Predicate[] {
  const parts = text.split(/\s+AND\s+/i);
  return parts.map((part) => {
    const p = part.trim();
    let m: RegExpExecArray | null;
    if ((m = /^(\w+)\s+IS\s+(NOT\s+)?NULL$/i.exec(p)))
      return { column: m[1]!.toLowerCase(), op: m[2] ? 'IS NOT NULL' : 'IS NULL', values: [] };
    if ((m = /^(\w+)\s+IN\s*\((.+)\)$/is.exec(p))) {
      return {
        column: m[1]!.toLowerCase(),
        op: 'IN',
        values: splitList(m[2]!).map((v) => resolveValue(v, params) ?? ''),
      };
    }
    if (
      (m = new RegExp(
        `^(\\w+)\\s*(=|<>|!=|>=|<=|>|<|LIKE)\\s*(${VALUE}|now\\(\\)\\s*-\\s*(?:INTERVAL\\s*)?'[^']+')$`,
        'i',
      ).exec(p))
    ) {
      const op = (m[2]!.toUpperCase() === '!=' ? '<>' : m[2]!.toUpperCase()) as Predicate['op'];
      const raw = m[3]!;
      const nowMinus = /^now\(\)\s*-\s*(?:INTERVAL\s*)?'([^']+)'$/i.exec(raw);
      const value = nowMinus
        ? formatTs(nowMicros() - (parseInterval(nowMinus[1]!) ?? 0n), true)
        : (resolveValue(raw, params) ?? '');
      return { column: m[1]!.toLowerCase(), op, values: [value] };
    }
    throw syntaxError(p);
  });
}

type Cell = string | number | bigint | null;

function matchPredicate(p: Predicate, value: Cell): boolean {
  if (p.op === 'IS NULL') return value === null;
  if (p.op === 'IS NOT NULL') return value !== null;
  if (value === null) return false;
  if (p.op === 'LIKE') return likeToRegExp(p.values[0]!).test(String(value));
  if (p.op === 'IN') return p.values.some((v) => compare(value, v) === 0);
  const c = compare(value, p.values[0]!);
  switch (p.op) {
    case '=':
      return c === 0;
    case '<>':
      return c !== 0;
    case '>':
      return c > 0;
    case '>=':
      return c >= 0;
    case '<':
      return c < 0;
    default:
      return c <= 0;
  }
}

function compare(value: Exclude<Cell, null>, text: string): number {
  if (typeof value === 'bigint') {
    const other = /^-?\d+$/.test(text.trim()) ? BigInt(text.trim()) : parseTimestamp(text);
    if (other === undefined) return String(value).localeCompare(text);
    return value < other ? -1 : value > other ? 1 : 0;
  }
  if (typeof value === 'number') return value - Number(text);
  return value < text ? -1 : value > text ? 1 : 0;
}

const TIME_COLUMNS = new Set(['created', 'started', 'finished', 'modified', 'last_run', 'next_run']);
const COLUMN_OID: Record<string, number> = {
  job_id: Oid.int8,
  fraction_completed: Oid.float8,
  coordinator_id: Oid.int8,
  trace_id: Oid.int8,
  num_runs: Oid.int8,
  execution_errors: Oid.textArray,
  execution_events: Oid.jsonb,
  descriptor_ids: Oid.int8Array,
  high_water_timestamp: Oid.numeric,
};

/** A job column as a comparable value: ids and times as bigint (micros for times). */
function jobValue(j: Job, column: string, _profile: Profile): Cell {
  switch (column) {
    case 'job_id':
      return BigInt(j.id);
    case 'job_type':
      return j.type;
    case 'description':
      return j.description;
    case 'statement':
      return j.statement;
    case 'user_name':
      return j.user;
    case 'status':
      return j.status;
    case 'created':
      return j.created;
    case 'started':
      return j.started ?? null;
    case 'finished':
      return j.finished ?? null;
    case 'modified':
      return j.modified;
    case 'fraction_completed':
      return j.fraction;
    case 'error':
      return j.error;
    default:
      return null;
  }
}

function formatJobValue(
  j: Job,
  column: string,
  profile: Profile,
  truncate: boolean,
  abbreviate: boolean,
): string | null {
  const time = (m: bigint | undefined) => (m === undefined ? null : formatTs(m, profile.tzTimes, truncate));
  switch (column) {
    case 'job_id':
      return j.id;
    case 'job_type':
      return j.type;
    case 'description':
      // substr(d, 0, 60) is 1-indexed from 0, so it keeps 59 characters.
      return abbreviate && [...j.description].length > 70
        ? `${[...j.description].slice(0, 59).join('')} … ${[...j.description].slice(-7).join('')}`
        : j.description;
    case 'statement':
      return j.statement;
    case 'user_name':
      return j.user;
    case 'descriptor_ids':
      return '{}';
    case 'status':
      return j.status;
    case 'running_status':
      return null;
    case 'created':
      return time(j.created);
    case 'started':
      return time(j.started);
    case 'finished':
      return time(j.finished);
    case 'modified':
      return time(j.modified);
    case 'fraction_completed':
      return String(j.fraction);
    case 'high_water_timestamp':
      return null;
    case 'error':
      return j.error;
    case 'coordinator_id':
      return j.started !== undefined ? '1' : null;
    case 'trace_id':
      return '0';
    case 'last_run':
      return time(j.started);
    case 'next_run':
      return null;
    case 'num_runs':
      return j.started !== undefined ? '1' : '0';
    case 'execution_errors':
      return '{}';
    case 'execution_events':
      return '[]';
    default:
      return null;
  }
}

async function storageCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SqlError) throw err;
    throw new SqlError('XXUUU', (err as Error).message);
  }
}

/** Go's JoinURLPath on the URI text: the suffix goes on the path, the query stays as written. */
function joinUriPath(uri: string, suffix: string): string {
  const q = uri.indexOf('?');
  const base = q < 0 ? uri : uri.slice(0, q);
  const query = q < 0 ? '' : uri.slice(q);
  return `${base.replace(/\/+$/, '')}/${suffix.replace(/^\/+/, '')}${query}`;
}

function single(name: string, typeOid: number, value: string): QueryResult {
  return { fields: [{ name, typeOid }], rows: [[value]], tag: 'SELECT 1' };
}

function tagOnly(tag: string): QueryResult {
  return { fields: null, rows: [], tag };
}

function intervalMs(text: string): number | undefined {
  const t = text.trim();
  const plain = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(t);
  if (plain)
    return Math.round(
      Number(plain[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[plain[2] ?? 'ms'] ?? 1),
    );
  const micros = parseInterval(t);
  return micros === undefined ? undefined : Number(micros / 1000n);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
