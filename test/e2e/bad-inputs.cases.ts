/**
 * One rejected case per rule of the input grammar (docs/inputs.md). Each case
 * overrides a working set of inputs so that only the named rule fails; the
 * `input` is what the single `::error::` must name.
 */
export interface BadInputCase {
  name: string;
  inputs: Record<string, string>;
  env?: Record<string, string>;
  input: string;
}

export const VALID_BASE_INPUTS_KEYS = [
  'connection-string',
  'collection',
  'aws-access-key-id',
  'aws-secret-access-key',
  'aws-region',
  's3-endpoint',
];

const PEM_CERT = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUX\n-----END CERTIFICATE-----';
const PEM_KEY = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----';
/** An external:// collection with every storage input of the working set cleared. */
const EXTERNAL_ONLY = {
  collection: 'external://backups',
  'aws-access-key-id': '',
  'aws-secret-access-key': '',
  'aws-region': '',
  's3-endpoint': '',
};
/** About 5000 characters of valid, distinct database names. */
const MANY_DATABASES = Array.from({ length: 850 }, (_, i) => `db${i}`).join(',');

export const BAD_INPUT_CASES: BadInputCase[] = [
  // connection-string
  { name: 'connection-string missing', inputs: { 'connection-string': '' }, input: 'connection-string' },
  {
    name: 'connection-string with another scheme',
    inputs: { 'connection-string': 'mysql://root@127.0.0.1:26257/db' },
    input: 'connection-string',
  },
  {
    name: 'connection-string without user',
    inputs: { 'connection-string': 'postgresql://127.0.0.1:26257/db' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with bad port',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:99999/db' },
    input: 'connection-string',
  },
  {
    name: 'connection-string unknown sslmode',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/db?sslmode=maybe' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with sslrootcert file',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/db?sslrootcert=/tmp/ca.crt' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with application_name',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/db?application_name=x' },
    input: 'connection-string',
  },
  {
    name: 'connection-string unknown parameter',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/db?foo=bar' },
    input: 'connection-string',
  },
  {
    name: 'connection-string without host',
    inputs: { 'connection-string': 'postgresql:///defaultdb' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with port 0',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:0/db' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with a slash in the database name',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/a%2Fb' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with a non-numeric connect_timeout',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/db?connect_timeout=10s' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with sslcert file',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/db?sslcert=/tmp/client.crt' },
    input: 'connection-string',
  },
  {
    name: 'connection-string with sslkey file',
    inputs: { 'connection-string': 'postgresql://root@127.0.0.1:26257/db?sslkey=/tmp/client.key' },
    input: 'connection-string',
  },
  {
    name: 'grant-connection-string malformed',
    inputs: { 'grant-connection-string': 'root:pw@127.0.0.1' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string with another scheme',
    inputs: { 'grant-connection-string': 'mysql://root@127.0.0.1:26257/db' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string that is not a URL',
    inputs: { 'grant-connection-string': 'postgresql://root@127.0.0.1:99999/db' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string without host',
    inputs: { 'grant-connection-string': 'postgresql:///defaultdb' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string without user',
    inputs: { 'grant-connection-string': 'postgresql://127.0.0.1:26257/db' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string with port 0',
    inputs: { 'grant-connection-string': 'postgresql://root@127.0.0.1:0/db' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string with a slash in the database name',
    inputs: { 'grant-connection-string': 'postgresql://root@127.0.0.1:26257/a%2Fb' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string unknown sslmode',
    inputs: { 'grant-connection-string': 'postgresql://root@127.0.0.1:26257/db?sslmode=maybe' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string with sslrootcert file',
    inputs: { 'grant-connection-string': 'postgresql://root@127.0.0.1:26257/db?sslrootcert=/tmp/ca.crt' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string with application_name',
    inputs: { 'grant-connection-string': 'postgresql://root@127.0.0.1:26257/db?application_name=x' },
    input: 'grant-connection-string',
  },
  {
    name: 'grant-connection-string unknown parameter',
    inputs: { 'grant-connection-string': 'postgresql://root@127.0.0.1:26257/db?foo=bar' },
    input: 'grant-connection-string',
  },
  // TLS material
  { name: 'ca-cert that is a file path', inputs: { 'ca-cert': '/etc/ssl/ca.crt' }, input: 'ca-cert' },
  { name: 'client-cert without client-key', inputs: { 'client-cert': PEM_CERT }, input: 'client-key' },
  { name: 'client-key without client-cert', inputs: { 'client-key': PEM_KEY }, input: 'client-cert' },
  {
    name: 'client-cert that is not a certificate',
    inputs: { 'client-cert': 'not a cert', 'client-key': PEM_KEY },
    input: 'client-cert',
  },
  {
    name: 'ca-cert that is a private key',
    inputs: { 'ca-cert': PEM_KEY },
    input: 'ca-cert',
  },
  {
    name: 'client-key that is not a key',
    inputs: { 'client-cert': PEM_CERT, 'client-key': 'not a key' },
    input: 'client-key',
  },
  // collection
  { name: 'collection missing', inputs: { collection: '' }, input: 'collection' },
  { name: 'collection with gs:// scheme', inputs: { collection: 'gs://bucket/path' }, input: 'collection' },
  {
    name: 'collection with a bad bucket name',
    inputs: { collection: 's3://Bad_Bucket/path' },
    input: 'collection',
  },
  { name: 'collection without a scheme', inputs: { collection: 'backups/path' }, input: 'collection' },
  { name: 'collection with a space', inputs: { collection: 's3://backups/my path' }, input: 'collection' },
  {
    name: 'collection with a control character',
    inputs: { collection: 's3://backups/a\u0007b' },
    input: 'collection',
  },
  {
    name: 'collection with a short bucket name',
    inputs: { collection: 's3://ab/path' },
    input: 'collection',
  },
  {
    name: 'collection with .. in the bucket name',
    inputs: { collection: 's3://back..ups/path' },
    input: 'collection',
  },
  {
    name: 'collection with an empty path segment',
    inputs: { collection: 's3://backups/a//b' },
    input: 'collection',
  },
  {
    name: 'collection with . in the path',
    inputs: { collection: 's3://backups/a/./b' },
    input: 'collection',
  },
  {
    name: 'collection with a quoted path segment',
    inputs: { collection: 's3://backups/a/"b"' },
    input: 'collection',
  },
  {
    name: "collection with ' in the path",
    inputs: { collection: "s3://backups/a'b" },
    input: 'collection',
  },
  {
    name: 'collection with .. in the path',
    inputs: { collection: 's3://backups/a/../b' },
    input: 'collection',
  },
  {
    name: 'collection carrying AWS_SECRET_ACCESS_KEY',
    inputs: { collection: 's3://backups/p?AWS_SECRET_ACCESS_KEY=sup3r/s3cret+key' },
    input: 'collection',
  },
  {
    name: 'collection carrying AWS_SESSION_TOKEN',
    inputs: { collection: 's3://backups/p?AWS_SESSION_TOKEN=tok3n-value' },
    input: 'collection',
  },
  {
    name: 'collection duplicating aws-access-key-id',
    inputs: { collection: 's3://backups/p?AWS_ACCESS_KEY_ID=AKIAX' },
    input: 'collection',
  },
  {
    name: 'collection duplicating s3-endpoint',
    inputs: { collection: 's3://backups/p?AWS_ENDPOINT=http://x' },
    input: 'collection',
  },
  {
    name: 'collection duplicating aws-region',
    inputs: { collection: 's3://backups/p?AWS_REGION=us-east-1' },
    input: 'collection',
  },
  {
    name: 'collection duplicating s3-auth',
    inputs: { collection: 's3://backups/p?AUTH=implicit' },
    input: 'collection',
  },
  {
    name: 'collection duplicating assume-role',
    inputs: { collection: 's3://backups/p?ASSUME_ROLE=arn:aws:iam::123456789012:role/x' },
    input: 'collection',
  },
  {
    name: 'collection duplicating s3-path-style',
    inputs: { collection: 's3://backups/p?AWS_USE_PATH_STYLE=true' },
    input: 'collection',
  },
  {
    name: 'collection with an unknown parameter',
    inputs: { collection: 's3://backups/p?FOO=1' },
    input: 'collection',
  },
  {
    name: 'collection with an unknown AWS_SERVER_ENC_MODE',
    inputs: { collection: 's3://backups/p?AWS_SERVER_ENC_MODE=DES' },
    input: 'collection',
  },
  {
    name: 'collection aws:kms without key id',
    inputs: { collection: 's3://backups/p?AWS_SERVER_ENC_MODE=aws:kms' },
    input: 'collection',
  },
  {
    name: 'external collection with aws-access-key-id',
    inputs: { collection: 'external://backups' },
    input: 'aws-access-key-id',
  },
  {
    name: 'external collection with s3-endpoint',
    inputs: { ...EXTERNAL_ONLY, 's3-endpoint': 'http://127.0.0.1:9000' },
    input: 's3-endpoint',
  },
  {
    name: 'external collection with aws-region',
    inputs: { ...EXTERNAL_ONLY, 'aws-region': 'us-east-1' },
    input: 'aws-region',
  },
  {
    name: 'external collection with s3-path-style',
    inputs: { ...EXTERNAL_ONLY, 's3-path-style': 'true' },
    input: 's3-path-style',
  },
  {
    name: 'external collection with s3-auth implicit',
    inputs: { ...EXTERNAL_ONLY, 's3-auth': 'implicit' },
    input: 's3-auth',
  },
  {
    name: 'external collection with prune-older-than',
    inputs: { ...EXTERNAL_ONLY, 'prune-older-than': '30d' },
    input: 'prune-older-than',
  },
  {
    name: 'external collection with prune-keep-last',
    inputs: {
      collection: 'external://backups',
      'aws-access-key-id': '',
      'aws-secret-access-key': '',
      'aws-region': '',
      's3-endpoint': '',
      'prune-keep-last': '3',
    },
    input: 'prune-keep-last',
  },
  {
    name: 'external collection name with a quote',
    inputs: { collection: "external://bk'; DROP" },
    input: 'collection',
  },
  {
    name: 'external collection name that is not plain',
    inputs: { collection: 'external://bk-1' },
    input: 'collection',
  },
  // credentials and storage
  {
    name: 'specified auth without a secret',
    inputs: { 'aws-secret-access-key': '' },
    input: 'aws-secret-access-key',
  },
  {
    name: 'specified auth without any key',
    inputs: { 'aws-access-key-id': '', 'aws-secret-access-key': '' },
    input: 'aws-access-key-id',
  },
  {
    name: 'access key id with spaces',
    inputs: { 'aws-access-key-id': 'AKIA WITH SPACE' },
    input: 'aws-access-key-id',
  },
  { name: 'access key id too short', inputs: { 'aws-access-key-id': 'AK' }, input: 'aws-access-key-id' },
  { name: 'implicit auth with keys given', inputs: { 's3-auth': 'implicit' }, input: 's3-auth' },
  { name: 'unknown s3-auth', inputs: { 's3-auth': 'magic' }, input: 's3-auth' },
  { name: 'bad aws-region', inputs: { 'aws-region': 'EU West 1' }, input: 'aws-region' },
  {
    name: 'bad AWS_REGION from the environment',
    inputs: { 'aws-region': '' },
    env: { AWS_REGION: 'EU West 1' },
    input: 'aws-region',
  },
  { name: 's3-endpoint that is not a URL', inputs: { 's3-endpoint': 'not a url' }, input: 's3-endpoint' },
  {
    name: 's3-endpoint with ftp://',
    inputs: { 's3-endpoint': 'ftp://127.0.0.1:9000' },
    input: 's3-endpoint',
  },
  {
    name: 's3-endpoint without //',
    inputs: { 's3-endpoint': 'http:127.0.0.1:9000' },
    input: 's3-endpoint',
  },
  {
    name: 's3-endpoint with a query',
    inputs: { 's3-endpoint': 'http://127.0.0.1:9000/?x=1' },
    input: 's3-endpoint',
  },
  {
    name: 's3-endpoint with a fragment',
    inputs: { 's3-endpoint': 'http://127.0.0.1:9000/#f' },
    input: 's3-endpoint',
  },
  {
    name: 's3-endpoint with an empty query or user part',
    inputs: { 's3-endpoint': 'http://@127.0.0.1:9000/?' },
    input: 's3-endpoint',
  },
  {
    name: 's3-endpoint with credentials',
    inputs: { 's3-endpoint': 'http://user:pw@127.0.0.1:9000' },
    input: 's3-endpoint',
  },
  { name: 'unknown s3-path-style', inputs: { 's3-path-style': 'yes' }, input: 's3-path-style' },
  { name: 'assume-role that is not an ARN', inputs: { 'assume-role': 'my-role' }, input: 'assume-role' },
  {
    name: 'assume-role chain with a bad link',
    inputs: { 'assume-role': 'arn:aws:iam::123456789012:role/a,my-role' },
    input: 'assume-role',
  },
  // backup shape
  { name: 'unknown backup-type', inputs: { 'backup-type': 'differential' }, input: 'backup-type' },
  {
    name: 'databases with a semicolon',
    inputs: { databases: 'shop; DROP DATABASE shop' },
    input: 'databases',
  },
  { name: 'databases with an unclosed quote', inputs: { databases: '"shop' }, input: 'databases' },
  { name: 'databases with a newline', inputs: { databases: '"a\nb"' }, input: 'databases' },
  { name: 'databases listed twice', inputs: { databases: 'shop, SHOP' }, input: 'databases' },
  { name: 'databases with an empty name', inputs: { databases: 'shop,,x' }, input: 'databases' },
  { name: 'databases of 64 KiB', inputs: { databases: 'a'.repeat(64 * 1024) }, input: 'databases' },
  { name: 'databases over 4096 characters', inputs: { databases: MANY_DATABASES }, input: 'databases' },
  {
    name: 'databases with a name over 128 bytes',
    inputs: { databases: 'a'.repeat(129) },
    input: 'databases',
  },
  {
    name: 'databases with a quoted name over 128 bytes',
    inputs: { databases: `"${'é'.repeat(65)}"` },
    input: 'databases',
  },
  { name: 'databases with an empty quoted name', inputs: { databases: 'shop,""' }, input: 'databases' },
  {
    name: 'databases with text after a quoted name',
    inputs: { databases: '"shop" x' },
    input: 'databases',
  },
  // as-of-system-time
  {
    name: 'AOST SQL injection',
    inputs: { 'as-of-system-time': "-10s'; DROP DATABASE shop; --" },
    input: 'as-of-system-time',
  },
  { name: 'AOST positive interval', inputs: { 'as-of-system-time': '10s' }, input: 'as-of-system-time' },
  { name: 'AOST zero interval', inputs: { 'as-of-system-time': '-0s' }, input: 'as-of-system-time' },
  {
    name: 'AOST function call',
    inputs: { 'as-of-system-time': 'follower_read_timestamp()' },
    input: 'as-of-system-time',
  },
  { name: 'AOST garbage', inputs: { 'as-of-system-time': 'yesterday' }, input: 'as-of-system-time' },
  {
    name: 'AOST more than a week back',
    inputs: { 'as-of-system-time': '-169h' },
    input: 'as-of-system-time',
  },
  {
    name: 'AOST in the future',
    inputs: { 'as-of-system-time': '2999-01-01 00:00:00' },
    input: 'as-of-system-time',
  },
  {
    name: 'AOST impossible date',
    inputs: { 'as-of-system-time': '2026-02-30 10:00:00' },
    input: 'as-of-system-time',
  },
  // booleans and enums
  {
    name: 'revision-history garbage boolean',
    inputs: { 'revision-history': 'yes' },
    input: 'revision-history',
  },
  { name: 'wait garbage boolean', inputs: { wait: 'TRUE!' }, input: 'wait' },
  { name: 'cancel-on-abort garbage boolean', inputs: { 'cancel-on-abort': '1' }, input: 'cancel-on-abort' },
  { name: 'summary garbage boolean', inputs: { summary: 'on' }, input: 'summary' },
  { name: 'prune-dry-run garbage boolean', inputs: { 'prune-dry-run': 'maybe' }, input: 'prune-dry-run' },
  { name: 'dry-run garbage boolean', inputs: { 'dry-run': 'yes' }, input: 'dry-run' },
  { name: 'unknown on-timeout', inputs: { 'on-timeout': 'ignore' }, input: 'on-timeout' },
  { name: 'unknown if-running', inputs: { 'if-running': 'queue' }, input: 'if-running' },
  { name: 'unknown verify', inputs: { verify: 'full' }, input: 'verify' },
  // encryption and grants
  {
    name: 'passphrase and kms together',
    inputs: {
      'encryption-passphrase': 'pass phrase 1',
      'kms-uri': 'aws-kms:///arn:aws:kms:us-east-1:123456789012:key/x?AUTH=implicit',
    },
    input: 'kms-uri',
  },
  { name: 'kms-uri with an unknown scheme', inputs: { 'kms-uri': 'vault://key' }, input: 'kms-uri' },
  { name: 'grant-to injection', inputs: { 'grant-to': 'ci; DROP ROLE admin' }, input: 'grant-to' },
  { name: 'grant-to with quotes', inputs: { 'grant-to': '"ci"' }, input: 'grant-to' },
  { name: 'grant-to with a space', inputs: { 'grant-to': 'backup user' }, input: 'grant-to' },
  { name: 'grant-to over 63 bytes', inputs: { 'grant-to': 'a'.repeat(64) }, input: 'grant-to' },
  // durations
  { name: 'poll-interval garbage', inputs: { 'poll-interval': 'often' }, input: 'poll-interval' },
  { name: 'poll-interval negative', inputs: { 'poll-interval': '-5s' }, input: 'poll-interval' },
  { name: 'poll-interval too short', inputs: { 'poll-interval': '10ms' }, input: 'poll-interval' },
  { name: 'poll-interval too long', inputs: { 'poll-interval': '11m' }, input: 'poll-interval' },
  { name: 'timeout garbage', inputs: { timeout: '90 minutes' }, input: 'timeout' },
  { name: 'timeout with a space', inputs: { timeout: '1h 30m' }, input: 'timeout' },
  { name: 'timeout zero', inputs: { timeout: '0' }, input: 'timeout' },
  { name: 'paused-timeout negative', inputs: { 'paused-timeout': '-1m' }, input: 'paused-timeout' },
  { name: 'paused-timeout too short', inputs: { 'paused-timeout': '500ms' }, input: 'paused-timeout' },
  { name: 'paused-timeout in weeks', inputs: { 'paused-timeout': '2w' }, input: 'paused-timeout' },
  // pruning
  { name: 'prune-keep-last zero', inputs: { 'prune-keep-last': '0' }, input: 'prune-keep-last' },
  { name: 'prune-keep-last not a number', inputs: { 'prune-keep-last': 'seven' }, input: 'prune-keep-last' },
  {
    name: 'full-backup-every garbage',
    inputs: { 'backup-type': 'auto', 'full-backup-every': 'weekly' },
    input: 'full-backup-every',
  },
  {
    name: 'full-backup-every too short',
    inputs: { 'backup-type': 'auto', 'full-backup-every': '30s' },
    input: 'full-backup-every',
  },
  {
    name: 'full-backup-every without backup-type auto',
    inputs: { 'backup-type': 'incremental', 'full-backup-every': '7d' },
    input: 'full-backup-every',
  },
  { name: 'prune-older-than garbage', inputs: { 'prune-older-than': 'old' }, input: 'prune-older-than' },
  { name: 'prune-older-than too short', inputs: { 'prune-older-than': '10s' }, input: 'prune-older-than' },
  {
    name: 'prune with verify none',
    inputs: { 'prune-keep-last': '3', verify: 'none' },
    input: 'prune-keep-last',
  },
  {
    name: 'prune-older-than with verify none',
    inputs: { 'prune-older-than': '30d', verify: 'none' },
    input: 'prune-older-than',
  },
  // size limits
  {
    name: 'an input of 64 KiB',
    inputs: { 'encryption-passphrase': 'x'.repeat(64 * 1024) },
    input: 'encryption-passphrase',
  },
];
