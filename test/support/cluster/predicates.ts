/**
 * The WHERE clauses the jobs and sessions queries accept: comparisons, IN, LIKE, IS [NOT] NULL,
 * `now() - INTERVAL '…'`, joined by AND.
 */
import {
  formatTs,
  likeToRegExp,
  nowMicros,
  parseInterval,
  parseTimestamp,
  resolveValue,
  splitList,
  syntaxError,
  VALUE,
} from './sqltext.js';

export interface Predicate {
  column: string;
  op: '=' | '<>' | '>' | '>=' | '<' | '<=' | 'IN' | 'LIKE' | 'IS NULL' | 'IS NOT NULL';
  values: string[];
}

export function parseWhere(text: string, params: readonly (string | null)[]): Predicate[] {
  const parts = text.split(/\s+AND\s+/i);
  return parts.map((part) => {
    const p = part.trim();
    let m: RegExpExecArray | null;
    if ((m = /^(\w+)\s+IS\s+(NOT\s+)?NULL$/i.exec(p)))
      return { column: m[1]!.toLowerCase(), op: m[2] ? 'IS NOT NULL' : 'IS NULL', values: [] };
    if ((m = /^(\w+)\s+IN\s*\((.+)\)$/is.exec(p))) {
      return {
        column: m[1]!.toLowerCase(),
        op: 'IN',
        values: splitList(m[2]!).map((v) => resolveValue(v, params) ?? ''),
      };
    }
    if (
      (m = new RegExp(
        `^(\\w+)\\s*(=|<>|!=|>=|<=|>|<|LIKE)\\s*(${VALUE}|now\\(\\)\\s*-\\s*(?:INTERVAL\\s*)?'[^']+')$`,
        'i',
      ).exec(p))
    ) {
      const op = (m[2]!.toUpperCase() === '!=' ? '<>' : m[2]!.toUpperCase()) as Predicate['op'];
      const raw = m[3]!;
      const nowMinus = /^now\(\)\s*-\s*(?:INTERVAL\s*)?'([^']+)'$/i.exec(raw);
      const value = nowMinus
        ? formatTs(nowMicros() - (parseInterval(nowMinus[1]!) ?? 0n), true)
        : (resolveValue(raw, params) ?? '');
      return { column: m[1]!.toLowerCase(), op, values: [value] };
    }
    throw syntaxError(p);
  });
}

export type Cell = string | number | bigint | null;

export function matchPredicate(p: Predicate, value: Cell): boolean {
  if (p.op === 'IS NULL') return value === null;
  if (p.op === 'IS NOT NULL') return value !== null;
  if (value === null) return false;
  if (p.op === 'LIKE') return likeToRegExp(p.values[0]!).test(String(value));
  if (p.op === 'IN') return p.values.some((v) => compare(value, v) === 0);
  const c = compare(value, p.values[0]!);
  switch (p.op) {
    case '=':
      return c === 0;
    case '<>':
      return c !== 0;
    case '>':
      return c > 0;
    case '>=':
      return c >= 0;
    case '<':
      return c < 0;
    default:
      return c <= 0;
  }
}

function compare(value: Exclude<Cell, null>, text: string): number {
  if (typeof value === 'bigint') {
    const other = /^-?\d+$/.test(text.trim()) ? BigInt(text.trim()) : parseTimestamp(text);
    if (other === undefined) return String(value).localeCompare(text);
    return value < other ? -1 : value > other ? 1 : 0;
  }
  if (typeof value === 'number') return value - Number(text);
  return value < text ? -1 : value > text ? 1 : 0;
}
