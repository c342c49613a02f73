/** The test cluster applies startup parameters as CockroachDB does: in order, `options` expanded in place. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestCluster } from './index.js';
import { startTestCluster } from './index.js';
import { parseOptions, sessionDefaults } from './startup.js';

describe('startup options', () => {
  it('parses -c, -ckey and --key forms, escaped spaces and query escapes', () => {
    expect(parseOptions('-c a=1 -cb=2 --c-d=3 -c e=x\\ y %2Dc%20f=4')).toEqual([
      { key: 'a', value: '1' },
      { key: 'b', value: '2' },
      { key: 'c_d', value: '3' },
      { key: 'e', value: 'x y' },
      { key: 'f', value: '4' },
    ]);
    expect(() => parseOptions('application_name=x')).toThrow(/must have prefix '-c' or '--'/);
    expect(() => parseOptions('-c a=b=c')).toThrow(/check '='/);
  });

  it('a later parameter wins: options after application_name replaces it', () => {
    const vars = sessionDefaults(
      new Map([
        ['user', 'root'],
        ['application_name', 'first'],
        ['options', '-c application_name=second'],
      ]),
    );
    expect(vars.get('application_name')).toBe('second');
    expect(vars.has('user')).toBe(false);
  });

  describe('through pg', () => {
    let cluster: TestCluster;
    beforeAll(async () => {
      cluster = await startTestCluster({ profile: '25.2' });
    });
    afterAll(async () => cluster?.close());

    it('pg sends options after application_name, so the session carries the name from options', async () => {
      const client = new pg.Client({
        connectionString: cluster.url('root'),
        application_name: 'from-startup',
        options: '-c application_name=from-options',
      });
      client.on('error', () => undefined);
      await client.connect();
      try {
        const { rows } = await client.query('SHOW application_name');
        expect(rows[0].application_name).toBe('from-options');
      } finally {
        await client.end();
      }
    });

    it('a malformed option refuses the connection with 08P01', async () => {
      const client = new pg.Client({ connectionString: cluster.url('root'), options: 'oops' });
      client.on('error', () => undefined);
      await expect(client.connect()).rejects.toMatchObject({ code: '08P01' });
      await client.end().catch(() => undefined);
    });
  });
});
