import { describe, expect, it } from 'vitest';
import { errorLine, errorMessage } from '../../src/errors.js';
import { SecretRegistry } from '../../src/secrets.js';

describe('errorLine', () => {
  it('scrubs pg fields and the raw URI CockroachDB embeds in one error', () => {
    const s = new SecretRegistry();
    s.add('s3://b/p?AWS_SECRET_ACCESS_KEY=top%2Fsecret');
    s.add('top/secret');
    const err = Object.assign(
      new Error('A full backup already exists in s3://b/p?AWS_SECRET_ACCESS_KEY=top%2Fsecret'),
      {
        code: '42C01',
        detail: 'key top/secret',
      },
    );
    const text = errorLine(err, s);
    expect(text).not.toContain('top');
    expect(text).toContain('[SQLSTATE 42C01]');
  });

  it('puts pg detail, hint and SQLSTATE after the message, unscrubbed without the registry', () => {
    const err = Object.assign(new Error('permission denied'), {
      code: '42501',
      detail: 'user u',
      hint: 'grant it',
    });
    expect(errorLine(err)).toBe('permission denied (user u) hint: grant it [SQLSTATE 42501]');
  });
  it('names an error without a message, and prints a non-error as it is', () => {
    expect(errorLine(new TypeError(''))).toBe('TypeError');
    expect(errorLine('plain text')).toBe('plain text');
    expect(errorLine({ code: '42501' })).toBe('[object Object]');
  });
  it('leaves a code that is not a SQLSTATE out', () => {
    expect(errorLine(Object.assign(new Error('gone'), { code: 'ECONNRESET' }))).toBe('gone');
  });
});

describe('errorMessage', () => {
  it("is the message alone, without the server's detail and SQLSTATE", () => {
    const err = Object.assign(new Error('relation does not exist'), { code: '42P01', detail: 'd' });
    expect(errorMessage(err)).toBe('relation does not exist');
    expect(errorMessage(new Error(''))).toBe('');
    expect(errorMessage(42)).toBe('42');
  });
});
