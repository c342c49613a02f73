/**
 * The e2e leak probe must itself catch every form of a secret in every place
 * it looks, and must not flag the runner's own ::add-mask:: lines.
 */
import { describe, expect, it } from 'vitest';
import type { ActionRunResult } from './action-runner.js';
import type { TestCluster } from './cluster/index.js';
import { findLeaks, findSqlLeaks, secretForms, secretsOf } from './leaks.js';

const SECRET = 's3cr~t key/with+odd*chars!';

function result(over: Partial<ActionRunResult>): ActionRunResult {
  return {
    code: 0,
    signal: null,
    stdout: '',
    stderr: '',
    outputs: {},
    outputFile: '',
    stateFile: '',
    summary: '',
    state: {},
    errors: [],
    warnings: [],
    durationMs: 0,
    killedByHarness: false,
    ...over,
  };
}

describe('leak probe', () => {
  const forms = secretForms(SECRET);

  it('knows the raw, URL-encoded, form-encoded and Go forms', () => {
    expect(forms).toEqual(
      expect.arrayContaining([
        SECRET,
        encodeURIComponent(SECRET),
        's3cr%7Et+key%2Fwith%2Bodd*chars%21',
        's3cr~t+key%2Fwith%2Bodd%2Achars%21',
      ]),
    );
  });

  const places: [string, keyof ActionRunResult][] = [
    ['stdout', 'stdout'],
    ['stderr', 'stderr'],
    ['GITHUB_OUTPUT', 'outputFile'],
    ['GITHUB_STEP_SUMMARY', 'summary'],
    ['GITHUB_STATE', 'stateFile'],
  ];
  for (const [where, field] of places) {
    it(`finds every form in ${where}`, () => {
      for (const form of forms) {
        const leaks = findLeaks(result({ [field]: `before ${form} after` }), [SECRET]);
        expect(leaks.map((l) => l.where)).toContain(where);
      }
    });
  }

  it('ignores ::add-mask:: lines and clean output', () => {
    const stdout = `::add-mask::${SECRET}\n::add-mask::${encodeURIComponent(SECRET)}\nall clean ***\n`;
    expect(findLeaks(result({ stdout, summary: '***' }), [SECRET])).toEqual([]);
  });

  it('flags a secret of the inputs that the runner was never told to mask, once masks were registered', () => {
    const stdout = `::add-mask::Pa55\nclean\n`;
    const leaks = findLeaks(result({ stdout }), ['Pa55@w0rd!x']);
    expect(leaks.map((l) => l.where)).toEqual(['::add-mask:: (never registered)']);
    // A secret the action never sees (set only on the cluster) is not its to mask.
    expect(findLeaks(result({ stdout }), ['Pa55@w0rd!x'], [])).toEqual([]);
    // No masks at all: the run ended before reading its inputs.
    expect(findLeaks(result({ stdout: 'clean\n' }), ['Pa55@w0rd!x'])).toEqual([]);
  });

  it('finds a secret in SQL text, not in bind parameters', () => {
    const log = [
      { sql: 'BACKUP INTO $1', params: [SECRET] },
      { sql: `BACKUP INTO 's3://b/p?AWS_SECRET_ACCESS_KEY=${encodeURIComponent(SECRET)}'`, params: [] },
    ];
    const cluster = { statementLog: log } as unknown as TestCluster;
    const leaks = findSqlLeaks(cluster, [SECRET]);
    expect(leaks).toHaveLength(1);
    expect(leaks[0]!.where).toMatch(/^SQL text: BACKUP INTO 's3/);
  });

  it('takes the password out of connection strings and each line of a client key', () => {
    const secrets = secretsOf({
      inputs: {
        'connection-string': 'postgresql://u:p%40ss%2Fword@h:26257/db',
        'client-key': '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----',
      },
      env: { AWS_SESSION_TOKEN: 'FwoGZXIvYXdzEXAMPLE' },
    });
    expect(secrets).toEqual(
      expect.arrayContaining(['p@ss/word', 'MIIEvQIBADANBgkqhkiG9w0B', 'FwoGZXIvYXdzEXAMPLE']),
    );
  });
});
