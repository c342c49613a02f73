/**
 * CANCEL / PAUSE / RESUME JOB: who may control a job, per version, and which states each verb accepts.
 */
import { controlJobAsSystemPrivilege } from './profiles.js';
import type { QueryResult } from './protocol-types.js';
import { SqlError } from './protocol-types.js';
import type { EngineState, Job, Session } from './engine-state.js';
import { tagOnly } from './engine-state.js';
import { isAdmin } from './privileges.js';

export function controlJob(e: EngineState, s: Session, verb: string, idText: string): QueryResult {
  const user = s.info.user;
  const id = idText.trim();
  const job = e.jobs.find((j) => j.id === id);
  authorizeControl(e, user, job, id);
  if (!job) throw new SqlError('XXUUU', `job with ID ${id} does not exist`);
  const word = e.profile.stateWord ? 'state' : 'status';
  if (verb === 'CANCEL') {
    // pkg/jobs/update.go CancelRequested: a no-op for cancel-requested and canceled; only pending, running
    // and paused jobs may be cancel-requested (pause-requested and reverting are refused with this text).
    if (job.status === 'cancel-requested' || job.status === 'canceled') return tagOnly('CANCEL JOBS 1');
    if (!['pending', 'running', 'paused'].includes(job.status)) {
      throw new SqlError('XXUUU', `job with ${word} ${job.status} cannot be requested to be canceled`);
    }
    e.requestCancel(job);
    return tagOnly('CANCEL JOBS 1');
  }
  if (verb === 'PAUSE') {
    if (job.status === 'paused' || job.status === 'pause-requested') return tagOnly('PAUSE JOBS 1');
    if (!['pending', 'running', 'reverting'].includes(job.status)) {
      throw new SqlError('XXUUU', `job with ${word} ${job.status} cannot be requested to be paused`);
    }
    e.pauseJob(job.id);
    return tagOnly('PAUSE JOBS 1');
  }
  if (job.status === 'running' || job.status === 'reverting') return tagOnly('RESUME JOBS 1');
  if (job.status !== 'paused')
    throw new SqlError('XXUUU', `job with ${word} ${job.status} cannot be resumed`);
  e.resumeJob(job.id);
  return tagOnly('RESUME JOBS 1');
}

/**
 * Who may control a job, per version: pkg/sql/control_jobs.go (22.2: the CONTROLJOB role option),
 * pkg/jobs/jobsauth/authorization.go (23.1 on; owners control their own jobs from 25.1).
 */
function authorizeControl(e: EngineState, user: string, job: Job | undefined, id: string): void {
  const u = e.users.get(user)!;
  if (u.admin) return;
  const roleOption = u.roleOptions.has('CONTROLJOB');
  const systemPriv = controlJobAsSystemPrivilege(e.profile) && u.system.has('CONTROLJOB');
  if (e.profile.name === '22.2') {
    if (!roleOption) throw new SqlError('42501', `user ${user} does not have CONTROLJOB privilege`);
    if (job && isAdmin(e, job.user))
      throw new SqlError('42501', 'only admins can control jobs owned by other admins');
    return;
  }
  if (job && e.profile.ownersControlJobs && job.user === user) return;
  if (job && isAdmin(e, job.user))
    throw new SqlError('42501', 'only admins can control jobs owned by other admins');
  if (roleOption || systemPriv) return;
  throw new SqlError('42501', `user ${user} does not have privileges for job ${id}`);
}
