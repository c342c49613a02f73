/**
 * The job summary in Markdown: the run's report as a table, its error, how to restore or follow
 * the job, and what pruning did. Text from outside is scrubbed, then escaped.
 */
import type { PruneSummary } from './prune.js';
import type { RunReport } from './report.js';
import type { Scrub } from './runtime.js';
import { backupExists, countByCode, statusOf } from './report.js';

const HEADLINES: Record<RunReport['outcome'], string> = {
  succeeded: '✅ CockroachDB backup succeeded',
  'prune-failed': '⚠️ CockroachDB backup succeeded, but pruning failed',
  'verify-failed': '❌ CockroachDB backup job succeeded, but verification failed',
  failed: '❌ CockroachDB backup failed',
  timeout: '⏱️ CockroachDB backup timed out',
  aborted: '🛑 CockroachDB backup aborted',
  submitted: '🚀 CockroachDB backup submitted (not waited for)',
  error: '❌ CockroachDB backup step failed',
};

/**
 * The job summary, in Markdown. Texts from outside are scrubbed before they are escaped (escaping
 * `&` or `_` inside a secret would hide it from a scrub of the result); the caller scrubs the result too.
 */
export function renderSummary(r: RunReport, scrub: Scrub = (t) => t): string {
  const plain = (text: string): string => escapeMarkdown(scrub(text));
  const o = r.outputs;
  const status = statusOf(r);
  const exists = backupExists(status);
  const code = (v: string | undefined): string | undefined => (v !== undefined ? inlineCode(v) : undefined);
  const rows: [string, string | undefined][] = [
    ['Status', inlineCode(status)],
    [
      'Job ID',
      o['job-id'] !== undefined
        ? `${inlineCode(o['job-id'])}${r.attached ? ' (attached to a running job)' : ''}`
        : undefined,
    ],
    ['Cluster version', r.clusterVersion !== undefined ? plain(r.clusterVersion) : undefined],
    ['Collection', code(o['collection-path'])],
    ['Backup', r.backupKind ? plain(describeBackup(r)) : undefined],
    // A backup that does not exist has no path to restore from: show where it was planned, labelled so.
    [exists ? 'Backup path' : 'Planned backup path (no backup there)', code(o['backup-path'])],
    ['Incremental folder', exists ? code(r.incrementalPath) : undefined],
    [exists ? 'Captured (end time)' : 'Planned end time', o['end-time']],
    ['Started', o['started-at']],
    ['Finished', o['finished-at']],
    ['Duration', o.duration !== undefined ? `${o.duration} s` : undefined],
    [
      'Size',
      exists && o['size-bytes'] !== undefined
        ? `${formatBytes(Number(o['size-bytes']))} in ${o['object-count']} objects`
        : undefined,
    ],
    ['Verified', o.verified !== undefined ? plain(verifiedText(o.verified, r.verifyChecks)) : undefined],
  ];
  const lines = [`## ${HEADLINES[r.outcome]}`, ''];
  const known = rows.filter((row): row is [string, string] => row[1] !== undefined);
  lines.push('| Backup job | Details |', '|---|---|');
  for (const [k, v] of known) lines.push(`| ${k} | ${escapeCell(v)} |`);
  if (o['job-id'] === undefined) lines.push('', 'Nothing was started on the cluster.');
  lines.push('');
  // Error texts come from the cluster and S3 too: escaped, one sentence a line, in a paragraph
  // (a code block would not wrap, and its fence could be closed by the text).
  if (r.error !== undefined)
    lines.push('### Error', '', sentencePerLine(scrub(r.error)).map(escapeMarkdown).join('  \n'), '');
  if (r.notes.length > 0) lines.push(...r.notes.map((n) => `> ${plain(n)}`), '');
  if (r.outcome === 'submitted' && o['job-id'] !== undefined) {
    // wait: false: the job may still fail, so no RESTORE yet: how to follow it instead.
    lines.push(
      '### Follow the job',
      '',
      'The action did not wait: the job runs on, and nothing has been verified. Follow it with',
      '',
      ...fenced('sql', `SHOW JOB WHEN COMPLETE ${o['job-id']};`),
      '',
      'and restore from this backup only once its status is `succeeded`.',
      '',
    );
  } else if (r.restoreStatement !== undefined && exists && r.outcome !== 'verify-failed') {
    lines.push('### Restore from this backup', '', ...fenced('sql', r.restoreStatement), '');
    lines.push('Put the credentials back into the collection URI (they are never written here).', '');
  }
  if (r.prune) lines.push(...renderPrune(r.prune, plain));
  if (r.runUrl !== undefined) lines.push(`[Workflow run](${r.runUrl})`, '');
  return lines.join('\n');
}

/** A fenced code block whose fence is longer than any run of backticks in the text. */
export function fenced(lang: string, text: string): string[] {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return [`${fence}${lang}`, text, fence];
}

/** Inline code that no backtick in the text can close. */
function inlineCode(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${text}${pad}${ticks}`;
}

/**
 * Text the action did not write, made plain for Markdown: every character that can start
 * emphasis, code, links, HTML or a table cell is escaped, and so is what starts a block at the
 * beginning of a line (lists, headings, quotes).
 */
export function escapeMarkdown(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) =>
      line
        .replace(/[\\`*_[\]#|~]/g, '\\$&')
        .replace(/&/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/>/g, '&gt;')
        .replace(/^(\s*)([-+=])/, '$1\\$2')
        .replace(/^(\s*\d+)([.)])/, '$1\\$2'),
    )
    .join('  \n');
}

/** Summary paragraphs carry one sentence a line, so that a long error reads without scrolling. */
function sentencePerLine(text: string): string[] {
  return text.split(/(?<=[.!?])\s+(?=[A-Z`(])/);
}

function describeBackup(r: RunReport): string {
  const scope =
    r.databases.length > 0
      ? `database${r.databases.length > 1 ? 's' : ''} ${r.databases.join(', ')}`
      : 'full cluster';
  const enc =
    r.encrypted === 'passphrase'
      ? ', encrypted (passphrase)'
      : r.encrypted === 'kms'
        ? ', encrypted (KMS)'
        : '';
  return `${r.backupKind}, ${scope}${enc}`;
}

function verifiedText(v: string, checks: string[]): string {
  const how = checks.length > 0 ? `: ${checks.join('; ')}` : '';
  return `${v}${how}`;
}

/** Failure lines shown in the summary; the rest are counted by error code. */
export const MAX_FAILURE_LINES = 20;

function renderPrune(p: PruneSummary, plain: (text: string) => string): string[] {
  const title = p.dryRun ? '### Pruning (dry run: nothing deleted)' : '### Pruning';
  const out = [title, ''];
  const verb = p.dryRun ? 'Would delete' : 'Deleted';
  const outcome = (c: PruneSummary['deleted'][number]): string =>
    c.outcome ?? (p.dryRun ? 'would delete' : 'deleted');
  const whole = p.deleted.filter((c) => ['deleted', 'would delete'].includes(outcome(c))).length;
  const partial = p.deleted.filter((c) => outcome(c).startsWith('partially')).length;
  const untouched = p.deleted.length - whole - partial;
  const extra = [
    partial > 0 ? `partially deleted ${partial}` : '',
    untouched > 0 ? `could not delete ${untouched}` : '',
  ].filter(Boolean);
  out.push(
    `${verb} ${whole} chain(s), ${extra.length > 0 ? `${extra.join(', ')}, ` : ''}kept ${p.kept.length}.`,
    '',
  );
  if (p.error !== undefined) out.push(`**Pruning stopped:** ${plain(p.error)}`, '');
  if (p.deleted.length > 0 || p.kept.length > 0) {
    out.push('| chain | action | objects | size |', '|---|---|---|---|');
    for (const c of p.deleted)
      out.push(
        `| \`${c.path}\` | ${escapeCell(outcome(c))} | ${countCell(c.objects)} | ${sizeCell(c.sizeBytes)} |`,
      );
    for (const c of p.kept)
      out.push(
        `| \`${c.path}\` | ${escapeCell(c.reason ? `kept (${c.reason})` : 'kept')} | ${countCell(c.objects)} | ${sizeCell(c.sizeBytes)} |`,
      );
    out.push('');
  }
  if (p.failures.length > 0) {
    out.push(`Failures (${p.failures.length} object(s) not deleted):`, '');
    out.push(...p.failures.slice(0, MAX_FAILURE_LINES).map((f) => `- ${plain(f)}`));
    const rest = p.failures.length - MAX_FAILURE_LINES;
    if (rest > 0) {
      const codes = (p.failedObjects ?? []).slice(MAX_FAILURE_LINES).map((f) => f.code);
      const byCode = countByCode(codes);
      out.push(`- … and ${rest} more failure${rest === 1 ? '' : 's'}${byCode ? `: ${byCode}` : ''}`);
    }
    out.push('');
    if (partial + untouched > 0)
      out.push(
        'Chains not deleted completely keep their BACKUP_MANIFEST: they are still recognised as complete backups, and the next run retries them.',
        '',
      );
  }
  if (p.note) out.push(`> ${plain(p.note)}`, '');
  return out;
}

function countCell(n: number | undefined): string {
  return n === undefined ? '' : String(n);
}

function sizeCell(bytes: number | undefined): string {
  return bytes === undefined ? '' : formatBytes(bytes);
}

/** A table cell: one line, and no `|` that is not escaped already. */
function escapeCell(v: string): string {
  return v.replace(/(?<!\\)\|/g, '\\|').replace(/ *\r?\n/g, ' ');
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}
