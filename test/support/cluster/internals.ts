/**
 * The part of the engine's state that the statement modules (restore.ts, catalog.ts,
 * external-check.ts, privilege-views.ts, transactions.ts) may use. The engine hands them this object
 * instead of its private fields, so each new statement lives in its own module.
 */
import type { Catalog } from './catalog.js';
import type { Job, Session, User } from './engine-state.js';
import type { JobStorage } from './jobs.js';
import type { Profile } from './profiles.js';
import type { QueryResult } from './protocol-types.js';

export interface EngineInternals {
  readonly profile: Profile;
  /** Names of the databases that exist (the engine's set). */
  readonly databases: Set<string>;
  readonly catalog: Catalog;
  readonly jobs: Job[];
  readonly users: Map<string, User>;
  readonly externalConnections: Map<string, string>;
  readonly connectionUsage: Map<string, Set<string>>;
  isAdmin(user: string): boolean;
  hasSystem(user: string, privilege: string): boolean;
  createJob(user: string, description: string, statement: string, uri: string): Job;
  finish(job: Job, status: string, error: string): void;
  /** Resolves while the job may run (pauses hold it); throws when it was cancelled. */
  gate(job: Job): Promise<void>;
  /** The blocking (not detached) form of a job statement: wait, then the job result row. */
  waitBlocking(s: Session, job: Job, arrived: number): Promise<QueryResult>;
  evalAsOf(token: string | undefined, params: readonly (string | null)[]): bigint;
  /** The collection behind a URI, after the statement-time privilege checks on it. */
  storage(s: Session, uri: string): JobStorage;
  showBackup(
    s: Session,
    subdirToken: string,
    uri: string,
    withText: string | undefined,
    params: readonly (string | null)[],
  ): Promise<QueryResult>;
  jobDurationMs(): number;
  license(): boolean;
  closed(): boolean;
}
