/** In-process fakes for unit tests: a virtual clock, scripted SQL sessions and connectors, a recording runner. */
import type { ConnectRequest, Connector, Row, SqlSession } from '../../src/cluster.js';
import type { ActionIO, Clock } from '../../src/runtime.js';
import type { Statement } from '../../src/sql.js';

/** Virtual time: sleep() advances the clock at once, so waits cost nothing. */
export class VirtualClock implements Clock {
  constructor(public t = Date.parse('2026-11-24T11:40:00Z')) {}
  now(): number {
    return this.t;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    this.t += Math.max(0, ms);
  }
}

export type Responder = (stmt: Statement, session: FakeSession) => Row[] | Promise<Row[]>;

export class FakeSession implements SqlSession {
  broken = false;
  readonly log: Statement[] = [];
  constructor(
    readonly applicationName: string,
    private readonly respond: Responder,
  ) {}
  async query(stmt: Statement): Promise<Row[]> {
    if (this.broken) throw new Error('Connection terminated');
    this.log.push(stmt);
    // A server carries the application_name it was given at startup.
    if (stmt.text === 'SHOW application_name') return [{ application_name: this.applicationName }];
    return this.respond(stmt, this);
  }
  async close(): Promise<void> {
    this.broken = true;
  }
}

/** A connector whose sessions answer through one responder; records every connect. */
export function fakeConnector(
  respond: Responder,
): Connector & { requests: ConnectRequest[]; sessions: FakeSession[] } {
  const requests: ConnectRequest[] = [];
  const sessions: FakeSession[] = [];
  const connector = (async (req: ConnectRequest) => {
    requests.push(req);
    const s = new FakeSession(req.applicationName, respond);
    sessions.push(s);
    return s;
  }) as unknown as Connector & { requests: ConnectRequest[]; sessions: FakeSession[] };
  connector.requests = requests;
  connector.sessions = sessions;
  return connector;
}

export function sqlError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/** The runner: records log lines, outputs, saved state, the summary and failures. */
export class RecordingIO implements ActionIO {
  events: string[] = [];
  outputs: Record<string, string> = {};
  state: Record<string, string> = {};
  summary = '';
  failed: string[] = [];
  info = (m: string) => void this.events.push(`info:${m}`);
  warning = (m: string) => void this.events.push(`warning:${m}`);
  error = (m: string) => void this.events.push(`error:${m}`);
  debug = () => undefined;
  setOutput = (n: string, v: string) => void (this.outputs[n] = v);
  setFailed = (m: string) => void this.failed.push(m);
  setSecret = (v: string) => void this.events.push(`secret:${v.length}`);
  saveState = (n: string, v: string) => void (this.state[n] = v);
  getState = (n: string) => this.state[n] ?? '';
  startGroup = (n: string) => void this.events.push(`group:${n}`);
  endGroup = () => undefined;
  writeSummary = async (md: string) => void (this.summary += md);
}

/** A connector whose sessions answer through `answer`; records connects, statements and their timeouts. */
export function scriptedConnector(
  answer: (stmt: Statement, req: ConnectRequest) => Promise<Row[]>,
  connect: (req: ConnectRequest, n: number) => Promise<void> = async () => undefined,
) {
  const requests: ConnectRequest[] = [];
  const statements: { text: string; user: string; clientTimeoutMs?: number }[] = [];
  let closed = 0;
  const connector: Connector = async (req) => {
    requests.push(req);
    await connect(req, requests.length);
    const session: SqlSession = {
      applicationName: req.applicationName,
      broken: false,
      query: (stmt, opts) => {
        statements.push({
          text: stmt.text,
          user: req.connection.user,
          clientTimeoutMs: opts?.clientTimeoutMs,
        });
        return answer(stmt, req);
      },
      close: async () => {
        closed++;
      },
    };
    return session;
  };
  return { connector, requests, statements, closed: () => closed };
}
