import { describe, expect, it } from 'vitest';
import { SecretRegistry } from '../../src/secrets.js';

describe('SecretRegistry', () => {
  it('masks raw, URL-encoded and form-encoded forms and scrubs them all', () => {
    const masked: string[] = [];
    const s = new SecretRegistry((v) => masked.push(v));
    s.add('a b/c+d=e&f');
    expect(masked).toEqual(
      expect.arrayContaining(['a b/c+d=e&f', 'a%20b%2Fc%2Bd%3De%26f', 'a+b%2Fc%2Bd%3De%26f']),
    );
    const text = 'raw a b/c+d=e&f enc a%20b%2Fc%2Bd%3De%26f form a+b%2Fc%2Bd%3De%26f';
    expect(s.scrub(text)).toBe('raw *** enc *** form ***');
    expect(s.contains(text)).toBe(true);
  });
  it("scrubs the form Go's url.QueryEscape gives, as CockroachDB re-encodes URIs", () => {
    const s = new SecretRegistry();
    s.add("a~b c*d!(e)'");
    expect(s.scrub('uri?AWS_SECRET_ACCESS_KEY=a~b+c%2Ad%21%28e%29%27&x=1')).toBe(
      'uri?AWS_SECRET_ACCESS_KEY=***&x=1',
    );
  });
  it('masks each line of a PEM key', () => {
    const masked: string[] = [];
    const s = new SecretRegistry((v) => masked.push(v));
    s.add(
      '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END PRIVATE KEY-----',
    );
    expect(masked).toContain('MIIEvQIBADANBgkqhkiG9w0B');
    expect(s.scrub('line AQEFAASCBKcwggSjAgEAAoIB end')).toBe('line *** end');
  });
  it('ignores empty values', () => {
    const masked: string[] = [];
    new SecretRegistry((v) => masked.push(v)).add('');
    expect(masked).toEqual([]);
  });
});
