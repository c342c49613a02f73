/**
 * Turn what the cluster said into what the user should do. Each function
 * returns undefined when it has nothing better to say than the error itself.
 */
import { sqlState } from './cluster.js';

export function adviceForSubmitError(
  err: unknown,
  ctx: { user: string; grantTo?: string },
): string | undefined {
  const code = sqlState(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'XXC02' || /requires an enterprise license/i.test(message)) return licenceAdvice(message);
  if (code === '42501') {
    const role = ctx.grantTo ?? ctx.user;
    if (/EXTERNALIOIMPLICITACCESS/i.test(message)) {
      return `User ${ctx.user} may not use s3-endpoint or s3-auth: implicit. As an admin run \`GRANT SYSTEM EXTERNALIOIMPLICITACCESS TO ${role};\`, or set \`grant-to: ${role}\` with an admin \`grant-connection-string\`.`;
    }
    if (/full cluster backups|BACKUP system privilege/i.test(message)) {
      return `User ${ctx.user} may not take a cluster backup. As an admin run \`GRANT SYSTEM BACKUP TO ${role};\`, or set \`grant-to: ${role}\` with an admin \`grant-connection-string\`.`;
    }
    if (/privilege/i.test(message)) {
      return `User ${ctx.user} lacks a privilege this backup needs. As an admin grant it (for databases: \`GRANT BACKUP ON DATABASE … TO ${role};\`), or set \`grant-to: ${role}\` with an admin \`grant-connection-string\`.`;
    }
  }
  if (/unknown S3 query parameters?:.*AWS_USE_PATH_STYLE/i.test(message)) {
    return 'This CockroachDB version does not know AWS_USE_PATH_STYLE. Set `s3-path-style: auto` (it is only sent to versions that accept it).';
  }
  if (/multi-statement transaction/i.test(message)) {
    return 'The connection is inside a transaction: remove any `options` that open one from connection-string.';
  }
  return undefined;
}

/**
 * Until the licence model without per-feature licence errors (23.1.29, 23.2.15, 24.1.7, 24.2.5 and
 * 24.3.0 onwards) each enterprise feature has its own licence error; say which input to change.
 */
function licenceAdvice(message: string): string {
  const add =
    'Add an enterprise licence to the cluster, or upgrade it (23.1.29, 23.2.15, 24.1.7, 24.2.5, 24.3.0 and later need none for backups), or';
  if (/with encryption/i.test(message)) return `${add} remove encryption-passphrase / kms-uri.`;
  if (/with incremental/i.test(message)) return `${add} use \`backup-type: full\`.`;
  return `${add} set \`revision-history: false\`.`;
}

export function adviceForJobError(error: string): string | undefined {
  if (/requires an enterprise license/i.test(error)) return licenceAdvice(error);
  if (/AccessDenied|SignatureDoesNotMatch|InvalidAccessKeyId|403/.test(error)) {
    return 'The cluster could not write to the bucket with the credentials it was given: check aws-access-key-id / aws-secret-access-key (or the environment that configure-aws-credentials exported), the bucket policy, and that a session token outlasts the backup.';
  }
  if (/NoSuchBucket|does not exist|no such host|lookup .* on /i.test(error)) {
    return 'The cluster could not reach the bucket: check the bucket name in collection, aws-region, s3-endpoint and s3-path-style.';
  }
  if (/does not contain a completed latest backup|No full backup exists/i.test(error)) {
    return 'There is no full backup in this collection to append to: run with `backup-type: full` (or `auto`) first.';
  }
  if (/already contains a `?BACKUP-LOCK/i.test(error) || /already contains a BACKUP_MANIFEST/i.test(error)) {
    return 'Another backup already wrote into the same folder. Use `if-running: wait` or `attach`, or run again a little later.';
  }
  if (/job canceled by user/i.test(error)) {
    return 'Someone (or something) cancelled the job on the cluster: check SHOW JOBS and the DB Console.';
  }
  return undefined;
}

/** A pg or TLS connection error with what to check. */
export function adviceForConnectError(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string } | null)?.code;
  if (code === '28P01' || code === '28000' || /password authentication failed/i.test(message)) {
    return 'Check the user and password in connection-string (or the client-cert / client-key inputs).';
  }
  if (/self[- ]signed|unable to verify|certificate|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT|CERT_/i.test(message)) {
    return 'The server certificate was not accepted: set ca-cert to the cluster CA certificate (PEM), check that the host in connection-string matches the certificate (sslmode=verify-full), or use sslmode=verify-ca.';
  }
  if (/does not support SSL/i.test(message)) {
    return 'The server does not offer TLS: use a secure cluster, or sslmode=disable only for a local test cluster.';
  }
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|timeout/i.test(message)) {
    return 'Check the host and port in connection-string and that the runner can reach the cluster (firewall, IP allow-list).';
  }
  return undefined;
}

/** The message, then the advice as a sentence of its own (the message may already end in a period). */
export function withAdvice(message: string, advice: string | undefined): string {
  return advice ? `${message.replace(/[.\s]+$/, '')}. ${advice}` : message;
}
