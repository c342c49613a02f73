import { describe, expect, it } from 'vitest';
import { CANCEL_DEADLINE_MS, cancelResultText, cancelWithFallback } from '../../src/cancel.js';
import type { Connector } from '../../src/cluster.js';
import type { ConnectionConfig } from '../../src/config.js';
import { scriptedConnector, sqlError } from '../support/fakes.js';

describe('cancelWithFallback', () => {
  const conn = (user: string, input = 'connection-string'): ConnectionConfig => ({
    input,
    host: '127.0.0.1',
    port: 26257,
    database: 'defaultdb',
    user,
    sslmode: 'disable',
    params: {},
  });
  const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
  const refusedError = (): Error => new Error('connect ECONNREFUSED 127.0.0.1:26257');

  const request = (connector: Connector, connections: ConnectionConfig[], totalTimeoutMs?: number) => {
    const logs: string[] = [];
    let n = 0;
    return {
      logs,
      r: {
        connector,
        jobId: '1012345678901234567',
        connections,
        applicationName: () => `test c${++n}`,
        connectTimeoutMs: 3000,
        timeoutMs: 3000,
        ...(totalTimeoutMs !== undefined ? { totalTimeoutMs } : {}),
        log: (m: string) => logs.push(m),
        describe: (e: unknown) => (e instanceof Error ? e.message : String(e)),
      },
    };
  };

  it('a pause-requested job is cancelled once it is paused, on the same connection', async () => {
    let cancels = 0;
    const { connector, requests } = scriptedConnector(async (stmt) => {
      if (stmt.text.startsWith('CANCEL') && ++cancels < 3)
        throw sqlError('XXUUU', 'job with status pause-requested cannot be requested to be canceled');
      return [];
    });
    const { r } = request(connector, [conn('backup_user')], 3000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'requested' });
    expect(cancels).toBe(3);
    expect(requests).toHaveLength(1);
  });

  it('a job still pause-requested at the deadline is reported as pausing, before the deadline', async () => {
    const { connector } = scriptedConnector(async (stmt) => {
      if (stmt.text.startsWith('CANCEL'))
        throw sqlError('XXUUU', 'job with state pause-requested cannot be requested to be canceled');
      return [];
    });
    const { r } = request(connector, [conn('backup_user')], 1000);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    expect(result).toEqual({ kind: 'pausing' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(cancelResultText(result, r.jobId, 'x', 'backup_user')).toMatch(/pausing .*STILL NEEDS A CANCEL/);
  });

  it('a reverting job is being rolled back: not reported as already ended', async () => {
    const { connector } = scriptedConnector(async (stmt) => {
      if (stmt.text.startsWith('CANCEL'))
        throw sqlError('XXUUU', 'job with status reverting cannot be requested to be canceled');
      return [];
    });
    const { r } = request(connector, [conn('backup_user')], 1000);
    const result = await cancelWithFallback(r);
    expect(result).toEqual({ kind: 'reverting' });
    expect(cancelResultText(result, r.jobId, 'x', 'backup_user')).toMatch(/already being rolled back/);
  });

  it('defaults to one deadline of about 5 s for the whole cancel', () => {
    expect(CANCEL_DEADLINE_MS).toBeGreaterThanOrEqual(3000);
    expect(CANCEL_DEADLINE_MS).toBeLessThanOrEqual(5000);
  });

  it('sends SET statement_timeout and CANCEL JOB, each bounded by what is left of the deadline', async () => {
    const c = scriptedConnector(async () => []);
    const { r } = request(c.connector, [conn('ops')], 1000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'requested' });
    expect(c.statements.map((s) => s.text)).toEqual([
      expect.stringMatching(/^SET statement_timeout/),
      expect.stringMatching(/^CANCEL JOB/),
    ]);
    expect(c.requests[0]!.connectTimeoutMs).toBeLessThanOrEqual(1000);
    for (const s of c.statements) expect(s.clientTimeoutMs).toBeLessThanOrEqual(1000);
    expect(c.closed()).toBe(1);
  });

  it('ends within the deadline when CANCEL JOB hangs, and says the job may still be running', async () => {
    const c = scriptedConnector(async (stmt) => (stmt.text.startsWith('CANCEL') ? never() : []));
    const { r } = request(c.connector, [conn('ops')], 300);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    const took = Date.now() - started;
    expect(result).toMatchObject({ kind: 'timed-out', afterMs: 300 });
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(600);
    expect(c.closed()).toBe(1);
    const text = cancelResultText(result, '1012345678901234567', 'cancel-on-abort', 'ops');
    expect(text).toMatch(/^Could not cancel within 0s/);
    expect(text).toMatch(/job 1012345678901234567 may still be running/);
    expect(text).toMatch(/CANCEL JOB 1012345678901234567;/);
  });

  it('bounds both connections together: a refusal, then a grant connection that never connects', async () => {
    const c = scriptedConnector(
      async (stmt) => {
        if (stmt.text.startsWith('CANCEL'))
          throw sqlError('42501', 'user ops does not have CONTROLJOB privilege');
        return [];
      },
      async (req) => (req.connection.user === 'root' ? never() : undefined),
    );
    const { r, logs } = request(c.connector, [conn('ops'), conn('root', 'grant-connection-string')], 400);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    expect(Date.now() - started).toBeLessThan(700);
    expect(result.kind).toBe('timed-out');
    expect(logs).toEqual([expect.stringMatching(/refused; retrying on grant-connection-string/)]);
    // The grant connection got only what was left, not its own full connect timeout.
    expect(c.requests[1]!.connectTimeoutMs).toBeLessThanOrEqual(400);
  });

  it('retries a refused connection until the cluster answers, inside the deadline', async () => {
    const c = scriptedConnector(
      async () => [],
      async (_req, n) => {
        if (n <= 2) throw refusedError();
      },
    );
    const { r } = request(c.connector, [conn('ops')], 3000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'requested' });
    expect(c.requests).toHaveLength(3);
  });

  it('gives up on refused connections at the deadline, naming the last error', async () => {
    const c = scriptedConnector(
      async () => [],
      async () => {
        throw refusedError();
      },
    );
    const { r } = request(c.connector, [conn('ops')], 1200);
    const started = Date.now();
    const result = await cancelWithFallback(r);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(result).toMatchObject({ kind: 'timed-out', last: expect.stringMatching(/ECONNREFUSED/) });
    expect(c.requests.length).toBeGreaterThan(1);
    expect(cancelResultText(result, '42', 'x', 'ops')).toMatch(
      /^Could not cancel within 1s \(connect ECONNREFUSED[^)]*\): job 42 may still be running/,
    );
  });

  it('does not retry an answer from the server', async () => {
    const c = scriptedConnector(async (stmt) => {
      if (stmt.text.startsWith('CANCEL'))
        throw sqlError('XXUUU', 'job with status succeeded cannot be requested to be canceled');
      return [];
    });
    const { r } = request(c.connector, [conn('ops')], 3000);
    expect(await cancelWithFallback(r)).toEqual({ kind: 'already-finished', status: 'succeeded' });
    expect(c.requests).toHaveLength(1);
  });
});
