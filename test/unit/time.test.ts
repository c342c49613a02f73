import { describe, expect, it } from 'vitest';
import {
  formatDurationMs,
  jobDurationSeconds,
  microsToIso,
  parseAsOfSystemTime,
  parseClusterTime,
  parseDuration,
} from '../../src/time.js';

describe('parseClusterTime', () => {
  it('reads TIMESTAMP as UTC and keeps microseconds', () => {
    const t = parseClusterTime('2026-11-24 11:40:45.123456');
    expect(t?.iso).toBe('2026-11-24T11:40:45.123456Z');
    expect(t?.micros).toBe(BigInt(Date.parse('2026-11-24T11:40:45Z')) * 1000n + 123456n);
  });
  it('applies TIMESTAMPTZ offsets', () => {
    expect(parseClusterTime('2026-11-24 13:40:45+02')?.iso).toBe('2026-11-24T11:40:45Z');
    expect(parseClusterTime('2026-11-24 11:40:45.5-01:30')?.iso).toBe('2026-11-24T13:10:45.500Z');
  });
  it('rejects garbage and empty values', () => {
    expect(parseClusterTime('yesterday')).toBeUndefined();
    expect(parseClusterTime(null)).toBeUndefined();
  });
});

describe('microsToIso', () => {
  const micros = BigInt(Date.parse('2026-11-24T11:40:45Z')) * 1000n + 123456n;
  it('keeps 6, 3 or no fraction digits as asked', () => {
    expect(microsToIso(micros)).toBe('2026-11-24T11:40:45.123456Z');
    expect(microsToIso(micros, 2)).toBe('2026-11-24T11:40:45.123Z');
    expect(microsToIso(micros, 0)).toBe('2026-11-24T11:40:45Z');
  });
});

describe('jobDurationSeconds', () => {
  it('needs both the creation and the finish', () => {
    const created = parseClusterTime('2026-11-24 11:40:45')!;
    expect(jobDurationSeconds({ created })).toBeUndefined();
    expect(jobDurationSeconds({ created, finished: parseClusterTime('2026-11-24 11:40:46.5')! })).toBe(
      '1.500',
    );
  });
});

describe('formatDurationMs', () => {
  it('says seconds, then minutes and seconds, then hours and minutes', () => {
    expect(formatDurationMs(-5)).toBe('0s');
    expect(formatDurationMs(59_400)).toBe('59s');
    expect(formatDurationMs(61_000)).toBe('1m01s');
    expect(formatDurationMs(2 * 3_600_000 + 5 * 60_000)).toBe('2h05m');
  });
});

describe('grammar', () => {
  it('parses durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('30d')).toBe(2_592_000_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('-5s')).toBeUndefined();
    expect(parseDuration('5 m')).toBeUndefined();
  });
  it('reads timestamps with the grammar of the cluster time, and rejects impossible or future ones', () => {
    expect(parseAsOfSystemTime('2026-01-02T03:04:05Z')).toMatchObject({ iso: '2026-01-02T03:04:05.000000Z' });
    expect(parseAsOfSystemTime('2026-01-02 03:04:05.123456789 -0130')).toMatchObject({
      iso: '2026-01-02T04:34:05.123456Z',
    });
    expect(() => parseAsOfSystemTime('2026-02-30 00:00:00')).toThrow(/is not a valid date and time/);
    expect(() => parseAsOfSystemTime('2026-01-02 25:00:00')).toThrow(/is not a valid date and time/);
    expect(() => parseAsOfSystemTime('2999-01-02 03:04:05')).toThrow(/is in the future/);
    expect(() => parseAsOfSystemTime('2026-01-02 03:04')).toThrow(
      /neither a negative interval nor a timestamp/,
    );
  });
  it("reads -1m30s as 90 seconds, not CockroachDB's 30", () => {
    expect(parseAsOfSystemTime('-1m30s')).toMatchObject({ kind: 'interval', micros: 90_000_000n });
    expect(parseAsOfSystemTime('-500ms')).toMatchObject({ micros: 500_000n });
    expect(parseAsOfSystemTime('2026-01-02 03:04:05.5+02:00')).toMatchObject({
      kind: 'timestamp',
      iso: '2026-01-02T01:04:05.500000Z',
    });
  });
});
