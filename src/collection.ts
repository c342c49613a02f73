/**
 * Where the backup goes and how the cluster reaches it: the collection URI,
 * the AWS credentials (inputs or environment), the endpoint and the role.
 */
import type { AwsCredentials, Collection, S3Auth } from './config.js';
import { clip, InputError } from './errors.js';
import type { InputName } from './inputs.js';
import type { SecretRegistry } from './secrets.js';

type Env = Readonly<Record<string, string | undefined>>;

const DUPLICATE_PARAMS: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'aws-access-key-id',
  AWS_ENDPOINT: 's3-endpoint',
  AWS_REGION: 'aws-region',
  AUTH: 's3-auth',
  ASSUME_ROLE: 'assume-role',
  AWS_USE_PATH_STYLE: 's3-path-style',
};
const SECRET_PARAMS: Record<string, string> = {
  AWS_SECRET_ACCESS_KEY: 'aws-secret-access-key',
  AWS_SESSION_TOKEN: 'aws-session-token',
};
const ALLOWED_PARAMS = new Set(['S3_STORAGE_CLASS', 'AWS_SERVER_ENC_MODE', 'AWS_SERVER_KMS_ID']);

export function parseCollection(value: string, secrets: SecretRegistry): Collection {
  const name = 'collection';
  const examples = 'Write s3://bucket/path or external://connection_name.';
  if (value === '') throw new InputError(name, `is required. ${examples}`);
  if (/[\u0000-\u001f\u007f\s]/.test(value))
    throw new InputError(name, `contains spaces or control characters. ${examples}`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'external') {
    const m = /^external:\/\/([a-z_][a-z0-9_]*)$/i.exec(value);
    if (!m)
      throw new InputError(
        name,
        `"${clip(secrets.scrub(value))}" is not external://<name> with a plain connection name.`,
      );
    return {
      kind: 'external',
      raw: `external://${m[1]!.toLowerCase()}`,
      name: m[1]!.toLowerCase(),
      display: `external://${m[1]!.toLowerCase()}`,
    };
  }
  if (scheme !== 's3') {
    throw new InputError(
      name,
      `the ${scheme ? `${scheme}://` : 'given'} scheme is not supported by this action. ${examples}`,
    );
  }
  const [location, query = ''] = value.slice('s3://'.length).split(/\?(.*)/s, 2) as [string, string?];
  const [bucket = '', ...segments] = location.split('/');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new InputError(
      name,
      `"${clip(bucket)}" is not an S3 bucket name (3–63 lower-case letters, digits, dots and hyphens). ${examples}`,
    );
  }
  const pathSegments = segments.filter((seg, i) => !(seg === '' && i === segments.length - 1));
  for (const seg of pathSegments) {
    if (seg === '' || seg === '.' || seg === '..' || /[\\'"]/.test(seg)) {
      throw new InputError(
        name,
        `the path "${clip(pathSegments.join('/'))}" has an empty, "." or ".." segment or a quote. ${examples}`,
      );
    }
  }
  const extraParams: [string, string][] = [];
  if (query !== '') {
    for (const [key, v] of new URLSearchParams(query)) {
      if (Object.hasOwn(SECRET_PARAMS, key)) {
        throw new InputError(
          name,
          `must not carry ${key}: secrets in the collection would be printed. Put it in the ${SECRET_PARAMS[key]} input (from a secret).`,
        );
      }
      if (Object.hasOwn(DUPLICATE_PARAMS, key))
        throw new InputError(name, `must not carry ${key}: use the ${DUPLICATE_PARAMS[key]} input instead.`);
      if (!ALLOWED_PARAMS.has(key)) {
        throw new InputError(
          name,
          `has an unknown parameter "${clip(key)}". Only S3_STORAGE_CLASS, AWS_SERVER_ENC_MODE and AWS_SERVER_KMS_ID may be given there.`,
        );
      }
      extraParams.push([key, v]);
    }
    const enc = extraParams.find(([k]) => k === 'AWS_SERVER_ENC_MODE')?.[1];
    if (enc !== undefined && enc !== 'AES256' && enc !== 'aws:kms') {
      throw new InputError(name, `AWS_SERVER_ENC_MODE=${clip(enc)} is not AES256 or aws:kms.`);
    }
    if (enc === 'aws:kms' && !extraParams.some(([k]) => k === 'AWS_SERVER_KMS_ID')) {
      throw new InputError(
        name,
        'AWS_SERVER_ENC_MODE=aws:kms needs AWS_SERVER_KMS_ID in the collection query too.',
      );
    }
  }
  const path = pathSegments.join('/');
  return {
    kind: 's3',
    raw: value,
    bucket,
    path,
    extraParams,
    display: `s3://${bucket}${path ? `/${path}` : ''}`,
  };
}

export function readAwsCredentials(
  read: (n: InputName) => string,
  env: Env,
  auth: S3Auth,
  collection: Collection,
): AwsCredentials {
  // Each input defaults to its own environment variable, as action.yml says; but a session token
  // is only valid with the secret it was issued with, so the environment's goes with the environment's secret.
  const inputSecret = read('aws-secret-access-key');
  const fromInputs = read('aws-access-key-id') !== '' || inputSecret !== '';
  const accessKeyId = read('aws-access-key-id') || (env.AWS_ACCESS_KEY_ID ?? '').trim();
  const secretAccessKey = inputSecret || (env.AWS_SECRET_ACCESS_KEY ?? '').trim();
  const sessionToken = read('aws-session-token') || (inputSecret ? '' : (env.AWS_SESSION_TOKEN ?? '').trim());
  if (auth === 'implicit') {
    if (read('aws-access-key-id') || read('aws-secret-access-key') || read('aws-session-token')) {
      throw new InputError(
        's3-auth',
        'is implicit (the cluster nodes use their own IAM role), but AWS keys are given as inputs. Remove the aws-* key inputs, or set s3-auth: specified.',
      );
    }
    return { source: 'none' };
  }
  if (collection.kind === 's3') {
    if (!accessKeyId) {
      throw new InputError(
        'aws-access-key-id',
        'is required for an s3:// collection with s3-auth: specified. Set it (or run aws-actions/configure-aws-credentials first, which exports AWS_ACCESS_KEY_ID), or set s3-auth: implicit.',
      );
    }
    if (!secretAccessKey) {
      throw new InputError(
        'aws-secret-access-key',
        'is required with aws-access-key-id. Set it from a secret (or run aws-actions/configure-aws-credentials first), or set s3-auth: implicit.',
      );
    }
  }
  // S3-compatible stores use other key formats (MinIO: minioadmin): only printable ASCII is required.
  if (accessKeyId && !/^[\x21-\x7e]{3,128}$/.test(accessKeyId)) {
    throw new InputError(
      'aws-access-key-id',
      'is not an access key id: write the key id (printable characters, no spaces), e.g. AKIAIOSFODNN7EXAMPLE.',
    );
  }
  return {
    ...(accessKeyId ? { accessKeyId } : {}),
    ...(secretAccessKey ? { secretAccessKey } : {}),
    ...(sessionToken ? { sessionToken } : {}),
    source: fromInputs ? 'inputs' : accessKeyId ? 'environment' : 'none',
  };
}

export function parseEndpoint(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    new URL(value);
  } catch {
    throw new InputError(
      's3-endpoint',
      `"${clip(value)}" is not a URL. Write one such as https://minio.example.com:9000.`,
    );
  }
  // On the text as written, since that is what goes to the cluster: no credentials (@), query or fragment.
  if (!/^https?:\/\/[^/]/i.test(value) || /[?#@]/.test(value)) {
    throw new InputError(
      's3-endpoint',
      'must be an http(s):// URL without credentials, query or fragment, e.g. https://minio.example.com:9000.',
    );
  }
  return value.replace(/\/+$/, '');
}

export function parseAssumeRole(value: string): string | undefined {
  if (value === '') return undefined;
  for (const arn of value.split(',')) {
    if (!/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,128}$/.test(arn.trim())) {
      throw new InputError(
        'assume-role',
        `"${clip(arn)}" is not an IAM role ARN. Write arn:aws:iam::123456789012:role/name, or a comma-separated chain of them.`,
      );
    }
  }
  return value
    .split(',')
    .map((a) => a.trim())
    .join(',');
}
