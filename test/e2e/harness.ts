/**
 * The one door every e2e scenario goes through: it starts the project's S3
 * server and test cluster, runs the bundle, and fails the test when any
 * secret (raw, URL-encoded or form-encoded) shows up anywhere the runner
 * would publish it, or in SQL text the cluster received.
 */
import type { ActionRunOptions, ActionRunResult, RunningAction } from '../support/action-runner.js';
import { startAction } from '../support/action-runner.js';
import type { TestCluster, TestClusterOptions } from '../support/cluster/index.js';
import { startTestCluster } from '../support/cluster/index.js';
import { findLeaks, findSqlLeaks, secretsOf } from '../support/leaks.js';
import type { S3TestServer } from '../support/s3/server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from '../support/s3/server.js';

export const BUCKET = 'backups';

export interface E2eEnv {
  s3: S3TestServer;
  cluster: TestCluster;
  /** `s3://backups/<path>` */
  collection(path?: string): string;
  /** Inputs for a working backup as root; override any of them. */
  inputs(overrides?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

export async function startE2eEnv(opts: Partial<TestClusterOptions> = {}): Promise<E2eEnv> {
  const s3 = await startS3Server({ buckets: [BUCKET] });
  let cluster: TestCluster;
  try {
    cluster = await startTestCluster({ jobDurationMs: 1500, ...opts });
  } catch (err) {
    await s3.close();
    throw err;
  }
  let n = 0;
  return {
    s3,
    cluster,
    collection: (path?: string) => `s3://${BUCKET}/${path ?? `coll-${++n}`}`,
    inputs(overrides = {}) {
      return {
        'connection-string': cluster.url('root'),
        collection: `s3://${BUCKET}/cluster`,
        'aws-access-key-id': TEST_S3_CREDENTIAL.accessKeyId,
        'aws-secret-access-key': TEST_S3_CREDENTIAL.secretAccessKey,
        'aws-region': s3.region,
        's3-endpoint': s3.endpoint,
        'poll-interval': '1s',
        ...overrides,
      };
    },
    async close() {
      await cluster.close();
      await s3.close();
    },
  };
}

export interface Scenario extends ActionRunOptions {
  /** Secrets the inputs don't show (e.g. a password set only on the cluster). */
  extraSecrets?: string[];
}

/** Start the bundle under the leak probe; `done` rejects when a secret leaked. */
export function startScenario(env: E2eEnv, scenario: Scenario): RunningAction {
  const logStart = env.cluster.statementLog.length;
  const running = startAction(scenario);
  const secrets = secretsOf(scenario, scenario.extraSecrets);
  // Only what the action was given must be masked by it; an extra secret (one held by an external
  // connection, say) must merely never show.
  const given = secretsOf(scenario);
  const done = running.done.then((result) => {
    const leaks = [...findLeaks(result, secrets, given), ...findSqlLeaks(env.cluster, secrets, logStart)];
    if (leaks.length > 0) {
      throw new Error(`secret leaked: ${leaks.map((l) => `${l.form} in ${l.where}`).join('; ')}`);
    }
    return result;
  });
  return { ...running, done };
}

export function runScenario(env: E2eEnv, scenario: Scenario): Promise<ActionRunResult> {
  return startScenario(env, scenario).done;
}

/** Poll until cond() holds, at most timeoutMs. */
export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
