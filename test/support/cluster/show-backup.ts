/**
 * SHOW BACKUPS IN and SHOW BACKUP FROM … IN (reading the collection from the S3 server, with the
 * statement-time checks on its URI), and CREATE EXTERNAL CONNECTION.
 */
import type { Field, QueryResult } from './protocol-types.js';
import { Oid, SqlError } from './protocol-types.js';
import { JobStorage, parseDestination, passphraseHash, sanitizeUri } from './jobs.js';
import { formatTs, resolveValue, splitList } from './sqltext.js';
import type { EngineState, Session } from './engine-state.js';
import { sleep, tagOnly } from './engine-state.js';
import { checkConnectionUsage, hasSystem, isAdmin } from './privileges.js';

export function destinationFor(e: EngineState, s: Session, uri: string): JobStorage {
  checkConnectionUsage(e, s.info.user, uri);
  const dest = parseDestination(uri, e.profile, e.externalConnections);
  if (!isAdmin(e, s.info.user) && !uri.startsWith('external://')) {
    const implicit = dest.params.get('AUTH') === 'implicit' || dest.params.has('AWS_ENDPOINT');
    if (implicit && !hasSystem(e, s.info.user, 'EXTERNALIOIMPLICITACCESS')) {
      throw new SqlError(
        '42501',
        'only users with the admin role or the EXTERNALIOIMPLICITACCESS system privilege are allowed to access the specified s3 URI',
      );
    }
  }
  return new JobStorage(dest, e.profile);
}

export async function showBackups(e: EngineState, s: Session, uri: string): Promise<QueryResult> {
  const store = destinationFor(e, s, uri);
  const paths = await storageCall(() => store.fullBackups());
  // One manifest read per full backup listed.
  await sleep(e.backupReadMsPerFile * paths.length);
  return {
    fields: [{ name: 'path', typeOid: Oid.text }],
    rows: paths.map((p) => [p]),
    tag: `SELECT ${paths.length}`,
  };
}

export async function showBackup(
  e: EngineState,
  s: Session,
  subdirToken: string,
  uri: string,
  withText: string | undefined,
  params: readonly (string | null)[],
): Promise<QueryResult> {
  const store = destinationFor(e, s, uri);
  let subdir = /^LATEST$/i.test(subdirToken)
    ? await storageCall(() => store.latest())
    : resolveValue(subdirToken, params);
  if (!subdir)
    throw new SqlError('58P01', `path does not contain a completed latest backup: ${sanitizeUri(uri)}`);
  subdir = '/' + subdir.replace(/^\/+/, '');
  const opts = new Map<string, string | null>();
  for (const item of splitList(withText ?? '')) {
    const m = /^(\w+)(?:\s*=\s*(.+))?$/s.exec(item);
    if (m) opts.set(m[1]!.toLowerCase(), m[2] ? resolveValue(m[2], params) : null);
  }
  const layers = await storageCall(() => store.chain(subdir!));
  if (layers.length === 0) {
    throw new SqlError(
      'XXUUU',
      `failed to read backup from "${subdir}": path does not contain a completed backup`,
    );
  }
  const encryption = layers[0]!.manifest.encryption;
  if (encryption !== undefined) {
    const given = opts.get('encryption_passphrase');
    if (given === undefined && !opts.has('kms')) {
      throw new SqlError(
        'XXUUU',
        'file appears encrypted -- try specifying one of "encryption_passphrase" or "kms"',
      );
    }
    if (given !== undefined && passphraseHash(given ?? '') !== encryption) {
      throw new SqlError(
        'XXUUU',
        'failed to decrypt — check passphrase/key: cipher: message authentication failed',
      );
    }
  }
  const checkFiles = opts.has('check_files');
  const filesRead = layers.reduce((n, l) => n + 1 + (checkFiles ? l.manifest.files.length : 0), 0);
  await sleep(e.backupReadMsPerFile * filesRead);
  if (checkFiles) {
    const missing: string[] = [];
    for (const layer of layers) {
      const present = new Set((await storageCall(() => store.list(`${layer.folder}/`))).map((k) => k.key));
      for (const f of layer.manifest.files)
        if (!present.has(`${layer.folder}/${f.path}`)) missing.push(`${layer.folder}/${f.path}`);
    }
    if (missing.length > 0) {
      throw new SqlError(
        'XXUUU',
        `The following files are missing from the backup:\n\t${missing.slice(0, 10).join('\n\t')}`,
      );
    }
  }
  const ts = e.profile.tzTimes ? Oid.timestamptz : Oid.timestamp;
  const fields: Field[] = [
    { name: 'database_name', typeOid: Oid.text },
    { name: 'parent_schema_name', typeOid: Oid.text },
    { name: 'object_name', typeOid: Oid.text },
    { name: 'object_type', typeOid: Oid.text },
    { name: 'backup_type', typeOid: Oid.text },
    { name: 'start_time', typeOid: ts },
    { name: 'end_time', typeOid: ts },
    { name: 'size_bytes', typeOid: Oid.int8 },
    { name: 'rows', typeOid: Oid.int8 },
    { name: 'is_full_cluster', typeOid: Oid.bool },
  ];
  if (checkFiles) fields.push({ name: 'file_bytes', typeOid: Oid.int8 });
  const rows: (string | null)[][] = [];
  for (const layer of layers) {
    const m = layer.manifest;
    const objects = m.databases.length > 0 ? m.databases : [...e.databases];
    const size = m.files.reduce((n, f) => n + f.size, 0);
    for (const db of objects) {
      const row: (string | null)[] = [
        null,
        null,
        db,
        'database',
        m.kind,
        m.startMicros === '0' ? null : formatTs(BigInt(m.startMicros), e.profile.tzTimes),
        formatTs(BigInt(m.endMicros), e.profile.tzTimes),
        String(size),
        '0',
        m.isFullCluster ? 't' : 'f',
      ];
      if (checkFiles) row.push(String(size));
      rows.push(row);
    }
  }
  return { fields, rows, tag: `SELECT ${rows.length}` };
}

export async function createExternalConnection(
  e: EngineState,
  s: Session,
  name: string,
  uri: string,
): Promise<QueryResult> {
  if (!hasSystem(e, s.info.user, 'EXTERNALCONNECTION')) {
    throw new SqlError('42501', `user ${s.info.user} does not have EXTERNALCONNECTION system privilege`);
  }
  if (e.externalConnections.has(name))
    throw new SqlError(
      '42710',
      `failed to create external connection: external connection with connection name ${name} already exists`,
    );
  const store = new JobStorage(parseDestination(uri, e.profile, e.externalConnections), e.profile);
  await storageCall(async () => {
    await store.put('crdb_external_storage_location', 'check');
    await store.list('');
  });
  e.externalConnections.set(name, uri);
  // The creator owns the connection and may use it.
  e.connectionUsage.set(name, new Set([s.info.user]));
  return tagOnly('CREATE EXTERNAL CONNECTION');
}

async function storageCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SqlError) throw err;
    throw new SqlError('XXUUU', (err as Error).message);
  }
}
