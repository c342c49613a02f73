/**
 * PostgreSQL wire protocol v3 for the test cluster: startup, SSLRequest and
 * TLS, CancelRequest, trust / cleartext / md5 / SCRAM-SHA-256 / certificate
 * authentication, simple and extended query (an error skips to Sync), and
 * connection-level fault hooks. The SQL itself is the engine's business.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createServer as createTlsServer } from 'node:tls';
import type { Engine, Notice, QueryResult, SessionInfo } from './protocol-types.js';
import { DropConnection, Oid, SqlError } from './protocol-types.js';

export type AuthMethod = 'trust' | 'cleartext' | 'md5' | 'scram-sha-256' | 'cert';

type TlsOptions = NonNullable<PgWireOptions['tls']>;

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

const PROTOCOL_3_0 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const MAX_STARTUP_PACKET = 10_000;
const MAX_MESSAGE = 64 * 1024 * 1024;
const SCRAM_ITERATIONS = 4096;
const GRACEFUL_CLOSE_MS = 1000;
const HANDSHAKE_TIMEOUT_MS = 10_000;

type TxStatus = 'I' | 'T' | 'E';

// ---- encoding ----------------------------------------------------------------------------------------

function frame(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

/** ErrorResponse and NoticeResponse share one field layout. */
function fieldsMessage(
  type: 'E' | 'N',
  f: {
    severity: string;
    code: string;
    message: string;
    detail?: string | undefined;
    hint?: string | undefined;
  },
): Buffer {
  const parts = [`S${f.severity}`, `V${f.severity}`, `C${f.code}`, `M${f.message}`];
  if (f.detail) parts.push(`D${f.detail}`);
  if (f.hint) parts.push(`H${f.hint}`);
  return frame(type, ...parts.map(cstr), Buffer.from([0]));
}

function errorResponse(e: SqlError, severity: 'ERROR' | 'FATAL' = 'ERROR'): Buffer {
  return fieldsMessage('E', { severity, code: e.code, message: e.message, detail: e.detail, hint: e.hint });
}

/** A NoticeResponse, for an engine result's `notices`. */
export function noticeResponse(n: Notice): Buffer {
  return fieldsMessage('N', {
    severity: n.severity ?? 'NOTICE',
    code: n.code ?? '00000',
    message: n.message,
    detail: n.detail,
    hint: n.hint,
  });
}

const TYPE_LENGTHS: ReadonlyMap<number, number> = new Map([
  [Oid.bool, 1],
  [Oid.int8, 8],
  [Oid.float8, 8],
  [Oid.timestamp, 8],
  [Oid.timestamptz, 8],
  [Oid.interval, 16],
]);

function rowDescription(fields: NonNullable<QueryResult['fields']>): Buffer {
  const parts: Buffer[] = [int16(fields.length)];
  for (const f of fields) {
    const typeLength = TYPE_LENGTHS.get(f.typeOid) ?? -1;
    parts.push(cstr(f.name), int32(0), int16(0), int32(f.typeOid), int16(typeLength), int32(-1), int16(0));
  }
  return frame('T', ...parts);
}

function dataRow(row: readonly (string | null)[]): Buffer {
  const parts: Buffer[] = [int16(row.length)];
  for (const v of row) {
    if (v === null) {
      parts.push(int32(-1));
      continue;
    }
    const b = Buffer.from(v, 'utf8');
    parts.push(int32(b.length), b);
  }
  return frame('D', ...parts);
}

function parameterDescription(types: readonly number[]): Buffer {
  return frame('t', int16(types.length), ...types.map(int32));
}

const readyForQuery = (status: TxStatus): Buffer => frame('Z', Buffer.from(status));
const commandComplete = (tag: string): Buffer => frame('C', cstr(tag));
const NO_DATA = frame('n');
const PARSE_COMPLETE = frame('1');
const BIND_COMPLETE = frame('2');
const CLOSE_COMPLETE = frame('3');
const EMPTY_QUERY = frame('I');
const PORTAL_SUSPENDED = frame('s');

// ---- decoding ----------------------------------------------------------------------------------------

/** A malformed message: answered with FATAL 08P01 and the connection closes. */
class ProtocolViolation extends Error {}

class BodyReader {
  private offset = 0;
  constructor(private readonly body: Buffer) {}
  private take(n: number): Buffer {
    if (n < 0 || this.offset + n > this.body.length) throw new ProtocolViolation('message too short');
    const out = this.body.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  byte(): number {
    return this.take(1)[0]!;
  }
  int16(): number {
    return this.take(2).readInt16BE(0);
  }
  int32(): number {
    return this.take(4).readInt32BE(0);
  }
  bytes(n: number): Buffer {
    return this.take(n);
  }
  cstring(): string {
    const end = this.body.indexOf(0, this.offset);
    if (end < 0) throw new ProtocolViolation('unterminated string');
    const s = this.body.subarray(this.offset, end).toString('utf8');
    this.offset = end + 1;
    return s;
  }
  int16List(): number[] {
    const n = this.int16();
    return Array.from({ length: n }, () => this.int16());
  }
  atEnd(): boolean {
    return this.offset >= this.body.length;
  }
}

/** Reads frames from a socket that may be swapped for its TLS wrapper midway. */
class InputStream {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;
  private readonly onData = (d: Buffer): void => {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };

  attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
    socket.on('end', this.onEnd);
    socket.on('error', () => undefined);
  }

  detach(socket: Socket): void {
    socket.off('data', this.onData);
  }

  hasBuffered(): boolean {
    return this.buf.length > 0;
  }

  /** Startup-phase packet (no type byte): the body after the length. */
  async startupPacket(): Promise<Buffer | undefined> {
    if (!(await this.need(4))) return undefined;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_PACKET) return undefined;
    if (!(await this.need(len))) return undefined;
    return this.consume(4, len);
  }

  async message(): Promise<{ type: string; body: Buffer } | undefined> {
    if (!(await this.need(5))) return undefined;
    const type = String.fromCharCode(this.buf[0]!);
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > MAX_MESSAGE) return undefined;
    if (!(await this.need(1 + len))) return undefined;
    return { type, body: this.consume(5, 1 + len) };
  }

  private consume(from: number, to: number): Buffer {
    const out = Buffer.from(this.buf.subarray(from, to));
    this.buf = this.buf.subarray(to);
    return out;
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
}

// ---- SQL text ----------------------------------------------------------------------------------------

/**
 * The text with the insides of string literals, quoted identifiers, dollar
 * quotes and comments blanked out, same length, so that `;` and `$n` can be
 * found by plain search.
 */
export function maskQuoted(sql: string): string {
  const out = sql.split('');
  const blank = (from: number, to: number): void => {
    for (let k = from; k < to && k < out.length; k++) out[k] = ' ';
  };
  let i = 0;
  while (i < sql.length) {
    const end = quotedRegionEnd(sql, i);
    if (end === undefined) {
      i++;
      continue;
    }
    blank(i, end);
    i = end;
  }
  return out.join('');
}

/** If a quoted region or comment starts at i, the index after it. */
function quotedRegionEnd(sql: string, i: number): number | undefined {
  const c = sql[i];
  if (c === "'") return closingQuote(sql, i, "'", /[eE]/.test(sql[i - 1] ?? '') && !isWordChar(sql[i - 2]));
  if (c === '"') return closingQuote(sql, i, '"', false);
  if (c === '-' && sql[i + 1] === '-') {
    const nl = sql.indexOf('\n', i);
    return nl < 0 ? sql.length : nl;
  }
  if (c === '/' && sql[i + 1] === '*') return blockCommentEnd(sql, i);
  if (c === '$' && !isWordChar(sql[i - 1])) {
    const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i))?.[0];
    if (!tag) return undefined;
    const close = sql.indexOf(tag, i + tag.length);
    return close < 0 ? sql.length : close + tag.length;
  }
  return undefined;
}

function isWordChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_$]/.test(c);
}

function closingQuote(sql: string, start: number, q: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    if (backslashEscapes && sql[i] === '\\') i += 2;
    else if (sql[i] === q && sql[i + 1] === q) i += 2;
    else if (sql[i] === q) return i + 1;
    else i++;
  }
  return sql.length;
}

/** Block comments nest in PostgreSQL. */
function blockCommentEnd(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql.startsWith('/*', i)) {
      depth++;
      i += 2;
    } else if (sql.startsWith('*/', i)) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return sql.length;
}

/** Split a simple-query string on `;` outside quotes and comments; empty statements are dropped. */
export function splitStatements(sql: string): string[] {
  const mask = maskQuoted(sql);
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= mask.length; i++) {
    if (i < mask.length && mask[i] !== ';') continue;
    if (mask.slice(start, i).trim() !== '') out.push(sql.slice(start, i).trim());
    start = i + 1;
  }
  return out;
}

/** The highest `$n` placeholder outside quotes. */
export function countPlaceholders(sql: string): number {
  let max = 0;
  for (const m of maskQuoted(sql).matchAll(/\$(\d+)/g)) max = Math.max(max, Number(m[1]));
  return max;
}

const ENDS_TRANSACTION = /^(COMMIT|END|ROLLBACK|ABORT)\b/i;
const ROLLBACK_TO_SAVEPOINT = /^ROLLBACK\s+TO\b/i;

// ---- authentication ----------------------------------------------------------------------------------

/** What an authentication exchange needs from the connection. */
interface AuthChannel {
  send(b: Buffer): void;
  /** The body of the next PasswordMessage / SASL message, or undefined if the client went. */
  receivePassword(): Promise<Buffer | undefined>;
}

type AuthOutcome = { ok: true } | { ok: false; error: SqlError };

const passwordFailed = (user: string): AuthOutcome => ({
  ok: false,
  error: new SqlError('28P01', `password authentication failed for user ${user}`),
});

function cstringOf(body: Buffer): string {
  const end = body.indexOf(0);
  return body.subarray(0, end < 0 ? body.length : end).toString('utf8');
}

async function cleartextAuth(
  ch: AuthChannel,
  user: string,
  password: string | undefined,
): Promise<AuthOutcome> {
  ch.send(frame('R', int32(3)));
  const body = await ch.receivePassword();
  if (body === undefined || password === undefined || !sameText(cstringOf(body), password))
    return passwordFailed(user);
  return { ok: true };
}

function md5Hex(...parts: (string | Buffer)[]): string {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

async function md5Auth(ch: AuthChannel, user: string, password: string | undefined): Promise<AuthOutcome> {
  const salt = randomBytes(4);
  ch.send(frame('R', int32(5), salt));
  const body = await ch.receivePassword();
  if (body === undefined || password === undefined) return passwordFailed(user);
  const expected = 'md5' + md5Hex(md5Hex(password, user), salt);
  return sameText(cstringOf(body), expected) ? { ok: true } : passwordFailed(user);
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

interface ScramKeys {
  storedKey: Buffer;
  serverKey: Buffer;
}

function scramKeys(password: string, salt: Buffer): ScramKeys {
  const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

function parseSaslInitialResponse(body: Buffer): { mechanism: string; data: string } {
  const r = new BodyReader(body);
  const mechanism = r.cstring();
  const len = r.int32();
  return { mechanism, data: len < 0 ? '' : r.bytes(len).toString('utf8') };
}

function scramAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

/**
 * SCRAM-SHA-256 without channel binding (the PLUS variant is not offered).
 * An unknown user goes through the whole exchange so that the failure looks
 * the same as a wrong password.
 */
async function scramAuth(ch: AuthChannel, user: string, password: string | undefined): Promise<AuthOutcome> {
  ch.send(frame('R', int32(10), cstr('SCRAM-SHA-256'), Buffer.from([0])));
  const initial = await ch.receivePassword();
  if (initial === undefined) return passwordFailed(user);
  const { mechanism, data: clientFirst } = parseSaslInitialResponse(initial);
  const gs2 = /^([ny]),[^,]*,/.exec(clientFirst);
  if (mechanism !== 'SCRAM-SHA-256' || !gs2) return passwordFailed(user);
  const clientFirstBare = clientFirst.slice(gs2[0].length);
  const clientNonce = scramAttributes(clientFirstBare).get('r') ?? '';
  const nonce = clientNonce + randomBytes(18).toString('base64');
  const salt = randomBytes(16);
  const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${SCRAM_ITERATIONS}`;
  ch.send(frame('R', int32(11), Buffer.from(serverFirst)));

  const final = await ch.receivePassword();
  if (final === undefined || password === undefined || clientNonce === '') return passwordFailed(user);
  const clientFinal = final.toString('utf8');
  const withoutProof = clientFinal.replace(/,p=[^,]*$/, '');
  const attrs = scramAttributes(clientFinal);
  if (attrs.get('r') !== nonce || attrs.get('c') !== Buffer.from(gs2[0]).toString('base64'))
    return passwordFailed(user);
  const keys = scramKeys(password, salt);
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  if (!scramProofMatches(attrs.get('p') ?? '', keys, authMessage)) return passwordFailed(user);
  const serverSignature = createHmac('sha256', keys.serverKey).update(authMessage).digest('base64');
  ch.send(frame('R', int32(12), Buffer.from(`v=${serverSignature}`)));
  return { ok: true };
}

function scramProofMatches(proofBase64: string, keys: ScramKeys, authMessage: string): boolean {
  const proof = Buffer.from(proofBase64, 'base64');
  if (proof.length !== 32) return false;
  const clientSignature = createHmac('sha256', keys.storedKey).update(authMessage).digest();
  const clientKey = Buffer.from(proof.map((b, i) => b ^ clientSignature[i]!));
  return timingSafeEqual(createHash('sha256').update(clientKey).digest(), keys.storedKey);
}

function verifiedPeerCommonName(socket: Socket | TLSSocket): string | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}

function certAuth(socket: Socket | TLSSocket, user: string, exists: boolean): AuthOutcome {
  const cn = verifiedPeerCommonName(socket);
  if (cn === undefined)
    return { ok: false, error: new SqlError('28000', 'connection requires a valid client certificate') };
  if (cn !== user || !exists)
    return {
      ok: false,
      error: new SqlError('28000', `certificate authentication failed for user "${user}"`),
    };
  return { ok: true };
}

// ---- faults ------------------------------------------------------------------------------------------

function matches(pattern: RegExp, sql: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(sql);
}

class FaultPlan {
  private loseAnswerIn: number | undefined;
  private dropRules: { pattern: RegExp; times: number; afterMs: number }[] = [];
  private slowRules: { pattern: RegExp; ms: number }[] = [];
  private holdRules: { pattern: RegExp; ms: number }[] = [];

  dropAfterStatements(n: number): void {
    this.loseAnswerIn = Math.max(1, Math.floor(n));
  }
  dropDuring(pattern: RegExp, times: number, afterMs: number): void {
    this.dropRules.push({ pattern, times, afterMs });
  }
  slow(pattern: RegExp, ms: number): void {
    this.slowRules.push({ pattern, ms });
  }
  hold(pattern: RegExp, ms: number): void {
    this.holdRules.push({ pattern, ms });
  }
  holdFor(sql: string): number {
    return this.holdRules.filter((r) => matches(r.pattern, sql)).reduce((sum, r) => sum + r.ms, 0);
  }
  clear(): void {
    this.loseAnswerIn = undefined;
    this.dropRules = [];
    this.slowRules = [];
    this.holdRules = [];
  }
  /** Counts one statement; true when its answer is the one to lose. */
  countStatement(): boolean {
    if (this.loseAnswerIn === undefined) return false;
    this.loseAnswerIn--;
    if (this.loseAnswerIn > 0) return false;
    this.loseAnswerIn = undefined;
    return true;
  }
  /** Milliseconds after which to drop this statement's connection, if a rule fires. */
  takeDropDuring(sql: string): number | undefined {
    const rule = this.dropRules.find((r) => r.times > 0 && matches(r.pattern, sql));
    if (!rule) return undefined;
    rule.times--;
    return rule.afterMs;
  }
  delayFor(sql: string): number {
    return this.slowRules.filter((r) => matches(r.pattern, sql)).reduce((sum, r) => sum + r.ms, 0);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

const canceled = (): SqlError => new SqlError('57014', 'query execution canceled');

/** The work's outcome, or 57014 as soon as the signal aborts (the work is then left to finish alone). */
function untilCanceled<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => undefined);
      reject(canceled());
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

// ---- connections -------------------------------------------------------------------------------------

interface ServerContext {
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

interface PreparedStatement {
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

class Connection {
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
    const outcome = await this.checkCredentials(startup.user);
    if (outcome.ok) return true;
    await this.sendFatalAndClose(outcome.error);
    return false;
  }

  private async checkCredentials(user: string): Promise<AuthOutcome> {
    const tls = this.socket instanceof TLSSocket;
    if (this.ctx.requireTls && !tls)
      return {
        ok: false,
        error: new SqlError('28000', 'node is running secure mode, SSL connection required'),
      };
    const record = this.ctx.engine.findUser(user);
    const password = record?.password;
    const channel: AuthChannel = { send: (b) => this.send(b), receivePassword: () => this.receivePassword() };
    switch (this.ctx.auth) {
      case 'trust':
        return record ? { ok: true } : passwordFailed(user);
      case 'cert':
        return certAuth(this.socket, user, record !== undefined);
      case 'cleartext':
        return cleartextAuth(channel, user, password);
      case 'md5':
        return md5Auth(channel, user, password);
      case 'scram-sha-256':
        return scramAuth(channel, user, password);
    }
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

class UnknownMessage extends Error {}

function missingStatement(name: string): SqlError {
  return new SqlError(
    '26000',
    name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`,
  );
}

/** Binary-format parameters are understood for the types a client is likely to send that way. */
function decodeParam(bytes: Buffer, format: number, statement: PreparedStatement, index: number): string {
  if (format === 0) return bytes.toString('utf8');
  const oid = statement.paramTypes[index] ?? 0;
  if (oid === Oid.int8 && bytes.length === 8) return bytes.readBigInt64BE(0).toString();
  if (oid === 23 && bytes.length === 4) return String(bytes.readInt32BE(0));
  if (oid === 21 && bytes.length === 2) return String(bytes.readInt16BE(0));
  if (oid === Oid.bool && bytes.length === 1) return bytes[0] ? 't' : 'f';
  if (oid === Oid.float8 && bytes.length === 8) return String(bytes.readDoubleBE(0));
  if (oid === 0 || oid === Oid.text || oid === 1043 || oid === 19) return bytes.toString('utf8');
  throw new SqlError('0A000', `binary format for parameter $${index + 1} of type ${oid} is not supported`);
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

/**
 * A TLS server that never listens does the handshake on the upgraded socket:
 * only a tls.Server makes node verify a client certificate and set `authorized`.
 */
function handshake(raw: Socket, tls: TlsOptions, requestCert: boolean): Promise<TLSSocket | undefined> {
  const server = createTlsServer({
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca ? { ca: tls.ca } : {}),
    requestCert,
    rejectUnauthorized: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  return new Promise((resolve) => {
    server.once('secureConnection', (socket: TLSSocket) => resolve(socket));
    server.once('tlsClientError', () => resolve(undefined));
    raw.once('close', () => resolve(undefined));
    server.emit('connection', raw);
  });
}
