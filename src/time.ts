/**
 * Time as the cluster gives it and as the action writes it: cluster
 * timestamps (TIMESTAMP and TIMESTAMPTZ texts) to microseconds and ISO 8601,
 * and durations.
 */
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
