/**
 * The connection string as the driver and the cluster read it: every secret
 * part masked (issue 13.7), and nothing in it can take the action's
 * application_name away (issue 13.4), on the oldest and newest profiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowCommands } from '../support/action-runner.js';
import { DEFAULT_USERS } from '../support/cluster/index.js';
import type { E2eEnv } from './harness.js';
import { runScenario, startE2eEnv } from './harness.js';

/** A password with `@` and `!` written raw: the userinfo runs to the last `@`. */
const AT_PASSWORD = 'Pa55@w0rd!x';

describe.each(['22.2', '25.2'] as const)('connection string on CockroachDB %s', (profile) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({
      profile,
      users: [...DEFAULT_USERS, { name: 'atuser', password: AT_PASSWORD, admin: true }],
    });
  });
  afterAll(async () => env?.close());

  const jobsNow = () => env.cluster.jobs();

  it('a raw `@` in the password: the runner is told to mask the password pg logs in with', async () => {
    const cs = `postgresql://atuser:${AT_PASSWORD}@127.0.0.1:${env.cluster.port}/defaultdb?sslmode=disable`;
    const logStart = env.cluster.statementLog.length;
    // The harness fails the run when a secret it was given is not announced with ::add-mask::.
    const r = await runScenario(env, {
      inputs: env.inputs({ 'connection-string': cs, collection: env.collection() }),
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    // The cluster really was logged into as atuser, with the whole password.
    expect(env.cluster.statementLog.slice(logStart).some((e) => e.user === 'atuser')).toBe(true);
    expect(workflowCommands(r.stdout, 'add-mask')).toContain(AT_PASSWORD);
  });

  it('a password= parameter (pg reads it) is masked before the parameter is refused', async () => {
    const cs = `${env.cluster.url('root')}&password=${encodeURIComponent('Qu3ry-Pw-s3cret')}`;
    const logStart = env.cluster.statementLog.length;
    const r = await runScenario(env, {
      inputs: env.inputs({ 'connection-string': cs, collection: env.collection() }),
    });
    expect(r.code).not.toBe(0);
    expect(r.errors[0]).toMatch(/Input `connection-string`: has an unknown parameter "password"/);
    expect(workflowCommands(r.stdout, 'add-mask')).toContain('Qu3ry-Pw-s3cret');
    expect(env.cluster.statementLog.length).toBe(logStart);
  });

  it.each([
    '-c application_name=someone-else',
    '-capplication_name=someone-else',
    '--application-name=someone-else',
    '-c statement_timeout=0 --application_name=someone\\ else',
  ])('options=%s is refused before connecting, naming connection-string', async (options) => {
    const before = env.cluster.wire.stats.connectionsAccepted;
    const cs = env.cluster.url('root', { params: { sslmode: 'disable', options } });
    const r = await runScenario(env, {
      inputs: env.inputs({ 'connection-string': cs, collection: env.collection() }),
    });
    expect(r.code).not.toBe(0);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^Input `connection-string`: options sets application_name/);
    expect(env.cluster.wire.stats.connectionsAccepted).toBe(before);
  });

  it('other options still reach the session', async () => {
    const cs = env.cluster.url('root', { params: { sslmode: 'disable', options: '-c timezone=UTC' } });
    const r = await runScenario(env, {
      inputs: env.inputs({ 'connection-string': cs, collection: env.collection() }),
    });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.warnings.filter((w) => /application_name/.test(w))).toEqual([]);
  });

  it('a session that does not carry the application_name: a lost BACKUP answer is never followed by a second BACKUP', async () => {
    env.cluster.engine.ignoreStartupParams(['application_name']);
    env.cluster.engine.loseNextBackupBeforeJob({ lingerMs: 1000 });
    const before = jobsNow().length;
    const logStart = env.cluster.statementLog.length;
    try {
      const r = await runScenario(env, { inputs: env.inputs({ collection: env.collection() }) });
      expect(r.code).not.toBe(0);
      expect(
        r.warnings.some((w) => /The session's application_name is "", not "crdb-backup-action /.test(w)),
      ).toBe(true);
      const backups = env.cluster.statementLog.slice(logStart).filter((e) => /^BACKUP\s/i.test(e.sql));
      expect(backups).toHaveLength(1);
      expect(jobsNow()).toHaveLength(before);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(/Not submitting again, to avoid a second backup job/);
      expect(r.errors[0]).not.toMatch(/refused/);
      expect(r.summary).not.toBe('');
    } finally {
      env.cluster.engine.ignoreStartupParams([]);
    }
  });
});
