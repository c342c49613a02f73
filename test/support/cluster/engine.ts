/**
 * The CockroachDB statement engine of the test cluster: the backup and jobs statements CockroachDB
 * answers, per version profile, with users and privileges, real jobs, counters and controls for tests.
 * This module is the wire layer's Engine (sessions, the statement log, statement_timeout) and the
 * dispatcher that hands each statement to its module; it also keeps the session variables.
 */
import type { Engine, QueryResult, SessionInfo, UserRecord } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import { sessionDefaults } from './startup.js';
import { formatTs, nowMicros, parseInterval, resolveValue, syntaxError, VALUE } from './sqltext.js';
import type { EngineInternals } from './internals.js';
import type { EngineOptions, EngineState, Session, StatementLogEntry } from './engine-state.js';
import { single, tagOnly } from './engine-state.js';
import { EngineControls } from './controls.js';
import {
  grantConnectionUsage,
  grantDatabase,
  grantSystem,
  hasSystem,
  isAdmin,
  roleOption,
  showSystemGrants,
} from './privileges.js';
import { backup, evalAsOf, waitBlocking } from './backup.js';
import { idFilter, select, selectJobs, whenComplete } from './job-queries.js';
import { controlJob } from './job-control.js';
import { createExternalConnection, destinationFor, showBackup, showBackups } from './show-backup.js';

export class CockroachEngine extends EngineControls implements Engine {
  constructor(opts: EngineOptions) {
    super(opts, engineInternals);
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
      return single(m[1] ?? 'crdb_internal.is_admin', Oid.bool, isAdmin(this, s.info.user) ? 't' : 'f');
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
    if (/^(GRANT|REVOKE)\s+SYSTEM\s/i.test(sql)) return grantSystem(this, s, sql);
    if (/^GRANT\s+BACKUP\s+ON\s+DATABASE\s/i.test(sql)) return grantDatabase(this, s, sql);
    if (/^(GRANT|REVOKE)\s+USAGE\s+ON\s+EXTERNAL\s+CONNECTION\s/i.test(sql))
      return grantConnectionUsage(this, s, sql);
    if ((m = /^ALTER\s+(?:ROLE|USER)\s+("(?:[^"]|"")*"|\w+)\s+(?:WITH\s+)?(NO)?CONTROLJOB$/i.exec(sql)))
      return roleOption(this, s, m[1]!, !m[2]);
    if ((m = /^SHOW\s+SYSTEM\s+GRANTS(?:\s+FOR\s+(.+))?$/i.exec(sql))) return showSystemGrants(this, m[1]);
    if (/^BACKUP\s/i.test(sql)) return backup(this, s, sql, params, arrived);
    if ((m = /^SHOW\s+JOBS\s+WHEN\s+COMPLETE\s+(SELECT\s.+)$/is.exec(sql))) {
      const ids = select(this, s, m[1]!, params).rows.map((r) => r[0] ?? '');
      return whenComplete(this, s, ids, arrived);
    }
    if ((m = new RegExp(`^SHOW\\s+JOB\\s+WHEN\\s+COMPLETE\\s+(${VALUE})$`, 'i').exec(sql))) {
      return whenComplete(this, s, [resolveValue(m[1]!, params) ?? ''], arrived);
    }
    if ((m = new RegExp(`^SHOW\\s+JOB\\s+(${VALUE})$`, 'i').exec(sql)))
      return selectJobs(this, s, 'show-job', ['*'], [idFilter(resolveValue(m[1]!, params))], params);
    if (/^SHOW\s+JOBS$/i.test(sql)) return selectJobs(this, s, 'show-jobs', ['*'], [], params);
    if (/^SELECT\s/i.test(sql)) return select(this, s, sql, params);
    if ((m = new RegExp(`^(CANCEL|PAUSE|RESUME)\\s+JOB\\s+(${VALUE})$`, 'i').exec(sql))) {
      return controlJob(this, s, m[1]!.toUpperCase(), resolveValue(m[2]!, params) ?? '');
    }
    if ((m = new RegExp(`^SHOW\\s+BACKUPS\\s+IN\\s+(${VALUE})$`, 'i').exec(sql)))
      return showBackups(this, s, resolveValue(m[1]!, params) ?? '');
    if (
      (m = new RegExp(
        `^SHOW\\s+BACKUP\\s+FROM\\s+(LATEST|${VALUE})\\s+IN\\s+(${VALUE})(?:\\s+WITH\\s+(.+))?$`,
        'i',
      ).exec(sql))
    ) {
      return showBackup(this, s, m[1]!, resolveValue(m[2]!, params) ?? '', m[3], params);
    }
    if ((m = new RegExp(`^CREATE\\s+EXTERNAL\\s+CONNECTION\\s+(\\w+)\\s+AS\\s+(${VALUE})$`, 'i').exec(sql))) {
      return createExternalConnection(this, s, m[1]!.toLowerCase(), resolveValue(m[2]!, params) ?? '');
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

  private startupFilter(params: ReadonlyMap<string, string>): Map<string, string> {
    return new Map([...params].filter(([k]) => !this.ignoredStartupParams.has(k)));
  }
}

/** What the statement modules may use of the engine's state (internals.ts). */
function engineInternals(e: EngineState): EngineInternals {
  return {
    profile: e.profile,
    databases: e.databases,
    catalog: e.catalog,
    jobs: e.jobs,
    users: e.users,
    externalConnections: e.externalConnections,
    connectionUsage: e.connectionUsage,
    isAdmin: (u) => isAdmin(e, u),
    hasSystem: (u, p) => hasSystem(e, u, p),
    createJob: (u, d, st, uri) => e.createJob(u, d, st, uri),
    finish: (j, st, err) => e.finish(j, st, err),
    gate: (j) => e.gate(j),
    waitBlocking: (s, j, a) => waitBlocking(e, s, j, a),
    evalAsOf: (t, p) => evalAsOf(t, p),
    storage: (s, uri) => destinationFor(e, s, uri),
    showBackup: (s, sub, uri, w, p) => showBackup(e, s, sub, uri, w, p),
    jobDurationMs: () => e.jobDurationMs,
    license: () => e.license,
    closed: () => e.closed,
  };
}

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
