import { describe, expect, it } from 'vitest';
import { adviceForJobError, adviceForSubmitError } from '../../src/advice.js';
import { sqlError } from '../support/fakes.js';

const licence = (feature: string): string =>
  `use of BACKUP with ${feature} requires an enterprise license. see https://cockroachlabs.com/pricing?cluster=x for details on how to enable enterprise features`;

describe('licence advice names the input to change', () => {
  const ctx = { user: 'ci' };
  it('revision_history: set revision-history false', () => {
    expect(adviceForSubmitError(sqlError('XXC02', licence('revision_history')), ctx)).toMatch(
      /revision-history: false/,
    );
  });
  it('encryption (passphrase or kms): remove the encryption inputs', () => {
    expect(adviceForSubmitError(sqlError('XXC02', licence('encryption')), ctx)).toMatch(
      /remove encryption-passphrase \/ kms-uri/,
    );
  });
  it('names the patch releases from which no licence is needed, not a wrong range', () => {
    const advice = adviceForSubmitError(sqlError('XXC02', licence('revision_history')), ctx)!;
    for (const v of ['23.1.29', '23.2.15', '24.1.7', '24.2.5', '24.3.0']) expect(advice).toContain(v);
    expect(advice).not.toMatch(/24\.3 and later need none/);
  });
  it('an incremental that failed in the job: take a full backup', () => {
    expect(adviceForJobError(licence('incremental'))).toMatch(/backup-type: full/);
  });
});
