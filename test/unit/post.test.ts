/**
 * runPost() with every dependency injected: the state the main step saved, a
 * scripted cluster and a recording runner.
 */
import { describe, expect, it } from 'vitest';
import type { Row } from '../../src/cluster.js';
import { runPost } from '../../src/post.js';
import type { Statement } from '../../src/sql.js';
import { fakeConnector, RecordingIO, VirtualClock } from '../support/fakes.js';

const JOB = '1012345678901234567';
const PASSWORD = 'p@ss/word';

function inputs(over: Record<string, string> = {}): (name: string) => string {
  const all: Record<string, string> = {
    'connection-string': `postgresql://root:${encodeURIComponent(PASSWORD)}@db.internal:26257/defaultdb?sslmode=verify-full`,
    collection: 's3://bucket/path',
    'aws-access-key-id': 'AKIAEXAMPLE',
    'aws-secret-access-key': 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    'aws-region': 'eu-west-1',
    ...over,
  };
  return (name) => all[name] ?? '';
}

/** The post step after a main step that saved `state`, against a cluster where the job is `status`. */
async function postWith(
  state: Record<string, string>,
  o: { status?: string; inputs?: (name: string) => string; summaryFails?: boolean } = {},
) {
  const io = new RecordingIO();
  io.state = { ...state };
  if (o.summaryFails)
    io.writeSummary = async () => {
      throw new Error('no summary file');
    };
  const sent: Statement[] = [];
  const connector = fakeConnector((stmt) => {
    sent.push(stmt);
    if (stmt.text.includes('crdb_internal.jobs WHERE job_id')) {
      const row: Row = {
        job_id: JOB,
        status: o.status ?? 'running',
        fraction_completed: 0.3,
        error: null,
        description: "BACKUP INTO '/2026/11/24-114035.12' IN 's3://bucket/path'",
      };
      return [row];
    }
    return [];
  });
  const code = await runPost({
    io,
    getInput: o.inputs ?? inputs(),
    env: { GITHUB_REPOSITORY: 'acme/shop', GITHUB_RUN_ID: '42', GITHUB_RUN_ATTEMPT: '2' },
    connector,
    openStore: async () => {
      throw new Error('the post step never opens the store');
    },
    clock: new VirtualClock(),
    signal: new AbortController().signal,
    random: () => 0.5,
  });
  const cancels = sent.filter((s) => s.text.startsWith('CANCEL JOB'));
  const warnings = io.events.filter((e) => e.startsWith('warning:')).map((e) => e.slice('warning:'.length));
  return { code, io, connector, sent, cancels, warnings };
}

describe('runPost()', () => {
  it('does nothing when the main step finished', async () => {
    const r = await postWith({ 'main-done': 'true', 'job-id': JOB, 'job-owned': 'true' });
    expect(r.code).toBe(0);
    expect(r.connector.requests).toHaveLength(0);
    expect(r.warnings).toEqual([]);
    expect(r.io.summary).toBe('');
  });

  it('says there is nothing to clean up when the main step created no job', async () => {
    const r = await postWith({});
    expect(r.connector.requests).toHaveLength(0);
    expect(r.io.events).toContain(
      'info:The main step ended before it created a backup job; nothing to clean up.',
    );
  });

  it('cancels the job the killed main step created (cancel-on-abort), as the post step', async () => {
    const r = await postWith({ 'job-id': JOB, 'job-owned': 'true' });
    expect(r.code).toBe(0);
    expect(r.cancels.map((s) => s.params)).toEqual([[JOB]]);
    expect(
      r.connector.requests.every((q) =>
        q.applicationName.startsWith('crdb-backup-action acme/shop run 42-2 post c'),
      ),
    ).toBe(true);
    expect(r.warnings).toEqual([
      `The main step was stopped before it finished. CANCEL JOB ${JOB} sent (post step, cancel-on-abort); the cluster rolls the job back.`,
    ]);
    expect(r.io.summary).toContain('## ⚠️ CockroachDB backup: post step');
    expect(r.io.summary).toContain(`CANCEL JOB ${JOB} sent`);
  });

  it('leaves an owned job running with cancel-on-abort: false', async () => {
    const r = await postWith(
      { 'job-id': JOB, 'job-owned': 'true' },
      { inputs: inputs({ 'cancel-on-abort': 'false' }) },
    );
    expect(r.cancels).toHaveLength(0);
    expect(r.warnings).toEqual([
      `The main step was stopped; backup job ${JOB} is left running (cancel-on-abort: false).`,
    ]);
  });

  it('tries again a cancel the main step could not get through, even though it finished', async () => {
    const r = await postWith(
      { 'main-done': 'true', 'job-id': JOB, 'job-owned': 'cancel-pending' },
      { inputs: inputs({ 'cancel-on-abort': 'false' }) },
    );
    expect(r.cancels.map((s) => s.params)).toEqual([[JOB]]);
    expect(r.warnings).toEqual([
      `The main step could not cancel its backup job in time; the post step tried again. CANCEL JOB ${JOB} sent (post step, as the main step had asked); the cluster rolls the job back.`,
    ]);
  });

  it('sends the cancel again when the main step had sent it', async () => {
    const r = await postWith({ 'job-id': JOB, 'job-owned': 'cancelled' });
    expect(r.cancels).toHaveLength(1);
    expect(r.warnings[0]).toContain('(post step, as the main step had asked)');
  });

  it('never cancels a job it attached to', async () => {
    const r = await postWith({ 'job-id': JOB, 'job-owned': 'false' });
    expect(r.cancels).toHaveLength(0);
    expect(r.warnings).toEqual([
      `The main step was stopped while following backup job ${JOB}, which it did not start: it is left running.`,
    ]);
  });

  it('reports a job that has ended since, without cancelling it', async () => {
    const r = await postWith({ 'job-id': JOB, 'job-owned': 'true' }, { status: 'succeeded' });
    expect(r.cancels).toHaveLength(0);
    expect(r.warnings).toEqual([
      `The main step was stopped; backup job ${JOB} has since ended with status succeeded.`,
    ]);
  });

  it('warns, without connecting, when the inputs cannot be read', async () => {
    const r = await postWith(
      { 'job-id': JOB, 'job-owned': 'true' },
      { inputs: inputs({ 'connection-string': '' }) },
    );
    expect(r.code).toBe(0);
    expect(r.connector.requests).toHaveLength(0);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      new RegExp(
        `^Post step: could not read the inputs \\(Input \`connection-string\`: .+\\); backup job ${JOB} may still be running\\.$`,
      ),
    );
  });

  it('warns when the summary cannot be written, and still ends well', async () => {
    const r = await postWith({ 'job-id': JOB, 'job-owned': 'true' }, { summaryFails: true });
    expect(r.code).toBe(0);
    expect(r.warnings).toContain('Could not write the job summary (no summary file).');
  });
});
