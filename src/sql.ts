/**
 * Statement builders. Nothing from an input reaches SQL text unless it has
 * been validated by inputs.ts and is quoted here; URIs, passphrases and KMS
 * URIs only ever travel as bind parameters.
 */

export interface Statement {
  readonly text: string;
  readonly params: readonly string[];
}

/** Double-quote an identifier, doubling embedded quotes (SQL standard). */
export function quoteIdent(name: string): string {
  if (name.length === 0 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new Error(`refusing to quote an empty identifier or one with control characters`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

const TIMESTAMP_LITERAL = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$/;

/** A validated absolute AS OF SYSTEM TIME literal, e.g. `'2026-11-24 11:40:45.123456+00:00'`. */
export function aostLiteral(utc: string): string {
  if (!TIMESTAMP_LITERAL.test(utc)) {
    throw new Error(`internal: AS OF SYSTEM TIME literal ${JSON.stringify(utc)} is not a UTC timestamp`);
  }
  return `'${utc}'`;
}

/** Microseconds since the epoch → `YYYY-MM-DD HH:MM:SS.ffffff+00:00`. */
export function formatTimestampMicros(micros: bigint): string {
  const millis = Number(micros / 1000n);
  const fraction = (((micros % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0');
  const iso = new Date(millis).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${fraction}+00:00`;
}

export interface BackupStatementOptions {
  databases: readonly string[];
  /** Absolute UTC timestamp `YYYY-MM-DD HH:MM:SS.ffffff+00:00`. */
  asOf: string;
  /** Incremental onto this full backup subdirectory (bound as a parameter). */
  appendTo?: string;
  revisionHistory: boolean;
  encryptionPassphrase?: string;
  kmsUri?: string;
}

/** `BACKUP [DATABASE …] INTO $1 | INTO $2 IN $1 AS OF SYSTEM TIME '…' WITH detached[, …]`. */
export function backupStatement(uri: string, o: BackupStatementOptions): Statement {
  const params: string[] = [uri];
  const bind = (value: string): string => {
    params.push(value);
    return `$${params.length}`;
  };
  const targets = o.databases.length > 0 ? `DATABASE ${o.databases.map(quoteIdent).join(', ')} ` : '';
  const into = o.appendTo !== undefined ? `INTO ${bind(o.appendTo)} IN $1` : 'INTO $1';
  const options = ['detached'];
  if (o.revisionHistory) options.push('revision_history');
  options.push(...keyOptions(o, params));
  return {
    text: `BACKUP ${targets}${into} AS OF SYSTEM TIME ${aostLiteral(o.asOf)} WITH ${options.join(', ')}`,
    params,
  };
}

/**
 * The backup's key as options (`encryption_passphrase = $n`, `kms = $n`), the secret appended to
 * `params` as a bind parameter: BACKUP, SHOW BACKUP and RESTORE name it the same way.
 */
function keyOptions(o: { encryptionPassphrase?: string; kmsUri?: string }, params: string[]): string[] {
  const options: string[] = [];
  if (o.encryptionPassphrase !== undefined) {
    params.push(o.encryptionPassphrase);
    options.push(`encryption_passphrase = $${params.length}`);
  }
  if (o.kmsUri !== undefined) {
    params.push(o.kmsUri);
    options.push(`kms = $${params.length}`);
  }
  return options;
}

const JOB_COLUMNS =
  'job_id, status, fraction_completed, error, created, started, finished, modified, description';

/** One job by id, with full-precision times (SHOW JOB truncates them to seconds from 24.1). */
export function jobByIdStatement(jobId: string): Statement {
  return {
    text: `SELECT ${JOB_COLUMNS} FROM crdb_internal.jobs WHERE job_id = $1`,
    params: [checkJobId(jobId)],
  };
}

export function whenCompleteStatement(jobId: string): Statement {
  return { text: 'SHOW JOB WHEN COMPLETE $1', params: [checkJobId(jobId)] };
}

/** BACKUP jobs that have not finished yet (any user's, as far as this user may see them). */
export function unfinishedBackupsStatement(): Statement {
  return {
    text:
      `SELECT ${JOB_COLUMNS} FROM crdb_internal.jobs WHERE job_type = 'BACKUP' AND status IN ` +
      `('pending', 'running', 'paused', 'pause-requested', 'cancel-requested', 'reverting', 'retry-running', 'retry-reverting')`,
    params: [],
  };
}

/** BACKUP jobs created after `since` whose description holds this exact AS OF SYSTEM TIME literal. */
export function backupsByAostStatement(asOf: string, sinceUtc: string): Statement {
  return {
    text:
      `SELECT ${JOB_COLUMNS} FROM crdb_internal.jobs WHERE job_type = 'BACKUP' AND created > $1 ` +
      `AND description LIKE $2`,
    params: [sinceUtc, `%AS OF SYSTEM TIME ${aostLiteral(asOf)}%`],
  };
}

export function sessionsByApplicationStatement(applicationName: string): Statement {
  return {
    text: 'SELECT session_id, application_name FROM crdb_internal.cluster_sessions WHERE application_name = $1',
    params: [applicationName],
  };
}

export function cancelJobStatement(jobId: string): Statement {
  return { text: 'CANCEL JOB $1', params: [checkJobId(jobId)] };
}

export function showBackupsStatement(uri: string): Statement {
  return { text: 'SHOW BACKUPS IN $1', params: [uri] };
}

export function showBackupStatement(
  uri: string,
  subdir: string,
  opts: { checkFiles: boolean; encryptionPassphrase?: string; kmsUri?: string },
): Statement {
  const params = [subdir, uri];
  const options: string[] = [];
  if (opts.checkFiles) options.push('check_files');
  options.push(...keyOptions(opts, params));
  const withClause = options.length > 0 ? ` WITH ${options.join(', ')}` : '';
  return { text: `SHOW BACKUP FROM $1 IN $2${withClause}`, params };
}

/** statement_timeout in milliseconds, an integer: no input reaches this text. */
export function statementTimeoutStatement(ms: number): Statement {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new Error(`internal: bad statement timeout ${ms}`);
  return { text: `SET statement_timeout = ${ms}`, params: [] };
}

export function showStatementTimeoutStatement(): Statement {
  return { text: 'SHOW statement_timeout', params: [] };
}

/** Put back a statement_timeout as SHOW gave it: milliseconds, or an interval text such as `1m30s`. */
export function restoreStatementTimeoutStatement(shown: string): Statement {
  const value = shown.trim();
  if (/^\d+$/.test(value)) return { text: `SET statement_timeout = ${value}`, params: [] };
  if (!/^[0-9a-zA-Z.:]+$/.test(value)) throw new Error(`internal: unexpected statement_timeout ${shown}`);
  return { text: `SET statement_timeout = '${value}'`, params: [] };
}

export function grantStatements(
  role: string,
  need: {
    databases: readonly string[];
    implicitAccess: boolean;
    controlJob: 'none' | 'role-option' | 'system';
  },
): Statement[] {
  const grantee = quoteIdent(role);
  const out: Statement[] = [];
  if (need.databases.length === 0) {
    out.push({ text: `GRANT SYSTEM BACKUP TO ${grantee}`, params: [] });
  } else {
    out.push({
      text: `GRANT BACKUP ON DATABASE ${need.databases.map(quoteIdent).join(', ')} TO ${grantee}`,
      params: [],
    });
  }
  out.push(...accessGrants(grantee, need));
  return out;
}

function checkJobId(jobId: string): string {
  if (!/^\d{1,20}$/.test(jobId))
    throw new Error(`internal: job id ${JSON.stringify(jobId)} is not an integer`);
  return jobId;
}

/**
 * The restore check (`verify: restore`): the schema restored into a scratch database and
 * every row read back and checksummed, not written (`schema_only, verify_backup_table_data`;
 * CockroachDB docs "Backup Validation", 22.2+). `scratch` is a name this action made and
 * validated; the collection, the subdirectory and the key travel as bind parameters.
 */
export function restoreCheckStatement(
  uri: string,
  o: {
    database: string;
    fullSubdir: string;
    asOf: string;
    scratch: string;
    encryptionPassphrase?: string;
    kmsUri?: string;
  },
): Statement {
  const params: string[] = [uri, o.fullSubdir];
  const options = [
    'schema_only',
    'verify_backup_table_data',
    `new_db_name = ${scratchLiteral(o.scratch)}`,
    'detached',
    ...keyOptions(o, params),
  ];
  return {
    text: `RESTORE DATABASE ${quoteIdent(o.database)} FROM $2 IN $1 AS OF SYSTEM TIME ${aostLiteral(o.asOf)} WITH ${options.join(', ')}`,
    params,
  };
}

const SCRATCH_NAME = /^crdb_backup_verify_[a-z0-9_]{1,40}$/;

/** A scratch database name as a string literal, only for names this action made. */
function scratchLiteral(name: string): string {
  if (!SCRATCH_NAME.test(name)) throw new Error(`internal: ${JSON.stringify(name)} is not a scratch name`);
  return `'${name}'`;
}

/** Whether a database exists (the same on every version 22.2–25.x). */
export function databaseExistsStatement(name: string): Statement {
  return { text: 'SELECT datname FROM pg_database WHERE datname = $1', params: [name] };
}

/** Only ever for a scratch database this run created. */
export function dropScratchStatement(name: string): Statement {
  if (!SCRATCH_NAME.test(name)) throw new Error(`internal: ${JSON.stringify(name)} is not a scratch name`);
  return { text: `DROP DATABASE ${quoteIdent(name)} CASCADE`, params: [] };
}

/**
 * What the restore check needs on the verifying cluster: the RESTORE system privilege (22.2+;
 * restore.md "Required privileges": CREATEDB is the deprecated alternative). The restoring user
 * owns the restored database, so dropping it needs nothing more.
 */
export function restoreGrantStatements(
  role: string,
  need: { implicitAccess: boolean; controlJob: 'none' | 'role-option' | 'system' },
): Statement[] {
  const grantee = quoteIdent(role);
  const out: Statement[] = [{ text: `GRANT SYSTEM RESTORE TO ${grantee}`, params: [] }];
  out.push(...accessGrants(grantee, need));
  return out;
}

/**
 * The restore job of a scratch database, when the answer to its RESTORE never arrived (the step was
 * killed while it was in flight): its description carries `new_db_name = '<scratch>'`, a name
 * unique to the run (`_` matches itself among the other characters of such a name).
 */
export function restoreJobByScratchStatement(scratch: string): Statement {
  if (!SCRATCH_NAME.test(scratch))
    throw new Error(`internal: ${JSON.stringify(scratch)} is not a scratch name`);
  return {
    text: "SELECT job_id, status FROM crdb_internal.jobs WHERE job_type = 'RESTORE' AND description LIKE $1",
    params: [`%new_db_name = '${scratch}'%`],
  };
}

/**
 * What the backup and the restore check both need beyond their own privilege: implicit access to
 * the storage, and CONTROLJOB in the form the version takes, for a cancel.
 */
function accessGrants(
  grantee: string,
  need: { implicitAccess: boolean; controlJob: 'none' | 'role-option' | 'system' },
): Statement[] {
  const out: Statement[] = [];
  if (need.implicitAccess)
    out.push({ text: `GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO ${grantee}`, params: [] });
  if (need.controlJob === 'system') out.push({ text: `GRANT SYSTEM CONTROLJOB TO ${grantee}`, params: [] });
  if (need.controlJob === 'role-option')
    out.push({ text: `ALTER ROLE ${grantee} WITH CONTROLJOB`, params: [] });
  return out;
}

/** `RESTORE … FROM '<full>' IN '<collection>' AS OF SYSTEM TIME '<end>'`, pinned to this backup. */
export function restoreStatement(o: {
  databases: readonly string[];
  quoteIdent: (n: string) => string;
  collectionForRestore: string;
  fullSubdir: string;
  endTimeLiteral: string;
  encrypted?: 'passphrase' | 'kms';
}): string {
  const what = o.databases.length > 0 ? `DATABASE ${o.databases.map(o.quoteIdent).join(', ')} ` : '';
  const opts =
    o.encrypted === 'passphrase'
      ? "\n  WITH encryption_passphrase = '<passphrase>'"
      : o.encrypted === 'kms'
        ? "\n  WITH kms = '<kms-uri>'"
        : '';
  // One clause a line: the summary's code block does not wrap.
  return `RESTORE ${what}FROM '${o.fullSubdir}'\n  IN '${o.collectionForRestore}'\n  AS OF SYSTEM TIME '${o.endTimeLiteral}'${opts};`;
}
