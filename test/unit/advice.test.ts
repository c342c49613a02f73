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
  it('an incremental that failed in the job: take a full backup', () => {
    expect(adviceForJobError(licence('incremental'))).toMatch(/backup-type: full/);
  });
});
