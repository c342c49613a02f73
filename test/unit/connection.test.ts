import { describe, expect, it } from 'vitest';
import { connectionSecrets, optionKeys } from '../../src/connection.js';
import { SecretRegistry } from '../../src/secrets.js';

describe('connection-string secrets and options, as the driver and the cluster read them', () => {
  it('the password runs to the last @, as WHATWG URL parsing (pg-connection-string too) reads it', () => {
    const found = connectionSecrets('postgresql://root:Pa55@w0rd!x@db.example.com/defaultdb');
    expect(found).toContain('Pa55@w0rd!x');
    const registry = new SecretRegistry();
    for (const s of found) registry.add(s);
    expect(registry.scrub('login with Pa55@w0rd!x failed')).toBe('login with *** failed');
  });

  it('password-like parameters are secrets too', () => {
    const found = connectionSecrets(
      'postgresql://root@db/x?password=abc123&sslpassword=def456&sslmode=disable',
    );
    expect(found).toEqual(expect.arrayContaining(['abc123', 'def456']));
    expect(found).not.toContain('disable');
  });

  it.each([
    ['-c application_name=x', ['application_name']],
    ['-capplication_name=x', ['application_name']],
    ['--Application-Name=x', ['application_name']],
    ['-c a=1 b=2', ['a']],
    ['%2Dc%20application_name%3Dx', ['application_name']],
    ['-c statement_timeout=5s --application_name=a\\ b', ['statement_timeout', 'application_name']],
  ])('options %s sets %j', (options, keys) => {
    expect(optionKeys(options)).toEqual(keys);
  });
});
