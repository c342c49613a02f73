/**
 * The seam between the PostgreSQL wire-protocol layer (pgwire.ts) and the
 * CockroachDB statement engine (engine.ts). The wire layer knows bytes,
 * sockets, TLS and authentication; the engine knows SQL, jobs and versions.
 */

/** PostgreSQL type OIDs the test cluster uses in RowDescription. */
export const Oid = {
  bool: 16,
  int8: 20,
  text: 25,
  float8: 701,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  numeric: 1700,
  textArray: 1009,
  int8Array: 1016,
  jsonb: 3802,
} as const;

export interface Field {
  name: string;
  typeOid: number;
}

/** One statement's answer. `fields: null` means the statement returns no rows (NoData). */
export interface QueryResult {
  fields: Field[] | null;
  /** Text-format values; null is SQL NULL. */
  rows: (string | null)[][];
  /** CommandComplete tag, e.g. `SELECT 1`, `SET`, `GRANT`, `BACKUP 1`, `CANCEL JOBS 1`. */
  tag: string;
  /** NoticeResponses sent before the CommandComplete (optional). */
  notices?: Notice[];
}

/** A NoticeResponse. `severity` defaults to NOTICE and `code` to 00000. */
export interface Notice {
  severity?: 'WARNING' | 'NOTICE' | 'INFO' | 'DEBUG' | 'LOG';
  code?: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** An ErrorResponse. `code` is the SQLSTATE (CockroachDB uses XXUUU when it has none). */
export class SqlError extends Error {
  constructor(
    public readonly code: string,
    message: string,
    public readonly detail?: string,
    public readonly hint?: string,
  ) {
    super(message);
    this.name = 'SqlError';
  }
}

/**
 * Thrown by the engine to make the wire layer destroy the socket without
 * answering (used to simulate a lost answer or a dying node).
 */
export class DropConnection extends Error {
  constructor(reason = 'connection dropped by fault injection') {
    super(reason);
    this.name = 'DropConnection';
  }
}

export interface SessionInfo {
  /** Unique per connection, increasing from 1. */
  readonly id: number;
  readonly user: string;
  readonly database: string;
  /** Startup parameters sent by the client (application_name, options, …). */
  readonly startupParams: ReadonlyMap<string, string>;
  /** Aborted when the client's socket closes or the server drops it. */
  readonly signal: AbortSignal;
  readonly tls: boolean;
  /** CN of the verified client certificate, when the client authenticated with one. */
  readonly clientCertCommonName?: string;
  /**
   * Aborted when the client cancels the running statement (CancelRequest) or
   * the connection goes; undefined between statements. The wire layer already
   * answers 57014 on cancel, so an engine only needs it to stop work early.
   */
  readonly statementSignal?: AbortSignal | undefined;
}

export interface UserRecord {
  name: string;
  /** Undefined: the user has no password (only trust or certificate auth can log it in). */
  password?: string;
}

export interface Engine {
  /** Look a user up for authentication. Undefined: the user does not exist. */
  findUser(name: string): UserRecord | undefined;
  /** ParameterStatus values sent after authentication (server_version, crdb_version, …). */
  startupParameters(session: SessionInfo): Record<string, string>;
  openSession(session: SessionInfo): void;
  closeSession(session: SessionInfo): void;
  /**
   * Run one statement. The wire layer splits simple-query strings on `;`
   * (outside quotes) and calls this once per statement. Params are the
   * text-format bind values of the extended protocol (null for NULL).
   */
  execute(
    session: SessionInfo,
    sql: string,
    params: readonly (string | null)[],
    /** OIDs the client declared for the parameters at Parse; 0 or missing: not declared. */
    paramTypes?: readonly number[],
  ): Promise<QueryResult>;
}
