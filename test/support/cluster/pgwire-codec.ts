/**
 * PostgreSQL wire protocol v3 messages for the test cluster: encoding the server's messages (frames,
 * ErrorResponse and NoticeResponse fields, RowDescription, DataRow) and decoding the client's (the
 * startup packet, typed message bodies, parameters in text or binary format).
 */
import type { Socket } from 'node:net';
import type { Notice, QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import type { PreparedStatement } from './pgwire-connection.js';

const MAX_STARTUP_PACKET = 10_000;
const MAX_MESSAGE = 64 * 1024 * 1024;

export type TxStatus = 'I' | 'T' | 'E';

// ---- encoding ----------------------------------------------------------------------------------------

export function frame(type: string, ...parts: Buffer[]): Buffer {
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

export function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

export function cstr(s: string): Buffer {
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

export function errorResponse(e: SqlError, severity: 'ERROR' | 'FATAL' = 'ERROR'): Buffer {
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

export function rowDescription(fields: NonNullable<QueryResult['fields']>): Buffer {
  const parts: Buffer[] = [int16(fields.length)];
  for (const f of fields) {
    const typeLength = TYPE_LENGTHS.get(f.typeOid) ?? -1;
    parts.push(cstr(f.name), int32(0), int16(0), int32(f.typeOid), int16(typeLength), int32(-1), int16(0));
  }
  return frame('T', ...parts);
}

export function dataRow(row: readonly (string | null)[]): Buffer {
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

export function parameterDescription(types: readonly number[]): Buffer {
  return frame('t', int16(types.length), ...types.map(int32));
}

export const readyForQuery = (status: TxStatus): Buffer => frame('Z', Buffer.from(status));
export const commandComplete = (tag: string): Buffer => frame('C', cstr(tag));
export const NO_DATA = frame('n');
export const PARSE_COMPLETE = frame('1');
export const BIND_COMPLETE = frame('2');
export const CLOSE_COMPLETE = frame('3');
export const EMPTY_QUERY = frame('I');
export const PORTAL_SUSPENDED = frame('s');

// ---- decoding ----------------------------------------------------------------------------------------

/** A malformed message: answered with FATAL 08P01 and the connection closes. */
export class ProtocolViolation extends Error {}

export class BodyReader {
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
export class InputStream {
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

export class UnknownMessage extends Error {}

export function missingStatement(name: string): SqlError {
  return new SqlError(
    '26000',
    name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`,
  );
}

/** Binary-format parameters are understood for the types a client is likely to send that way. */
export function decodeParam(
  bytes: Buffer,
  format: number,
  statement: PreparedStatement,
  index: number,
): string {
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
