/**
 * The composed test cluster used by the e2e tests, the demo and the bench:
 * the CockroachDB statement engine behind the PostgreSQL wire protocol, on
 * 127.0.0.1.
 */
import { CockroachEngine } from './engine.js';
import type { JobSnapshot, StatementLogEntry, TestUser } from './engine-state.js';
import type { AuthMethod, PgWireServer } from './pgwire.js';
import { startPgWireServer } from './pgwire.js';
import { moveClusterClock, resetClusterClock } from './sqltext.js';
import type { SimulatedNode } from './external-check.js';
import type { ProfileName } from './profiles.js';
import { PROFILE_NAMES, profileFor } from './profiles.js';

export type { ProfileName, TestUser, JobSnapshot, StatementLogEntry, AuthMethod, SimulatedNode };
export { PROFILE_NAMES };

export interface TestClusterOptions {
  profile?: ProfileName;
  /** Override the full version string, e.g. to pick a patch release. */
  version?: string;
  users?: TestUser[];
  databases?: string[];
  license?: boolean;
  jobDurationMs?: number;
  whenCompleteRecheckMs?: number;
  auth?: AuthMethod;
  tls?: { cert: string; key: string; ca?: string; requestClientCert?: boolean };
  requireTls?: boolean;
  sessionLingerMs?: number;
  /** The simulated nodes of CHECK EXTERNAL CONNECTION (external-check.ts); three by default. */
  nodes?: SimulatedNode[];
}

export interface TestCluster {
  readonly host: string;
  readonly port: number;
  readonly profile: ProfileName;
  readonly version: string;
  url(
    user?: string,
    opts?: { password?: string | null; database?: string; params?: Record<string, string> },
  ): string;
  readonly wire: PgWireServer;
  readonly engine: CockroachEngine;
  jobs(): JobSnapshot[];
  readonly statementLog: readonly StatementLogEntry[];
  /** Move the cluster's clock forward (now(), job times, backup end times): days between nightly runs. */
  moveClock(byMs: number): void;
  close(): Promise<void>;
}

export const DEFAULT_USERS: TestUser[] = [
  { name: 'root', password: 'rootpw-secret', admin: true },
  { name: 'backup_user', password: 'bkp-p@ss/w0rd+x' },
];

export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  const name = opts.profile ?? '25.2';
  const patch = opts.version ? Number(/v\d+\.\d+\.(\d+)/.exec(opts.version)?.[1]) : undefined;
  const profile = profileFor(name, Number.isFinite(patch) ? patch : undefined);
  const users = opts.users ?? DEFAULT_USERS;
  const engine = new CockroachEngine({
    profile,
    ...(opts.version ? { version: opts.version } : {}),
    users,
    databases: opts.databases ?? ['defaultdb', 'shop'],
    license: opts.license ?? true,
    jobDurationMs: opts.jobDurationMs ?? 1500,
    whenCompleteRecheckMs: opts.whenCompleteRecheckMs ?? 1000,
    sessionLingerMs: opts.sessionLingerMs ?? 0,
  });
  if (opts.nodes) engine.more.externalCheck.setNodes(opts.nodes);
  const wire = await startPgWireServer({
    engine,
    auth: opts.auth ?? 'cleartext',
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.requireTls ? { requireTls: true } : {}),
  });
  return {
    host: wire.host,
    port: wire.port,
    profile: name,
    version: engine.version,
    url(user = 'root', o = {}) {
      const record = engine.users.get(user);
      const password = o.password === undefined ? record?.password : o.password;
      const auth = password
        ? `${encodeURIComponent(user)}:${encodeURIComponent(password)}`
        : encodeURIComponent(user);
      const params = new URLSearchParams(o.params ?? { sslmode: opts.tls ? 'verify-full' : 'disable' });
      return `postgresql://${auth}@127.0.0.1:${wire.port}/${encodeURIComponent(o.database ?? 'defaultdb')}?${params}`;
    },
    wire,
    engine,
    jobs: () => engine.snapshots(),
    statementLog: engine.statementLog,
    moveClock: (byMs) => moveClusterClock(byMs),
    async close() {
      resetClusterClock();
      engine.close();
      await wire.close();
    },
  };
}
