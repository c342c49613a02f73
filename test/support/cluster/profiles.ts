/** What differs between CockroachDB versions, as far as the backup surface goes (each rule cites its CockroachDB source or docs page where it is used). */
export type ProfileName = '22.2' | '23.1' | '23.2' | '24.1' | '24.3' | '25.2' | '25.4';
/**
 * The profiles every per-version self-test runs. 25.4 is not among them: it differs from 25.2 here
 * only by the backup index it writes, and exists for the tests of pruning that index.
 */
export const PROFILE_NAMES: readonly ProfileName[] = ['22.2', '23.1', '23.2', '24.1', '24.3', '25.2'];

export interface Profile {
  name: ProfileName;
  major: number;
  minor: number;
  patch: number;
  /** TIMESTAMPTZ job times from 23.2, TIMESTAMP before. */
  tzTimes: boolean;
  /** `WITH OPTIONS (…)` in descriptions from 23.2, `WITH …` before. */
  optionsInParens: boolean;
  /** 24.1+: SHOW JOB/S truncate times to seconds and have the new column set. */
  newShowJobColumns: boolean;
  /** crdb_internal.jobs has virtual indexes from 23.2; before, every read scans every job. */
  indexedJobs: boolean;
  /** `state` instead of `status` in job-control errors from 25.2. */
  stateWord: boolean;
  /** 25.1+: owners may control their own jobs. */
  ownersControlJobs: boolean;
  /**
   * 25.4+ writes the backup index under metadata/index/ (pkg/backup/backupinfo/backup_index.go
   * shouldWriteIndex: "An index should only be written on a v25.4+ cluster").
   */
  writesIndex: boolean;
  /** 25.2+: incremental folders carry `-<start>`. */
  incrementalStartSuffix: boolean;
  /** Enterprise features refused without a licence (XXC02): see licenceErrors. */
  licenceChecks: boolean;
}

const DEFAULT_PATCH: Record<ProfileName, number> = {
  '22.2': 19,
  '23.1': 11,
  '23.2': 6,
  '24.1': 5,
  '24.3': 5,
  '25.2': 1,
  '25.4': 0,
};

export function profileFor(name: ProfileName, patchOverride?: number): Profile {
  const [major, minor] = name.split('.').map(Number) as [number, number];
  const at = (M: number, m: number) => major > M || (major === M && minor >= m);
  return {
    name,
    major,
    minor,
    patch: patchOverride ?? DEFAULT_PATCH[name],
    tzTimes: at(23, 2),
    optionsInParens: at(23, 2),
    newShowJobColumns: at(24, 1),
    indexedJobs: at(23, 2),
    stateWord: at(25, 2),
    ownersControlJobs: at(25, 1),
    writesIndex: at(25, 4),
    incrementalStartSuffix: at(25, 2),
    licenceChecks: licenceErrors(major, minor, patchOverride ?? DEFAULT_PATCH[name]),
  };
}

/**
 * Enterprise features refused with XXC02 without a licence: the licence model that drops those
 * errors (Enterprise Free and Trial licences, throttling instead of refusal) shipped in 23.1.29,
 * 23.2.15, 24.1.7, 24.2.5 and 24.3.0 (docs src/current/v25.2/licensing-faqs.md: "All versions of
 * CockroachDB starting from the release date of 24.3.0 onward, including patch fixes for versions
 * 23.1-24.2 from that date onward"; those are the first such patches).
 */
function licenceErrors(major: number, minor: number, patch: number): boolean {
  const from: Record<string, number> = { '23.1': 29, '23.2': 15, '24.1': 7, '24.2': 5 };
  if (major > 24 || (major === 24 && minor >= 3)) return false;
  const first = from[`${major}.${minor}`];
  return first === undefined ? true : patch < first;
}

export function versionString(p: Profile): string {
  const built: Record<ProfileName, string> = {
    '22.2': 'built 2024/02/14 17:13:54, go1.19.13',
    '23.1': 'built 2023/10/02 16:03:27, go1.19.13',
    '23.2': 'built 2024/06/12 11:02:12, go1.21.9',
    '24.1': 'built 2024/09/24 08:12:50, go1.22.5',
    '24.3': 'built 2025/02/10 14:20:33, go1.22.8',
    '25.2': 'built 2025/06/02 10:44:01, go1.23.7',
    '25.4': 'built 2025/11/03 09:30:12, go1.23.12',
  };
  return `CockroachDB CCL v${p.major}.${p.minor}.${p.patch} (x86_64-pc-linux-gnu, ${built[p.name]})`;
}

/** AWS_USE_PATH_STYLE: known from 24.1.10, 24.2.8, 24.3.3 and 25.1. */
export function knowsPathStyleParam(p: Profile): boolean {
  const { major, minor, patch } = p;
  if (major > 25 || (major === 25 && minor >= 1)) return true;
  if (major === 24 && minor === 1) return patch >= 10;
  if (major === 24 && minor === 2) return patch >= 8;
  if (major === 24 && minor === 3) return patch >= 3;
  return false;
}

/** From 24.3 the SDK defaults to virtual-hosted style even with a custom endpoint. */
export function virtualHostedByDefault(p: Profile): boolean {
  return p.major > 24 || (p.major === 24 && p.minor >= 3);
}

/** CONTROLJOB as a system privilege from 23.1.12 / 23.2. */
export function controlJobAsSystemPrivilege(p: Profile): boolean {
  return p.major > 23 || (p.major === 23 && (p.minor >= 2 || (p.minor === 1 && p.patch >= 12)));
}
