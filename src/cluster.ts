/**
 * Connections to the cluster: TLS as libpq's sslmode says, application_name
 * for the DBA, raw strings for int8 and timestamps, version detection, and a
 * reconnecting wrapper used while waiting on a job.
 */
import type { ConnectionOptions } from 'node:tls';
import type { ConnectionConfig } from './config.js';
import type { Statement } from './sql.js';
import type { Clock } from './runtime.js';
import { AbortedError, errorMessage } from './errors.js';

/** Parsed `SELECT version()`. */
export interface ClusterVersion {
  /** e.g. `CockroachDB CCL v23.1.11 (x86_64-…)`. */
  readonly full: string;
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** `v23.1.11`. */
  readonly tag: string;
}

export type Row = Record<string, string | number | boolean | null | string[]>;

/** What the rest of the action needs from a SQL connection; tests can provide their own. */
export interface SqlSession {
  query(stmt: Statement, opts?: { clientTimeoutMs?: number }): Promise<Row[]>;
  close(): Promise<void>;
  readonly applicationName: string;
  /** True once the connection has failed or been closed. */
  readonly broken: boolean;
}

export interface ConnectRequest {
  connection: ConnectionConfig;
  applicationName: string;
  connectTimeoutMs: number;
}

export type Connector = (req: ConnectRequest) => Promise<SqlSession>;

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A failure of the connection itself (reset, refused, timed out), as opposed to an answer from the server. */
export function isConnectionError(err: unknown): boolean {
  if (sqlState(err) !== undefined) {
    // 57P01 admin shutdown, 08xxx connection exceptions: the server is going away.
    const code = sqlState(err)!;
    return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03';
  }
  const message = err instanceof Error ? err.message : String(err);
  return /ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|Connection terminated|connection timeout|timeout expired|Client has encountered a connection error|socket hang up|not queryable|Query read timeout|Connection ended/i.test(
    message,
  );
}

/** TLS options for node:tls following libpq's sslmode, or false for a plain connection. */
export function tlsOptionsFor(c: ConnectionConfig): ConnectionOptions | false {
  const withClientCert = (o: ConnectionOptions): ConnectionOptions =>
    c.clientCert !== undefined ? { ...o, cert: c.clientCert, key: c.clientKey } : o;
  switch (c.sslmode) {
    case 'disable':
      return false;
    case 'allow':
    case 'prefer':
      return withClientCert({ rejectUnauthorized: false });
    case 'require':
      // libpq: with a root certificate, require behaves like verify-ca.
      return c.caCert !== undefined
        ? verifyCa(c, withClientCert)
        : withClientCert({ rejectUnauthorized: false });
    case 'verify-ca':
      return verifyCa(c, withClientCert);
    case 'verify-full':
      return withClientCert({
        rejectUnauthorized: true,
        ...(c.caCert !== undefined ? { ca: c.caCert } : {}),
        ...(isIp(c.host) ? {} : { servername: c.host }),
      });
  }
}

function verifyCa(c: ConnectionConfig, wrap: (o: ConnectionOptions) => ConnectionOptions): ConnectionOptions {
  return wrap({
    rejectUnauthorized: true,
    ...(c.caCert !== undefined ? { ca: c.caCert } : {}),
    checkServerIdentity: () => undefined,
  });
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** The production connector: node-postgres, never pg.native. */
/**
 * The connection string's connect_timeout (seconds, as in libpq) when given;
 * libpq's 0 means "wait forever", which a workflow step must never do.
 */
export function connectTimeoutMs(c: ConnectionConfig, fallbackMs: number): number {
  const seconds = Number(c.params.connect_timeout ?? 0);
  return Number.isInteger(seconds) && seconds > 0 ? seconds * 1000 : fallbackMs;
}

export const pgConnector: Connector = async (req) => {
  const pg = (await import('pg')).default;
  const raw = (v: string): string => v;
  const types = {
    getTypeParser: (oid: number, format?: string) => {
      // int8 job ids exceed 2^53; numerics and timestamps are parsed by us, as UTC.
      if (oid === 20 || oid === 1700 || oid === 1114 || oid === 1184 || oid === 1186) return raw;
      return pg.types.getTypeParser(oid, format as 'text');
    },
  };
  const attempt = async (ssl: ConnectionOptions | false): Promise<SqlSession> => {
    const c = req.connection;
    const client = new pg.Client({
      host: c.host,
      port: c.port,
      user: c.user,
      password: c.password,
      database: c.database,
      ssl,
      application_name: req.applicationName,
      connectionTimeoutMillis: connectTimeoutMs(c, req.connectTimeoutMs),
      keepAlive: true,
      types,
      ...(c.params.options !== undefined ? { options: c.params.options } : {}),
    });
    let broken = false;
    // An unhandled 'error' event would kill the process; the next query reports it instead.
    client.on('error', () => {
      broken = true;
    });
    client.on('end', () => {
      broken = true;
    });
    try {
      await client.connect();
    } catch (err) {
      broken = true;
      await client.end().catch(() => undefined);
      throw err;
    }
    return {
      applicationName: req.applicationName,
      get broken() {
        return broken;
      },
      async query(stmt, opts) {
        try {
          const result = await client.query({
            text: stmt.text,
            values: [...stmt.params],
            ...(opts?.clientTimeoutMs !== undefined ? { query_timeout: opts.clientTimeoutMs } : {}),
          });
          return result.rows as Row[];
        } catch (err) {
          if (isConnectionError(err)) broken = true;
          throw err;
        }
      },
      async close() {
        broken = true;
        await client.end().catch(() => undefined);
      },
    };
  };
  const ssl = tlsOptionsFor(req.connection);
  try {
    return await attempt(ssl);
  } catch (err) {
    // allow/prefer: fall back to a plain connection when the server has no TLS.
    const noTls = err instanceof Error && /does not support SSL/i.test(err.message);
    if (noTls && (req.connection.sslmode === 'prefer' || req.connection.sslmode === 'allow')) {
      return attempt(false);
    }
    throw err;
  }
};

const CRDB_VERSION = /^CockroachDB \S+ v(\d+)\.(\d+)\.(\d+)\S*/;
const POSTGRES_VERSION = /^PostgreSQL (\d+(?:\.\d+)?)/;

export class NotCockroachError extends Error {}

/** Parse `SELECT version()`; a server that is not CockroachDB gets an error naming what it is. */
export function parseClusterVersion(text: string): ClusterVersion {
  const m = CRDB_VERSION.exec(text);
  if (m) {
    const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
    return { full: text, major, minor, patch, tag: `v${major}.${minor}.${patch}` };
  }
  const pgm = POSTGRES_VERSION.exec(text);
  const what = pgm ? `PostgreSQL ${pgm[1]}` : `"${text.slice(0, 80)}"`;
  throw new NotCockroachError(
    `The server at connection-string is ${what}, not CockroachDB. crdb-backup-action needs CockroachDB 22.2 or later: check the host and port in connection-string.`,
  );
}

export function versionAtLeast(v: ClusterVersion, major: number, minor: number, patch = 0): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

export interface LinkLogger {
  info(message: string): void;
  warning(message: string): void;
}

/** Names connections `<base> c<N>`, so a DBA sees who runs the backup and a lost session can be found by name. */
export class ApplicationNames {
  private count = 0;
  constructor(readonly base: string) {}
  next(): string {
    this.count += 1;
    return `${this.base} c${this.count}`;
  }
}

/**
 * One logical connection to the cluster that reconnects with jittered
 * backoff inside a bounded budget when the network or the node goes away.
 */
export class ClusterLink {
  private current: SqlSession | undefined;
  private everConnected = false;

  constructor(
    private readonly connector: Connector,
    private readonly connection: ConnectionConfig,
    private readonly names: ApplicationNames,
    private readonly clock: Clock,
    private readonly log: LinkLogger,
    private readonly opts: { connectTimeoutMs: number; random?: () => number },
  ) {}

  /** The live session, opening one (once, no retry) when there is none. */
  async session(): Promise<SqlSession> {
    if (this.current && !this.current.broken) return this.current;
    this.current = await this.connector({
      connection: this.connection,
      applicationName: this.names.next(),
      connectTimeoutMs: this.opts.connectTimeoutMs,
    });
    this.everConnected = true;
    return this.current;
  }

  /** Forget the current session (closing it in the background), e.g. when a query on it was abandoned. */
  abandon(): void {
    const s = this.current;
    this.current = undefined;
    void s?.close();
  }

  async close(): Promise<void> {
    const s = this.current;
    this.current = undefined;
    await s?.close();
  }

  /**
   * Run fn on a live session; on a connection failure reconnect and run it
   * again, until `budgetMs` is spent. Server errors (with a SQLSTATE) are
   * not retried. Throws AbortedError when the signal aborts.
   */
  async withReconnect<T>(
    what: string,
    fn: (s: SqlSession) => Promise<T>,
    o: { budgetMs: number; signal?: AbortSignal },
  ): Promise<T> {
    const started = this.clock.now();
    let failures = 0;
    let lostAt: number | undefined;
    for (;;) {
      if (o.signal?.aborted) throw new AbortedError();
      if (this.current?.broken && lostAt === undefined) {
        // The connection died while idle (between polls): say so, as for one lost mid-query.
        lostAt = this.clock.now();
        this.log.warning(`Connection to the cluster lost before ${what}; reconnecting.`);
      }
      try {
        const wasConnected = this.everConnected;
        const s = await this.session();
        if (lostAt !== undefined) {
          // Said as soon as a session is back: fn may then hold it for long (WHEN COMPLETE).
          const secs = ((this.clock.now() - lostAt) / 1000).toFixed(1);
          this.log.info(
            wasConnected
              ? `Reconnected after ${secs}s (${failures} attempt(s)); ${what} resumes.`
              : `Connected after ${secs}s (${failures} failed attempt(s)).`,
          );
          lostAt = undefined;
        }
        const result = await fn(s);
        return result;
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        this.abandon();
        failures += 1;
        if (lostAt === undefined) {
          lostAt = this.clock.now();
          this.log.warning(
            this.everConnected
              ? `Connection to the cluster lost during ${what} (${errorMessage(err)}); reconnecting.`
              : `Could not reach the cluster (${errorMessage(err)}); retrying for up to ${Math.round(o.budgetMs / 1000)}s.`,
          );
        }
        const spent = this.clock.now() - started;
        if (spent >= o.budgetMs) {
          throw new Error(
            `lost the connection to the cluster during ${what} and could not reconnect within ${Math.round(o.budgetMs / 1000)}s: ${errorMessage(err)}`,
            { cause: err },
          );
        }
        const delay = Math.min(backoffMs(failures, this.opts.random ?? Math.random), o.budgetMs - spent);
        await this.clock.sleep(delay, o.signal);
      }
    }
  }
}

/** Full-jitter exponential backoff: 0.25 s doubling up to 5 s. */
export function backoffMs(attempt: number, random: () => number): number {
  const cap = Math.min(5000, 250 * 2 ** Math.min(attempt - 1, 10));
  return Math.round(cap / 2 + (random() * cap) / 2);
}

/** What the action may rely on in a cluster of a given version. */
export interface Capabilities {
  /** Why the action refuses this version (older than 22.2); undefined when supported. */
  unsupported?: string;
  /** A warning for a version newer than those the action was tested with (after 25.x). */
  untested?: string;
  /** `SHOW JOB WHEN COMPLETE` waits for a job on the server (23.2 and later). */
  whenComplete: boolean;
  /** How CONTROLJOB is granted: a system privilege from 23.1.12, the role option before. */
  controlJob: 'system' | 'role-option';
}

export function capabilities(v: ClusterVersion): Capabilities {
  return {
    ...(versionAtLeast(v, 22, 2)
      ? {}
      : { unsupported: `CockroachDB ${v.tag} is too old: crdb-backup-action supports 22.2 and later.` }),
    ...(v.major > 25
      ? {
          untested: `CockroachDB ${v.tag} is newer than the versions this action was tested with (22.2 to 25.x).`,
        }
      : {}),
    whenComplete: versionAtLeast(v, 23, 2),
    controlJob: versionAtLeast(v, 23, 1, 12) ? 'system' : 'role-option',
  };
}
