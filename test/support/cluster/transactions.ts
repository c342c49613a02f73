/**
 * Jobs created inside an explicit transaction. BACKUP and RESTORE … WITH detached write their job
 * record in the user's transaction (`CreateAdoptableJobWithTxn`, pkg/backup/backup_planning.go and
 * restore_planning.go): the job exists only if the transaction commits, and it is adopted (starts
 * running) after COMMIT; a ROLLBACK leaves no job and nothing in the bucket. So a dry run may send `BEGIN; BACKUP … WITH
 * detached; ROLLBACK` as a statement-time check of privileges, targets and licence.
 *
 * Until COMMIT the job is kept out of the jobs table, so no session sees it (a real cluster would
 * show it to its own transaction only, which no caller here relies on).
 */
import type { Job, Session } from './engine-state.js';
import type { EngineInternals } from './internals.js';

interface PendingJob {
  job: Job;
  start: () => Promise<void>;
  settle: () => void;
}

export class Transactions {
  private readonly pending = new Map<number, PendingJob[]>();

  constructor(private readonly e: EngineInternals) {}

  /** Start the job now, or at COMMIT when the session is in a transaction. */
  startJob(s: Session, job: Job, start: () => Promise<void>): Promise<void> {
    if (!s.inTxn) return start();
    const i = this.e.jobs.indexOf(job);
    if (i >= 0) this.e.jobs.splice(i, 1);
    return new Promise<void>((settle) => {
      const list = this.pending.get(s.info.id) ?? [];
      list.push({ job, start, settle });
      this.pending.set(s.info.id, list);
    });
  }

  /** Jobs written by this session's open transaction (none once it ends). */
  uncommitted(s: Session): readonly Job[] {
    return (this.pending.get(s.info.id) ?? []).map((p) => p.job);
  }

  /** Called on COMMIT / END: the job records become visible and the jobs start. */
  commit(s: Session): void {
    const list = this.pending.get(s.info.id) ?? [];
    this.pending.delete(s.info.id);
    for (const p of list) {
      this.e.jobs.push(p.job);
      void p.start().then(p.settle, p.settle);
    }
  }

  /** Called on ROLLBACK, and when the connection closes with the transaction open: no job. */
  rollback(s: Session): void {
    const list = this.pending.get(s.info.id) ?? [];
    this.pending.delete(s.info.id);
    for (const p of list) {
      p.job.control.cancelled = true;
      p.settle();
    }
  }
}
