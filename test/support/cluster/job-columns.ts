/**
 * The columns of each jobs source (crdb_internal.jobs, SHOW JOB, SHOW JOBS) per version, their types,
 * and a job's value in each.
 */
import type { Profile } from './profiles.js';
import { Oid } from './protocol-types.js';
import { formatTs } from './sqltext.js';
import type { EngineState, Job } from './engine-state.js';
import type { Cell } from './predicates.js';

export function jobColumns(e: EngineState, source: JobSource): { name: string; oid: number }[] {
  const ts = e.profile.tzTimes ? Oid.timestamptz : Oid.timestamp;
  const p = e.profile;
  const base = (names: string[]) =>
    names.map((name) => ({ name, oid: COLUMN_OID[name] ?? (TIME_COLUMNS.has(name) ? ts : Oid.text) }));
  if (source === 'internal') {
    const cols = [
      'job_id',
      'job_type',
      'description',
      'statement',
      'user_name',
      'descriptor_ids',
      'status',
      'running_status',
      'created',
      'started',
      'finished',
      'modified',
      'fraction_completed',
      'high_water_timestamp',
      'error',
      'coordinator_id',
      'trace_id',
    ];
    if (!p.newShowJobColumns) cols.push('last_run', 'next_run', 'num_runs');
    // pkg/sql/crdb_internal.go: both the TIMESTAMP-era and the indexed TIMESTAMPTZ-era definitions of
    // crdb_internal.jobs end with execution_errors STRING[], execution_events JSONB (22.2 to 25.x).
    cols.push('execution_errors', 'execution_events');
    return base(cols);
  }
  if (!p.newShowJobColumns) {
    return base([
      'job_id',
      'job_type',
      'description',
      'statement',
      'user_name',
      'status',
      'running_status',
      'created',
      'started',
      'finished',
      'modified',
      'fraction_completed',
      'error',
      'coordinator_id',
      'trace_id',
      'last_run',
      'next_run',
      'num_runs',
      'execution_errors',
    ]);
  }
  if (source === 'show-jobs') {
    return base([
      'job_id',
      'job_type',
      'description',
      'user_name',
      'status',
      'running_status',
      'created',
      'started',
      'finished',
      'modified',
      'fraction_completed',
      'error',
      'coordinator_id',
    ]);
  }
  return base([
    'job_id',
    'job_type',
    'description',
    'statement',
    'user_name',
    'status',
    'running_status',
    'created',
    'started',
    'finished',
    'modified',
    'fraction_completed',
    'error',
    'coordinator_id',
    'trace_id',
    'execution_errors',
  ]);
}

export type JobSource = 'internal' | 'show-job' | 'show-jobs';

const TIME_COLUMNS = new Set(['created', 'started', 'finished', 'modified', 'last_run', 'next_run']);

const COLUMN_OID: Record<string, number> = {
  job_id: Oid.int8,
  fraction_completed: Oid.float8,
  coordinator_id: Oid.int8,
  trace_id: Oid.int8,
  num_runs: Oid.int8,
  execution_errors: Oid.textArray,
  execution_events: Oid.jsonb,
  descriptor_ids: Oid.int8Array,
  high_water_timestamp: Oid.numeric,
};

/** A job column as a comparable value: ids and times as bigint (micros for times). */
export function jobValue(j: Job, column: string, _profile: Profile): Cell {
  switch (column) {
    case 'job_id':
      return BigInt(j.id);
    case 'job_type':
      return j.type;
    case 'description':
      return j.description;
    case 'statement':
      return j.statement;
    case 'user_name':
      return j.user;
    case 'status':
      return j.status;
    case 'created':
      return j.created;
    case 'started':
      return j.started ?? null;
    case 'finished':
      return j.finished ?? null;
    case 'modified':
      return j.modified;
    case 'fraction_completed':
      return j.fraction;
    case 'error':
      return j.error;
    default:
      return null;
  }
}

export function formatJobValue(
  j: Job,
  column: string,
  profile: Profile,
  truncate: boolean,
  abbreviate: boolean,
): string | null {
  const time = (m: bigint | undefined) => (m === undefined ? null : formatTs(m, profile.tzTimes, truncate));
  switch (column) {
    case 'job_id':
      return j.id;
    case 'job_type':
      return j.type;
    case 'description':
      // substr(d, 0, 60) is 1-indexed from 0, so it keeps 59 characters.
      return abbreviate && [...j.description].length > 70
        ? `${[...j.description].slice(0, 59).join('')} … ${[...j.description].slice(-7).join('')}`
        : j.description;
    case 'statement':
      return j.statement;
    case 'user_name':
      return j.user;
    case 'descriptor_ids':
      return '{}';
    case 'status':
      return j.status;
    case 'running_status':
      return null;
    case 'created':
      return time(j.created);
    case 'started':
      return time(j.started);
    case 'finished':
      return time(j.finished);
    case 'modified':
      return time(j.modified);
    case 'fraction_completed':
      return String(j.fraction);
    case 'high_water_timestamp':
      return null;
    case 'error':
      return j.error;
    case 'coordinator_id':
      return j.started !== undefined ? '1' : null;
    case 'trace_id':
      return '0';
    case 'last_run':
      return time(j.started);
    case 'next_run':
      return null;
    case 'num_runs':
      return j.started !== undefined ? '1' : '0';
    case 'execution_errors':
      return '{}';
    case 'execution_events':
      return '[]';
    default:
      return null;
  }
}
