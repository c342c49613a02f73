/**
 * Controls for tests: knobs and faults (licence, job duration, progress model, lost answers, failing,
 * pausing or cancelling a job from outside) and the job snapshots tests read.
 */
import type { JobSnapshot } from './engine-state.js';
import { EngineState, TERMINAL } from './engine-state.js';

/** What tests turn on the engine; addUser, pauseJob and resumeJob live with the state (engine-state.ts). */
export class EngineControls extends EngineState {
  addDatabase(name: string): void {
    this.databases.add(name);
  }
  setLicense(on: boolean): void {
    this.license = on;
  }
  /**
   * How long SHOW BACKUP(S) takes per file it reads: every layer's manifest, and with check_files
   * every file of every layer (show-backup.md: check_files "validates that all files belonging to a
   * backup are in the expected location in storage"; on a real cluster it sizes each one).
   */
  setBackupReadDelay(msPerFile: number): void {
    this.backupReadMsPerFile = msPerFile;
  }
  /**
   * `coarse` (the default): fraction_completed moves as on a real cluster, in steps of at least 5 %
   * at most every 15 s. `smooth`: every 5 % step at once, for tests that watch progress in short jobs.
   */
  setProgressModel(model: 'coarse' | 'smooth'): void {
    this.progressMinIntervalMs = model === 'coarse' ? 15_000 : 0;
  }
  /** Jobs run this long; with jitter, each job adds a random 0..jitterMs, so job ends do not line up with re-checks. */
  setJobDuration(ms: number, jitterMs = 0): void {
    this.jobDurationMs = ms;
    this.jobDurationJitterMs = jitterMs;
  }
  /**
   * Fault: startup parameters with these names are ignored, as behind a connection pooler that does
   * not forward them (PgBouncer without application_name tracking): the session keeps the default.
   */
  ignoreStartupParams(names: readonly string[]): void {
    this.ignoredStartupParams = new Set(names);
  }
  setSessionLinger(ms: number): void {
    this.sessionLingerMs = ms;
  }
  /**
   * While on, full backup jobs fail as CockroachDB's destination resolution does when the planned
   * directory already holds a manifest: `A full backup already exists in <uri>. … IN '<uri>'`, with
   * the raw URI and its credentials (backupdest.ResolveDest in pkg/backup/backupdest/backup_destination.go), the one job error that is not sanitized.
   */
  leakUriInErrors(on: boolean): void {
    this.leakUri = on;
  }
  /** The next BACKUP creates its job, then the connection drops before the answer; its session lingers. */
  loseNextBackupAnswer(opts: { lingerMs: number }): void {
    this.loseNextAnswer = opts;
  }
  /** The next BACKUP arrives, then the connection drops before any job is created; its session lingers. */
  loseNextBackupBeforeJob(opts: { lingerMs: number }): void {
    this.dropNextBackupBeforeJob = opts;
  }
  /**
   * The job fails and so does its revert (OnFailOrCancel): running → reverting,
   * then after `revertMs` the terminal revert-failed, with `message` as its error.
   */
  failJobDuringRevert(id: string, message: string, opts: { revertMs?: number } = {}): void {
    const job = this.job(id);
    if (TERMINAL.has(job.status)) return;
    job.control.cancelled = true;
    job.control.resume?.();
    this.setStatus(job, 'reverting');
    setTimeout(() => this.finish(job, 'revert-failed', message), opts.revertMs ?? 100).unref();
  }
  /**
   * PAUSE JOB whose pause takes a while: pause-requested for `requestedForMs`, then paused (unless
   * resumed). CockroachDB moves a job from pause-requested to paused only when its resumer notices
   * (pkg/jobs/registry.go, the adoption loop's processClaimedJobs / servePauseAndCancelRequests).
   */
  pauseJobSlowly(id: string, opts: { requestedForMs: number }): void {
    const job = this.job(id);
    if (TERMINAL.has(job.status)) return;
    job.control.paused = true;
    this.setStatus(job, 'pause-requested');
    setTimeout(() => {
      if (job.control.paused && job.status === 'pause-requested') this.setStatus(job, 'paused');
    }, opts.requestedForMs).unref();
  }
  failJob(id: string, message: string): void {
    const job = this.job(id);
    job.control.cancelled = true;
    this.finish(job, 'failed', message);
  }
  cancelJobAsOtherUser(id: string): void {
    this.requestCancel(this.job(id));
  }
  deleteJobRecord(id: string): void {
    const i = this.jobs.findIndex((j) => j.id === id);
    if (i >= 0) this.jobs.splice(i, 1);
  }
  snapshots(): JobSnapshot[] {
    const date = (m: bigint | undefined) => (m === undefined ? undefined : new Date(Number(m / 1000n)));
    return this.jobs.map((j) => ({
      id: j.id,
      type: j.type,
      status: j.status,
      description: j.description,
      user: j.user,
      created: date(j.created)!,
      ...(j.finished !== undefined ? { finished: date(j.finished)! } : {}),
      fractionCompleted: j.fraction,
      error: j.error,
      uri: j.uri,
    }));
  }
  close(): void {
    this.closed = true;
    for (const j of this.jobs) {
      j.control.cancelled = true;
      j.control.resume?.();
    }
  }
}
