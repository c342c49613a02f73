/**
 * PostgreSQL wire protocol v3 for the test cluster: startup, SSLRequest and
 * TLS, trust / cleartext / md5 / SCRAM-SHA-256 / certificate authentication,
 * simple and extended query (an error skips to Sync), and connection-level
 * fault hooks. The SQL itself is the engine's business.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createSecureContext } from 'node:tls';
import type { Engine, QueryResult, SessionInfo } from './protocol-types.js';
import { DropConnection, SqlError } from './protocol-types.js';

export type AuthMethod = 'trust' | 'cleartext' | 'md5' | 'scram-sha-256' | 'cert';

export interface PgWireOptions {
  engine: Engine;
  auth?: AuthMethod;
  tls?: { cert: string; key: string; ca?: string; requestClientCert?: boolean };
  requireTls?: boolean;
  host?: '127.0.0.1';
  port?: number;
}

export interface PgWireServer {
  readonly host: string;
  readonly port: number;
  readonly stats: {
    connectionsAccepted: number;
    connectionsAuthenticated: number;
    active: number;
    statements: number;
  };
  dropAllConnections(): void;
  refuseConnections(ms: number): void;
  dropAfterStatements(n: number): void;
  dropDuring(pattern: RegExp, opts?: { times?: number; afterMs?: number }): void;
  slowStatements(pattern: RegExp, ms: number): void;
  clearFaults(): void;
  close(): Promise<void>;
}

/** Reads length-prefixed messages from a socket that may be swapped for its TLS wrapper. */
class MessageReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;
  attach(socket: Socket | TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  detach(socket: Socket): void {
    socket.removeAllListeners('data');
  }
  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
  private async need(n: number): Promise<boolean> {
    while (this.buf.length < n) {
      if (this.ended) return false;
      await new Promise<void>((r) => (this.waiter = r));
    }
    return true;
  }
  /** Startup-phase packet: int32 length including itself, then body. */
  async startup(): Promise<Buffer | undefined> {
    if (!(await this.need(4))) return undefined;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > 10_000) return undefined;
    if (!(await this.need(len))) return undefined;
    const body = this.buf.subarray(4, len);
    this.buf = this.buf.subarray(len);
    return Buffer.from(body);
  }
  async message(): Promise<{ type: string; body: Buffer } | undefined> {
    if (!(await this.need(5))) return undefined;
    const type = String.fromCharCode(this.buf[0]!);
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > 64 * 1024 * 1024) return undefined;
    if (!(await this.need(1 + len))) return undefined;
    const body = Buffer.from(this.buf.subarray(5, 1 + len));
    this.buf = this.buf.subarray(1 + len);
    return { type, body };
  }
  hasBuffered(): boolean {
    return this.buf.length > 0;
  }
}

function msg(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const int16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);

function readCStrings(body: Buffer, start = 0): { values: string[]; end: number } {
  const values: string[] = [];
  let i = start;
  while (i < body.length) {
    const z = body.indexOf(0, i);
    if (z < 0) break;
    values.push(body.subarray(i, z).toString('utf8'));
    i = z + 1;
    if (values[values.length - 1] === '') break;
  }
  return { values, end: i };
}

function errorResponse(e: SqlError, severity = 'ERROR'): Buffer {
  const fields = [
    Buffer.from('S'),
    cstr(severity),
    Buffer.from('V'),
    cstr(severity),
    Buffer.from('C'),
    cstr(e.code),
    Buffer.from('M'),
    cstr(e.message),
  ];
  if (e.detail) fields.push(Buffer.from('D'), cstr(e.detail));
  if (e.hint) fields.push(Buffer.from('H'), cstr(e.hint));
  fields.push(Buffer.from([0]));
  return msg('E', ...fields);
}

function rowDescription(result: QueryResult): Buffer {
  const fields = result.fields ?? [];
  const parts: Buffer[] = [int16(fields.length)];
  for (const f of fields)
    parts.push(cstr(f.name), int32(0), int16(0), int32(f.typeOid), int16(-1), int32(-1), int16(0));
  return msg('T', ...parts);
}

function dataRow(row: (string | null)[]): Buffer {
  const parts: Buffer[] = [int16(row.length)];
  for (const v of row) {
    if (v === null) parts.push(int32(-1));
    else {
      const b = Buffer.from(v, 'utf8');
      parts.push(int32(b.length), b);
    }
  }
  return msg('D', ...parts);
}

/** Split a simple-query string on `;` outside quotes and dollar quotes. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let cur = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = closingQuote(sql, i, c);
      cur += sql.slice(i, end);
      i = end;
    } else if (c === '$' && /^\$[A-Za-z_]*\$/.test(sql.slice(i))) {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i))![0];
      const end = sql.indexOf(tag, i + tag.length);
      const stop = end < 0 ? sql.length : end + tag.length;
      cur += sql.slice(i, stop);
      i = stop;
    } else if (c === ';') {
      out.push(cur);
      cur = '';
      i++;
    } else {
      cur += c;
      i++;
    }
  }
  out.push(cur);
  return out.map((s) => s.trim()).filter((s, idx, all) => s !== '' || (all.length === 1 && idx === 0));
}

function closingQuote(sql: string, start: number, q: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === q) {
      if (sql[i + 1] === q) i += 2;
      else return i + 1;
    } else i++;
  }
  return sql.length;
}

interface Conn {
  socket: Socket | TLSSocket;
  session?: SessionInfo & { abort: AbortController };
  pid: number;
  secret: number;
}

export async function startPgWireServer(opts: PgWireOptions): Promise<PgWireServer> {
  const engine = opts.engine;
  const auth = opts.auth ?? 'cleartext';
  const secureContext = opts.tls
    ? createSecureContext({
        cert: opts.tls.cert,
        key: opts.tls.key,
        ...(opts.tls.ca ? { ca: opts.tls.ca } : {}),
      })
    : undefined;
  const stats = { connectionsAccepted: 0, connectionsAuthenticated: 0, active: 0, statements: 0 };
  const conns = new Set<Conn>();
  let nextSession = 1;
  let refusingUntil = 0;
  let dropAfter: number | undefined;
  let dropDuring: { pattern: RegExp; times: number; afterMs: number }[] = [];
  let slow: { pattern: RegExp; ms: number }[] = [];

  const server: Server = createServer((socket) => void serve(socket));
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(opts.port ?? 0);
  const port = (server.address() as { port: number }).port;

  async function serve(raw: Socket): Promise<void> {
    stats.connectionsAccepted++;
    if (Date.now() < refusingUntil) {
      raw.destroy();
      return;
    }
    const conn: Conn = {
      socket: raw,
      pid: 1000 + stats.connectionsAccepted,
      secret: randomBytes(4).readInt32BE(),
    };
    conns.add(conn);
    stats.active++;
    raw.setNoDelay(true);
    const reader = new MessageReader();
    reader.attach(raw);
    try {
      await run(conn, reader);
    } catch {
      // a broken client is not the server's problem
    } finally {
      conns.delete(conn);
      stats.active--;
      conn.socket.destroy();
      if (conn.session) {
        conn.session.abort.abort();
        engine.closeSession(conn.session);
      }
    }
  }

  const write = (conn: Conn, ...bufs: Buffer[]): void => {
    if (!conn.socket.destroyed) conn.socket.write(Buffer.concat(bufs));
  };

  async function run(conn: Conn, reader: MessageReader): Promise<void> {
    let tls = false;
    let packet: Buffer | undefined;
    for (let i = 0; i < 4; i++) {
      packet = await reader.startup();
      if (!packet) return;
      const code = packet.readInt32BE(0);
      if (code === 80877103) {
        if (!secureContext || tls) {
          conn.socket.write('N');
          continue;
        }
        conn.socket.write('S');
        reader.detach(conn.socket as Socket);
        const tlsSocket = new TLSSocket(
          conn.socket as Socket,
          {
            isServer: true,
            secureContext,
            requestCert: opts.tls?.requestClientCert ?? auth === 'cert',
            rejectUnauthorized: false,
            ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
          } as ConstructorParameters<typeof TLSSocket>[1],
        );
        conn.socket = tlsSocket;
        reader.attach(tlsSocket);
        tls = true;
        continue;
      }
      if (code === 80877104) {
        conn.socket.write('N');
        continue;
      }
      if (code === 80877102) return; // CancelRequest: nothing runs long enough here to need it
      break;
    }
    if (!packet || packet.readInt32BE(0) !== 196608) return;
    const params = new Map<string, string>();
    const kv = readCStrings(packet, 4).values;
    for (let i = 0; i + 1 < kv.length; i += 2) params.set(kv[i]!, kv[i + 1]!);
    const user = params.get('user') ?? '';
    const fatal = (code: string, message: string): void =>
      write(conn, errorResponse(new SqlError(code, message), 'FATAL'));
    if (opts.requireTls && !tls) {
      fatal('28000', 'node is running secure mode, SSL connection required');
      return;
    }
    const record = engine.findUser(user);
    const certCn = tls ? peerCommonName(conn.socket as TLSSocket) : undefined;
    if (!(await authenticate(conn, reader, user, record?.password, certCn, record !== undefined))) {
      fatal('28P01', `password authentication failed for user ${user}`);
      return;
    }
    stats.connectionsAuthenticated++;
    const abort = new AbortController();
    const session = {
      id: nextSession++,
      user,
      database: params.get('database') ?? user,
      startupParams: params,
      signal: abort.signal,
      tls,
      ...(certCn ? { clientCertCommonName: certCn } : {}),
      abort,
    };
    conn.session = session;
    engine.openSession(session);
    const out: Buffer[] = [msg('R', int32(0))];
    for (const [k, v] of Object.entries(engine.startupParameters(session)))
      out.push(msg('S', cstr(k), cstr(v)));
    out.push(msg('K', int32(conn.pid), int32(conn.secret)), msg('Z', Buffer.from('I')));
    write(conn, ...out);
    await queryLoop(conn, reader, session);
  }

  async function authenticate(
    conn: Conn,
    reader: MessageReader,
    user: string,
    password: string | undefined,
    certCn: string | undefined,
    exists: boolean,
  ): Promise<boolean> {
    if (auth === 'trust') return exists;
    if (auth === 'cert') return exists && certCn === user && (conn.socket as TLSSocket).authorized !== false;
    if (auth === 'cleartext') {
      write(conn, msg('R', int32(3)));
      const m = await reader.message();
      if (!m || m.type !== 'p') return false;
      const given = m.body.subarray(0, m.body.indexOf(0)).toString('utf8');
      return exists && password !== undefined && given === password;
    }
    if (auth === 'md5') {
      const salt = randomBytes(4);
      write(conn, msg('R', int32(5), salt));
      const m = await reader.message();
      if (!m || m.type !== 'p' || !exists || password === undefined) return false;
      const given = m.body.subarray(0, m.body.indexOf(0)).toString('utf8');
      const inner = createHash('md5')
        .update(password + user)
        .digest('hex');
      return (
        given ===
        'md5' +
          createHash('md5')
            .update(Buffer.concat([Buffer.from(inner), salt]))
            .digest('hex')
      );
    }
    return scram(conn, reader, password, exists);
  }

  async function scram(
    conn: Conn,
    reader: MessageReader,
    password: string | undefined,
    exists: boolean,
  ): Promise<boolean> {
    write(conn, msg('R', int32(10), cstr('SCRAM-SHA-256'), Buffer.from([0])));
    const first = await reader.message();
    if (!first || first.type !== 'p') return false;
    const mechEnd = first.body.indexOf(0);
    const len = first.body.readInt32BE(mechEnd + 1);
    const clientFirst = first.body.subarray(mechEnd + 5, mechEnd + 5 + len).toString('utf8');
    const bare = clientFirst.replace(/^[^,]*,[^,]*,/, '');
    const clientNonce = /(?:^|,)r=([^,]+)/.exec(bare)?.[1] ?? '';
    const nonce = clientNonce + randomBytes(18).toString('base64');
    const salt = randomBytes(16);
    const iterations = 4096;
    const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${iterations}`;
    write(conn, msg('R', int32(11), Buffer.from(serverFirst)));
    const fin = await reader.message();
    if (!fin || fin.type !== 'p' || !exists || password === undefined) return false;
    const clientFinal = fin.body.toString('utf8');
    const withoutProof = clientFinal.replace(/,p=[^,]*$/, '');
    const proof = Buffer.from(/,p=([^,]*)$/.exec(clientFinal)?.[1] ?? '', 'base64');
    if (!withoutProof.includes(`r=${nonce}`)) return false;
    const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const authMessage = `${bare},${serverFirst},${withoutProof}`;
    const clientSignature = createHmac('sha256', storedKey).update(authMessage).digest();
    if (proof.length !== 32) return false;
    const recovered = Buffer.from(proof.map((b, i) => b ^ clientSignature[i]!));
    if (!timingSafeEqual(createHash('sha256').update(recovered).digest(), storedKey)) return false;
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    const serverSignature = createHmac('sha256', serverKey).update(authMessage).digest('base64');
    write(conn, msg('R', int32(12), Buffer.from(`v=${serverSignature}`)));
    return true;
  }

  interface Prepared {
    sql: string;
  }
  interface Portal {
    sql: string;
    params: (string | null)[];
    result?: QueryResult;
    error?: unknown;
    executed: boolean;
  }

  async function queryLoop(conn: Conn, reader: MessageReader, session: SessionInfo): Promise<void> {
    const prepared = new Map<string, Prepared>();
    const portals = new Map<string, Portal>();
    let txStatus = 'I';
    let skipToSync = false;
    const ready = () => msg('Z', Buffer.from(txStatus));
    const trackTx = (tag: string) => {
      if (/^BEGIN/.test(tag)) txStatus = 'T';
      else if (/^(COMMIT|ROLLBACK)/.test(tag)) txStatus = 'I';
    };
    const fail = (err: unknown): Buffer => {
      if (txStatus === 'T') txStatus = 'E';
      const e =
        err instanceof SqlError
          ? err
          : new SqlError('XX000', err instanceof Error ? err.message : String(err));
      return errorResponse(e);
    };
    for (;;) {
      const m = await reader.message();
      if (!m) return;
      if (m.type === 'X') return;
      if (skipToSync && m.type !== 'S') continue;
      switch (m.type) {
        case 'Q': {
          const sql = m.body.subarray(0, m.body.indexOf(0)).toString('utf8');
          const statements = splitStatements(sql);
          const out: Buffer[] = [];
          if (statements.length === 0 || (statements.length === 1 && statements[0] === ''))
            out.push(msg('I'));
          for (const stmt of statements) {
            if (stmt === '') continue;
            try {
              const r = await execute(conn, session, stmt, []);
              trackTx(r.tag);
              if (r.fields) out.push(rowDescription(r), ...r.rows.map(dataRow));
              out.push(msg('C', cstr(r.tag)));
            } catch (err) {
              if (err instanceof DropConnection) throw err;
              out.push(fail(err));
              break;
            }
          }
          out.push(ready());
          write(conn, ...out);
          break;
        }
        case 'P': {
          const z1 = m.body.indexOf(0);
          const name = m.body.subarray(0, z1).toString('utf8');
          const sql = m.body.subarray(z1 + 1, m.body.indexOf(0, z1 + 1)).toString('utf8');
          prepared.set(name, { sql });
          write(conn, msg('1'));
          break;
        }
        case 'B': {
          let i = 0;
          const z1 = m.body.indexOf(0, i);
          const portal = m.body.subarray(i, z1).toString('utf8');
          i = z1 + 1;
          const z2 = m.body.indexOf(0, i);
          const stmtName = m.body.subarray(i, z2).toString('utf8');
          i = z2 + 1;
          const nFormats = m.body.readInt16BE(i);
          i += 2;
          const formats: number[] = [];
          for (let k = 0; k < nFormats; k++, i += 2) formats.push(m.body.readInt16BE(i));
          const nParams = m.body.readInt16BE(i);
          i += 2;
          const params: (string | null)[] = [];
          for (let k = 0; k < nParams; k++) {
            const len = m.body.readInt32BE(i);
            i += 4;
            if (len < 0) params.push(null);
            else {
              const fmt = formats.length === 1 ? formats[0] : (formats[k] ?? 0);
              const bytes = m.body.subarray(i, i + len);
              params.push(fmt === 1 ? binaryParam(bytes) : bytes.toString('utf8'));
              i += len;
            }
          }
          const nResult = m.body.readInt16BE(i);
          i += 2;
          const resultFormats: number[] = [];
          for (let k = 0; k < nResult; k++, i += 2) resultFormats.push(m.body.readInt16BE(i));
          const stmt = prepared.get(stmtName);
          if (!stmt) {
            write(conn, fail(new SqlError('26000', `unknown prepared statement "${stmtName}"`)));
            skipToSync = true;
            break;
          }
          if (resultFormats.some((f) => f === 1)) {
            write(
              conn,
              fail(new SqlError('0A000', 'binary result format is not supported by the test cluster')),
            );
            skipToSync = true;
            break;
          }
          portals.set(portal, { sql: stmt.sql, params, executed: false });
          write(conn, msg('2'));
          break;
        }
        case 'D': {
          const kind = String.fromCharCode(m.body[0]!);
          const name = m.body.subarray(1, m.body.indexOf(0, 1)).toString('utf8');
          if (kind === 'S') {
            write(conn, msg('t', int16(0)), msg('n'));
            break;
          }
          const portal = portals.get(name);
          if (!portal) {
            write(conn, fail(new SqlError('34000', `unknown portal "${name}"`)));
            skipToSync = true;
            break;
          }
          // The statement runs here so that its row description can be sent.
          await runPortal(conn, session, portal);
          if (portal.error) {
            write(conn, fail(portal.error));
            skipToSync = true;
            break;
          }
          write(conn, portal.result!.fields ? rowDescription(portal.result!) : msg('n'));
          break;
        }
        case 'E': {
          const name = m.body.subarray(0, m.body.indexOf(0)).toString('utf8');
          const portal = portals.get(name);
          if (!portal) {
            write(conn, fail(new SqlError('34000', `unknown portal "${name}"`)));
            skipToSync = true;
            break;
          }
          await runPortal(conn, session, portal);
          if (portal.error) {
            write(conn, fail(portal.error));
            skipToSync = true;
            break;
          }
          const r = portal.result!;
          trackTx(r.tag);
          write(conn, ...r.rows.map(dataRow), msg('C', cstr(r.tag)));
          break;
        }
        case 'C':
          write(conn, msg('3'));
          break;
        case 'H':
          break;
        case 'S':
          skipToSync = false;
          portals.delete('');
          write(conn, ready());
          break;
        default:
          write(conn, fail(new SqlError('08P01', `unsupported message type ${m.type}`)));
          return;
      }
    }
  }

  async function runPortal(conn: Conn, session: SessionInfo, portal: Portal): Promise<void> {
    if (portal.executed) return;
    portal.executed = true;
    try {
      portal.result = await execute(conn, session, portal.sql, portal.params);
    } catch (err) {
      if (err instanceof DropConnection) throw err;
      portal.error = err;
    }
  }

  async function execute(
    _conn: Conn,
    session: SessionInfo,
    sql: string,
    params: (string | null)[],
  ): Promise<QueryResult> {
    stats.statements++;
    if (dropAfter !== undefined && --dropAfter <= 0) {
      dropAfter = undefined;
      throw new DropConnection('dropAfterStatements');
    }
    for (const s of slow) if (s.pattern.test(sql)) await new Promise((r) => setTimeout(r, s.ms));
    const hit = dropDuring.find((d) => d.times > 0 && d.pattern.test(sql));
    if (hit) {
      hit.times--;
      const run = engine.execute(session, sql, params);
      run.catch(() => undefined);
      await new Promise((r) => setTimeout(r, hit.afterMs));
      throw new DropConnection('dropDuring');
    }
    return engine.execute(session, sql, params);
  }

  return {
    host: '127.0.0.1',
    port,
    stats,
    dropAllConnections() {
      for (const c of conns) c.socket.destroy();
    },
    refuseConnections(ms) {
      refusingUntil = Date.now() + ms;
      for (const c of conns) c.socket.destroy();
      // Stop listening, so clients see ECONNREFUSED as from a restarting node; listen again on the same port.
      server.close();
      setTimeout(() => {
        const retry = (n: number): void => {
          listen(port).catch(() => n > 0 && setTimeout(() => retry(n - 1), 100));
        };
        retry(50);
      }, ms).unref();
    },
    dropAfterStatements(n) {
      dropAfter = n;
    },
    dropDuring(pattern, o) {
      dropDuring.push({ pattern, times: o?.times ?? 1, afterMs: o?.afterMs ?? 0 });
    },
    slowStatements(pattern, ms) {
      slow.push({ pattern, ms });
    },
    clearFaults() {
      dropAfter = undefined;
      dropDuring = [];
      slow = [];
      refusingUntil = 0;
    },
    async close() {
      for (const c of conns) c.socket.destroy();
      await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
    },
  };
}

function binaryParam(bytes: Buffer): string {
  if (bytes.length === 8) return bytes.readBigInt64BE().toString();
  if (bytes.length === 4) return String(bytes.readInt32BE());
  return bytes.toString('utf8');
}

function peerCommonName(socket: TLSSocket): string | undefined {
  try {
    const cert = socket.getPeerCertificate();
    return cert && socket.authorized && typeof cert.subject?.CN === 'string' ? cert.subject.CN : undefined;
  } catch {
    return undefined;
  }
}
