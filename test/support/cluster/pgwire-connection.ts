/**
 * One client connection of the test cluster: startup (SSLRequest, TLS, protocol version), authentication,
 * then simple and extended query (an error skips to Sync), with the fault hooks around each statement.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { Engine, QueryResult, SessionInfo } from './protocol-types.js';
import { DropConnection, Oid, SqlError } from './protocol-types.js';
import type { TxStatus } from './pgwire-codec.js';
import {
  BIND_COMPLETE,
  BodyReader,
  CLOSE_COMPLETE,
  commandComplete,
  cstr,
  dataRow,
  decodeParam,
  EMPTY_QUERY,
  errorResponse,
  frame,
  InputStream,
  int32,
  missingStatement,
  NO_DATA,
  noticeResponse,
  parameterDescription,
  PARSE_COMPLETE,
  PORTAL_SUSPENDED,
  ProtocolViolation,
  readyForQuery,
  rowDescription,
  UnknownMessage,
} from './pgwire-codec.js';
import type { AuthChannel } from './pgwire-auth.js';
import { checkCredentials, handshake, verifiedPeerCommonName } from './pgwire-auth.js';
import type { FaultPlan } from './pgwire-faults.js';
import { canceled, sleep, untilCanceled } from './pgwire-faults.js';
import type { AuthMethod, PgWireStats, TlsOptions } from './pgwire.js';
import { countPlaceholders, splitStatements } from './sqltext.js';

const PROTOCOL_3_0 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const GRACEFUL_CLOSE_MS = 1000;

const ENDS_TRANSACTION = /^(COMMIT|END|ROLLBACK|ABORT)\b/i;
const ROLLBACK_TO_SAVEPOINT = /^ROLLBACK\s+TO\b/i;

export interface ServerContext {
  readonly engine: Engine;
  readonly auth: AuthMethod;
  readonly tls: TlsOptions | undefined;
  readonly requestClientCert: boolean;
  readonly requireTls: boolean;
  readonly stats: PgWireStats;
  readonly faults: FaultPlan;
  readonly connections: Set<Connection>;
  nextSessionId(): number;
  cancel(pid: number, secret: number): void;
}

interface Startup {
  params: Map<string, string>;
  user: string;
}

export interface PreparedStatement {
  sql: string;
  paramTypes: number[];
}

interface Portal {
  sql: string;
  params: (string | null)[];
  /** Parameter type OIDs the client declared at Parse (0: not declared). */
  paramTypes: number[];
  result?: QueryResult;
  rowsSent: number;
}

let nextPid = 1000;

export class Connection {
  readonly pid = ++nextPid;
  readonly secret = randomBytes(4).readInt32BE(0);
  private socket: Socket | TLSSocket;
  private readonly input = new InputStream();
  private readonly sessionAbort = new AbortController();
  private session: SessionInfo | undefined;
  private statementAbort: AbortController | undefined;
  private closed = false;
  private txStatus: TxStatus = 'I';
  private skipToSync = false;
  private readonly statements = new Map<string, PreparedStatement>();
  private readonly portals = new Map<string, Portal>();

  constructor(
    private readonly ctx: ServerContext,
    private readonly raw: Socket,
  ) {
    this.socket = raw;
    raw.setNoDelay(true);
    this.input.attach(raw);
    raw.on('close', () => this.teardown());
    ctx.connections.add(this);
    ctx.stats.active++;
  }

  async serve(): Promise<void> {
    try {
      await this.converse();
    } catch {
      // DropConnection, or a client that broke the protocol: the socket just goes
    } finally {
      this.destroy();
    }
  }

  destroy(): void {
    this.socket.destroy();
    this.raw.destroy();
    this.teardown();
  }

  cancelRunningStatement(): void {
    this.statementAbort?.abort();
  }

  /** Runs once, however the connection ends: the session's signal aborts and the engine hears of it. */
  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.connections.delete(this);
    this.ctx.stats.active--;
    this.statementAbort?.abort();
    this.sessionAbort.abort();
    if (this.session) {
      try {
        this.ctx.engine.closeSession(this.session);
      } catch {
        // the engine's trouble must not keep the socket alive
      }
    }
  }

  private send(...messages: Buffer[]): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(Buffer.concat(messages));
  }

  private async sendFatalAndClose(error: SqlError): Promise<void> {
    this.send(errorResponse(error, 'FATAL'));
    await this.endGracefully();
  }

  /** Lets the last message reach the client before the socket goes. */
  private async endGracefully(): Promise<void> {
    if (this.socket.destroyed) return;
    const closed = new Promise<void>((r) => this.socket.once('close', () => r()));
    this.socket.end();
    await Promise.race([closed, sleep(GRACEFUL_CLOSE_MS)]);
  }

  private async converse(): Promise<void> {
    const startup = await this.negotiateStartup();
    if (!startup) return;
    if (!(await this.authenticate(startup))) return;
    // The client may have gone while its password was checked: then no session is opened at all.
    if (this.closed) return;
    this.ctx.stats.connectionsAuthenticated++;
    try {
      this.openSession(startup);
    } catch (err) {
      // A refused startup option (08P01) keeps its code, as CockroachDB sends it.
      const error =
        err instanceof SqlError
          ? err
          : new SqlError('XX000', err instanceof Error ? err.message : String(err));
      await this.sendFatalAndClose(error);
      return;
    }
    await this.serveMessages();
  }

  // ---- startup

  private async negotiateStartup(): Promise<Startup | undefined> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const packet = await this.input.startupPacket();
      if (!packet) return undefined;
      const code = packet.readInt32BE(0);
      if (code === SSL_REQUEST) {
        if (!(await this.answerSslRequest())) return undefined;
      } else if (code === GSSENC_REQUEST) {
        this.send(Buffer.from('N'));
      } else if (code === CANCEL_REQUEST) {
        if (packet.length >= 12) this.ctx.cancel(packet.readInt32BE(4), packet.readInt32BE(8));
        return undefined;
      } else {
        return this.parseStartupMessage(packet);
      }
    }
    return undefined;
  }

  /** False when the connection must close. */
  private async answerSslRequest(): Promise<boolean> {
    const tls = this.ctx.tls;
    if (!tls || this.socket instanceof TLSSocket) {
      this.send(Buffer.from('N'));
      return true;
    }
    // Bytes sent before the handshake would be read as if they came over TLS (CVE-2021-23222).
    if (this.input.hasBuffered()) return false;
    this.send(Buffer.from('S'));
    this.input.detach(this.raw);
    const tlsSocket = await handshake(this.raw, tls, this.ctx.requestClientCert);
    if (!tlsSocket) return false;
    tlsSocket.on('close', () => this.teardown());
    this.input.attach(tlsSocket);
    this.socket = tlsSocket;
    return true;
  }

  private async parseStartupMessage(packet: Buffer): Promise<Startup | undefined> {
    const version = packet.readInt32BE(0);
    if (version >> 16 !== 3) {
      await this.sendFatalAndClose(
        new SqlError(
          '0A000',
          `unsupported frontend protocol ${version >> 16}.${version & 0xffff}: server supports 3.0 to 3.0`,
        ),
      );
      return undefined;
    }
    const params = new Map<string, string>();
    const r = new BodyReader(packet.subarray(4));
    while (!r.atEnd()) {
      const key = r.cstring();
      if (key === '') break;
      params.set(key, r.cstring());
    }
    this.negotiateProtocolVersion(version, params);
    return { params, user: params.get('user') ?? '' };
  }

  /** A 3.x client with a newer minor or `_pq_.` options learns we speak 3.0 and know none. */
  private negotiateProtocolVersion(version: number, params: Map<string, string>): void {
    const unknown = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
    for (const k of unknown) params.delete(k);
    if (version === PROTOCOL_3_0 && unknown.length === 0) return;
    this.send(frame('v', int32(0), int32(unknown.length), ...unknown.map(cstr)));
  }

  // ---- authentication

  private async authenticate(startup: Startup): Promise<boolean> {
    const channel: AuthChannel = { send: (b) => this.send(b), receivePassword: () => this.receivePassword() };
    const outcome = await checkCredentials(this.ctx, this.socket, startup.user, channel);
    if (outcome.ok) return true;
    await this.sendFatalAndClose(outcome.error);
    return false;
  }

  private async receivePassword(): Promise<Buffer | undefined> {
    const m = await this.input.message();
    return m?.type === 'p' ? m.body : undefined;
  }

  private openSession(startup: Startup): void {
    const currentStatementSignal = (): AbortSignal | undefined => this.statementAbort?.signal;
    const cn = verifiedPeerCommonName(this.socket);
    const session: SessionInfo = {
      id: this.ctx.nextSessionId(),
      user: startup.user,
      database: startup.params.get('database') ?? startup.user,
      startupParams: startup.params,
      signal: this.sessionAbort.signal,
      tls: this.socket instanceof TLSSocket,
      ...(cn !== undefined ? { clientCertCommonName: cn } : {}),
      get statementSignal() {
        return currentStatementSignal();
      },
    };
    this.ctx.engine.openSession(session);
    this.session = session;
    const parameters = Object.entries(this.ctx.engine.startupParameters(session));
    this.send(
      frame('R', int32(0)),
      ...parameters.map(([k, v]) => frame('S', cstr(k), cstr(v))),
      frame('K', int32(this.pid), int32(this.secret)),
      readyForQuery(this.txStatus),
    );
  }

  // ---- messages

  private async serveMessages(): Promise<void> {
    for (;;) {
      const m = await this.input.message();
      if (!m || m.type === 'X') return;
      // After an error in the extended protocol everything up to Sync is discarded.
      if (this.skipToSync && m.type !== 'S') continue;
      try {
        await this.dispatch(m.type, new BodyReader(m.body));
      } catch (err) {
        if (err instanceof DropConnection) throw err;
        if (err instanceof ProtocolViolation || err instanceof UnknownMessage) {
          await this.sendFatalAndClose(new SqlError('08P01', err.message));
          return;
        }
        this.sendError(err);
        this.skipToSync = true;
      }
    }
  }

  private async dispatch(type: string, body: BodyReader): Promise<void> {
    switch (type) {
      case 'Q':
        return this.simpleQuery(body.cstring());
      case 'P':
        return this.parse(body);
      case 'B':
        return this.bind(body);
      case 'D':
        return this.describe(body);
      case 'E':
        return this.execute(body);
      case 'C':
        return this.close(body);
      case 'H':
        return; // every message is written as soon as it is ready
      case 'S':
        return this.sync();
      default:
        throw new UnknownMessage(`invalid frontend message type ${type.charCodeAt(0)}`);
    }
  }

  private sendError(err: unknown): void {
    if (this.txStatus === 'T') this.txStatus = 'E';
    const e =
      err instanceof SqlError ? err : new SqlError('XX000', err instanceof Error ? err.message : String(err));
    this.send(errorResponse(e));
  }

  private async simpleQuery(sql: string): Promise<void> {
    this.statements.delete('');
    this.portals.delete('');
    const statements = splitStatements(sql);
    if (statements.length === 0) this.send(EMPTY_QUERY);
    for (const statement of statements) {
      try {
        const result = await this.executeStatement(statement, []);
        this.sendResult(result, result.rows);
      } catch (err) {
        if (err instanceof DropConnection) throw err;
        this.sendError(err);
        break;
      }
    }
    this.send(readyForQuery(this.txStatus));
  }

  private sendResult(result: QueryResult, rows: readonly (string | null)[][]): void {
    this.send(
      ...(result.fields ? [rowDescription(result.fields)] : []),
      ...rows.map(dataRow),
      ...(result.notices ?? []).map(noticeResponse),
      commandComplete(result.tag),
    );
  }

  private parse(body: BodyReader): void {
    const name = body.cstring();
    const sql = body.cstring();
    const declared = Array.from({ length: Math.max(0, body.int16()) }, () => body.int32());
    if (name !== '' && this.statements.has(name))
      throw new SqlError('42P05', `prepared statement "${name}" already exists`);
    const count = Math.max(declared.length, countPlaceholders(sql));
    const paramTypes = Array.from({ length: count }, (_, i) => declared[i] ?? 0);
    this.statements.set(name, { sql, paramTypes });
    this.send(PARSE_COMPLETE);
  }

  private bind(body: BodyReader): void {
    const portalName = body.cstring();
    const statementName = body.cstring();
    const formats = body.int16List();
    const values = Array.from({ length: Math.max(0, body.int16()) }, () => {
      const len = body.int32();
      return len < 0 ? null : body.bytes(len);
    });
    const resultFormats = body.int16List();
    const statement = this.statements.get(statementName);
    if (!statement) throw missingStatement(statementName);
    if (values.length !== statement.paramTypes.length)
      throw new SqlError(
        '08P01',
        `bind message supplies ${values.length} parameters, but prepared statement "${statementName}" requires ${statement.paramTypes.length}`,
      );
    if (resultFormats.some((f) => f !== 0))
      throw new SqlError('0A000', 'binary result format is not supported by the test cluster');
    if (portalName !== '' && this.portals.has(portalName))
      throw new SqlError('42P03', `portal "${portalName}" already exists`);
    const params = values.map((v, i) =>
      v === null
        ? null
        : decodeParam(v, formats.length === 1 ? formats[0]! : (formats[i] ?? 0), statement, i),
    );
    this.portals.set(portalName, {
      sql: statement.sql,
      params,
      paramTypes: statement.paramTypes,
      rowsSent: 0,
    });
    this.send(BIND_COMPLETE);
  }

  private async describe(body: BodyReader): Promise<void> {
    const kind = String.fromCharCode(body.byte());
    const name = body.cstring();
    if (kind === 'S') {
      const statement = this.statements.get(name);
      if (!statement) throw missingStatement(name);
      // The columns are known only by running the statement, which Describe must not do.
      this.send(parameterDescription(statement.paramTypes.map((t) => t || Oid.text)), NO_DATA);
      return;
    }
    const portal = this.portalNamed(name);
    // The statement runs here so that its row description can be sent; Execute then sends the rows.
    const result = await this.runPortal(portal);
    this.send(result.fields ? rowDescription(result.fields) : NO_DATA);
  }

  private async execute(body: BodyReader): Promise<void> {
    const portal = this.portalNamed(body.cstring());
    const maxRows = body.int32();
    const result = await this.runPortal(portal);
    const remaining = result.rows.length - portal.rowsSent;
    const count = maxRows > 0 ? Math.min(maxRows, remaining) : remaining;
    const rows = result.rows.slice(portal.rowsSent, portal.rowsSent + count);
    portal.rowsSent += count;
    if (portal.rowsSent < result.rows.length) {
      this.send(...rows.map(dataRow), PORTAL_SUSPENDED);
      return;
    }
    this.sendResult({ ...result, fields: null }, rows);
  }

  private portalNamed(name: string): Portal {
    const portal = this.portals.get(name);
    if (!portal) throw new SqlError('34000', `portal "${name}" does not exist`);
    return portal;
  }

  private async runPortal(portal: Portal): Promise<QueryResult> {
    portal.result ??= await this.executeStatement(portal.sql, portal.params, portal.paramTypes);
    return portal.result;
  }

  private close(body: BodyReader): void {
    const kind = String.fromCharCode(body.byte());
    const name = body.cstring();
    if (kind === 'S') this.statements.delete(name);
    else this.portals.delete(name);
    this.send(CLOSE_COMPLETE);
  }

  private sync(): void {
    this.skipToSync = false;
    if (this.txStatus === 'I') this.portals.clear();
    this.send(readyForQuery(this.txStatus));
  }

  // ---- statements

  /** Transaction bookkeeping around one statement: 25P02 inside a failed transaction, status from the tag. */
  private async executeStatement(
    sql: string,
    params: (string | null)[],
    paramTypes: readonly number[] = [],
  ): Promise<QueryResult> {
    const failedBefore = this.txStatus === 'E';
    const text = sql.trimStart();
    if (failedBefore && !ENDS_TRANSACTION.test(text))
      throw new SqlError(
        '25P02',
        'current transaction is aborted, commands ignored until end of transaction block',
      );
    const result = await this.runWithFaults(sql, params, paramTypes);
    if (ROLLBACK_TO_SAVEPOINT.test(text)) this.txStatus = 'T';
    else if (/^BEGIN\b/.test(result.tag)) this.txStatus = 'T';
    else if (/^(COMMIT|ROLLBACK)\b/.test(result.tag)) {
      this.txStatus = 'I';
      if (failedBefore) return { ...result, tag: 'ROLLBACK' };
    }
    return result;
  }

  private async runWithFaults(
    sql: string,
    params: (string | null)[],
    paramTypes: readonly number[],
  ): Promise<QueryResult> {
    const session = this.session!;
    const abort = new AbortController();
    this.statementAbort = abort;
    try {
      await sleep(this.ctx.faults.delayFor(sql), abort.signal);
      if (abort.signal.aborted) throw canceled();
      const loseAnswer = this.ctx.faults.countStatement();
      const dropAfterMs = this.ctx.faults.takeDropDuring(sql);
      this.ctx.stats.statements++;
      const work = this.ctx.engine.execute(session, sql, params, paramTypes);
      if (dropAfterMs !== undefined) {
        work.catch(() => undefined);
        await sleep(dropAfterMs, this.sessionAbort.signal);
        throw new DropConnection('dropDuring fault');
      }
      const result = await untilCanceled(work, abort.signal);
      if (loseAnswer) throw new DropConnection('dropAfterStatements fault');
      const holdMs = this.ctx.faults.holdFor(sql);
      if (holdMs > 0) {
        await sleep(holdMs, this.sessionAbort.signal);
        if (this.sessionAbort.signal.aborted)
          throw new DropConnection('connection closed while the answer was held');
      }
      return result;
    } finally {
      if (this.statementAbort === abort) this.statementAbort = undefined;
    }
  }
}
