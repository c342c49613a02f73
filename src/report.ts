/**
 * What the action tells the world: step outputs, the job summary, progress
 * lines. Every text goes through the secret scrubber on its way out.
 */
import type { JobRow } from './job.js';
import type { ActionIO, Scrub } from './runtime.js';

/**
 * A log line can never be a workflow command: the runner obeys `::name::` at the start of any
 * line of stdout (after leading spaces) and the legacy `##[name]` anywhere in it. Log lines carry
 * text from outside (cluster and S3 errors, version(), job errors), so every line of every
 * `info` goes through this; `warning`, `error` and `setFailed` are safe already, since
 * @actions/core escapes their line breaks.
 */
export function neutraliseCommands(text: string): string {
  return text
    .split(/(\r?\n|\r)/)
    .map((part) => {
      if (/^(\r?\n|\r)$/.test(part)) return part;
      const line = part.replace(/##\[/g, '##\u200b[');
      return /^\s*::/.test(line) ? `» ${line}` : line;
    })
    .join('');
}

/** Outputs in DESIGN.md order; undefined ones are not written. */
export interface Outputs {
  'job-id'?: string;
  status?: string;
  verified?: 'true' | 'false' | 'skipped';
  duration?: string;
  'started-at'?: string;
  'finished-at'?: string;
  'end-time'?: string;
  'collection-path'?: string;
  'backup-path'?: string;
  'backup-uri'?: string;
  'size-bytes'?: string;
  'object-count'?: string;
}

/** The one vocabulary of `status` (DESIGN.md), the same for the same ending on every version. */
export type Status =
  | 'succeeded'
  | 'failed'
  | 'canceled'
  | 'revert-failed'
  | 'timeout'
  | 'aborted'
  | 'running'
  | 'error'
  | 'checked';

const JOB_END_STATUSES = new Set(['succeeded', 'failed', 'canceled', 'revert-failed']);

/**
 * `status` of a run: once the job has ended, its final status whatever happened after (a failed
 * verification keeps `succeeded`); else what ended the run.
 */
export function statusOf(r: Pick<RunReport, 'outcome' | 'outputs'>): Status {
  const job = r.outputs.status;
  if (job !== undefined && JOB_END_STATUSES.has(job)) return job as Status;
  switch (r.outcome) {
    case 'succeeded':
    case 'prune-failed':
    case 'verify-failed':
      return 'succeeded';
    case 'timeout':
      return 'timeout';
    case 'aborted':
      return 'aborted';
    case 'submitted':
      return 'running';
    default:
      return 'error';
  }
}

/** Outputs that name the backup: written only while it exists (succeeded) or is being written (running). */
const BACKUP_OUTPUTS = ['backup-path', 'backup-uri', 'end-time', 'size-bytes', 'object-count'] as const;

/** The outputs a run writes, true in every ending: `status` always, the backup's only when it exists. */
export function finalOutputs(r: Pick<RunReport, 'outcome' | 'outputs'>): Outputs {
  const status = statusOf(r);
  const out: Outputs = { ...r.outputs, status };
  if (!backupExists(status)) for (const name of BACKUP_OUTPUTS) delete out[name];
  return out;
}

function backupExists(status: Status): boolean {
  return status === 'succeeded' || status === 'running';
}

export function writeOutputs(io: ActionIO, outputs: Outputs, scrub: Scrub): void {
  for (const [name, value] of Object.entries(outputs)) {
    if (value !== undefined) io.setOutput(name, scrub(value));
  }
}

export interface PruneSummary {
  dryRun: boolean;
  kept: { path: string; sizeBytes?: number; objects?: number; reason?: string }[];
  deleted: {
    path: string;
    sizeBytes?: number;
    objects?: number;
    /** Objects actually deleted. */
    deletedObjects?: number;
    /** `deleted`, `would delete`, `partially deleted (n of m objects)`, … (default: deleted / would delete). */
    outcome?: string;
  }[];
  /** One line per object that could not be deleted: `<key>: <code> <message>`. */
  failures: string[];
  /** The same failures with their error codes, for the counts by code. */
  failedObjects?: { key: string; code: string }[];
  /** One line that says what failed, for the step's error (set when failures is not empty). */
  failureMessage?: string;
  /** Pruning stopped on an error that is not about one object. */
  error?: string;
  note?: string;
}

export interface RunReport {
  /** Headline of the summary. */
  /** `prune-failed`: the backup succeeded and verified, then pruning failed (the step fails). */
  /** `verify-failed`: the job succeeded, its verification failed (the step fails, status stays succeeded). */
  outcome:
    'succeeded' | 'prune-failed' | 'verify-failed' | 'failed' | 'timeout' | 'aborted' | 'submitted' | 'error';
  outputs: Outputs;
  clusterVersion?: string;
  backupKind?: 'full' | 'incremental';
  /** The incremental layer's own folder (under incrementals/). */
  incrementalPath?: string;
  databases: readonly string[];
  attached?: boolean;
  encrypted?: 'passphrase' | 'kms';
  verifyChecks: string[];
  restoreStatement?: string;
  runUrl?: string;
  error?: string;
  notes: string[];
  prune?: PruneSummary;
}

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

/** `AccessDenied × 980, InternalError × 2`, most frequent first. */
export function countByCode(codes: string[]): string {
  const n = new Map<string, number>();
  for (const c of codes) n.set(c, (n.get(c) ?? 0) + 1);
  return [...n]
    .sort((a, b) => b[1] - a[1])
    .map(([c, k]) => `${c} × ${k}`)
    .join(', ');
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

/** `RESTORE … FROM '<full>' IN '<collection>' AS OF SYSTEM TIME '<end>'`, pinned to this backup. */
export function restoreStatement(o: {
  databases: readonly string[];
  quoteIdent: (n: string) => string;
  collectionForRestore: string;
  fullSubdir: string;
  endTimeLiteral: string;
  encrypted?: 'passphrase' | 'kms';
}): string {
  const what = o.databases.length > 0 ? `DATABASE ${o.databases.map(o.quoteIdent).join(', ')} ` : '';
  const opts =
    o.encrypted === 'passphrase'
      ? "\n  WITH encryption_passphrase = '<passphrase>'"
      : o.encrypted === 'kms'
        ? "\n  WITH kms = '<kms-uri>'"
        : '';
  // One clause a line: the summary's code block does not wrap.
  return `RESTORE ${what}FROM '${o.fullSubdir}'\n  IN '${o.collectionForRestore}'\n  AS OF SYSTEM TIME '${o.endTimeLiteral}'${opts};`;
}

/**
 * Progress lines at a calm cadence: on a change of status or fraction, and
 * otherwise at most every `quietMs`. fraction_completed moves in steps of
 * ≥5 % at most every 15 s, so the ETA is a rough guide.
 */
export class ProgressReporter {
  private lastLineAt = Number.NEGATIVE_INFINITY;
  private lastKey = '';
  private first: { at: number; fraction: number } | undefined;
  /**
   * Elapsed time counts from the start of the wait, not from the first read: on 23.2+ the first
   * read may come only when WHEN COMPLETE returns, at the very end.
   */
  private readonly startedAt: number;

  constructor(
    private readonly emit: (line: string) => void,
    private readonly now: () => number,
    private readonly quietMs = 30_000,
  ) {
    this.startedAt = now();
  }

  update(job: JobRow): void {
    const at = this.now();
    const fraction = job.fractionCompleted ?? 0;
    if (this.first === undefined) this.first = { at, fraction };
    const key = `${job.status}|${fraction.toFixed(3)}`;
    if (key === this.lastKey && at - this.lastLineAt < this.quietMs) return;
    this.lastKey = key;
    this.lastLineAt = at;
    this.emit(this.line(job, fraction, at));
  }

  private line(job: JobRow, fraction: number, at: number): string {
    const pct = `${(fraction * 100).toFixed(1)}%`;
    const elapsed = at - this.startedAt;
    const observed = at - this.first!.at;
    const gained = fraction - this.first!.fraction;
    let rate = '';
    let eta = '';
    if (gained > 0 && observed > 0 && job.status === 'running') {
      const perMin = (gained / observed) * 60_000 * 100;
      rate = `, ${perMin.toFixed(1)}%/min`;
      const remainingMs = ((1 - fraction) / gained) * observed;
      eta = `, ETA ~${formatDurationMs(remainingMs)}`;
    }
    return `Job ${job.jobId}: ${job.status}, ${pct}${rate}${eta} (elapsed ${formatDurationMs(elapsed)})`;
  }
}

export function formatDurationMs(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
