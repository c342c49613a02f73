import { describe, expect, it } from 'vitest';
import {
  acceptsPathStyleParam,
  buildBackupDestination,
  descriptionTargetsCollection,
  storageSettings,
  subdirFromDescription,
} from '../../src/destination.js';
import { readConfig } from '../../src/inputs.js';
import { SecretRegistry } from '../../src/secrets.js';
import type { ClusterVersion } from '../../src/cluster.js';

const v = (tag: string): ClusterVersion => {
  const [major, minor, patch] = tag.split('.').map(Number) as [number, number, number];
  return { full: tag, major, minor, patch, tag: `v${tag}` };
};

function config(over: Record<string, string> = {}) {
  const inputs: Record<string, string> = {
    'connection-string': 'postgresql://root@127.0.0.1:26257/defaultdb',
    collection: 's3://bucket/path/to',
    'aws-access-key-id': 'AKIAEXAMPLE000000001',
    'aws-secret-access-key': 'se cret/+=&key',
    'aws-region': 'eu-west-1',
    ...over,
  };
  return readConfig((n) => inputs[n] ?? '', {}, new SecretRegistry()).config;
}

describe('acceptsPathStyleParam', () => {
  it('follows the release notes', () => {
    expect(acceptsPathStyleParam(v('24.1.9'))).toBe(false);
    expect(acceptsPathStyleParam(v('24.1.10'))).toBe(true);
    expect(acceptsPathStyleParam(v('24.2.8'))).toBe(true);
    expect(acceptsPathStyleParam(v('24.3.2'))).toBe(false);
    expect(acceptsPathStyleParam(v('24.3.3'))).toBe(true);
    expect(acceptsPathStyleParam(v('25.1.0'))).toBe(true);
    expect(acceptsPathStyleParam(v('23.2.9'))).toBe(false);
  });
});

describe('buildBackupDestination', () => {
  it('percent-encodes every value and redacts the secret in its twin', () => {
    const d = buildBackupDestination(config({ 's3-endpoint': 'http://127.0.0.1:9000' }), v('25.2.1'));
    expect(d.uri).toBe(
      's3://bucket/path/to?AWS_ACCESS_KEY_ID=AKIAEXAMPLE000000001&AWS_SECRET_ACCESS_KEY=se%20cret%2F%2B%3D%26key&AWS_REGION=eu-west-1&AWS_ENDPOINT=http%3A%2F%2F127.0.0.1%3A9000&AWS_USE_PATH_STYLE=true',
    );
    expect(d.redacted).toContain('AWS_SECRET_ACCESS_KEY=redacted');
    expect(d.redacted).not.toContain('cret');
  });
  it('gives RESTORE a template with every setting of the backup and placeholders for the credentials', () => {
    const d = buildBackupDestination(
      config({
        's3-endpoint': 'http://127.0.0.1:9000',
        'assume-role': 'arn:aws:iam::123456789012:role/backup',
        'aws-session-token': 'FwoGZXIvYXdzEXAMPLE',
      }),
      v('25.2.1'),
    );
    expect(d.template).toBe(
      's3://bucket/path/to?AWS_ACCESS_KEY_ID=<key-id>&AWS_SECRET_ACCESS_KEY=<secret>&AWS_SESSION_TOKEN=<session-token>&AWS_REGION=eu-west-1&AWS_ENDPOINT=http%3A%2F%2F127.0.0.1%3A9000&ASSUME_ROLE=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbackup&AWS_USE_PATH_STYLE=true',
    );
    expect(d.template).not.toContain('se%20cret');
  });
  it('sends AWS_USE_PATH_STYLE only to versions that accept it', () => {
    expect(buildBackupDestination(config({ 's3-endpoint': 'http://m:9000' }), v('24.1.5')).uri).not.toContain(
      'AWS_USE_PATH_STYLE',
    );
    expect(
      buildBackupDestination(
        config({ 's3-path-style': 'false', 's3-endpoint': 'http://m:9000' }),
        v('25.2.1'),
      ).uri,
    ).not.toContain('AWS_USE_PATH_STYLE');
  });
  it('uses AUTH=implicit without keys, and passes external:// through', () => {
    const implicit = buildBackupDestination(
      config({ 's3-auth': 'implicit', 'aws-access-key-id': '', 'aws-secret-access-key': '' }),
      v('25.2.1'),
    );
    expect(implicit.uri).toBe('s3://bucket/path/to?AUTH=implicit&AWS_REGION=eu-west-1');
    const ext = buildBackupDestination(
      config({
        collection: 'external://bk',
        'aws-access-key-id': '',
        'aws-secret-access-key': '',
        'aws-region': '',
      }),
      v('25.2.1'),
    );
    expect(ext.uri).toBe('external://bk');
  });
  it('gives our own S3 reads a prefix that ends in /', () => {
    expect(storageSettings(config())).toMatchObject({
      bucket: 'bucket',
      prefix: 'path/to/',
      region: 'eu-west-1',
      forcePathStyle: false,
    });
  });
});

describe('descriptions', () => {
  const c = config().collection;
  it('matches the same collection exactly, never a prefix', () => {
    const d = (uri: string) =>
      `BACKUP INTO '/2026/11/24-114045.12' IN '${uri}' AS OF SYSTEM TIME '-10s' WITH OPTIONS (detached)`;
    expect(
      descriptionTargetsCollection(
        d('s3://bucket/path/to?AWS_ACCESS_KEY_ID=x&AWS_SECRET_ACCESS_KEY=redacted'),
        c,
      ),
    ).toBe(true);
    expect(descriptionTargetsCollection(d('s3://bucket/path/to-archive?AWS_ACCESS_KEY_ID=x'), c)).toBe(false);
    expect(descriptionTargetsCollection(d('s3://bucket/path'), c)).toBe(false);
    expect(descriptionTargetsCollection(d('s3://other/path/to'), c)).toBe(false);
  });
  it('reads the subdirectory', () => {
    expect(subdirFromDescription("BACKUP INTO 'LATEST' IN 's3://b'")).toBe('LATEST');
    expect(subdirFromDescription("BACKUP DATABASE shop INTO '/2026/11/24-114045.12' IN 's3://b'")).toBe(
      '/2026/11/24-114045.12',
    );
  });
});
