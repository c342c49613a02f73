/**
 * What the action tells the world: the run's report, which one builder fills
 * (which fact feeds which output), and the step outputs written from it. The
 * summary is rendered from the same report (summary.ts). Every text goes
 * through the secret scrubber on its way out.
 */
import { jobDurationSeconds } from './time.js';
import type { JobRow } from './wait.js';
import { joinUri, normalizeFullSubdir } from './layout.js';
import type { Config } from './config.js';
import type { ActionIO, Scrub } from './runtime.js';
import type { PruneSummary } from './prune.js';
import { quoteIdent, restoreStatement } from './sql.js';

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

/** Outputs in action.yml's order; undefined ones are not written. */
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

/** The one vocabulary of `status` (action.yml), the same for the same ending on every version. */
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

export function backupExists(status: Status): boolean {
  return status === 'succeeded' || status === 'running';
}

export function writeOutputs(io: ActionIO, outputs: Outputs, scrub: Scrub): void {
  for (const [name, value] of Object.entries(outputs)) {
    if (value !== undefined) io.setOutput(name, scrub(value));
  }
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

/** The facts a run learns, each recorded once here: this class alone decides which output and which part of the summary it feeds. */
export class ReportBuilder {
  readonly report: RunReport;

  /** `publish` writes an output at once (the job id, before the wait), besides the final set. */
  constructor(
    runUrl: string | undefined,
    private readonly publish: (name: keyof Outputs, value: string) => void,
  ) {
    this.report = { outcome: 'error', outputs: {}, databases: [], verifyChecks: [], notes: [], runUrl };
  }

  get outputs(): Readonly<Outputs> {
    return this.report.outputs;
  }

  get attached(): boolean {
    return this.report.attached === true;
  }

  get succeeded(): boolean {
    return this.report.outcome === 'succeeded' || this.report.outcome === 'submitted';
  }

  /** What the configuration says about the backup: its databases, its collection, its key (KMS over a passphrase). */
  recordConfig(config: Config): void {
    this.report.databases = config.databases;
    this.report.outputs['collection-path'] = config.collection.display;
    if (config.encryptionPassphrase !== undefined) this.report.encrypted = 'passphrase';
    if (config.kmsUri !== undefined) this.report.encrypted = 'kms';
  }

  recordVersion(full: string): void {
    this.report.clusterVersion = full.replace(/ \(.*$/, '');
  }

  /**
   * The job this run follows: `created` by its BACKUP, `attached` to (if-running: attach),
   * `found` after its answer was lost; undefined when its own job was given up for another.
   */
  recordJobId(jobId: string | undefined, how?: 'created' | 'attached' | 'found'): void {
    if (jobId === undefined) {
      delete this.report.outputs['job-id'];
      return;
    }
    if (how === 'attached') this.report.attached = true;
    this.report.outputs['job-id'] = jobId;
    if (how !== 'found') this.publish('job-id', jobId);
  }

  /** Where the backup goes: its kind, end time, path, URI and how to restore it. */
  recordPlan(
    plan: { kind: 'full' | 'incremental'; reason?: string },
    fullSubdir: string | undefined,
    capture: { iso: string; literal: string } | undefined,
    place: { collectionDisplay: string; collectionForRestore: string },
  ): void {
    const o = this.report.outputs;
    // One leading '/' whatever the source: CockroachDB omits it for a collection at the bucket root.
    const full = fullSubdir === undefined ? undefined : normalizeFullSubdir(fullSubdir);
    this.report.backupKind = plan.kind;
    // Why auto took a new full backup (no full, other targets, full-backup-every) is worth a line.
    if (plan.kind === 'full' && plan.reason !== undefined && !this.report.notes.includes(plan.reason))
      this.recordNote(plan.reason);
    if (capture) o['end-time'] = capture.iso;
    if (full !== undefined) {
      o['backup-path'] = full;
      o['backup-uri'] = joinUri(place.collectionDisplay, full);
      this.report.restoreStatement = restoreStatement({
        databases: this.report.databases,
        quoteIdent,
        collectionForRestore: place.collectionForRestore,
        fullSubdir: full,
        endTimeLiteral: capture?.literal ?? '<end-time>',
        encrypted: this.report.encrypted,
      });
    }
  }

  /** The job's times, as the cluster recorded them. */
  recordJob(job: JobRow): void {
    const o = this.report.outputs;
    if (job.started ?? job.created) o['started-at'] = (job.started ?? job.created)!.iso;
    if (job.finished) o['finished-at'] = job.finished.iso;
    o.duration = jobDurationSeconds(job) ?? o.duration;
  }

  /** The job's status as the run saw it last; `verified` skipped when it did not succeed or was not waited for. */
  recordStatus(status: string | undefined, verified?: 'skipped'): void {
    if (status !== undefined) this.report.outputs.status = status;
    if (verified !== undefined) this.report.outputs.verified = verified;
  }

  recordVerification(result: {
    verified: 'true' | 'false' | 'skipped';
    checks: string[];
    incrementalPath?: string;
    sizeBytes?: number;
    objectCount?: number;
  }): void {
    const o = this.report.outputs;
    o.verified = result.verified;
    this.report.verifyChecks = result.checks;
    if (result.incrementalPath) this.report.incrementalPath = result.incrementalPath;
    if (result.sizeBytes !== undefined) o['size-bytes'] = String(result.sizeBytes);
    if (result.objectCount !== undefined) o['object-count'] = String(result.objectCount);
  }

  /**
   * The run was cancelled after the job ended: a verification that did not finish is not a pass,
   * and a restore check cut short adds the checks it made when it found a problem.
   */
  recordVerificationCut(restore: { problem?: string; checks: string[] } | undefined): void {
    const o = this.report.outputs;
    if (restore?.problem !== undefined) this.report.verifyChecks.push(...restore.checks);
    if (o.verified !== 'true' || restore !== undefined) o.verified = 'false';
  }

  recordPrune(summary: PruneSummary): void {
    this.report.prune = summary;
  }

  recordNote(text: string): void {
    this.report.notes.push(text);
  }

  recordOutcome(outcome: 'succeeded' | 'submitted'): void {
    this.report.outcome = outcome;
  }

  /** The run's failure: its outcome (`error` unless the failure says), and its message. */
  recordFailure(message: string, outcome: RunReport['outcome'] | undefined): void {
    if (this.succeeded) this.report.outcome = 'error';
    if (outcome !== undefined) this.report.outcome = outcome;
    this.report.error = message;
  }

  /** The backstop is about to end the process: what the summary should say by then. */
  recordForcedExit(jobId: string | undefined, jobEnded: boolean): void {
    if (!jobEnded) this.report.outputs.status = 'aborted';
    this.report.outcome = 'aborted';
    const job = jobId !== undefined ? `Backup job ${jobId} may still be running: CANCEL JOB ${jobId};` : '';
    this.report.error ??=
      `The workflow run was cancelled and the step could not finish in time. ${job}`.trim();
  }
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
