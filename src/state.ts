/**
 * What the main step saves for the post step (the runner's GITHUB_STATE):
 * the job it created or attached to, whether it owns it, and how to find a
 * job whose id never arrived.
 */
export const STATE = {
  jobId: 'job-id',
  owned: 'job-owned',
  done: 'main-done',
  /** The AS OF SYSTEM TIME literal of the BACKUP, saved before it is sent: the job's unique mark. */
  capture: 'submit-capture',
  /** The application_name of each session BACKUP was sent on, one per line, saved before sending. */
  sessions: 'submit-sessions',
} as const;
