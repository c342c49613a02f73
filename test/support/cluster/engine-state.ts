/**
 * The test cluster engine's state and its jobs' state machine; the types the statement modules share.
 */
import type { Profile } from './profiles.js';
import { versionString } from './profiles.js';
import type { QueryResult, SessionInfo } from './protocol-types.js';
import { nowMicros } from './sqltext.js';
import { Catalog } from './catalog.js';
import type { EngineInternals } from './internals.js';
import { Statements } from './statements.js';

export interface TestUser {
  name: string;
  password?: string;
  admin?: boolean;
  systemPrivileges?: string[];
  roleOptions?: string[];
}

export interface User {
  name: string;
  password?: string;
  admin: boolean;
  system: Map<string, boolean>; // privilege → grantable
  roleOptions: Set<string>;
  databases: Map<string, Set<string>>;
}

export interface Job {
  id: string;
  type: 'BACKUP' | 'RESTORE';
  status: string;
  description: string;
  statement: string;
  user: string;
  created: bigint;
  started?: bigint;
  finished?: bigint;
  modified: bigint;
  fraction: number;
  error: string;
  /** The destination as submitted (raw, with credentials). */
  uri: string;
  done: Promise<void>;
  control: { paused: boolean; cancelled: boolean; resume?: () => void };
}

export interface JobSnapshot {
  id: string;
  type: Job['type'];
  status: string;
  description: string;
  user: string;
  created: Date;
  finished?: Date;
  fractionCompleted: number;
  error: string;
  uri: string;
}

export interface StatementLogEntry {
  sessionId: number;
  user: string;
  applicationName: string;
  sql: string;
  params: (string | null)[];
  at: number;
  /** Job-table reads this statement made (each WHEN COMPLETE re-check counts), and job rows they scanned. */
  jobReads: number;
  jobRowsScanned: number;
}

export interface EngineOptions {
  profile: Profile;
  version?: string;
  users: TestUser[];
  databases: string[];
  license: boolean;
  jobDurationMs: number;
  whenCompleteRecheckMs: number;
  sessionLingerMs: number;
}

export interface Session {
  info: SessionInfo;
  vars: Map<string, string>;
  inTxn: boolean;
  started: bigint;
  current?: StatementLogEntry;
  closedAt?: number;
  /** Parameter type OIDs the client declared in Parse for the running statement (0 = undeclared). */
  paramTypes?: readonly number[];
}

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'revert-failed']);

/** Thrown out of a job that was cancelled or whose cluster closed, ending it silently. */
export class Cancelled extends Error {}

/**
 * The engine's state, shared by the statement modules (functions taking it as `e`): users, databases,
 * jobs, sessions and the knobs tests turn, and the job's own state machine (created, paused,
 * resumed, cancel-requested, finished). The test controls (controls.ts) and the statement dispatcher
 * (engine.ts) extend it.
 */
export class EngineState {
  readonly profile: Profile;
  readonly version: string;
  readonly users = new Map<string, User>();
  readonly databases = new Set<string>();
  readonly externalConnections = new Map<string, string>();
  /** Tables, owners and database grants (catalog.ts); `databases` stays the set of names. */
  readonly catalog: Catalog;
  /** RESTORE, DROP DATABASE, CHECK EXTERNAL CONNECTION, privilege views … (statements.ts). */
  readonly more: Statements;
  /** External connection name → users holding USAGE on it. */
  readonly connectionUsage = new Map<string, Set<string>>();
  readonly jobs: Job[] = [];
  readonly statementLog: StatementLogEntry[] = [];
  readonly counters = { statements: 0, jobTableReads: 0, jobRowsScanned: 0 };
  readonly sessions = new Map<number, Session>();
  // Knobs and faults the test controls (controls.ts) set, read by the statement modules.
  license: boolean;
  jobDurationMs: number;
  jobDurationJitterMs = 0;
  progressMinIntervalMs = 15_000;
  backupReadMsPerFile = 2;
  readonly recheckMs: number;
  sessionLingerMs: number;
  nextJobId = 1012345678901234567n + BigInt(Math.floor(Math.random() * 1e6)) * 1000n;
  loseNextAnswer: { lingerMs: number } | undefined;
  dropNextBackupBeforeJob: { lingerMs: number } | undefined;
  leakUri = false;
  closed = false;
  ignoredStartupParams = new Set<string>();

  constructor(opts: EngineOptions, internals: (e: EngineState) => EngineInternals) {
    this.profile = opts.profile;
    this.version = opts.version ?? versionString(opts.profile);
    this.license = opts.license;
    this.jobDurationMs = opts.jobDurationMs;
    this.recheckMs = opts.whenCompleteRecheckMs;
    this.sessionLingerMs = opts.sessionLingerMs;
    for (const d of opts.databases) this.databases.add(d);
    for (const u of opts.users) this.addUser(u);
    this.catalog = new Catalog(this.databases);
    this.more = new Statements(internals(this));
  }

  /** A test control (with controls.ts), here because the constructor adds the configured users. */
  addUser(u: TestUser): void {
    this.users.set(u.name, {
      name: u.name,
      ...(u.password !== undefined ? { password: u.password } : {}),
      admin: u.admin ?? false,
      system: new Map((u.systemPrivileges ?? []).map((p) => [p.toUpperCase(), false])),
      roleOptions: new Set((u.roleOptions ?? []).map((o) => o.toUpperCase())),
      databases: new Map(),
    });
  }

  // ---- the job's state machine, for statements and test controls alike ----------------------------

  job(id: string): Job {
    const job = this.jobs.find((j) => j.id === id);
    if (!job) throw new Error(`no job ${id}`);
    return job;
  }

  statementDeadline(s: Session, arrived: number): number {
    const ms = Number(s.vars.get('statement_timeout') ?? '0');
    return ms > 0 ? arrived + ms : Number.POSITIVE_INFINITY;
  }

  createJob(user: string, description: string, statement: string, uri: string): Job {
    this.nextJobId += BigInt(1 + Math.floor(Math.random() * 1000));
    const now = nowMicros();
    const job: Job = {
      id: this.nextJobId.toString(),
      type: 'BACKUP',
      status: 'running',
      description,
      statement,
      user,
      created: now,
      modified: now,
      fraction: 0,
      error: '',
      uri,
      done: Promise.resolve(),
      control: { paused: false, cancelled: false },
    };
    this.jobs.push(job);
    return job;
  }

  setStatus(job: Job, status: string): void {
    job.status = status;
    job.modified = nowMicros();
  }

  finish(job: Job, status: string, error: string): void {
    if (TERMINAL.has(job.status)) return;
    job.status = status;
    job.error = error;
    job.finished = nowMicros();
    job.modified = job.finished;
  }

  requestCancel(job: Job): void {
    if (TERMINAL.has(job.status) || job.status === 'cancel-requested' || job.status === 'reverting') return;
    job.control.cancelled = true;
    job.control.resume?.();
    this.setStatus(job, 'cancel-requested');
    setTimeout(() => {
      if (job.status === 'cancel-requested') this.setStatus(job, 'reverting');
      setTimeout(() => this.finish(job, 'canceled', 'job canceled by user'), 100).unref();
    }, 100).unref();
  }

  async gate(job: Job): Promise<void> {
    for (let i = 0; i < 1_000_000 && job.control.paused && !job.control.cancelled; i++) {
      await new Promise<void>((resolve) => {
        job.control.resume = resolve;
        setTimeout(resolve, 200);
      });
    }
    if (job.control.cancelled || this.closed) throw new Cancelled();
  }

  pauseJob(id: string): void {
    const job = this.job(id);
    if (TERMINAL.has(job.status)) return;
    job.control.paused = true;
    this.setStatus(job, 'pause-requested');
    setTimeout(() => job.control.paused && !TERMINAL.has(job.status) && this.setStatus(job, 'paused'), 50);
  }

  resumeJob(id: string): void {
    const job = this.job(id);
    if (job.status !== 'paused' && job.status !== 'pause-requested') return;
    job.control.paused = false;
    this.setStatus(job, 'running');
    job.control.resume?.();
  }
}

export function single(name: string, typeOid: number, value: string): QueryResult {
  return { fields: [{ name, typeOid }], rows: [[value]], tag: 'SELECT 1' };
}

export function tagOnly(tag: string): QueryResult {
  return { fields: null, rows: [], tag };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
