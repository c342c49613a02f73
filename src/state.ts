/**
 * What the main step saves for the post step (the runner's GITHUB_STATE), and
 * how the post step reads it back: the job this run created or attached to,
 * who owns it, how to find a job whose id never arrived, and the restore
 * check's scratch databases still to drop.
 */
import type { ActionIO } from './runtime.js';

/**
 * The run's relation to its backup job, which decides whether anyone may cancel it:
 * - `owned`: this run created it (or sent the BACKUP that creates it);
 * - `attached`: another run's job this run follows (if-running: attach): never cancelled;
 * - `cancel-sent`: the main step sent CANCEL JOB; the post step sends it again, harmlessly;
 * - `cancel-pending`: the main step tried to cancel and could not in time: the post step
 *   tries again, whatever the main step's ending;
 * - `lookup-pending`: the main step sent BACKUP, its answer never came and its job could not
 *   be looked up in time: the post step looks for it by its capture time and cancels it.
 */
export type Ownership = 'owned' | 'attached' | 'cancel-sent' | 'cancel-pending' | 'lookup-pending';

/** The saved form of each ownership: the values runs have always saved (tests read them). */
const SAVED_OWNERSHIP: Record<Ownership, string> = {
  owned: 'true',
  attached: 'false',
  'cancel-sent': 'cancelled',
  'cancel-pending': 'cancel-pending',
  'lookup-pending': 'uncertain',
};

/** The state's names in GITHUB_STATE. */
const KEYS = {
  jobId: 'job-id',
  ownership: 'job-owned',
  done: 'main-done',
  capture: 'submit-capture',
  sessions: 'submit-sessions',
  restoreChecks: 'restore-check',
  /** Set by the main step as it starts: the runner runs the same bundle again as the post step. */
  isPost: 'isPost',
} as const;

/** What each key holds. */
export interface SavedState {
  /** The job this run created or attached to; '' once it gave it up. */
  jobId: string;
  ownership: Ownership;
  /** The main step reached its end (the post step then has nothing to do, unless a cancel is pending). */
  done: true;
  /** The AS OF SYSTEM TIME literal of the BACKUP, saved before it is sent: the job's unique mark; '' once given up. */
  capture: string;
  /** The application_name of each session BACKUP was sent on, saved before sending. */
  sessions: readonly string[];
  /** The restore check's jobs and scratch databases not yet cleaned up, as JSON (restore-cleanup.ts reads it). */
  restoreChecks: string;
}

export function saveState<K extends keyof SavedState>(
  io: Pick<ActionIO, 'saveState'>,
  key: K,
  value: SavedState[K],
): void {
  io.saveState(KEYS[key], encode(key, value));
}

function encode<K extends keyof SavedState>(key: K, value: SavedState[K]): string {
  switch (key) {
    case 'ownership':
      return SAVED_OWNERSHIP[value as Ownership];
    case 'done':
      return 'true';
    case 'sessions':
      return (value as readonly string[]).join('\n');
    default:
      return value as string;
  }
}

/**
 * The run gave up its job (cancelled after a concurrent submit) or the BACKUP it was sending:
 * nothing is left for the post step. Saved as not owned, like an attached job, so that nothing
 * could ever be cancelled on the strength of it.
 */
export function saveNoJob(io: Pick<ActionIO, 'saveState'>): void {
  saveState(io, 'jobId', '');
  saveState(io, 'ownership', 'attached');
  saveState(io, 'capture', '');
}

/** The main step's state as the post step finds it ('' and undefined where nothing was saved). */
export interface MainState {
  done: boolean;
  jobId: string;
  /** Undefined when nothing (or something unknown) was saved: the job is then not this run's. */
  ownership: Ownership | undefined;
  capture: string;
  sessions: string[];
  restoreChecks: string;
}

export function readMainState(io: Pick<ActionIO, 'getState'>): MainState {
  const saved = io.getState(KEYS.ownership);
  const ownership = (Object.keys(SAVED_OWNERSHIP) as Ownership[]).find((o) => SAVED_OWNERSHIP[o] === saved);
  return {
    done: io.getState(KEYS.done) === 'true',
    jobId: io.getState(KEYS.jobId),
    ownership,
    capture: io.getState(KEYS.capture),
    sessions: io
      .getState(KEYS.sessions)
      .split('\n')
      .filter((n) => n !== ''),
    restoreChecks: io.getState(KEYS.restoreChecks),
  };
}

/** Whether this process is the post step: the main step marks the state before anything else. */
export function isPostStep(io: Pick<ActionIO, 'getState'>): boolean {
  return io.getState(KEYS.isPost) === 'true';
}

/** The main step, first thing: the next run of the bundle in this job is the post step. */
export function markPostNext(io: Pick<ActionIO, 'saveState'>): void {
  io.saveState(KEYS.isPost, 'true');
}
