/**
 * Reading jobs and sessions: SHOW JOB(S), SHOW JOB(S) WHEN COMPLETE, SELECT … FROM crdb_internal.jobs /
 * [SHOW JOBS] / crdb_internal.cluster_sessions with WHERE, ORDER BY and LIMIT; job-table read counters.
 */
import type { Field, QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import { formatTs, nowMicros, resolveValue, splitList, syntaxError } from './sqltext.js';
import type { EngineState, Job, Session } from './engine-state.js';
import type { JobSource } from './job-columns.js';
import { formatJobValue, jobColumns, jobValue } from './job-columns.js';
import type { Predicate } from './predicates.js';
import { matchPredicate, parseWhere } from './predicates.js';

function visibleJobs(e: EngineState, user: string): Job[] {
  const u = e.users.get(user);
  if (!u) return [];
  if (u.admin || u.system.has('VIEWJOB') || u.roleOptions.has('CONTROLJOB') || u.system.has('CONTROLJOB'))
    return e.jobs;
  return e.jobs.filter((j) => j.user === user);
}

function countJobRead(e: EngineState, s: Session): void {
  // Without an index (≤23.1) every read scans every job; with one, a read by id touches one row.
  const scanned = e.profile.indexedJobs ? 1 : e.jobs.length;
  e.counters.jobTableReads++;
  if (!e.profile.indexedJobs) e.counters.jobRowsScanned += scanned;
  if (s.current) {
    s.current.jobReads++;
    s.current.jobRowsScanned += scanned;
  }
}

/** The rewrite CockroachDB runs: re-check every second until no selected job has `finished IS NULL`. */
export async function whenComplete(
  e: EngineState,
  s: Session,
  idTexts: string[],
  arrived: number,
): Promise<QueryResult> {
  const deadline = e.statementDeadline(s, arrived);
  const started = Date.now();
  const ids = new Set(idTexts.map((t) => t.trim()));
  for (;;) {
    countJobRead(e, s);
    const jobs = visibleJobs(e, s.info.user).filter((j) => ids.has(j.id));
    if (jobs.every((j) => j.finished !== undefined)) return jobResult(e, 'show-job', ['*'], jobs);
    if (Date.now() - started > 24 * 3600_000) throw new SqlError('55000', 'timed out waiting for jobs');
    const wait = Math.min(e.recheckMs, deadline - Date.now());
    if (wait <= 0) throw new SqlError('57014', 'query execution canceled due to statement timeout');
    await sleepUnlessAborted(wait, s.info.signal);
    if (s.info.signal.aborted || e.closed) throw new SqlError('57014', 'query execution canceled');
    if (Date.now() >= deadline)
      throw new SqlError('57014', 'query execution canceled due to statement timeout');
  }
}

export function idFilter(id: string | null): Predicate {
  return { column: 'job_id', op: '=', values: [id ?? ''] };
}

export function select(
  e: EngineState,
  s: Session,
  sql: string,
  params: readonly (string | null)[],
): QueryResult {
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
    result = sessionsResult(e, columns, predicates);
  } else if (/^\[SHOW\s+JOB\s/i.test(source!)) {
    result = selectJobs(
      e,
      s,
      'show-job',
      columns,
      [idFilter(resolveValue(showArg!, params)), ...predicates],
      params,
    );
  } else if (/^\[SHOW\s+JOBS/i.test(source!)) {
    result = selectJobs(e, s, 'show-jobs', columns, predicates, params);
  } else {
    result = selectJobs(e, s, 'internal', columns, predicates, params);
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

export function selectJobs(
  e: EngineState,
  s: Session,
  source: JobSource,
  columns: string[],
  predicates: Predicate[],
  _params: readonly (string | null)[],
): QueryResult {
  countJobRead(e, s);
  let jobs = visibleJobs(e, s.info.user);
  if (source === 'show-jobs') {
    const cutoff = nowMicros() - 12n * 3_600_000_000n;
    jobs = jobs.filter((j) => j.finished === undefined || j.finished > cutoff);
  }
  const defs = jobColumns(e, source);
  const matching = jobs.filter((j) =>
    predicates.every((p) => matchPredicate(p, jobValue(j, p.column, e.profile))),
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
  return jobResult(e, source, columns, matching, defs);
}

function jobResult(
  e: EngineState,
  source: JobSource,
  columns: string[],
  jobs: Job[],
  defs = jobColumns(e, source),
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
  const truncate = source !== 'internal' && e.profile.newShowJobColumns;
  const rows = jobs.map((j) =>
    wanted.map((name) =>
      formatJobValue(j, name, e.profile, truncate, source === 'show-jobs' && e.profile.newShowJobColumns),
    ),
  );
  return { fields, rows, tag: `SELECT ${rows.length}` };
}

function sessionsResult(e: EngineState, columns: string[], predicates: Predicate[]): QueryResult {
  const ts = e.profile.tzTimes ? Oid.timestamptz : Oid.timestamp;
  const defs: { name: string; oid: number; value: (s: Session) => string | null }[] = [
    { name: 'node_id', oid: Oid.int8, value: () => '1' },
    { name: 'session_id', oid: Oid.text, value: (s) => `17${s.info.id.toString(16).padStart(30, '0')}` },
    { name: 'user_name', oid: Oid.text, value: (s) => s.info.user },
    { name: 'client_address', oid: Oid.text, value: () => '127.0.0.1:0' },
    { name: 'application_name', oid: Oid.text, value: (s) => s.vars.get('application_name') ?? '' },
    { name: 'active_queries', oid: Oid.text, value: () => '' },
    { name: 'session_start', oid: ts, value: (s) => formatTs(s.started, e.profile.tzTimes) },
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
  const sessions = [...e.sessions.values()].filter((s) =>
    predicates.every((p) => matchPredicate(p, defs.find((d) => d.name === p.column)?.value(s) ?? null)),
  );
  return {
    fields: chosen.map((d) => ({ name: d.name, typeOid: d.oid })),
    rows: sessions.map((s) => chosen.map((d) => d.value(s))),
    tag: `SELECT ${sessions.length}`,
  };
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
