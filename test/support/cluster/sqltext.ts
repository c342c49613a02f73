/**
 * Small helpers for recognising the SQL the test cluster answers: values, lists, identifiers; and,
 * for the wire layer, splitting a simple query into statements and counting its placeholders.
 */
import { SqlError } from './protocol-types.js';

/** A string literal or a `$n` placeholder (optionally `::STRING`), as it appears in SQL. */
export const VALUE = String.raw`(?:\$\d+(?:::STRING)?|'(?:[^']|'')*'|-?\d+(?:\.\d+)?)`;

const IDENT_PART = String.raw`(?:[A-Za-z_][\w$]*|"(?:[^"]|"")*"|\*)`;
const QUALIFIED = String.raw`(?!(?:INTO|TO|DATABASE|TABLE)\b)${IDENT_PART}(?:\.${IDENT_PART}){0,2}`;
/** Bare BACKUP table targets: `t`, `db.t`, `db.sch.t`, `db.*`, comma-separated. */
export const BARE_TARGETS = String.raw`${QUALIFIED}(?:\s*,\s*${QUALIFIED})*`;

/** `db."My Sch".t` → `['db', 'My Sch', 't']` (each part as parseIdent reads it; `*` kept). */
export function splitQualified(text: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  const t = text.trim();
  for (let i = 0; i < t.length; i++) {
    const c = t[i]!;
    if (c === '"') {
      if (quoted && t[i + 1] === '"') {
        cur += '""';
        i++;
        continue;
      }
      quoted = !quoted;
    }
    if (c === '.' && !quoted) {
      parts.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  parts.push(cur);
  return parts.map((p) => (p.trim() === '*' ? '*' : parseIdent(p)));
}

export function resolveValue(token: string, params: readonly (string | null)[]): string | null {
  const t = token.trim();
  const ph = /^\$(\d+)(?:::STRING)?$/i.exec(t);
  if (ph) {
    const i = Number(ph[1]) - 1;
    if (i < 0 || i >= params.length)
      throw new SqlError('08P01', `no value provided for placeholder: $${i + 1}`);
    return params[i]!;
  }
  if (t.startsWith("'")) return t.slice(1, -1).replace(/''/g, "'");
  if (/^NULL$/i.test(t)) return null;
  return t;
}

/** Split on commas outside quotes and parentheses. */
export function splitList(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      cur += c;
      if (c === quote) {
        if (s[i + 1] === quote) cur += s[++i];
        else quote = undefined;
      }
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

/** `"Weird Name"` → `Weird Name`; `Shop` → `shop`. */
export function parseIdent(s: string): string {
  const t = s.trim();
  if (t.startsWith('"')) return t.slice(1, -1).replace(/""/g, '"');
  return t.toLowerCase();
}

/** Quote an identifier only when CockroachDB's formatter would. */
export function formatIdent(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Go's url.QueryEscape. */
export function goQueryEscape(s: string): string {
  return Array.from(Buffer.from(s, 'utf8'))
    .map((b) => {
      const c = String.fromCharCode(b);
      if (/[A-Za-z0-9\-_.~]/.test(c)) return c;
      if (c === ' ') return '+';
      return `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

export function likeToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '%') re += '[\\s\\S]*';
    else if (c === '_') re += '[\\s\\S]';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function syntaxError(sql: string): SqlError {
  const near = sql.trim().split(/\s+/).slice(0, 2).join(' ');
  return new SqlError('42601', `at or near "${near.toLowerCase()}": syntax error`);
}

// ---- time --------------------------------------------------------------------------------------------

/**
 * How far the test cluster's clock is ahead of the machine's (ms). Tests move it to simulate days or
 * weeks between runs (a nightly schedule); every cluster time (now(), job times, backup end times)
 * reads it. One clock per process, as one cluster per test file.
 */
let clockOffsetMs = 0;
export function moveClusterClock(byMs: number): void {
  clockOffsetMs += byMs;
}
export function resetClusterClock(): void {
  clockOffsetMs = 0;
}

export const nowMicros = (): bigint =>
  BigInt(Date.now() + clockOffsetMs) * 1000n + BigInt(Math.floor(Math.random() * 1000));

function parts(micros: bigint): { date: string; time: string; frac: string } {
  const iso = new Date(Number(micros / 1000n)).toISOString();
  return {
    date: iso.slice(0, 10),
    time: iso.slice(11, 19),
    frac: (((micros % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0'),
  };
}

/** Text of a TIMESTAMP (`2026-11-24 11:40:45.123456`) or TIMESTAMPTZ (`…+00`) value, as pgwire sends it. */
export function formatTs(micros: bigint, tz: boolean, truncateToSeconds = false): string {
  const p = parts(micros);
  const frac = truncateToSeconds ? '' : `.${p.frac}`.replace(/\.?0+$/, '');
  return `${p.date} ${p.time}${frac}${tz ? '+00' : ''}`;
}

/** `/2006/01/02-150405.00` */
export function fullSubdirOf(micros: bigint): string {
  const p = parts(micros);
  return `/${p.date.slice(0, 4)}/${p.date.slice(5, 7)}/${p.date.slice(8, 10)}-${p.time.replace(/:/g, '')}.${p.frac.slice(0, 2)}`;
}

/** `20060102/150405.00` */
export function incrementalFolderOf(micros: bigint): string {
  const p = parts(micros);
  return `${p.date.replace(/-/g, '')}/${p.time.replace(/:/g, '')}.${p.frac.slice(0, 2)}`;
}

/** `20060102-150405.00` */
export function compactTime(micros: bigint): string {
  const p = parts(micros);
  return `${p.date.replace(/-/g, '')}-${p.time.replace(/:/g, '')}.${p.frac.slice(0, 2)}`;
}

const TS =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}(?::?\d{2})?)?\??$/;

export function parseTimestamp(s: string): bigint | undefined {
  const m = TS.exec(s.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se, frac = '', zone] = m;
  const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${se}Z`);
  if (Number.isNaN(ms)) return undefined;
  let micros = BigInt(ms) * 1000n + BigInt((frac + '000000').slice(0, 6));
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1n : 1n;
    const digits = zone.slice(1).replace(':', '');
    micros -= sign * (BigInt(digits.slice(0, 2)) * 60n + BigInt(digits.slice(2, 4) || '0')) * 60_000_000n;
  }
  return micros;
}

const UNIT: Record<string, bigint> = {
  us: 1n,
  µs: 1n,
  ms: 1000n,
  s: 1_000_000n,
  m: 60_000_000n,
  h: 3_600_000_000n,
  d: 86_400_000_000n,
  w: 604_800_000_000n,
};

/** Postgres-style interval: the sign belongs to each number, so `-1m30s` is −30 s. */
export function parseInterval(s: string): bigint | undefined {
  const t = s.trim();
  if (!/^([+-]?\d+(\.\d+)?\s*(us|µs|ms|s|m|h|d|w))+$/.test(t)) return undefined;
  let total = 0n;
  for (const m of t.matchAll(/([+-]?)(\d+)(?:\.(\d+))?\s*(us|µs|ms|s|m|h|d|w)/g)) {
    const unit = UNIT[m[4]!]!;
    const value =
      BigInt(m[2]!) * unit + (BigInt(((m[3] ?? '') + '000000000').slice(0, 9)) * unit) / 1_000_000_000n;
    total += m[1] === '-' ? -value : value;
  }
  return total;
}

// ---- splitting a simple query into statements ---------------------------------------------------------

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
