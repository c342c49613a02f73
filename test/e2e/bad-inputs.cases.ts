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
    name: 'grant-connection-string malformed',
    inputs: { 'grant-connection-string': 'root:pw@127.0.0.1' },
    input: 'grant-connection-string',
  },
  // TLS material
  { name: 'ca-cert that is a file path', inputs: { 'ca-cert': '/etc/ssl/ca.crt' }, input: 'ca-cert' },
  { name: 'client-cert without client-key', inputs: { 'client-cert': PEM_CERT }, input: 'client-key' },
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
    name: 'collection aws:kms without key id',
    inputs: { collection: 's3://backups/p?AWS_SERVER_ENC_MODE=aws:kms' },
    input: 'collection',
  },
  {
    name: 'external collection with s3-endpoint',
    inputs: { collection: 'external://backups' },
    input: 'aws-access-key-id',
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
  { name: 'implicit auth with keys given', inputs: { 's3-auth': 'implicit' }, input: 's3-auth' },
  { name: 'unknown s3-auth', inputs: { 's3-auth': 'magic' }, input: 's3-auth' },
  { name: 'bad aws-region', inputs: { 'aws-region': 'EU West 1' }, input: 'aws-region' },
  { name: 's3-endpoint that is not a URL', inputs: { 's3-endpoint': 'not a url' }, input: 's3-endpoint' },
  {
    name: 's3-endpoint with credentials',
    inputs: { 's3-endpoint': 'http://user:pw@127.0.0.1:9000' },
    input: 's3-endpoint',
  },
  { name: 'unknown s3-path-style', inputs: { 's3-path-style': 'yes' }, input: 's3-path-style' },
  { name: 'assume-role that is not an ARN', inputs: { 'assume-role': 'my-role' }, input: 'assume-role' },
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
  // durations
  { name: 'poll-interval garbage', inputs: { 'poll-interval': 'often' }, input: 'poll-interval' },
  { name: 'poll-interval negative', inputs: { 'poll-interval': '-5s' }, input: 'poll-interval' },
  { name: 'poll-interval too short', inputs: { 'poll-interval': '10ms' }, input: 'poll-interval' },
  { name: 'timeout garbage', inputs: { timeout: '90 minutes' }, input: 'timeout' },
  { name: 'paused-timeout negative', inputs: { 'paused-timeout': '-1m' }, input: 'paused-timeout' },
  // pruning
  { name: 'prune-keep-last zero', inputs: { 'prune-keep-last': '0' }, input: 'prune-keep-last' },
  { name: 'prune-keep-last not a number', inputs: { 'prune-keep-last': 'seven' }, input: 'prune-keep-last' },
  { name: 'prune-older-than too short', inputs: { 'prune-older-than': '10s' }, input: 'prune-older-than' },
  {
    name: 'prune with verify none',
    inputs: { 'prune-keep-last': '3', verify: 'none' },
    input: 'prune-keep-last',
  },
  // size limits
  {
    name: 'an input of 64 KiB',
    inputs: { 'encryption-passphrase': 'x'.repeat(64 * 1024) },
    input: 'encryption-passphrase',
  },
];
