import { describe, expect, it } from 'vitest';
import { formatDurationMs, jobDurationSeconds, microsToIso, parseClusterTime } from '../../src/time.js';

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
