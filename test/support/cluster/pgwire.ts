/**
 * PostgreSQL wire protocol v3 for the test cluster: the server (listen, accept, cancel requests, drop
 * every connection, refuse connections for a while) and its fault hooks. The parts: messages
 * (pgwire-codec.ts), TLS and authentication (trust / cleartext / md5 / SCRAM-SHA-256 / certificate,
 * pgwire-auth.ts), one connection's startup and simple and extended query (pgwire-connection.ts), the
 * injected faults (pgwire-faults.ts) and splitting a query into statements (sqltext.ts). The SQL itself
 * is the engine's business.
 */
import { createServer, type Server } from 'node:net';
import type { Engine } from './protocol-types.js';
import { FaultPlan, sleep } from './pgwire-faults.js';
import type { ServerContext } from './pgwire-connection.js';
import { Connection } from './pgwire-connection.js';

export type AuthMethod = 'trust' | 'cleartext' | 'md5' | 'scram-sha-256' | 'cert';

export type TlsOptions = NonNullable<PgWireOptions['tls']>;

export interface PgWireOptions {
  engine: Engine;
  /** Default 'cleartext': CockroachDB asks for a cleartext password (over TLS). */
  auth?: AuthMethod;
  /** PEM. When set, SSLRequest is answered 'S'. */
  tls?: { cert: string; key: string; ca?: string; requestClientCert?: boolean };
  /** Reject non-TLS startups with 28000, like CockroachDB's secure mode. */
  requireTls?: boolean;
  host?: '127.0.0.1';
  port?: number;
}

export interface PgWireStats {
  connectionsAccepted: number;
  connectionsAuthenticated: number;
  active: number;
  /** Every engine.execute call. */
  statements: number;
}

export interface PgWireServer {
  readonly host: string;
  readonly port: number;
  readonly stats: PgWireStats;
  /** Destroy every open socket now. */
  dropAllConnections(): void;
  /** A restart: drop everything, stop listening for `ms`, then listen again on the same port. */
  refuseConnections(ms: number): void;
  /** The n-th statement from now (any session) runs, then its socket is destroyed instead of answering. */
  dropAfterStatements(n: number): void;
  /** When a matching statement starts, destroy its socket after `afterMs` without answering (`times` default 1). */
  dropDuring(pattern: RegExp, opts?: { times?: number; afterMs?: number }): void;
  /** Delay matching statements before the engine sees them. */
  slowStatements(pattern: RegExp, ms: number): void;
  /**
   * Matching statements run at once, but their answer is held back for `ms` (a slow network
   * or an overloaded gateway); closing the connection meanwhile loses it.
   */
  holdAnswers(pattern: RegExp, ms: number): void;
  clearFaults(): void;
  /** Stop listening and destroy all sockets. */
  close(): Promise<void>;
}

// ---- server ------------------------------------------------------------------------------------------

function listenOn(server: Server, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startPgWireServer(opts: PgWireOptions): Promise<PgWireServer> {
  const stats: PgWireStats = {
    connectionsAccepted: 0,
    connectionsAuthenticated: 0,
    active: 0,
    statements: 0,
  };
  const faults = new FaultPlan();
  const connections = new Set<Connection>();
  let sessionIds = 0;
  const ctx: ServerContext = {
    engine: opts.engine,
    auth: opts.auth ?? 'cleartext',
    tls: opts.tls,
    requestClientCert: opts.tls?.requestClientCert ?? opts.auth === 'cert',
    requireTls: opts.requireTls ?? false,
    stats,
    faults,
    connections,
    nextSessionId: () => ++sessionIds,
    cancel(pid, secret) {
      for (const c of connections) if (c.pid === pid && c.secret === secret) c.cancelRunningStatement();
    },
  };
  const server = createServer((socket) => {
    stats.connectionsAccepted++;
    void new Connection(ctx, socket).serve();
  });
  await listenOn(server, opts.port ?? 0);
  const port = (server.address() as { port: number }).port;
  let closed = false;
  let reopenTimer: NodeJS.Timeout | undefined;

  const dropAll = (): void => {
    for (const c of [...connections]) c.destroy();
  };

  /** Another process may briefly hold the port; try for a few seconds. */
  const reopen = async (): Promise<void> => {
    for (let attempt = 0; attempt < 50 && !closed && !server.listening; attempt++) {
      try {
        await listenOn(server, port);
      } catch {
        await sleep(100);
      }
    }
  };

  return {
    host: '127.0.0.1',
    port,
    stats,
    dropAllConnections: dropAll,
    refuseConnections(ms) {
      clearTimeout(reopenTimer);
      dropAll();
      // Not listening gives ECONNREFUSED, as a restarting node does.
      if (server.listening) server.close();
      reopenTimer = setTimeout(() => void reopen(), ms);
    },
    dropAfterStatements: (n) => faults.dropAfterStatements(n),
    dropDuring: (pattern, o) => faults.dropDuring(pattern, o?.times ?? 1, o?.afterMs ?? 0),
    slowStatements: (pattern, ms) => faults.slow(pattern, ms),
    holdAnswers: (pattern, ms) => faults.hold(pattern, ms),
    clearFaults: () => faults.clear(),
    async close() {
      closed = true;
      clearTimeout(reopenTimer);
      dropAll();
      if (!server.listening) return;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
