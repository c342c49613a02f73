/**
 * What the action tells the world: step outputs, the job summary, progress
 * lines. Every text goes through the secret scrubber on its way out.
 */
import type { JobRow } from './job.js';

/** The runner-facing side effects, injected so tests can record them. */
export interface ActionIO {
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  debug(message: string): void;
  setOutput(name: string, value: string): void;
  setFailed(message: string): void;
  setSecret(value: string): void;
  saveState(name: string, value: string): void;
  getState(name: string): string;
  startGroup(name: string): void;
  endGroup(): void;
  /** Append Markdown to the job summary; throws when the runner gave no summary file. */
  writeSummary(markdown: string): Promise<void>;
}

export type Scrub = (text: string) => string;

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

export function writeOutputs(io: ActionIO, outputs: Outputs, scrub: Scrub): void {
  for (const [name, value] of Object.entries(outputs)) {
    if (value !== undefined) io.setOutput(name, scrub(value));
  }
}

export interface PruneSummary {
  dryRun: boolean;
  kept: { path: string; sizeBytes?: number }[];
  deleted: { path: string; sizeBytes?: number; objects?: number }[];
  failures: string[];
  note?: string;
}

export interface RunReport {
  /** Headline of the summary. */
  outcome: 'succeeded' | 'failed' | 'timeout' | 'aborted' | 'submitted' | 'error';
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
  failed: '❌ CockroachDB backup failed',
  timeout: '⏱️ CockroachDB backup timed out',
  aborted: '🛑 CockroachDB backup aborted',
  submitted: '🚀 CockroachDB backup submitted (not waited for)',
  error: '❌ CockroachDB backup step failed',
};

/** The job summary, in Markdown. No secrets can be in it: the caller scrubs the result anyway. */
export function renderSummary(r: RunReport): string {
  const o = r.outputs;
  const rows: [string, string | undefined][] = [
    ['Status', o.status !== undefined ? `\`${o.status}\`` : undefined],
    [
      'Job ID',
      o['job-id'] !== undefined
        ? `\`${o['job-id']}\`${r.attached ? ' (attached to a running job)' : ''}`
        : undefined,
    ],
    ['Cluster version', r.clusterVersion],
    ['Collection', o['collection-path'] !== undefined ? `\`${o['collection-path']}\`` : undefined],
    ['Backup', r.backupKind ? describeBackup(r) : undefined],
    ['Backup path', o['backup-path'] !== undefined ? `\`${o['backup-path']}\`` : undefined],
    ['Incremental folder', r.incrementalPath !== undefined ? `\`${r.incrementalPath}\`` : undefined],
    ['Captured (end time)', o['end-time']],
    ['Started', o['started-at']],
    ['Finished', o['finished-at']],
    ['Duration', o.duration !== undefined ? `${o.duration} s` : undefined],
    [
      'Size',
      o['size-bytes'] !== undefined
        ? `${formatBytes(Number(o['size-bytes']))} in ${o['object-count']} objects`
        : undefined,
    ],
    ['Verified', o.verified !== undefined ? verifiedText(o.verified, r.verifyChecks) : undefined],
  ];
  const lines = [`## ${HEADLINES[r.outcome]}`, '', '| Backup job | |', '|---|---|'];
  for (const [k, v] of rows) if (v !== undefined) lines.push(`| ${k} | ${escapeCell(v)} |`);
  lines.push('');
  if (r.error !== undefined) lines.push('### Error', '', '```text', r.error, '```', '');
  if (r.notes.length > 0) lines.push(...r.notes.map((n) => `> ${n}`), '');
  // A RESTORE statement is only offered for a backup that exists (or will, for wait: false).
  if (r.restoreStatement !== undefined && (r.outcome === 'succeeded' || r.outcome === 'submitted')) {
    lines.push('### Restore from this backup', '', '```sql', r.restoreStatement, '```', '');
    lines.push('Put the credentials back into the collection URI (they are never written here).', '');
  }
  if (r.prune) lines.push(...renderPrune(r.prune));
  if (r.runUrl !== undefined) lines.push(`[Workflow run](${r.runUrl})`, '');
  return lines.join('\n');
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

function renderPrune(p: PruneSummary): string[] {
  const title = p.dryRun ? '### Pruning (dry run: nothing deleted)' : '### Pruning';
  const out = [title, ''];
  const verb = p.dryRun ? 'Would delete' : 'Deleted';
  out.push(`${verb} ${p.deleted.length} chain(s), kept ${p.kept.length}.`, '');
  if (p.deleted.length > 0 || p.kept.length > 0) {
    out.push('| chain | action | size |', '|---|---|---|');
    for (const c of p.deleted)
      out.push(`| \`${c.path}\` | ${p.dryRun ? 'would delete' : 'deleted'} | ${sizeCell(c.sizeBytes)} |`);
    for (const c of p.kept) out.push(`| \`${c.path}\` | kept | ${sizeCell(c.sizeBytes)} |`);
    out.push('');
  }
  if (p.failures.length > 0) out.push('Failures:', '', ...p.failures.map((f) => `- ${f}`), '');
  if (p.note) out.push(`> ${p.note}`, '');
  return out;
}

function sizeCell(bytes: number | undefined): string {
  return bytes === undefined ? '' : formatBytes(bytes);
}

function escapeCell(v: string): string {
  return v.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
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
      ? " WITH encryption_passphrase = '<passphrase>'"
      : o.encrypted === 'kms'
        ? " WITH kms = '<kms-uri>'"
        : '';
  return `RESTORE ${what}FROM '${o.fullSubdir}' IN '${o.collectionForRestore}' AS OF SYSTEM TIME '${o.endTimeLiteral}'${opts};`;
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

  constructor(
    private readonly emit: (line: string) => void,
    private readonly now: () => number,
    private readonly quietMs = 30_000,
  ) {}

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
    const elapsed = at - this.first!.at;
    const gained = fraction - this.first!.fraction;
    let rate = '';
    let eta = '';
    if (gained > 0 && elapsed > 0) {
      const perMin = (gained / elapsed) * 60_000 * 100;
      rate = `, ${perMin.toFixed(1)}%/min`;
      const remainingMs = ((1 - fraction) / gained) * elapsed;
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
