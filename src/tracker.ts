/**
 * The job this run follows, as far as an abort (and the post step) must know
 * it: its id, whether this run owns it, the BACKUP sent whose answer has not
 * arrived, its last status, whether it ended, and the restore check under
 * way. Every change that the post step needs is saved at once.
 */
import type { CaptureTime } from './submit.js';
import type { JobRow } from './wait.js';
import type { ActionIO } from './runtime.js';
import type { Ownership } from './state.js';
import { saveNoJob, saveState } from './state.js';
import type { RestoreCheckOutcome } from './restore-check.js';

export class JobTracker {
  private id: string | undefined;
  /** As saved for the post step; undefined until BACKUP is sent or a job attached. */
  private ownershipValue: Ownership | undefined;
  private pending: { capture: CaptureTime; sessions: string[] } | undefined;
  private status: string | undefined;
  private endedValue = false;
  /** The restore check under way (verify: restore): an abort waits for its clean-up. */
  restoreRun: Promise<RestoreCheckOutcome> | undefined;

  private readonly io: Pick<ActionIO, 'saveState'>;

  constructor(save: (name: string, value: string) => void) {
    this.io = { saveState: save };
  }

  get jobId(): string | undefined {
    return this.id;
  }

  /** Created by this run's BACKUP (or found after its answer was lost): it may be cancelled. */
  get owned(): boolean {
    return this.id !== undefined && this.ownershipValue !== undefined && this.ownershipValue !== 'attached';
  }

  get ownership(): Ownership | undefined {
    return this.ownershipValue;
  }

  /** The BACKUP sent (or being sent) whose job id has not arrived: how to find its job. */
  get submission(): { capture: CaptureTime; sessions: string[] } | undefined {
    return this.pending;
  }

  /** The job's last status read; set once it reached a terminal one. */
  get lastStatus(): string | undefined {
    return this.status;
  }

  get ended(): boolean {
    return this.endedValue;
  }

  /**
   * Saved before BACKUP goes out on a session: should its answer never arrive
   * (abort, kill), the abort handling and the post step find the job by its
   * capture time once that session is gone.
   */
  sending(capture: CaptureTime, applicationName: string): void {
    this.pending ??= { capture, sessions: [] };
    this.pending.sessions.push(applicationName);
    saveState(this.io, 'capture', capture.literal);
    saveState(this.io, 'sessions', this.pending.sessions);
    this.own('owned');
  }

  /** BACKUP answered with its job id; saved at once, so that the post step can cancel the job if this step is killed. */
  created(jobId: string): void {
    this.id = jobId;
    this.pending = undefined;
    saveState(this.io, 'jobId', jobId);
    this.own('owned');
  }

  /** Another run's job, followed (if-running: attach): never cancelled by this step. */
  attached(jobId: string): void {
    this.id = jobId;
    saveState(this.io, 'jobId', jobId);
    this.own('attached');
  }

  /** The job of a BACKUP whose answer was lost, found by its capture time: this run's own. */
  found(job: JobRow): void {
    this.id = job.jobId;
    this.ownershipValue = 'owned';
    this.status = job.status;
    saveState(this.io, 'jobId', job.jobId);
  }

  /** This run's own job was cancelled in favour of one that started first. */
  givenUp(): void {
    this.id = undefined;
    this.pending = undefined;
    this.ownershipValue = 'attached';
    saveNoJob(this.io);
  }

  /** A job read while waiting: the status an abort reports. */
  read(job: JobRow): void {
    if (job.jobId === this.id) this.status = job.status;
  }

  /** The wait's last read of the job. */
  lastRead(job: JobRow): void {
    this.status = job.status;
  }

  end(): void {
    this.endedValue = true;
  }

  /** The job may exist, unknown: the post step looks for it again and cancels it. */
  uncertain(): void {
    this.own('lookup-pending');
  }

  cancelRequested(): void {
    this.own('cancel-sent');
  }

  /** The cancel did not go through in time: the post step tries again, whatever the main step's ending. */
  cancelPending(): void {
    this.own('cancel-pending');
  }

  private own(ownership: Ownership): void {
    this.ownershipValue = ownership;
    saveState(this.io, 'ownership', ownership);
  }
}
