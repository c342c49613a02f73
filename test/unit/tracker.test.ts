import { describe, expect, it } from 'vitest';
import { captureTimeFromMicros } from '../../src/submit.js';
import type { JobRow } from '../../src/wait.js';
import { JobTracker } from '../../src/tracker.js';
import { isPostStep, markPostNext } from '../../src/state.js';
import { RecordingIO } from '../support/fakes.js';

function tracker() {
  const saved: [string, string][] = [];
  const t = new JobTracker((name, value) => void saved.push([name, value]));
  const state = (): Record<string, string> => Object.fromEntries(saved);
  return { t, saved, state };
}

const job = (jobId: string, status: string): JobRow => ({
  jobId,
  status,
  fractionCompleted: null,
  error: null,
  description: '',
});

describe('JobTracker: what an abort and the post step know of the job', () => {
  const capture = captureTimeFromMicros(1_764_000_000_000_000n);

  it('saves the capture and every session before BACKUP is sent, then the job id once it answers', () => {
    const { t, state } = tracker();
    t.sending(capture, 'app 1');
    t.sending(capture, 'app 2');
    expect(t.submission?.sessions).toEqual(['app 1', 'app 2']);
    expect(state()).toEqual({
      'submit-capture': capture.literal,
      'submit-sessions': 'app 1\napp 2',
      'job-owned': 'true',
    });
    t.created('42');
    expect([t.jobId, t.owned, t.submission]).toEqual(['42', true, undefined]);
    expect(state()).toMatchObject({ 'job-id': '42', 'job-owned': 'true' });
  });

  it('an attached job is not owned; a job given up is forgotten', () => {
    const { t, state } = tracker();
    t.attached('7');
    expect([t.jobId, t.owned]).toEqual(['7', false]);
    expect(state()).toEqual({ 'job-id': '7', 'job-owned': 'false' });
    t.created('8');
    t.givenUp();
    expect([t.jobId, t.owned]).toEqual([undefined, false]);
    expect(state()).toEqual({ 'job-id': '', 'job-owned': 'false', 'submit-capture': '' });
  });

  it('a job found after a lost answer is owned, with its status', () => {
    const { t, state } = tracker();
    t.sending(capture, 'app 1');
    t.found(job('9', 'running'));
    expect([t.jobId, t.owned, t.lastStatus]).toEqual(['9', true, 'running']);
    expect(state()['job-id']).toBe('9');
  });

  it('keeps the last status of its own job only, and whether it ended', () => {
    const { t } = tracker();
    t.created('1');
    t.read(job('2', 'paused'));
    expect(t.lastStatus).toBeUndefined();
    t.read(job('1', 'paused'));
    expect(t.lastStatus).toBe('paused');
    expect(t.ended).toBe(false);
    t.lastRead(job('1', 'succeeded'));
    t.end();
    expect([t.lastStatus, t.ended]).toEqual(['succeeded', true]);
  });

  it('the cancel results the post step acts on', () => {
    const { t, saved } = tracker();
    t.uncertain();
    t.cancelRequested();
    t.cancelPending();
    expect(saved).toEqual([
      ['job-owned', 'uncertain'],
      ['job-owned', 'cancelled'],
      ['job-owned', 'cancel-pending'],
    ]);
  });
});

describe('JobTracker: the ownership it holds is the one it saved', () => {
  const capture = captureTimeFromMicros(1_764_000_000_000_000n);

  it('an owned job stays cancellable after CANCEL JOB was sent or is pending; an attached one never is', () => {
    const { t } = tracker();
    expect([t.ownership, t.owned]).toEqual([undefined, false]);
    t.sending(capture, 'app 1');
    // Sent, no job id yet: nothing to cancel by id.
    expect([t.ownership, t.owned]).toEqual(['owned', false]);
    t.created('5');
    expect([t.ownership, t.owned]).toEqual(['owned', true]);
    t.cancelRequested();
    expect([t.ownership, t.owned]).toEqual(['cancel-sent', true]);
    t.cancelPending();
    expect([t.ownership, t.owned]).toEqual(['cancel-pending', true]);
    t.givenUp();
    expect([t.ownership, t.owned]).toEqual(['attached', false]);
    t.attached('6');
    expect([t.ownership, t.owned]).toEqual(['attached', false]);
  });

  it('a BACKUP whose job could not be looked up is pending a lookup, and not cancellable by id', () => {
    const { t, state } = tracker();
    t.sending(capture, 'app 1');
    t.uncertain();
    expect([t.ownership, t.owned, state()['job-owned']]).toEqual(['lookup-pending', false, 'uncertain']);
  });
});

describe('which step a run of the bundle is', () => {
  it('is the main step until the main step marks the state, then the post step', () => {
    const io = new RecordingIO();
    expect(isPostStep(io)).toBe(false);
    markPostNext(io);
    expect(io.state).toEqual({ isPost: 'true' });
    expect(isPostStep(io)).toBe(true);
  });
});
