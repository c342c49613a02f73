/**
 * The dry run's checks of what a run would back up: the backup jobs already running into the
 * collection (if-running), and a full backup or an incremental onto which one (backup-type).
 */
import type { SqlSession } from './cluster.js';
import { descriptionTargetsCollection } from './destination.js';
import type { CaptureTime } from './submit.js';
import { findRunningBackups } from './submit.js';
import type { Plan } from './plan.js';
import { PlanError, planBackup } from './plan.js';
import type { Check } from './preflight-checks.js';
import { showBackupsStatement, showBackupStatement } from './sql.js';
import type { Config } from './config.js';

type Describe = (err: unknown) => string;

export async function ifRunningCheck(
  session: SqlSession,
  config: Config,
  describe: Describe,
): Promise<Check> {
  const name = `if-running: ${config.ifRunning}`;
  try {
    const running = await findRunningBackups(session, (d) =>
      descriptionTargetsCollection(d, config.collection),
    );
    if (running.length === 0) {
      return {
        name,
        state: 'passed',
        detail: `no backup job is running into ${config.collection.display}.`,
      };
    }
    const ids = running.map((j) => `${j.jobId} (${j.status})`).join(', ');
    if (config.ifRunning === 'fail') {
      return {
        name,
        state: 'failed',
        detail: `backup job(s) ${ids} are running into ${config.collection.display}: the run would stop now.`,
        fix: 'Wait for them, or set if-running to attach, wait or start.',
      };
    }
    const what = {
      start: 'the run would start another backup anyway',
      attach: 'the run would attach to the newest of them and report it',
      wait: 'the run would wait for them, then start',
    }[config.ifRunning];
    return { name, state: 'passed', detail: `backup job(s) ${ids} are running: ${what}.` };
  } catch (err) {
    return {
      name,
      state: 'failed',
      detail: `could not read the running backup jobs: ${describe(err)}`,
    };
  }
}

/** The plan a run would make (a full backup when planning fails), and its check. */
export async function planCheck(
  session: SqlSession,
  config: Config,
  uri: string,
  capture: CaptureTime,
  describe: Describe,
): Promise<{ plan: Plan; check: Check }> {
  const name = `backup-type: ${config.backupType}`;
  if (config.backupType === 'full') {
    return {
      plan: { kind: 'full' },
      check: {
        name,
        state: 'passed',
        detail: `a new full backup into ${capture.fullSubdir} (its end time).`,
      },
    };
  }
  try {
    const plan = await planBackup({
      backupType: config.backupType,
      databases: config.databases,
      ...(config.fullBackupEveryMs !== undefined ? { fullBackupEveryMs: config.fullBackupEveryMs } : {}),
      collectionDisplay: config.collection.display,
      query: (stmt) => session.query(stmt, { clientTimeoutMs: 60_000 }),
      showBackups: showBackupsStatement(uri),
      showBackup: (subdir) =>
        showBackupStatement(uri, subdir, {
          checkFiles: false,
          encryptionPassphrase: config.encryptionPassphrase,
          kmsUri: config.kmsUri,
        }),
      log: () => undefined,
    });
    const detail =
      plan.kind === 'incremental'
        ? `an incremental onto the full backup ${plan.fullSubdir}, whose targets match.`
        : (plan.reason ?? 'a new full backup.');
    return { plan, check: { name, state: 'passed', detail } };
  } catch (err) {
    const plan: Plan = { kind: 'full' };
    if (err instanceof PlanError) {
      const [detail, ...rest] = err.message.split(/(?<=\.) (?=Run once|Set databases)/);
      return {
        plan,
        check: { name, state: 'failed', detail: detail!, ...(rest.length ? { fix: rest.join(' ') } : {}) },
      };
    }
    return {
      plan,
      check: { name, state: 'failed', detail: `could not list the collection: ${describe(err)}` },
    };
  }
}
