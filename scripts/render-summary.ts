/**
 * `npm run render-summary`: runs the bundled action in every ending against
 * the test cluster and S3 server, renders each job summary to HTML the way
 * GitHub shows Markdown, and (with --screenshot) photographs each page with
 * headless Chromium, so a person can look at what a reviewer will see.
 *
 * Writes .tmp/summaries/<ending>.md, .html and .png.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { marked } from 'marked';
import { REPO_ROOT, runAction, startAction } from '../test/support/action-runner.js';
import { startTestCluster } from '../test/support/cluster/index.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../test/support/s3/server.js';

const OUT = join(REPO_ROOT, '.tmp', 'summaries');
const CHROMIUM = '/usr/bin/chromium';
const screenshot = process.argv.includes('--screenshot');

// Close to GitHub's Markdown styles: enough to judge layout, tables and code blocks.
const CSS = `
body { font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; margin: 24px; max-width: 900px; }
h2 { border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; } h3 { margin-top: 24px; }
table { border-collapse: collapse; } th, td { border: 1px solid #d1d9e0; padding: 6px 13px; } tr:nth-child(2n) { background: #f6f8fa; }
code { background: #eff1f3; padding: .2em .4em; border-radius: 6px; font-size: 85%; }
pre { background: #f6f8fa; padding: 16px; border-radius: 6px; overflow: auto; } pre code { background: none; padding: 0; }
blockquote { color: #59636e; border-left: .25em solid #d1d9e0; margin: 0; padding: 0 1em; }
`;

mkdirSync(OUT, { recursive: true });
const s3 = await startS3Server({ buckets: ['backups'] });
const cluster = await startTestCluster({ profile: '25.2', jobDurationMs: 1500 });
const base = {
  'connection-string': cluster.url('root'),
  collection: 's3://backups/render',
  'aws-access-key-id': TEST_S3_CREDENTIAL.accessKeyId,
  'aws-secret-access-key': TEST_S3_CREDENTIAL.secretAccessKey,
  'aws-region': s3.region,
  's3-endpoint': s3.endpoint,
  'poll-interval': '1s',
};
/** How a run ends, beyond its inputs: something done to it while it runs. */
type Ending = {
  inputs: Record<string, string>;
  during?: 'cancel' | 'sigint' | 'fail-hostile';
  jobMs?: number;
};

// One page per ending the action has (the `status` output's words), plus the prune and verify ones.
const ENDINGS: Record<string, Ending> = {
  'succeeded-with-pruning': { inputs: { 'prune-keep-last': '1' } },
  incremental: { inputs: { 'backup-type': 'incremental', verify: 'files' } },
  'failed-job': { inputs: { collection: 's3://missing-bucket/render' } },
  'failed-job-hostile-error': { inputs: {}, during: 'fail-hostile', jobMs: 20_000 },
  canceled: { inputs: {}, during: 'cancel', jobMs: 20_000 },
  timeout: { inputs: { timeout: '2s' }, jobMs: 60_000 },
  'aborted-cancelled': { inputs: {}, during: 'sigint', jobMs: 60_000 },
  'aborted-left-running': { inputs: { 'cancel-on-abort': 'false' }, during: 'sigint', jobMs: 60_000 },
  'error-wrong-password': { inputs: { 'connection-string': cluster.url('root', { password: 'wrong' }) } },
  'bad-input': { inputs: { 'as-of-system-time': "-10s'; DROP DATABASE shop; --" } },
  'submitted-without-waiting': { inputs: { wait: 'false' }, jobMs: 20_000 },
  'verify-failed': { inputs: { collection: 's3://backups/render-verify' } },
};
const HOSTILE = 'it broke\n::stop-commands::x\n```\n# not a heading <b>bold</b>';

try {
  await runAction({ inputs: base });
  for (const [name, ending] of Object.entries(ENDINGS)) {
    cluster.engine.setJobDuration(ending.jobMs ?? 1500);
    const clear =
      name === 'verify-failed'
        ? s3.inject({
            op: 'GetObject',
            status: 403,
            code: 'AccessDenied',
            message: 'Access Denied',
            times: 20,
          })
        : () => undefined;
    const before = cluster.jobs().length;
    const running = startAction({ inputs: { ...base, ...ending.inputs } });
    if (ending.during !== undefined) {
      await waitFor(() => running.stdout().includes('::group::Wait for backup job'));
      const job = cluster.jobs()[before]!;
      if (ending.during === 'cancel') cluster.engine.cancelJobAsOtherUser(job.id);
      if (ending.during === 'fail-hostile') cluster.engine.failJob(job.id, HOSTILE);
      if (ending.during === 'sigint') running.child.kill('SIGINT');
    }
    const r = await running.done;
    clear();
    for (const j of cluster.jobs()) if (j.status === 'running') cluster.engine.cancelJobAsOtherUser(j.id);
    const md = join(OUT, `${name}.md`);
    const html = join(OUT, `${name}.html`);
    writeFileSync(md, r.summary);
    const body = await marked.parse(r.summary, { gfm: true });
    writeFileSync(html, `<!doctype html><meta charset="utf-8"><style>${CSS}</style>${body}`);
    console.log(`${name}: exit ${r.code}, status ${r.outputs.status ?? '(none)'}, ${md}`);
    if (screenshot) shoot(html, join(OUT, `${name}.png`));
  }
} finally {
  await cluster.close();
  await s3.close();
}

async function waitFor(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('the run did not reach the wait within 30 s');
    await new Promise((r) => setTimeout(r, 25));
  }
}

function shoot(html: string, png: string): void {
  if (!existsSync(CHROMIUM)) {
    console.log(`  no ${CHROMIUM}: install Debian's chromium for screenshots`);
    return;
  }
  const r = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--user-data-dir=${join(OUT, '.chromium')}`,
      '--hide-scrollbars',
      '--window-size=1000,1100',
      `--screenshot=${png}`,
      `file://${html}`,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  console.log(r.status === 0 ? `  screenshot ${png}` : `  chromium failed: ${r.stderr.slice(-300)}`);
}
process.exit(0);
