/**
 * What every phase of one main step shares: the injected dependencies, the
 * config, the secrets, the report, the cluster connections (opened on first
 * use, closed once) and the job the run follows. Phases pass their results
 * to each other as values; only this is shared.
 */
import type { LinkLogger } from './cluster.js';
import { ApplicationNames, ClusterLink } from './cluster.js';
import type { Config } from './config.js';
import type { StorageSettings } from './destination.js';
import type { JobRow, WaitContext } from './wait.js';
import { ProgressReporter } from './wait.js';
import type { Deps, Timings } from './runtime.js';
import { applicationNameBase } from './runtime.js';
import type { ReportBuilder } from './report.js';
import { errorLine } from './errors.js';
import type { SecretRegistry } from './secrets.js';
import type { ObjectStore } from './storage.js';
import { JobTracker } from './tracker.js';

export class StepContext {
  readonly names: ApplicationNames;
  /** The connection to the cluster that runs the backup. */
  readonly link: ClusterLink;
  /** The job this run follows, and what an abort needs to know about it. */
  readonly job: JobTracker;
  private readonly extraLinks: ClusterLink[] = [];
  private verifyLinkValue: ClusterLink | undefined;
  private store: Promise<ObjectStore> | undefined;
  /** What the cluster link, the submission and the wait log through: scrubbed like every other line. */
  readonly logger: LinkLogger = { info: (m) => this.log(m), warning: (m) => this.warn(m) };

  constructor(
    readonly deps: Deps,
    readonly config: Config,
    readonly secrets: SecretRegistry,
    readonly report: ReportBuilder,
    readonly timings: Timings,
  ) {
    this.names = new ApplicationNames(applicationNameBase(deps.env, deps.random ?? Math.random));
    this.link = this.newLink(config.connection);
    this.job = new JobTracker((name, value) => deps.io.saveState(name, value));
  }

  log(message: string): void {
    this.deps.io.info(this.secrets.scrub(message));
  }

  warn(message: string): void {
    this.deps.io.warning(this.secrets.scrub(message));
  }

  describe(err: unknown): string {
    return errorLine(err, this.secrets);
  }

  async group<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.deps.io.startGroup(name);
    try {
      return await fn();
    } finally {
      this.deps.io.endGroup();
    }
  }

  /** A connection of its own (grant-connection-string), closed with the others. */
  extraLink(connection: Config['connection']): ClusterLink {
    const link = this.newLink(connection);
    this.extraLinks.push(link);
    return link;
  }

  /** The restore check's cluster: a second connection when verify-connection-string is given. */
  verifyLink(): ClusterLink {
    if (!this.config.verifyConnectionGiven) return this.link;
    this.verifyLinkValue ??= this.extraLink(this.config.verifyConnection);
    return this.verifyLinkValue;
  }

  private newLink(connection: Config['connection']): ClusterLink {
    return new ClusterLink(this.deps.connector, connection, this.names, this.deps.clock, this.logger, {
      connectTimeoutMs: this.timings.connectTimeoutMs,
      random: this.deps.random,
    });
  }

  /** Close every connection, but never let a stuck socket hold the step open. */
  async closeConnections(): Promise<void> {
    const closing = Promise.all([this.link.close(), ...this.extraLinks.map((l) => l.close())]);
    await Promise.race([closing, this.deps.clock.sleep(1000)]);
  }

  /** One S3 client serves verification and pruning. */
  readonly openStore = (settings: StorageSettings): Promise<ObjectStore> =>
    (this.store ??= this.deps.openStore(settings));

  /**
   * How to wait for a job, once connected: WHEN COMPLETE where the cluster has it, within
   * what is left of `timeout` (`deadline`, clock milliseconds), with progress lines.
   */
  waitContext(jobId: string, whenComplete: boolean, deadline: number | undefined): WaitContext {
    const progress = new ProgressReporter(
      (line) => this.log(line),
      () => this.deps.clock.now(),
    );
    return {
      link: this.link,
      jobId,
      useWhenComplete: whenComplete,
      pollIntervalMs: this.config.pollIntervalMs,
      timeoutMs: deadline === undefined ? undefined : Math.max(1, deadline - this.deps.clock.now()),
      pausedTimeoutMs: this.config.pausedTimeoutMs,
      clock: this.deps.clock,
      log: this.logger,
      signal: this.deps.signal,
      onRead: (job: JobRow) => {
        this.job.read(job);
        progress.update(job);
      },
      reconnectBudgetMs: this.timings.reconnectBudgetMs,
      whenCompleteSliceMs: this.timings.whenCompleteSliceMs,
    };
  }
}
