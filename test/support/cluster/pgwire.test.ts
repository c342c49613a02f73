/**
 * Self-tests of the wire-protocol layer against a small fake engine (not the
 * CockroachDB engine), with the real `pg` client, raw protocol frames where
 * `pg` cannot show the detail, and one `psql` run.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { TestPki } from '../tls.js';
import { makeTestPki } from '../tls.js';
import type { AuthMethod, PgWireOptions, PgWireServer } from './pgwire.js';
import { startPgWireServer } from './pgwire.js';
import { countPlaceholders, splitStatements } from './sqltext.js';
import type { Engine, QueryResult, SessionInfo, UserRecord } from './protocol-types.js';
import { DropConnection, Oid, SqlError } from './protocol-types.js';

const PASSWORD = 'alice-pw;\'"';

function waitMs(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (check()) return;
    await waitMs(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const row = (name: string, value: string | null, typeOid: number = Oid.text): QueryResult => ({
  fields: [{ name, typeOid }],
  rows: [[value]],
  tag: 'SELECT 1',
});

/** Answers a handful of made-up statements and records what the wire layer did to it. */
class FakeEngine implements Engine {
  readonly users = new Map<string, UserRecord>([
    ['alice', { name: 'alice', password: PASSWORD }],
    ['bob', { name: 'bob', password: 'bob-pw' }],
    ['nopass', { name: 'nopass' }],
  ]);
  readonly executed: string[] = [];
  readonly sessions: SessionInfo[] = [];
  readonly closeCounts = new Map<number, number>();
  readonly canceledStatements: string[] = [];

  findUser(name: string): UserRecord | undefined {
    return this.users.get(name);
  }
  startupParameters(s: SessionInfo): Record<string, string> {
    return {
      server_version: '13.0.0',
      crdb_version: 'CockroachDB CCL v25.2.0 (fake)',
      application_name: s.startupParams.get('application_name') ?? '',
      client_encoding: 'UTF8',
      DateStyle: 'ISO, MDY',
      integer_datetimes: 'on',
      standard_conforming_strings: 'on',
      TimeZone: 'UTC',
    };
  }
  openSession(s: SessionInfo): void {
    this.sessions.push(s);
  }
  closeSession(s: SessionInfo): void {
    this.closeCounts.set(s.id, (this.closeCounts.get(s.id) ?? 0) + 1);
  }
  async execute(s: SessionInfo, sql: string, params: readonly (string | null)[]): Promise<QueryResult> {
    this.executed.push(sql);
    let m: RegExpExecArray | null;
    if ((m = /^SELECT (\d+)$/.exec(sql))) return row('?column?', m[1]!, Oid.int8);
    if (/^ECHO\b/.test(sql))
      return {
        fields: params.map((_, i) => ({ name: `p${i + 1}`, typeOid: Oid.text })),
        rows: [[...params]],
        tag: 'SELECT 1',
      };
    if ((m = /^ROWS (\d+)$/.exec(sql))) {
      const rows = Array.from({ length: Number(m[1]) }, (_, i) => [String(i)]);
      return { fields: [{ name: 'n', typeOid: Oid.int8 }], rows, tag: `SELECT ${rows.length}` };
    }
    if ((m = /^SLEEP (\d+)$/.exec(sql))) return this.sleep(s, sql, Number(m[1]));
    if (/^(BEGIN|COMMIT|ROLLBACK)$/.test(sql)) return { fields: null, rows: [], tag: sql };
    if (/^SET /.test(sql)) return { fields: null, rows: [], tag: 'SET' };
    if (sql === 'WHOAMI')
      return {
        fields: ['user', 'database', 'tls', 'cn', 'app'].map((name) => ({ name, typeOid: Oid.text })),
        rows: [
          [
            s.user,
            s.database,
            String(s.tls),
            s.clientCertCommonName ?? null,
            s.startupParams.get('application_name') ?? null,
          ],
        ],
        tag: 'SELECT 1',
      };
    if (sql === 'NOTICE')
      return {
        ...row('x', '1'),
        notices: [{ message: 'just so you know', code: '01000', severity: 'WARNING' }],
      };
    if (sql === 'FAIL') throw new SqlError('42601', 'boom', 'the detail', 'the hint');
    if (sql === 'CRASH') throw new Error('kaboom');
    if (sql === 'DROP') throw new DropConnection();
    throw new SqlError('42601', `at or near "${sql}": syntax error`);
  }
  private async sleep(s: SessionInfo, sql: string, ms: number): Promise<QueryResult> {
    await waitMs(ms, s.statementSignal);
    if (s.statementSignal?.aborted) this.canceledStatements.push(sql);
    return { fields: null, rows: [], tag: 'SLEEP' };
  }
}

// ---- harness -----------------------------------------------------------------------------------------

const servers: PgWireServer[] = [];
const clients: pg.Client[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  sockets.splice(0).forEach((s) => s.destroy());
  await Promise.all(
    clients.splice(0).map((c) => Promise.race([c.end().catch(() => undefined), waitMs(1000)])),
  );
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(
  opts: Partial<PgWireOptions> = {},
): Promise<{ server: PgWireServer; engine: FakeEngine }> {
  const engine = new FakeEngine();
  const server = await startPgWireServer({ engine, ...opts });
  servers.push(server);
  return { server, engine };
}

type ClientConfig = Omit<pg.ClientConfig, 'host' | 'port'>;

function newClient(server: PgWireServer, config: ClientConfig = {}): pg.Client {
  const c = new pg.Client({
    host: server.host,
    port: server.port,
    user: 'alice',
    password: PASSWORD,
    database: 'shop',
    connectionTimeoutMillis: 5000,
    ...config,
  });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

async function connect(server: PgWireServer, config: ClientConfig = {}): Promise<pg.Client> {
  const c = newClient(server, config);
  await c.connect();
  return c;
}

async function connectError(
  server: PgWireServer,
  config: ClientConfig = {},
): Promise<Error & { code?: string }> {
  const err = await connect(server, config).then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string },
  );
  if (!err) throw new Error('expected the connection to fail');
  return err;
}

const txStatus = (c: pg.Client): string =>
  (c as unknown as { getTransactionStatus(): string }).getTransactionStatus();
const backendKey = (c: pg.Client): { pid: number; secret: number } => {
  const k = c as unknown as { processID: number; secretKey: number };
  return { pid: k.processID, secret: k.secretKey };
};

// ---- raw protocol ------------------------------------------------------------------------------------

const i16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const i32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cs = (s: string): Buffer => Buffer.from(`${s}\0`);
const fe = (type: string, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type), i32(body.length + 4), body]);
};
const untyped = (...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([i32(body.length + 4), body]);
};
const startupPacket = (user: string, version = 196608, extra: Record<string, string> = {}): Buffer =>
  untyped(
    i32(version),
    ...Object.entries({ user, database: 'shop', ...extra }).flatMap(([k, v]) => [cs(k), cs(v)]),
    cs(''),
  );
const parseMsg = (name: string, sql: string, types: number[] = []): Buffer =>
  fe('P', cs(name), cs(sql), i16(types.length), ...types.map(i32));
const bindMsg = (
  stmt: string,
  params: (Buffer | null)[],
  paramFormats: number[] = [],
  resultFormats: number[] = [],
) =>
  fe(
    'B',
    cs(''),
    cs(stmt),
    i16(paramFormats.length),
    ...paramFormats.map(i16),
    i16(params.length),
    ...params.flatMap((p) => (p === null ? [i32(-1)] : [i32(p.length), p])),
    i16(resultFormats.length),
    ...resultFormats.map(i16),
  );
const describePortal = fe('D', Buffer.from('P'), cs(''));
const executeMsg = (maxRows = 0): Buffer => fe('E', cs(''), i32(maxRows));
const SYNC = fe('S');

interface RawMessage {
  type: string;
  body: Buffer;
}

/** Just enough of a frontend to look at the bytes `pg` hides. */
class RawClient {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private closed = false;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }
  static async open(server: PgWireServer): Promise<RawClient> {
    const socket = netConnect(server.port, server.host);
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawClient(socket);
  }
  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }
  private async need(n: number, deadline: number): Promise<void> {
    while (this.buf.length < n) {
      if (this.closed) throw new Error('server closed the connection');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out reading from the server');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, left);
      });
    }
  }
  async byte(ms = 3000): Promise<string> {
    await this.need(1, Date.now() + ms);
    const b = String.fromCharCode(this.buf[0]!);
    this.buf = this.buf.subarray(1);
    return b;
  }
  async message(ms = 3000): Promise<RawMessage> {
    const deadline = Date.now() + ms;
    await this.need(5, deadline);
    const len = this.buf.readInt32BE(1);
    await this.need(1 + len, deadline);
    const msg = { type: String.fromCharCode(this.buf[0]!), body: Buffer.from(this.buf.subarray(5, 1 + len)) };
    this.buf = this.buf.subarray(1 + len);
    return msg;
  }
  /** Messages up to and including the next ReadyForQuery (or a FATAL). */
  async untilReady(): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (let i = 0; i < 1000; i++) {
      const m = await this.message();
      out.push(m);
      if (m.type === 'Z' || (m.type === 'E' && m.body.includes('SFATAL'))) return out;
    }
    throw new Error('no ReadyForQuery');
  }
  async closedByServer(ms = 3000): Promise<boolean> {
    await until(() => this.closed, 'the server to close the socket', ms);
    return true;
  }
  /** Log in as alice with the cleartext password. */
  async login(version = 196608, extra: Record<string, string> = {}): Promise<RawMessage[]> {
    this.send(startupPacket('alice', version, extra));
    const pre: RawMessage[] = [];
    for (let m = await this.message(); ; m = await this.message()) {
      if (m.type === 'R' && m.body.readInt32BE(0) === 3) break;
      pre.push(m);
    }
    this.send(fe('p', cs(PASSWORD)));
    return [...pre, ...(await this.untilReady())];
  }
}

const types = (ms: RawMessage[]): string => ms.map((m) => m.type).join('');
const errorField = (m: RawMessage, field: string): string | undefined =>
  m.body
    .toString('utf8')
    .split('\0')
    .find((f) => f.startsWith(field))
    ?.slice(1);

// ---- tests -------------------------------------------------------------------------------------------

describe('SQL text helpers', () => {
  it('splits on semicolons outside quotes, dollar quotes and comments', () => {
    expect(splitStatements(`SELECT 'a;b'; SELECT "x;y" ;; SELECT $$c;d$$; SELECT $t$e;$$f$t$`)).toEqual([
      `SELECT 'a;b'`,
      `SELECT "x;y"`,
      `SELECT $$c;d$$`,
      `SELECT $t$e;$$f$t$`,
    ]);
    expect(splitStatements(`SELECT 1 -- no;split\n; SELECT /* a; /* b; */ c; */ 2`)).toEqual([
      'SELECT 1 -- no;split',
      'SELECT /* a; /* b; */ c; */ 2',
    ]);
    expect(splitStatements(`SELECT E'it\\'s;'; SELECT 'it''s;'`)).toEqual([
      `SELECT E'it\\'s;'`,
      `SELECT 'it''s;'`,
    ]);
    expect(splitStatements('  ;  -- only a comment')).toEqual([]);
  });

  it('counts placeholders outside quotes', () => {
    expect(countPlaceholders(`SELECT $1, '$7', $2::INT, $$ $9 $$`)).toBe(2);
    expect(countPlaceholders('SELECT 1')).toBe(0);
  });
});

describe('queries with pg', () => {
  it('runs simple queries, several statements in one, and empty queries', async () => {
    const { server, engine } = await serve();
    const c = await connect(server);
    expect((await c.query('SELECT 7')).rows).toEqual([{ '?column?': '7' }]);
    const many = (await c.query(`SELECT 1; ECHO ';'; SELECT 2`)) as unknown as pg.QueryResult[];
    expect(many.map((r) => r.command)).toEqual(['SELECT', 'SELECT', 'SELECT']);
    expect(engine.executed.slice(-3)).toEqual(['SELECT 1', `ECHO ';'`, 'SELECT 2']);
    const empty = await c.query(' ; ');
    expect(empty.rows ?? []).toEqual([]);
    expect((await c.query('SELECT 8')).rows[0]).toEqual({ '?column?': '8' });
  });

  it('runs extended queries with params, NULL and named statements', async () => {
    const { server, engine } = await serve();
    const c = await connect(server);
    const r = await c.query('ECHO $1, $2, $3', ['x', null, 42]);
    expect(r.rows).toEqual([{ p1: 'x', p2: null, p3: '42' }]);
    const s1 = await c.query({ name: 's1', text: 'ECHO $1', values: ['a'] });
    const s2 = await c.query({ name: 's1', text: 'ECHO $1', values: ['b'] });
    expect([s1.rows[0].p1, s2.rows[0].p1]).toEqual(['a', 'b']);
    expect((await c.query('ECHO $1', [Buffer.from('bytes')])).rows[0].p1).toBe('bytes');
    expect(engine.executed.filter((s) => s === 'ECHO $1')).toHaveLength(3);
  });

  it('pages rows with max-rows and PortalSuspended', async () => {
    const { server } = await serve();
    const c = await connect(server);
    const r = await c.query({ text: 'ROWS 5', rows: 2 } as pg.QueryConfig);
    expect(r.rows.map((x: { n: string }) => x.n)).toEqual(['0', '1', '2', '3', '4']);
  });

  it('sends ERROR with SQLSTATE, detail and hint, and the same client goes on', async () => {
    const { server, engine } = await serve();
    const c = await connect(server);
    await expect(c.query('FAIL')).rejects.toMatchObject({
      code: '42601',
      message: 'boom',
      detail: 'the detail',
      hint: 'the hint',
      severity: 'ERROR',
    });
    await expect(c.query('FAIL', [])).rejects.toMatchObject({ code: '42601', detail: 'the detail' });
    expect((await c.query('ECHO $1', ['after'])).rows[0].p1).toBe('after');
    await expect(c.query('CRASH')).rejects.toMatchObject({ code: 'XX000', message: 'kaboom' });
    await expect(c.query('SELECT 1; FAIL; SELECT 2')).rejects.toMatchObject({ code: '42601' });
    expect(engine.executed).not.toContain('SELECT 2');
    expect((await c.query('SELECT 3')).rows[0]['?column?']).toBe('3');
  });

  it('refuses binary results with 0A000 and a wrong parameter count with 08P01', async () => {
    const { server } = await serve();
    const c = await connect(server);
    await expect(
      c.query({ text: 'ECHO $1', values: ['x'], binary: true } as pg.QueryConfig),
    ).rejects.toMatchObject({
      code: '0A000',
    });
    await expect(c.query('ECHO $1, $2', ['only one'])).rejects.toMatchObject({ code: '08P01' });
    expect((await c.query('SELECT 4')).rows[0]['?column?']).toBe('4');
  });

  it('tracks the transaction status, 25P02 in a failed transaction, COMMIT of a failed one rolls back', async () => {
    const { server, engine } = await serve();
    const c = await connect(server);
    await c.query('BEGIN');
    expect(txStatus(c)).toBe('T');
    await expect(c.query('FAIL')).rejects.toMatchObject({ code: '42601' });
    expect(txStatus(c)).toBe('E');
    const before = engine.executed.length;
    await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    expect(engine.executed.length).toBe(before);
    expect((await c.query('COMMIT')).command).toBe('ROLLBACK');
    expect(txStatus(c)).toBe('I');
    await c.query('BEGIN');
    await c.query('COMMIT');
    expect(txStatus(c)).toBe('I');
  });

  it('passes notices and startup parameters through', async () => {
    const { server } = await serve();
    const c = await connect(server, { application_name: 'crdb-backup-action' });
    const notices: unknown[] = [];
    c.on('notice', (n) => notices.push(n));
    await c.query('NOTICE');
    expect(notices).toMatchObject([{ message: 'just so you know', code: '01000', severity: 'WARNING' }]);
    const who = (await c.query('WHOAMI')).rows[0];
    expect(who).toEqual({
      user: 'alice',
      database: 'shop',
      tls: 'false',
      cn: null,
      app: 'crdb-backup-action',
    });
  });
});

describe('protocol details with raw frames', () => {
  it('sends ParameterStatus, BackendKeyData and ReadyForQuery after authentication', async () => {
    const { server } = await serve();
    const raw = await RawClient.open(server);
    const welcome = await raw.login();
    expect(types(welcome)).toMatch(/^RS+KZ$/);
    const params = welcome.filter((m) => m.type === 'S').map((m) => m.body.toString('utf8').split('\0')[0]);
    expect(params).toEqual(expect.arrayContaining(['server_version', 'crdb_version', 'TimeZone']));
    expect(welcome.at(-1)!.body.toString()).toBe('I');
  });

  it('after an error discards everything up to Sync, then answers the next batch', async () => {
    const { server, engine } = await serve();
    const raw = await RawClient.open(server);
    await raw.login();
    raw.send(parseMsg('', 'FAIL'), bindMsg('', []), describePortal, executeMsg(), SYNC);
    raw.send(parseMsg('s', 'SELECT 1'), parseMsg('s', 'SELECT 1'), bindMsg('s', []), executeMsg(), SYNC);
    raw.send(parseMsg('', 'SELECT 5'), bindMsg('', []), describePortal, executeMsg(), SYNC);
    expect(types(await raw.untilReady())).toBe('12EZ');
    const dup = await raw.untilReady();
    expect(types(dup)).toBe('1EZ');
    expect(errorField(dup[1]!, 'C')).toBe('42P05');
    expect(types(await raw.untilReady())).toBe('12TDCZ');
    expect(engine.executed).toEqual(['FAIL', 'SELECT 5']);
  });

  it('describes statements with declared or text parameter types, and closes them', async () => {
    const { server } = await serve();
    const raw = await RawClient.open(server);
    await raw.login();
    raw.send(parseMsg('d', 'ECHO $1, $2', [Oid.int8]), fe('D', Buffer.from('S'), cs('d')), SYNC);
    const answer = await raw.untilReady();
    expect(types(answer)).toBe('1tnZ');
    const t = answer[1]!.body;
    expect([t.readInt16BE(0), t.readInt32BE(2), t.readInt32BE(6)]).toEqual([2, Oid.int8, Oid.text]);
    raw.send(fe('C', Buffer.from('S'), cs('d')), bindMsg('d', [null, null]), SYNC);
    const closed = await raw.untilReady();
    expect(types(closed)).toBe('3EZ');
    expect(errorField(closed[1]!, 'C')).toBe('26000');
  });

  it('decodes binary int8 parameters and pages with max-rows', async () => {
    const { server } = await serve();
    const raw = await RawClient.open(server);
    await raw.login();
    const big = Buffer.alloc(8);
    big.writeBigInt64BE(-9007199254740993n);
    raw.send(
      parseMsg('', 'ECHO $1', [Oid.int8]),
      bindMsg('', [big], [1]),
      describePortal,
      executeMsg(),
      SYNC,
    );
    const echoed = await raw.untilReady();
    expect(types(echoed)).toBe('12TDCZ');
    expect(echoed[3]!.body.subarray(6).toString()).toBe('-9007199254740993');
    raw.send(parseMsg('', 'ROWS 3'), bindMsg('', []), executeMsg(2), executeMsg(2), SYNC);
    expect(types(await raw.untilReady())).toBe('12DDsDCZ');
  });

  it('answers a newer 3.x minor with NegotiateProtocolVersion and GSSENCRequest with N', async () => {
    const { server } = await serve();
    const raw = await RawClient.open(server);
    raw.send(untyped(i32(80877104)));
    expect(await raw.byte()).toBe('N');
    const welcome = await raw.login(196610, { '_pq_.fancy': 'on' });
    expect(welcome[0]!.type).toBe('v');
    expect(welcome[0]!.body.readInt32BE(0)).toBe(0);
    expect(welcome[0]!.body.subarray(8).toString()).toBe('_pq_.fancy\0');
    expect(welcome.at(-1)!.type).toBe('Z');
  });

  it('closes a client that sends bytes with its SSLRequest', async () => {
    const { pki } = await sharedPki();
    const { server } = await serve({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    const raw = await RawClient.open(server);
    raw.send(untyped(i32(80877103)), Buffer.from('early'));
    expect(await raw.closedByServer()).toBe(true);
  });

  it('rejects an unknown message type with FATAL 08P01', async () => {
    const { server } = await serve();
    const raw = await RawClient.open(server);
    await raw.login();
    raw.send(fe('?'));
    const [fatal] = await raw.untilReady();
    expect(errorField(fatal!, 'C')).toBe('08P01');
    expect(await raw.closedByServer()).toBe(true);
  });
});

describe('CancelRequest', () => {
  const sendCancel = async (server: PgWireServer, pid: number, secret: number): Promise<void> => {
    const raw = await RawClient.open(server);
    raw.send(untyped(i32(80877102), i32(pid), i32(secret)));
    await raw.closedByServer();
  };

  it('cancels the running statement with 57014 and aborts its statementSignal', async () => {
    const { server, engine } = await serve();
    const c = await connect(server);
    const started = Date.now();
    const outcome = c.query('SLEEP 8000').catch((e: unknown) => e);
    await until(() => engine.executed.includes('SLEEP 8000'), 'the statement to start');
    const { pid, secret } = backendKey(c);
    await sendCancel(server, pid, secret);
    expect(await outcome).toMatchObject({ code: '57014', message: 'query execution canceled' });
    expect(Date.now() - started).toBeLessThan(4000);
    await until(() => engine.canceledStatements.includes('SLEEP 8000'), 'the engine to see the cancel');
    expect((await c.query('SELECT 9')).rows[0]['?column?']).toBe('9');
  });

  it('ignores a cancel with the wrong secret', async () => {
    const { server, engine } = await serve();
    const c = await connect(server);
    const running = c.query('SLEEP 300');
    await until(() => engine.executed.includes('SLEEP 300'), 'the statement to start');
    const { pid, secret } = backendKey(c);
    await sendCancel(server, pid, secret ^ 1);
    expect((await running).command).toBe('SLEEP');
    expect(engine.canceledStatements).toEqual([]);
  });
});

let pkiPromise: Promise<{ pki: TestPki }> | undefined;
/** One PKI for the whole file: openssl takes a moment. */
function sharedPki(): Promise<{ pki: TestPki }> {
  pkiPromise ??= Promise.resolve({ pki: makeTestPki() });
  return pkiPromise;
}
afterAll(async () => {
  if (pkiPromise) (await pkiPromise).pki.cleanup();
});

describe('authentication', () => {
  const methods: AuthMethod[] = ['cleartext', 'md5', 'scram-sha-256'];
  for (const auth of methods) {
    it(`${auth}: the right password logs in, a wrong one gets 28P01`, async () => {
      const { server } = await serve({ auth });
      const c = await connect(server);
      expect((await c.query('WHOAMI')).rows[0].user).toBe('alice');
      const wrong = await connectError(server, { password: 'nope' });
      expect(wrong).toMatchObject({
        code: '28P01',
        message: 'password authentication failed for user alice',
      });
      const unknown = await connectError(server, { user: 'mallory', password: 'x' });
      expect(unknown).toMatchObject({
        code: '28P01',
        message: 'password authentication failed for user mallory',
      });
      const noPassword = await connectError(server, { user: 'nopass', password: 'x' });
      expect(noPassword.code).toBe('28P01');
      expect(server.stats.connectionsAuthenticated).toBe(1);
    });
  }

  it('trust: any existing user, no password asked', async () => {
    const { server } = await serve({ auth: 'trust' });
    const c = await connect(server, { user: 'nopass', password: undefined });
    expect((await c.query('WHOAMI')).rows[0].user).toBe('nopass');
    expect((await connectError(server, { user: 'mallory' })).code).toBe('28P01');
  });

  it('cert: a client certificate whose CN is the user, signed by the CA', async () => {
    const { pki } = await sharedPki();
    const { server } = await serve({
      auth: 'cert',
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert },
    });
    const tls = (user: string) => ({ ca: pki.caCert, servername: 'localhost', ...pki.clientCert(user) });
    const c = await connect(server, { password: undefined, ssl: tls('alice') });
    expect((await c.query('WHOAMI')).rows[0]).toMatchObject({ user: 'alice', tls: 'true', cn: 'alice' });
    expect(await connectError(server, { password: undefined, ssl: tls('bob') })).toMatchObject({
      code: '28000',
      message: 'certificate authentication failed for user "alice"',
    });
    const noCert = await connectError(server, {
      password: undefined,
      ssl: { ca: pki.caCert, servername: 'localhost' },
    });
    expect(noCert.code).toBe('28000');
    expect((await connectError(server, { password: undefined })).code).toBe('28000');
  });
});

describe('TLS', () => {
  it('verifies against the CA by DNS and IP name; a wrong CA fails without authenticating', async () => {
    const { pki } = await sharedPki();
    const { server } = await serve({
      tls: { cert: pki.serverCert, key: pki.serverKey },
      auth: 'scram-sha-256',
    });
    const byName = await connect(server, { ssl: { ca: pki.caCert, servername: 'localhost' } });
    expect((await byName.query('WHOAMI')).rows[0].tls).toBe('true');
    const byIp = await connect(server, { ssl: { ca: pki.caCert } });
    expect((await byIp.query('SELECT 1')).rowCount).toBe(1);
    const wrongCa = await connectError(server, { ssl: { ca: pki.otherCaCert, servername: 'localhost' } });
    expect(wrongCa.message).toMatch(/certificate/i);
    const wrongName = await connectError(server, { ssl: { ca: pki.caCert, servername: 'example.com' } });
    expect(wrongName.message).toMatch(/altnames|example\.com/i);
    expect(server.stats.connectionsAuthenticated).toBe(2);
  });

  it('requireTls rejects plain startups with 28000', async () => {
    const { pki } = await sharedPki();
    const { server } = await serve({ tls: { cert: pki.serverCert, key: pki.serverKey }, requireTls: true });
    expect(await connectError(server)).toMatchObject({
      code: '28000',
      message: 'node is running secure mode, SSL connection required',
    });
    const c = await connect(server, { ssl: { ca: pki.caCert } });
    expect((await c.query('SELECT 1')).rowCount).toBe(1);
  });

  it('answers N to SSLRequest without TLS configured', async () => {
    const { server } = await serve();
    const err = await connectError(server, { ssl: { rejectUnauthorized: false } });
    expect(err.message).toMatch(/does not support SSL/);
  });
});

describe('fault hooks', () => {
  it('dropAllConnections destroys sockets, aborts sessions, and closes each session once', async () => {
    const { server, engine } = await serve();
    const a = await connect(server);
    const b = await connect(server);
    const pending = a.query('SLEEP 8000').catch((e: unknown) => e);
    await until(() => engine.executed.includes('SLEEP 8000'), 'the statement to start');
    server.dropAllConnections();
    expect(await pending).toBeInstanceOf(Error);
    await expect(b.query('SELECT 1')).rejects.toThrow();
    await until(() => server.stats.active === 0, 'all connections to go');
    expect(engine.sessions.map((s) => s.signal.aborted)).toEqual([true, true]);
    expect([...engine.closeCounts.values()]).toEqual([1, 1]);
    expect((await (await connect(server)).query('SELECT 2')).rowCount).toBe(1);
  });

  it('refuseConnections stops listening for a while, then accepts again on the same port', async () => {
    const { server } = await serve();
    const port = server.port;
    const c = await connect(server);
    const started = Date.now();
    server.refuseConnections(600);
    await expect(c.query('SELECT 1')).rejects.toThrow();
    expect((await connectError(server)).code).toBe('ECONNREFUSED');
    let back: pg.Client | undefined;
    for (let i = 0; i < 60 && !back; i++) {
      back = await connect(server).catch(() => waitMs(100).then(() => undefined));
    }
    expect(back).toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(server.port).toBe(port);
    expect((await back!.query('SELECT 3')).rowCount).toBe(1);
  });

  it('dropAfterStatements runs the n-th statement of any session and drops its socket unanswered', async () => {
    const { server, engine } = await serve();
    const a = await connect(server);
    const b = await connect(server);
    server.dropAfterStatements(2);
    await a.query('SELECT 1');
    await expect(b.query('SELECT 2')).rejects.toThrow(/terminated|closed|ended/i);
    expect(engine.executed).toEqual(['SELECT 1', 'SELECT 2']);
    expect((await a.query('SELECT 3')).rowCount).toBe(1);
  });

  it('dropDuring drops a matching statement after afterMs, `times` times', async () => {
    const { server, engine } = await serve();
    server.dropDuring(/^SLEEP/, { afterMs: 150 });
    const a = await connect(server);
    const started = Date.now();
    await expect(a.query('SLEEP 10')).rejects.toThrow();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(engine.executed).toContain('SLEEP 10');
    const b = await connect(server);
    expect((await b.query('SLEEP 10')).command).toBe('SLEEP');
  });

  it('slowStatements delays matching statements until clearFaults', async () => {
    const { server } = await serve();
    const c = await connect(server);
    server.slowStatements(/^SELECT 5$/, 300);
    const timed = async (sql: string): Promise<number> => {
      const t = Date.now();
      await c.query(sql);
      return Date.now() - t;
    };
    expect(await timed('SELECT 5')).toBeGreaterThanOrEqual(290);
    expect(await timed('SELECT 6')).toBeLessThan(250);
    server.clearFaults();
    expect(await timed('SELECT 5')).toBeLessThan(250);
  });

  it('a DropConnection from the engine closes the socket without an answer', async () => {
    const { server, engine } = await serve();
    const c = await connect(server);
    await expect(c.query('DROP')).rejects.toThrow();
    await until(() => engine.closeCounts.get(1) === 1, 'the session to close');
  });
});

describe('stats and session lifecycle', () => {
  it('counts accepted, authenticated, active connections and statements', async () => {
    const { server, engine } = await serve();
    const a = await connect(server);
    const b = await connect(server);
    await connectError(server, { password: 'wrong' });
    await a.query('SELECT 1; SELECT 2');
    await b.query('ECHO $1', ['x']);
    await expect(b.query('FAIL')).rejects.toThrow();
    expect(server.stats).toMatchObject({
      connectionsAccepted: 3,
      connectionsAuthenticated: 2,
      statements: 4,
    });
    await until(() => server.stats.active === 2, 'the failed login to go');
    await a.end();
    await until(() => server.stats.active === 1, 'a to go');
    await server.close();
    expect(server.stats.active).toBe(0);
    expect(engine.sessions).toHaveLength(2);
    await until(() => engine.closeCounts.size === 2, 'both sessions to close');
    expect([...engine.closeCounts.values()]).toEqual([1, 1]);
    expect(engine.sessions.every((s) => s.signal.aborted)).toBe(true);
  });
});

describe('psql', () => {
  const psql = (port: number, env: Record<string, string>): Promise<{ code: number; out: string }> =>
    new Promise((resolve) => {
      execFile(
        '/usr/bin/psql',
        [
          '-X',
          '-w',
          '-At',
          '-h',
          '127.0.0.1',
          '-p',
          String(port),
          '-U',
          'alice',
          '-d',
          'shop',
          '-c',
          'SELECT 1',
        ],
        {
          env: { PATH: process.env.PATH ?? '', PGPASSWORD: PASSWORD, PGCONNECT_TIMEOUT: '5', ...env },
          timeout: 10_000,
        },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}`.trim() }),
      );
    });

  // spawnSync would block the event loop this server runs on, so psql runs asynchronously.
  it('runs SELECT 1 over a plain connection with a cleartext password', async () => {
    const { server } = await serve();
    expect(await psql(server.port, { PGSSLMODE: 'prefer' })).toEqual({ code: 0, out: '1' });
  });

  it('runs SELECT 1 with verify-full TLS and SCRAM', async () => {
    const { pki } = await sharedPki();
    const { server } = await serve({
      tls: { cert: pki.serverCert, key: pki.serverKey },
      auth: 'scram-sha-256',
    });
    const root = join(pki.dir, 'psql-root.crt');
    writeFileSync(root, pki.caCert);
    expect(await psql(server.port, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: root })).toEqual({
      code: 0,
      out: '1',
    });
  });
});
