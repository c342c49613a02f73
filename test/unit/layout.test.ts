import { describe, expect, it } from 'vitest';
import {
  endMillisOfFolder,
  folderKey,
  fullSubdirFor,
  fullSubdirTime,
  incrementalFolderFor,
  incrementalTime,
  indexFolderName,
  joinUri,
  layerPrefix,
  normalizeFullSubdir,
  trimSlashes,
} from '../../src/layout.js';

describe('full backup folders', () => {
  it('reads the end time from a folder name, with or without the leading slash', () => {
    expect(fullSubdirTime('/2026/11/24-114045.12')?.toISOString()).toBe('2026-11-24T11:40:45.120Z');
    expect(fullSubdirTime('2026/01/02-030405.06')?.toISOString()).toBe('2026-01-02T03:04:05.060Z');
    expect(endMillisOfFolder('/2026/11/24-114045.12')).toBe(Date.parse('2026-11-24T11:40:45.120Z'));
  });

  it('reads no time from other names', () => {
    for (const name of ['/LATEST', '/2026/11/24-114045', '/2026/11/24-114045.12/', '2026-11-24', ''])
      expect(fullSubdirTime(name)).toBeUndefined();
    expect(endMillisOfFolder('/metadata/latest')).toBeUndefined();
  });

  it('names the folder of an end time, and reads the same time back (to the hundredth)', () => {
    const name = fullSubdirFor('2026-11-24 11:40:45.123456+00:00');
    expect(name).toBe('/2026/11/24-114045.12');
    expect(fullSubdirTime(name)?.toISOString()).toBe('2026-11-24T11:40:45.120Z');
  });
});

describe('incremental folders', () => {
  it('names the day and time of an end time, fraction truncated to 2 digits', () => {
    expect(incrementalFolderFor('2026-11-24 12:00:07.989999+00:00')).toEqual({
      day: '20261124',
      time: '120007.98',
    });
  });

  it('reads the end time back from the name, with or without the start-time suffix of 25.2+', () => {
    const { day, time } = incrementalFolderFor('2026-11-24 12:00:07.989999+00:00');
    expect(incrementalTime(`${day}/${time}`)?.toISOString()).toBe('2026-11-24T12:00:07.980Z');
    expect(incrementalTime('20261124/120007.98-20261124-114045.12')?.toISOString()).toBe(
      '2026-11-24T12:00:07.980Z',
    );
    expect(incrementalTime('2026/11/24-114045.12')).toBeUndefined();
  });
});

describe('paths', () => {
  it('trims slashes from both ends, and keeps one leading slash in two ways', () => {
    expect(trimSlashes('//2026/11/24-114045.12//')).toBe('2026/11/24-114045.12');
    expect(folderKey('2026/11/24-114045.12/')).toBe('/2026/11/24-114045.12');
    // normalizeFullSubdir keeps what follows the name (it names the folder as given), trims spaces.
    expect(normalizeFullSubdir(' //2026/11/24-114045.12/ ')).toBe('/2026/11/24-114045.12/');
  });

  it('joins a collection and a folder with one slash', () => {
    expect(joinUri('s3://b/path/', '/2026/11/24-114045.12')).toBe('s3://b/path/2026/11/24-114045.12');
    expect(joinUri('s3://b/path', '2026/11/24-114045.12')).toBe('s3://b/path/2026/11/24-114045.12');
  });

  it('places a layer and a chain index entry under the prefix', () => {
    expect(layerPrefix('p/', { fullSubdir: '/2026/11/24-114045.12' })).toBe('p/2026/11/24-114045.12/');
    expect(
      layerPrefix('p/', { fullSubdir: '/2026/11/24-114045.12', incrementalSubdir: '20261124/120000.00' }),
    ).toBe('p/incrementals/2026/11/24-114045.12/20261124/120000.00/');
    expect(indexFolderName('/2026/11/24-114045.12')).toBe('2026-11-24-114045.12');
  });
});
