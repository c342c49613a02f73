/**
 * BACKUP on the test cluster: parsing the statement (INTO, the legacy TO, AS OF SYSTEM TIME, options),
 * its statement-time checks, the job description, and the job that writes the backup into the S3 server.
 */
import type { Field, Notice, QueryResult } from './protocol-types.js';
import { DropConnection, Oid, SqlError } from './protocol-types.js';
import type { ManifestDatabase, S3Destination } from './jobs.js';
import { parseDestination, runBackup, sanitizeUri } from './jobs.js';
import {
  BARE_TARGETS,
  formatIdent,
  formatTs,
  fullSubdirOf,
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
import type { EngineState, Job, Session } from './engine-state.js';
import { Cancelled, sleep, TERMINAL } from './engine-state.js';
import { checkBackupPrivileges, isAdmin } from './privileges.js';

/** The cluster id in licence errors. */
const CLUSTER_ID = '3c9a4b2e-0000-4000-8000-000000000001';

export async function backup(
  e: EngineState,
  s: Session,
  sql: string,
  params: readonly (string | null)[],
  arrived: number,
): Promise<QueryResult> {
  const dropBeforeJob = e.dropNextBackupBeforeJob;
  if (dropBeforeJob) {
    e.dropNextBackupBeforeJob = undefined;
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
      if (e.profile.major > 24 || (e.profile.major === 24 && e.profile.minor >= 3)) {
        // Removed from the grammar in 24.3 (pkg/sql/parser/sql.y, backup_stmt).
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
    [, targetKind, targetText, bareTargets, latest, subdirToken, destToken, aostToken, optsParen, optsPlain] =
      m;
  } else {
    [, targetKind, targetText, bareTargets, destToken, aostToken, incrementalFrom, optsParen, optsPlain] =
      legacy!;
  }
  // Prepare-time typing: backupTypeCheck does not type AS OF SYSTEM TIME, so a bare placeholder
  // there has no type unless the client declared one (pkg/backup/backup_planning.go).
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
  const options = parseBackupOptions(optsParen ?? optsPlain ?? '', params);
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
    if (!e.databases.has(d)) throw new SqlError('3D000', `database "${d}" does not exist`);
  const tableText = targetKind?.toUpperCase() === 'TABLE' ? targetText : bareTargets;
  const tables = tableText ? splitList(tableText).map((t) => resolveTable(e, s, t)) : [];
  const user = s.info.user;
  let dest: S3Destination | undefined;
  let destError: SqlError | undefined;
  try {
    dest = parseDestination(uri, e.profile, e.externalConnections);
  } catch (err) {
    destError = err as SqlError;
  }
  // Non-admins have their URI checked at statement time (the privilege check parses it); admins in the job.
  // An external:// URI is not parsed by that check: only USAGE on the connection is.
  if (destError && !isAdmin(e, user) && !/^external:\/\//i.test(uri)) throw destError;
  checkBackupPrivileges(
    e,
    user,
    databases,
    dest,
    uri,
    tables.map((t) => t.name),
  );
  if (e.profile.licenceChecks && !e.license) {
    // The planner checks encryption (passphrase or KMS) before revision_history.
    const feature =
      options.passphrase !== undefined || options.kms
        ? 'encryption'
        : options.revisionHistory
          ? 'revision_history'
          : undefined;
    if (feature) throw new SqlError('XXC02', licenceMessage(feature));
  }
  const endMicros = evalAsOf(aostToken, params);
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
  const description = describeBackup(e, targetsText, legacy ? undefined : subdir, uri, aostToken, options);
  const job = e.createJob(user, description, sql, uri);
  const lose = e.loseNextAnswer;
  e.loseNextAnswer = undefined;
  const jobDatabases = tables.length > 0 ? [...new Set(tables.map((t) => t.database))] : databases;
  // In an explicit transaction the job starts at COMMIT and a ROLLBACK removes it (transactions.ts).
  job.done = e.more.txn.startJob(s, job, () =>
    runJob(e, job, {
      dest,
      destError,
      kind: incremental ? 'incremental' : 'full',
      subdir,
      endMicros,
      databases: jobDatabases,
      passphrase: options.passphrase,
      needsLicence: incremental && e.profile.licenceChecks && !e.license,
      legacy: Boolean(legacy),
      catalog: e.catalog.snapshot(jobDatabases),
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
    : await waitBlocking(e, s, job, arrived);
  return notices.length > 0 ? { ...result, notices } : result;
}

/** `use of BACKUP with <feature> requires an enterprise license. see …` (pkg/ccl/utilccl/license_check.go, before 24.3), XXC02. */
function licenceMessage(feature: string): string {
  return `use of BACKUP with ${feature} requires an enterprise license. see https://cockroachlabs.com/pricing?cluster=${CLUSTER_ID} for details on how to enable enterprise features`;
}

/** A table target, fully qualified as the job description prints it (`db.public.t`). */
function resolveTable(
  e: EngineState,
  s: Session,
  text: string,
): { name: string; database: string; formatted: string } {
  const parts = splitQualified(text);
  if (parts.length === 0 || parts.length > 3) throw syntaxError(text);
  const [db, schema, table] =
    parts.length === 1
      ? [s.info.database, 'public', parts[0]!]
      : parts.length === 2
        ? [parts[0]!, 'public', parts[1]!]
        : [parts[0]!, parts[1]!, parts[2]!];
  if (!e.databases.has(db)) {
    throw new SqlError(
      '42P01',
      `failed to resolve targets specified in the BACKUP stmt: table "${text.trim()}" does not exist`,
    );
  }
  const fmt = (p: string) => (p === '*' ? '*' : formatIdent(p));
  return { name: table, database: db, formatted: [db, schema, table].map(fmt).join('.') };
}

function parseBackupOptions(text: string, params: readonly (string | null)[]) {
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

export function evalAsOf(token: string | undefined, params: readonly (string | null)[]): bigint {
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
function describeBackup(
  e: EngineState,
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
  // An explicit `detached = FALSE` is kept in descriptions from 23.1 (pkg/backup/backup_planning.go,
  // resolveOptionsForBackupJobDescription).
  else if (o.detachedFalse && (e.profile.major > 23 || (e.profile.major === 23 && e.profile.minor >= 1)))
    opts.push('detached = FALSE');
  if (o.kms !== undefined) opts.push(`kms = ${quoteLiteral(sanitizeUri(o.kms))}`);
  if (o.incrementalLocation !== undefined)
    opts.push(`incremental_location = ${quoteLiteral(sanitizeUri(o.incrementalLocation))}`);
  const withClause =
    opts.length === 0
      ? ''
      : e.profile.optionsInParens
        ? ` WITH OPTIONS (${opts.join(', ')})`
        : ` WITH ${opts.join(', ')}`;
  const aost = aostToken ? ` AS OF SYSTEM TIME ${aostToken}` : '';
  const where =
    subdir === undefined
      ? `TO ${quoteLiteral(sanitizeUri(uri))}`
      : `INTO ${quoteLiteral(subdir)} IN ${quoteLiteral(sanitizeUri(uri))}`;
  return `BACKUP ${targets}${where}${aost}${withClause}`;
}

async function runJob(
  e: EngineState,
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
  if (job.control.cancelled || e.closed) return;
  job.started = nowMicros();
  job.modified = job.started;
  const durationMs = e.jobDurationMs + Math.random() * e.jobDurationJitterMs;
  let progressAt = Date.now();
  try {
    if (p.destError) throw p.destError;
    if (p.needsLicence) throw new Error(licenceMessage('incremental'));
    if (e.leakUri && p.kind === 'full' && !p.legacy) {
      // backupdest.ResolveDest interpolates the planned and the given URI unsanitized (pkg/backup/backupdest/backup_destination.go).
      throw new Error(
        `A full backup already exists in ${joinUriPath(job.uri, p.subdir)}. Consider running an incremental backup to this full backup via \`BACKUP INTO '${p.subdir}' IN '${job.uri}'\``,
      );
    }
    await runBackup(
      {
        id: job.id,
        profile: e.profile,
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
          // pkg/jobs/progress.go ProgressUpdateBatcher: a new
          // fraction_completed is written only when it is 5 % above the last one and 15 s have passed
          // since the last write (progressFractionThreshold, progressTimeThreshold). A test may ask
          // for smooth progress (no time threshold).
          if (f - job.fraction >= 0.05 && Date.now() - progressAt >= e.progressMinIntervalMs) {
            job.fraction = Math.round(f * 100) / 100;
            job.modified = nowMicros();
            progressAt = Date.now();
          }
        },
        gate: () => e.gate(job),
        resolved: (subdir) => {
          if (job.description.split("'LATEST' IN").length === 2)
            job.description = job.description.replace("'LATEST' IN", `'${subdir}' IN`);
        },
      },
    );
    if (job.control.cancelled) return;
    job.fraction = 1;
    e.finish(job, 'succeeded', '');
  } catch (err) {
    if (job.control.cancelled || err instanceof Cancelled) return;
    e.finish(job, 'failed', (err as Error).message);
  }
}

export async function waitBlocking(
  e: EngineState,
  s: Session,
  job: Job,
  arrived: number,
): Promise<QueryResult> {
  const deadline = e.statementDeadline(s, arrived);
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
  if (e.profile.major < 25) {
    fields.push({ name: 'index_entries', typeOid: Oid.int8 }, { name: 'bytes', typeOid: Oid.int8 });
    row.push('0', '0');
  }
  return { fields, rows: [row], tag: 'BACKUP 1' };
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

/** Go's JoinURLPath on the URI text: the suffix goes on the path, the query stays as written. */
function joinUriPath(uri: string, suffix: string): string {
  const q = uri.indexOf('?');
  const base = q < 0 ? uri : uri.slice(0, q);
  const query = q < 0 ? '' : uri.slice(q);
  return `${base.replace(/\/+$/, '')}/${suffix.replace(/^\/+/, '')}${query}`;
}
