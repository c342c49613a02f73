/**
 * The cluster-wide storage check (pkg/cloud/cloudcheck/cloudcheck_stmt.go and cloudcheck_processor.go;
 * docs check-external-connection.md): every node (here: simulated nodes with localities) writes a test
 * file `cockroach-storage-test-<n>` of `transfer` bytes (default 32 MiB) at the location, reads it back
 * and deletes it, once per `concurrently` worker, repeating until `time` has passed; one row per
 * worker. Privileges are the destination checks of BACKUP (cloudprivilege.CheckDestinationPrivileges).
 *
 * Its syntax changed:
 * - `SHOW BACKUP CONNECTION <uri> [WITH transfer = …, time = …, concurrently = n]`: added by
 *   cockroach PR #97517 (2023) and backported to 22.2 (PR #98465, March 2023, so 22.2.7 and later);
 *   undocumented; present through 24.3;
 * - `CHECK EXTERNAL CONNECTION <uri> [WITH …]`: PR #138696 (January 2025) replaced the former with it
 *   (sql.y check_external_connection_stmt, `WITH opts | WITH OPTIONS (opts)`); documented from 25.1.
 * The other form is a syntax error on each version.
 */
import type { Session } from './engine-state.js';
import type { EngineInternals } from './internals.js';
import type { JobStorage } from './jobs.js';
import type { QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import { parseInterval, resolveValue, splitList, VALUE } from './sqltext.js';

export interface SimulatedNode {
  id: number;
  locality: string;
  /** Set: this node cannot reach the storage; the text is its row's error. */
  unreachable?: string;
}

const DEFAULT_NODES: SimulatedNode[] = [
  { id: 1, locality: 'region=us-east1,zone=us-east1-b' },
  { id: 2, locality: 'region=us-east1,zone=us-east1-c' },
  { id: 3, locality: 'region=us-west1,zone=us-west1-a' },
];

/** What the S3 SDK reports when a node has no route to the endpoint. */
const UNREACHABLE =
  'closing after writing: upload failed: RequestError: send request failed\ncaused by: dial tcp: i/o timeout';

export class ExternalCheck {
  private nodes: SimulatedNode[] = DEFAULT_NODES.map((n) => ({ ...n }));
  private seq = 0;

  constructor(private readonly e: EngineInternals) {}

  /** Replace the simulated nodes (ids and localities). */
  setNodes(nodes: SimulatedNode[]): void {
    this.nodes = nodes.map((n) => ({ ...n }));
  }
  /**
   * One node loses its route to the storage: `setUnreachable(id)` with the SDK's dial timeout, or
   * with the given error text; an explicit `undefined` restores it (a default parameter would turn
   * that undefined back into the error text, so the arguments are counted instead).
   */
  setUnreachable(id: number, ...error: [] | [string | undefined]): void {
    const n = this.node(id);
    if (error.length === 1 && error[0] === undefined) delete n.unreachable;
    else n.unreachable = error[0] ?? UNREACHABLE;
  }
  /** The node reaches the storage again. */
  setReachable(id: number): void {
    delete this.node(id).unreachable;
  }
  private node(id: number): SimulatedNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }
  get nodeList(): readonly SimulatedNode[] {
    return this.nodes;
  }

  /** Which form this version parses: CHECK EXTERNAL CONNECTION from 25.1, SHOW BACKUP CONNECTION before. */
  syntax(): 'check' | 'show-backup' | undefined {
    const p = this.e.profile;
    if (p.major > 25 || (p.major === 25 && p.minor >= 1)) return 'check';
    if (p.major === 22 && p.minor === 2 && p.patch < 7) return undefined;
    return 'show-backup';
  }

  async run(s: Session, sql: string, params: readonly (string | null)[]): Promise<QueryResult | undefined> {
    const check = /^CHECK\s/i.test(sql);
    const show = /^SHOW\s+BACKUP\s+CONNECTION\b/i.test(sql);
    if (!check && !show) return undefined;
    const form = this.syntax();
    if (check && form !== 'check') throw new SqlError('42601', 'at or near "check": syntax error');
    if (show && form !== 'show-backup') throw new SqlError('42601', 'at or near "connection": syntax error');
    const m = new RegExp(
      `^(?:CHECK\\s+EXTERNAL|SHOW\\s+BACKUP)\\s+CONNECTION\\s+(${VALUE})(?:\\s+WITH\\s+(?:OPTIONS\\s*\\((.*)\\)|(.*)))?$`,
      'is',
    ).exec(sql);
    if (!m)
      throw new SqlError(
        '42601',
        `at or near "${sql.trim().split(/\s+/)[1]?.toLowerCase() ?? 'EOF'}": syntax error`,
      );
    const uri = resolveValue(m[1]!, params) ?? '';
    const opts = parseOptions(m[2] ?? m[3] ?? '', params);
    let store: JobStorage;
    try {
      // Statement time: privileges on the location, then opening it (a bad URI fails the statement).
      store = this.e.storage(s, uri);
    } catch (err) {
      if (err instanceof SqlError && err.code === '42501') throw err;
      throw new SqlError('XXUUU', `connect to external storage: ${(err as Error).message}`);
    }
    const rows: (string | null)[][] = [];
    await Promise.all(
      this.nodes.map(async (node) => {
        const workers = await Promise.all(
          Array.from({ length: opts.concurrently }, () => this.checkNode(node, store, opts)),
        );
        for (const r of workers) rows.push(r);
      }),
    );
    rows.sort((a, b) => Number(a[0]) - Number(b[0]));
    return {
      fields: [
        { name: 'node', typeOid: Oid.int8 },
        { name: 'locality', typeOid: Oid.text },
        { name: 'ok', typeOid: Oid.bool },
        { name: 'error', typeOid: Oid.text },
        { name: 'transferred', typeOid: Oid.text },
        { name: 'read_speed', typeOid: Oid.text },
        { name: 'write_speed', typeOid: Oid.text },
        { name: 'can_delete', typeOid: Oid.bool },
      ],
      rows,
      tag: check ? `CHECK EXTERNAL CONNECTION ${rows.length}` : `SHOW ${rows.length}`,
    };
  }

  /** checkURI: repeat checkStorage until MinDuration has passed or a round fails. */
  private async checkNode(
    node: SimulatedNode,
    store: JobStorage,
    o: CheckOptions,
  ): Promise<(string | null)[]> {
    const total = { ok: false, error: '', wrote: 0, wroteNs: 0n, read: 0, readNs: 0n, canDelete: false };
    const started = Date.now();
    for (let round = 0; round < 1000; round++) {
      const name = `cockroach-storage-test-${Date.now()}${++this.seq}`;
      const body = Buffer.alloc(o.transfer, 0x5a);
      let t = process.hrtime.bigint();
      if (node.unreachable !== undefined) {
        // The writer buffers every chunk, so the bytes count as written; the upload at Close fails.
        total.wrote += o.transfer;
        total.ok = false;
        total.error = node.unreachable;
        break;
      }
      try {
        await store.put(name, body);
      } catch (err) {
        total.wrote += o.transfer;
        total.error = `closing after writing: upload failed: ${stripPrefix((err as Error).message)}`;
        total.ok = false;
        break;
      }
      total.wrote += o.transfer;
      total.wroteNs += process.hrtime.bigint() - t;
      t = process.hrtime.bigint();
      let back: Buffer | undefined;
      try {
        back = await store.get(name);
      } catch (err) {
        total.error = `opening reader: ${stripPrefix((err as Error).message)}`;
        break;
      }
      if (!back) {
        total.error = 'opening reader: s3 object does not exist';
        break;
      }
      total.read += back.length;
      total.readNs += process.hrtime.bigint() - t;
      total.ok = true;
      try {
        await store.delete(name);
        total.canDelete = true;
      } catch (err) {
        total.canDelete = false;
        total.error = `deleting file: ${stripPrefix((err as Error).message)}`;
        break;
      }
      total.error = '';
      if (Date.now() - started > o.timeMs) break;
    }
    return [
      String(node.id),
      node.locality,
      total.ok ? 't' : 'f',
      total.error,
      iBytes(total.wrote),
      dataRate(total.read, total.readNs),
      dataRate(total.wrote, total.wroteNs),
      total.canDelete ? 't' : 'f',
    ];
  }
}

interface CheckOptions {
  transfer: number;
  timeMs: number;
  concurrently: number;
}

function parseOptions(text: string, params: readonly (string | null)[]): CheckOptions {
  const o: CheckOptions = { transfer: 32 << 20, timeMs: 0, concurrently: 1 };
  for (const item of splitList(text)) {
    const m = /^(\w+)\s*=\s*(.+)$/s.exec(item);
    if (!m) throw new SqlError('42601', `at or near "${item.toLowerCase()}": syntax error`);
    const value = resolveValue(m[2]!.trim(), params) ?? '';
    switch (m[1]!.toLowerCase()) {
      case 'transfer': {
        const n = parseBytes(value);
        if (n === undefined) throw new SqlError('22023', `invalid bytes value: ${value}`);
        o.transfer = n;
        break;
      }
      case 'time': {
        const micros = parseInterval(value);
        if (micros === undefined) throw new SqlError('22023', `invalid duration: ${value}`);
        o.timeMs = Number(micros / 1000n);
        break;
      }
      case 'concurrently':
        o.concurrently = Math.max(1, Number(value) || 1);
        break;
      default:
        throw new SqlError('42601', `at or near "${m[1]!.toLowerCase()}": syntax error`);
    }
  }
  return o;
}

/** humanizeutil.ParseBytes: `1KiB`, `32 MiB`, `500B`, `1KB`. */
function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? 'B').toUpperCase();
  const pow = { B: 0, K: 1, M: 2, G: 3, T: 4 }[unit[0] as 'B'] ?? 0;
  const base = unit.includes('I') ? 1024 : 1000;
  return Math.round(Number(m[1]) * base ** pow);
}

/** go-humanize IBytes, as humanizeutil.IBytes prints `transferred`: `1.0 KiB`, `32 MiB`. */
export function iBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let e = Math.floor(Math.log(n) / Math.log(1024));
  e = Math.min(e, units.length);
  const v = Math.floor((n / 1024 ** e) * 10 + 0.5) / 10;
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ${units[e - 1]}`;
}

/**
 * humanizeutil.DataRate: `0` for no bytes, `inf` for no time (a failed upload leaves the write time
 * unset while its bytes count), else MiB/s with two decimals (`66.17 MiB/s` in the docs).
 */
function dataRate(bytes: number, nanos: bigint): string {
  if (bytes === 0) return '0';
  if (nanos === 0n) return 'inf';
  return `${(bytes / (Number(nanos) / 1e9) / (1 << 20)).toFixed(2)} MiB/s`;
}

function stripPrefix(message: string): string {
  return message.replace(/^failed to (put|get) s3 object: /, '');
}
