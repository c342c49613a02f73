/**
 * `dry-run: true`: every check a real run depends on, in the order a run meets them, and nothing
 * that changes the cluster or the bucket. No job is left (the statement-time
 * check of BACKUP runs inside a transaction that is rolled back), no GRANT runs, and the bucket
 * only sees the storage check's own test files, which the nodes delete, and the runner's reads.
 * Every check is reported, failing or not; the summary is a checklist.
 */
import { adviceForSubmitError } from './advice.js';
import type { ClusterVersion, Connector, SqlSession } from './cluster.js';
import { ApplicationNames, ClusterLink, sqlState, versionAtLeast } from './cluster.js';
import { errorLine } from './errors.js';
import type { BackupDestination, StorageSettings } from './destination.js';
import { buildBackupDestination } from './destination.js';
import type { CaptureTime } from './submit.js';
import { resolveCaptureTime } from './submit.js';
import type { Plan } from './plan.js';
import type { Check, UserFacts } from './preflight-checks.js';
import {
  backupPrivilegeCheck,
  cancelCheck,
  licenceCheck,
  readUserFacts,
  renderChecklist,
  verifyCheck,
} from './preflight-checks.js';
import { connectionChecks } from './preflight-connection.js';
import type { OtherSide } from './preflight-others.js';
import {
  grantConnectionCheck,
  grantSideMayCancel,
  readOtherSide,
  restoreStatements,
  verifyClusterCheck,
} from './preflight-others.js';
import { ifRunningCheck, planCheck } from './preflight-plan.js';
import { nodeAccessCheck, pruneCheck, runnerAccessCheck } from './preflight-storage.js';
import type { ActionIO, Clock } from './runtime.js';
import { writeSummaryOrWarn } from './runtime.js';
import type { SecretRegistry } from './secrets.js';
import type { Statement } from './sql.js';
import {
  backupStatement,
  cancelJobStatement,
  grantStatements,
  jobByIdStatement,
  restoreGrantStatements,
  whenCompleteStatement,
} from './sql.js';
import type { ObjectStore } from './storage.js';
import type { Config } from './config.js';

export type { Check } from './preflight-checks.js';

export interface DryRunContext {
  io: ActionIO;
  connector: Connector;
  openStore: (settings: StorageSettings) => Promise<ObjectStore>;
  clock: Clock;
  signal: AbortSignal;
  random?: () => number;
  config: Config;
  secrets: SecretRegistry;
  /** `crdb-backup-action <repo> run <id>-<attempt>`. */
  applicationName: string;
  connectTimeoutMs: number;
  reconnectBudgetMs: number;
  runUrl?: string;
}

export interface DryRunResult {
  checks: Check[];
  /** The statements a run would send, with secret parameters redacted. */
  statements: string[];
  /** What grant-to would run (not run). */
  grants: string[];
  version?: string;
}

const PLACEHOLDER_JOB_ID = '0';

/** Runs the checks, writes `status`, the summary and one error line; returns the exit code. */
export async function runDryRun(ctx: DryRunContext): Promise<number> {
  const scrub = (t: string): string => ctx.secrets.scrub(t);
  ctx.io.startGroup('Dry run: check everything, change nothing');
  let result: DryRunResult;
  try {
    result = await new DryRun(ctx).run();
  } finally {
    ctx.io.endGroup();
  }
  const failed = result.checks.filter((c) => c.state === 'failed');
  ctx.io.setOutput('status', failed.length === 0 ? 'checked' : 'error');
  ctx.io.setOutput('collection-path', ctx.config.collection.display);
  if (failed.length > 0) {
    const list = failed.map((c) => `${c.name} (${c.detail.replace(/[.\s]+$/, '')})`).join('; ');
    ctx.io.setFailed(
      scrub(
        `Dry run: ${failed.length} of ${result.checks.length} checks failed: ${list}. The summary says what to change.`,
      ),
    );
  } else {
    ctx.io.info(`Dry run: all ${result.checks.length} checks passed or were skipped; nothing was changed.`);
  }
  if (ctx.config.summary)
    await writeSummaryOrWarn(ctx.io, renderChecklist(result, ctx), scrub, '; the outputs are set');
  return failed.length === 0 ? 0 : 1;
}

class DryRun {
  private readonly checks: Check[] = [];
  private readonly statements: string[] = [];
  private grants: string[] = [];
  private readonly link: ClusterLink;
  private version: ClusterVersion | undefined;
  private destination: BackupDestination | undefined;
  private facts: UserFacts | undefined;
  private plan: Plan | undefined;
  private capture: CaptureTime | undefined;

  constructor(private readonly ctx: DryRunContext) {
    this.link = new ClusterLink(
      ctx.connector,
      ctx.config.connection,
      new ApplicationNames(`${ctx.applicationName} dry-run`),
      ctx.clock,
      { info: (m) => this.log(m), warning: (m) => ctx.io.warning(ctx.secrets.scrub(m)) },
      { connectTimeoutMs: ctx.connectTimeoutMs, random: ctx.random },
    );
  }

  private log(message: string): void {
    this.ctx.io.info(this.ctx.secrets.scrub(message));
  }

  private add(check: Check): void {
    this.checks.push(check);
    const mark = { passed: 'passed', failed: 'FAILED', skipped: 'skipped', unknown: 'unknown' }[check.state];
    const fix = check.fix ? ` ${check.fix}` : '';
    const stmts = check.statements ? ` ${check.statements.join(' ')}` : '';
    this.log(`[${mark}] ${check.name}: ${check.detail}${fix}${stmts}`);
  }

  private describe(err: unknown): string {
    return errorLine(err, this.ctx.secrets);
  }

  async run(): Promise<DryRunResult> {
    try {
      const session = await this.connect();
      if (session) await this.clusterChecks(session);
      else this.skipClusterChecks();
      this.add(await runnerAccessCheck(this.ctx.config, this.ctx.openStore));
    } finally {
      await Promise.race([this.link.close(), this.ctx.clock.sleep(1000)]);
    }
    return {
      checks: this.checks,
      statements: this.statements,
      grants: this.grants,
      ...(this.version ? { version: this.version.full.replace(/ \(.*$/, '') } : {}),
    };
  }

  private async connect(): Promise<SqlSession | undefined> {
    const { session, version } = await connectionChecks(this.link, this.ctx.config.connection, {
      budgetMs: Math.min(30_000, this.ctx.reconnectBudgetMs),
      signal: this.ctx.signal,
      describe: (e) => this.describe(e),
      add: (check) => this.add(check),
    });
    this.version = version;
    return session;
  }

  private skipClusterChecks(): void {
    for (const name of ['Privileges and licence', 'Node access to the collection', 'Pruning'])
      this.add({ name, state: 'skipped', detail: 'no connection to the cluster.' });
  }

  private async clusterChecks(session: SqlSession): Promise<void> {
    const { config } = this.ctx;
    const v = this.version!;
    this.destination = buildBackupDestination(config, v);
    if (this.destination.uri !== this.destination.redacted) this.ctx.secrets.add(this.destination.uri);
    this.facts = await readUserFacts(session, config.connection.user, config.databases);
    this.grantTo(v);
    const grantSide = config.grantConnectionGiven
      ? await this.other(config.grantConnection, 'grant-connection-string')
      : undefined;
    if (grantSide) this.add(grantConnectionCheck(config, grantSide));
    this.add(await ifRunningCheck(session, config, (e) => this.describe(e)));
    this.capture = await resolveCaptureTime(session, config.asOfSystemTime);
    const planned = await planCheck(session, config, this.destination.uri, this.capture, (e) =>
      this.describe(e),
    );
    this.plan = planned.plan;
    this.add(planned.check);
    this.add(backupPrivilegeCheck(config, this.facts));
    const refusal = await this.statementTimeCheck(session);
    this.add(licenceCheck(config, v, this.facts, this.plan?.kind === 'incremental', refusal));
    this.waitCheck(v);
    this.add(cancelCheck(config, v, this.facts, grantSideMayCancel(v, grantSide)));
    this.add(verifyCheck(config, this.facts, (st) => this.show(st), this.destination.uri));
    if (config.verify === 'restore') this.showRestoreStatements();
    if (config.verify === 'restore' && config.verifyConnectionGiven)
      this.add(
        verifyClusterCheck(config, v, await this.other(config.verifyConnection, 'verify-connection-string')),
      );
    this.add(await nodeAccessCheck(session, v, this.destination.uri, (e) => this.describe(e)));
    this.add(
      await pruneCheck(session, config, this.ctx.openStore, this.plan, this.capture, (e) => this.describe(e)),
    );
  }

  /** A second connection (verify- or grant-connection-string), only read, with the same TLS rules. */
  private other(connection: Config['connection'], label: string): Promise<OtherSide> {
    const { ctx } = this;
    const log = (m: string): void => this.log(m);
    const warning = (m: string): void => ctx.io.warning(ctx.secrets.scrub(m));
    const other = { ...ctx, log, warning, describe: (e: unknown) => this.describe(e) };
    return readOtherSide(other, connection, label, `the ${label} cluster`);
  }

  private showRestoreStatements(): void {
    const { config } = this.ctx;
    const where = config.verifyConnectionGiven ? ' on the verify-connection-string cluster' : '';
    const full = this.plan?.kind === 'incremental' ? this.plan.fullSubdir : undefined;
    for (const stmt of restoreStatements(
      config,
      this.destination!.uri,
      full ?? this.capture!.fullSubdir,
      this.capture!.literal,
    ))
      this.show(stmt, `  -- the restore check${where}, then DROP DATABASE of the scratch`);
  }

  private show(stmt: Statement, note = ''): void {
    const uri = this.destination?.uri;
    const params = stmt.params.map((p, i) => {
      const shown = p === uri ? this.destination!.redacted : this.ctx.secrets.scrub(p) !== p ? '(secret)' : p;
      return `$${i + 1} = ${shown}`;
    });
    this.statements.push(`${stmt.text}${params.length ? `  -- ${params.join(', ')}` : ''}${note}`);
  }

  /** grant-to: the statements it would run, listed and never run. */
  private grantTo(v: ClusterVersion): void {
    const { config } = this.ctx;
    if (config.grantTo === undefined) return;
    const mayCancel = config.cancelOnAbort || config.onTimeout === 'cancel';
    const controlJob = !mayCancel ? 'none' : versionAtLeast(v, 23, 1, 12) ? 'system' : 'role-option';
    this.grants = grantStatements(config.grantTo, {
      databases: config.databases,
      implicitAccess: config.s3Auth === 'implicit' || config.s3Endpoint !== undefined,
      controlJob,
    }).map((s) => `${s.text};`);
    if (config.verify === 'restore') {
      const where = config.verifyConnectionGiven ? '  -- on the verify-connection-string cluster' : '';
      for (const st of restoreGrantStatements(config.grantTo, {
        implicitAccess: config.s3Auth === 'implicit' || config.s3Endpoint !== undefined,
        controlJob,
      }))
        this.grants.push(`${st.text};${where}`);
    }
    const as = config.grantConnectionGiven ? config.grantConnection.user : config.connection.user;
    this.add({
      name: `GRANTs of grant-to: ${config.grantTo}`,
      state: 'passed',
      detail: `${this.grants.length} statement(s) listed below, to run as ${as}; not run by a dry run.`,
    });
  }

  private backupStatementFor(): Statement {
    const { config } = this.ctx;
    return backupStatement(this.destination!.uri, {
      databases: config.databases,
      asOf: this.capture!.literal,
      appendTo: this.plan?.kind === 'incremental' ? this.plan.fullSubdir : undefined,
      revisionHistory: config.revisionHistory,
      encryptionPassphrase: config.encryptionPassphrase,
      kmsUri: config.kmsUri,
    });
  }

  /**
   * `BEGIN; BACKUP … WITH detached; ROLLBACK`: the cluster plans the statement (privileges,
   * targets, options, licence) and writes its job record in the transaction, which the rollback
   * discards. Returns the refusal, if any.
   */
  private async statementTimeCheck(session: SqlSession): Promise<unknown> {
    const { config } = this.ctx;
    const stmt = this.backupStatementFor();
    this.show(stmt);
    const name = 'BACKUP at statement time (in a transaction rolled back)';
    let refusal: unknown;
    try {
      await session.query({ text: 'BEGIN', params: [] });
      try {
        await session.query(stmt, { clientTimeoutMs: 30_000 });
      } catch (err) {
        refusal = err ?? new Error('refused');
      }
    } catch (err) {
      this.add({ name, state: 'failed', detail: `could not open a transaction: ${this.describe(err)}` });
      return err;
    } finally {
      try {
        await session.query({ text: 'ROLLBACK', params: [] });
      } catch {
        // A dead session ends its transaction: no job either way.
        this.link.abandon();
      }
    }
    if (refusal === undefined) {
      this.add({
        name,
        state: 'passed',
        detail: 'the cluster accepted the statement; the transaction was rolled back, no job exists.',
      });
      return undefined;
    }
    const covered = config.grantTo !== undefined && config.grantTo === config.connection.user;
    if (sqlState(refusal) === '42501' && covered) {
      this.add({
        name,
        state: 'skipped',
        detail: `refused for lack of the privileges grant-to grants first: ${this.describe(refusal)}`,
      });
      return refusal;
    }
    const advice = adviceForSubmitError(refusal, { user: config.connection.user, grantTo: config.grantTo });
    this.add({
      name,
      state: 'failed',
      detail: `BACKUP was refused: ${this.describe(refusal)}`,
      ...(advice ? { fix: advice } : {}),
    });
    return refusal;
  }

  private waitCheck(v: ClusterVersion): void {
    const { config } = this.ctx;
    const name = 'Waiting for the job';
    if (!config.wait) {
      this.add({ name, state: 'skipped', detail: 'wait: false: the run submits and exits.' });
      return;
    }
    const whenComplete = versionAtLeast(v, 23, 2);
    const stmt = whenComplete
      ? whenCompleteStatement(PLACEHOLDER_JOB_ID)
      : jobByIdStatement(PLACEHOLDER_JOB_ID);
    this.show({ text: stmt.text, params: ['<job id>'] });
    this.add({
      name,
      state: 'passed',
      detail: `${whenComplete ? 'SHOW JOB WHEN COMPLETE' : 'polling crdb_internal.jobs'} (${v.tag}): every user sees its own jobs, and this user could read the jobs table.`,
    });
    if (config.cancelOnAbort || config.onTimeout === 'cancel')
      this.show(
        { text: cancelJobStatement(PLACEHOLDER_JOB_ID).text, params: ['<job id>'] },
        '  -- on abort or timeout',
      );
  }
}
