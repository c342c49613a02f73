/**
 * The main step's first phases: connect (the cluster's version and what it
 * can do, and when `timeout` runs out), then grant-to.
 */
import { adviceForConnectError, withAdvice } from './advice.js';
import type { Capabilities, ClusterVersion, SqlSession } from './cluster.js';
import { capabilities, parseClusterVersion } from './cluster.js';
import type { StepContext } from './context.js';
import { errorMessage, StepFailure } from './errors.js';
import { grantStatements, restoreGrantStatements } from './sql.js';

export interface Connected {
  session: SqlSession;
  version: ClusterVersion;
  capabilities: Capabilities;
  /** When `timeout` runs out (clock milliseconds): it runs from the first statement. */
  deadline: number | undefined;
  /** False when the session does not carry the action's application_name (see checkApplicationName). */
  applicationNameCarried: boolean;
}

export async function connect(ctx: StepContext): Promise<Connected> {
  const { config } = ctx;
  let session: SqlSession;
  try {
    session = await ctx.link.withReconnect('connecting', async (s) => s, {
      budgetMs: Math.min(30_000, ctx.timings.reconnectBudgetMs),
      signal: ctx.deps.signal,
    });
  } catch (err) {
    const advice = adviceForConnectError(err);
    throw new StepFailure(
      `Could not connect to the cluster at ${config.connection.host}:${config.connection.port}: ${withAdvice(ctx.describe(err), advice)}`,
    );
  }
  const deadline = config.timeoutMs !== undefined ? ctx.deps.clock.now() + config.timeoutMs : undefined;
  const rows = await session.query({ text: 'SELECT version() AS version', params: [] });
  const text = String(rows[0]?.version ?? '');
  let version: ClusterVersion;
  try {
    version = parseClusterVersion(text);
  } catch (err) {
    throw new StepFailure(errorMessage(err));
  }
  const can = capabilities(version);
  if (can.unsupported !== undefined) throw new StepFailure(can.unsupported);
  if (can.untested !== undefined) ctx.warn(can.untested);
  ctx.report.recordVersion(version.full);
  ctx.log(
    `Connected to ${version.full} as ${config.connection.user} (application_name "${session.applicationName}").`,
  );
  const applicationNameCarried = await checkApplicationName(ctx, session);
  return { session, version, capabilities: can, deadline, applicationNameCarried };
}

/**
 * The lost-answer procedure finds the submitting session by its
 * application_name: a session that does not carry it (a pooler that drops
 * it, a server-side default) makes "no such session" meaningless, so a
 * lost answer is then never followed by a second BACKUP. True when it is carried.
 */
async function checkApplicationName(ctx: StepContext, session: SqlSession): Promise<boolean> {
  const rows = await session.query({ text: 'SHOW application_name', params: [] });
  const actual = String(rows[0]?.application_name ?? '');
  if (actual === session.applicationName) return true;
  ctx.warn(
    `The session's application_name is "${actual}", not "${session.applicationName}" (a connection pooler or proxy may not pass it on). ` +
      'Should the answer to BACKUP be lost, the step will look for the job it created but will not submit again.',
  );
  return false;
}

/** grant-to: the privileges to back up (and to restore, for verify: restore) and to cancel its jobs. */
export async function grant(ctx: StepContext, grantTo: string, can: Capabilities): Promise<void> {
  const { config } = ctx;
  const mayCancel = config.cancelOnAbort || config.onTimeout === 'cancel';
  // From 25.1 owners may cancel their own jobs, but only once the upgrade is finalized: grant anyway.
  const controlJob = !mayCancel ? 'none' : can.controlJob;
  const statements = grantStatements(grantTo, {
    databases: config.databases,
    implicitAccess: config.s3Auth === 'implicit' || config.s3Endpoint !== undefined,
    controlJob,
  });
  const link = config.grantConnectionGiven ? ctx.extraLink(config.grantConnection) : ctx.link;
  const work = statements.map((stmt) => ({ stmt, link }));
  if (config.verify === 'restore') {
    // On the verifying cluster (its own connection must then be an admin's).
    const verifier = config.verifyConnectionGiven ? ctx.verifyLink() : link;
    for (const stmt of restoreGrantStatements(grantTo, {
      implicitAccess: config.s3Auth === 'implicit' || config.s3Endpoint !== undefined,
      controlJob,
    }))
      work.push({ stmt, link: verifier });
  }
  for (const { stmt, link } of work) {
    try {
      await link.withReconnect('granting privileges', (s) => s.query(stmt), {
        budgetMs: 30_000,
        signal: ctx.deps.signal,
      });
      ctx.log(`${stmt.text}: done`);
    } catch (err) {
      throw new StepFailure(
        `grant-to: \`${stmt.text}\` failed: ${ctx.describe(err)}. The grant-connection-string user must be an admin (or hold the privilege WITH GRANT OPTION), and the role ${config.grantTo} must exist.`,
      );
    }
  }
}
