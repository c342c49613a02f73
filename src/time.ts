/**
 * Time as the cluster gives it and as the action writes it: cluster
 * timestamps (TIMESTAMP and TIMESTAMPTZ texts) to microseconds and ISO 8601,
 * and durations.
 */
import type { AsOfSystemTime } from './config.js';
import { clip, InputError } from './errors.js';
import { formatTimestampMicros } from './sql.js';

export interface ClusterTime {
  /** ISO 8601 UTC with the precision the cluster gave (up to microseconds). */
  iso: string;
  micros: bigint;
}

const CLUSTER_TIME =
  /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?))?$/;

/** Parse a TIMESTAMP (UTC by CockroachDB's convention, up to 23.1) or TIMESTAMPTZ text. */
export function parseClusterTime(text: string | null | undefined): ClusterTime | undefined {
  if (text == null || text === '') return undefined;
  const m = CLUSTER_TIME.exec(text.trim());
  if (!m) return undefined;
  const [, date, time, frac = '', zone] = m;
  const baseMs = Date.parse(`${date}T${time}Z`);
  if (Number.isNaN(baseMs)) return undefined;
  const micros6 = (frac + '000000').slice(0, 6);
  let micros = BigInt(baseMs) * 1000n + BigInt(micros6);
  micros -= BigInt(zoneOffsetMinutes(zone)) * 60_000_000n;
  return { iso: microsToIso(micros, frac.length), micros };
}

function zoneOffsetMinutes(zone: string | undefined): number {
  if (zone === undefined || zone === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0'));
}

/** ISO 8601 UTC; keeps 3 or 6 fraction digits as the input precision warrants. */
export function microsToIso(micros: bigint, fractionDigits = 6): string {
  const ts = formatTimestampMicros(micros); // YYYY-MM-DD HH:MM:SS.ffffff+00:00
  const frac = ts.slice(20, 26);
  const keep = fractionDigits === 0 ? '' : fractionDigits <= 3 ? `.${frac.slice(0, 3)}` : `.${frac}`;
  return `${ts.slice(0, 10)}T${ts.slice(11, 19)}${keep}Z`;
}

/** Seconds from creation to finish, as the cluster recorded them (`83.412`). */
export function jobDurationSeconds(job: {
  created?: ClusterTime;
  finished?: ClusterTime;
}): string | undefined {
  if (!job.created || !job.finished) return undefined;
  const micros = job.finished.micros - job.created.micros;
  return (Number(micros) / 1e6).toFixed(3);
}

export function formatDurationMs(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `90s`, `5m`, `1h30m`, `30d`, or a bare number of seconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) return undefined;
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(total);
}

const AOST_UNITS_MICROS: Record<string, bigint> = {
  us: 1n,
  µs: 1n,
  ms: 1000n,
  s: 1_000_000n,
  m: 60_000_000n,
  h: 3_600_000_000n,
};

/**
 * The `as-of-system-time` input (trimmed): a negative interval, read in
 * microseconds, or a timestamp in the past, as ISO 8601 UTC.
 */
export function parseAsOfSystemTime(value: string): AsOfSystemTime {
  const name = 'as-of-system-time';
  const advice =
    'Write a negative interval such as -10s, -500ms or -1m30s, or a UTC timestamp such as 2026-11-24 11:40:45.';
  if (/^-(\d+(\.\d+)?(us|µs|ms|s|m|h))+$/.test(value)) {
    let micros = 0n;
    for (const m of value.slice(1).matchAll(/(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)/g)) {
      const [whole, frac = ''] = m[1]!.split('.');
      const unit = AOST_UNITS_MICROS[m[2]!]!;
      micros += BigInt(whole!) * unit + (BigInt((frac + '000000000').slice(0, 9)) * unit) / 1_000_000_000n;
    }
    if (micros <= 0n)
      throw new InputError(name, `"${clip(value)}" is zero: the backup must read the past. ${advice}`);
    if (micros > 7n * 86_400_000_000n) {
      throw new InputError(
        name,
        `"${clip(value)}" is more than a week back, past any garbage-collection window. ${advice}`,
      );
    }
    return { kind: 'interval', text: value, micros };
  }
  // The timestamp grammar is the cluster's own (CLUSTER_TIME) on the trimmed input.
  const m = CLUSTER_TIME.exec(value);
  if (m) {
    const date = m[1]!;
    const parsed = parseClusterTime(value);
    const dayExists = new Date(Date.parse(`${date}T00:00:00Z`)).getUTCDate() === Number(date.slice(8, 10));
    if (!parsed || !dayExists)
      throw new InputError(name, `"${clip(value)}" is not a valid date and time. ${advice}`);
    if (parsed.micros > BigInt(Date.now()) * 1000n) {
      throw new InputError(name, `${value} is in the future; a backup can only capture the past. ${advice}`);
    }
    return { kind: 'timestamp', text: value, iso: microsToIso(parsed.micros) };
  }
  if (/^\+?\d/.test(value) && parseDuration(value.replace(/^\+/, '')) !== undefined) {
    throw new InputError(
      name,
      `"${clip(value)}" is a positive interval: the time must lie in the past. ${advice}`,
    );
  }
  throw new InputError(name, `"${clip(value)}" is neither a negative interval nor a timestamp. ${advice}`);
}
