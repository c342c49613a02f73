/**
 * The backup URI handed to CockroachDB (with credentials: a secret), its
 * redacted twin, and the S3 settings our own reads (verify, prune) use.
 */
import type { ClusterVersion } from './cluster.js';
import type { Collection, Config } from './config.js';
import { trimSlashes } from './layout.js';

export interface BackupDestination {
  /** Full URI with credentials: register it as a secret. */
  uri: string;
  /** The same with AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN values `redacted`. */
  redacted: string;
  /** The same with placeholders for the credentials: what a RESTORE statement in the summary shows. */
  template: string;
}

export interface StorageSettings {
  bucket: string;
  /** Collection path + '/', or '' for the bucket root. */
  prefix: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** AWS_USE_PATH_STYLE is accepted from 24.1.10, 24.2.8, 24.3.3 and 25.1; earlier versions reject it as unknown. */
export function acceptsPathStyleParam(v: ClusterVersion): boolean {
  if (v.major > 25 || (v.major === 25 && v.minor >= 1)) return true;
  if (v.major === 24 && v.minor === 1) return v.patch >= 10;
  if (v.major === 24 && v.minor === 2) return v.patch >= 8;
  if (v.major === 24 && v.minor >= 3) return v.minor > 3 || v.patch >= 3;
  return false;
}

export function pathStyleWanted(config: Config): boolean {
  return config.s3PathStyle === 'true' || (config.s3PathStyle === 'auto' && config.s3Endpoint !== undefined);
}

export function buildBackupDestination(config: Config, version: ClusterVersion): BackupDestination {
  const c = config.collection;
  if (c.kind === 'external') return { uri: c.raw, redacted: c.raw, template: c.raw };
  const params: [string, string][] = [];
  const secretNames = new Set(['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']);
  if (config.s3Auth === 'implicit') {
    params.push(['AUTH', 'implicit']);
  } else {
    if (config.aws.accessKeyId) params.push(['AWS_ACCESS_KEY_ID', config.aws.accessKeyId]);
    if (config.aws.secretAccessKey) params.push(['AWS_SECRET_ACCESS_KEY', config.aws.secretAccessKey]);
    if (config.aws.sessionToken) params.push(['AWS_SESSION_TOKEN', config.aws.sessionToken]);
  }
  if (config.awsRegion) params.push(['AWS_REGION', config.awsRegion]);
  if (config.s3Endpoint) params.push(['AWS_ENDPOINT', config.s3Endpoint]);
  if (config.assumeRole) params.push(['ASSUME_ROLE', config.assumeRole]);
  // Older versions reject the parameter, and use path style with a custom endpoint anyway.
  if (pathStyleWanted(config) && acceptsPathStyleParam(version)) params.push(['AWS_USE_PATH_STYLE', 'true']);
  params.push(...c.extraParams.map(([k, v]) => [k, v] as [string, string]));
  const base = `s3://${c.bucket}${c.path ? `/${encodePath(c.path)}` : ''}`;
  const placeholders: Record<string, string> = {
    AWS_ACCESS_KEY_ID: '<key-id>',
    AWS_SECRET_ACCESS_KEY: '<secret>',
    AWS_SESSION_TOKEN: '<session-token>',
  };
  const render = (value: (k: string, v: string) => string): string => {
    if (params.length === 0) return base;
    return `${base}?${params.map(([k, v]) => `${k}=${value(k, v)}`).join('&')}`;
  };
  return {
    uri: render((_, v) => encodeURIComponent(v)),
    redacted: render((k, v) => (secretNames.has(k) ? 'redacted' : encodeURIComponent(v))),
    template: render((k, v) => placeholders[k] ?? encodeURIComponent(v)),
  };
}

function encodePath(path: string): string {
  return path
    .split('/')
    .map((seg) => encodeURIComponent(seg))
    .join('/');
}

/** The quoted URIs after `IN` (or a parenthesised list) of a CockroachDB BACKUP description. */
function destinationsOf(description: string): string[] {
  const m = /\bIN\s+(\((?:\s*'(?:[^']|'')*'\s*,?)+\)|'(?:[^']|'')*')/i.exec(description);
  if (!m) return [];
  return [...m[1]!.matchAll(/'((?:[^']|'')*)'/g)].map((x) => x[1]!.replace(/''/g, "'"));
}

/** Same scheme, bucket and path exactly (not a prefix), or the same external connection. */
export function descriptionTargetsCollection(description: string, collection: Collection): boolean {
  return destinationsOf(description).some((uri) => sameCollection(uri, collection));
}

function sameCollection(uri: string, collection: Collection): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  if (collection.kind === 'external') return url.protocol === 'external:' && url.hostname === collection.name;
  if (url.protocol !== 's3:' || url.hostname !== collection.bucket) return false;
  const path = trimSlashes(decodeURIComponent(url.pathname));
  return path === collection.path;
}

/** The `'<subdir>'` of `INTO '<subdir>' IN` ('LATEST' possible), or undefined. */
export function subdirFromDescription(description: string): string | undefined {
  const m = /\bINTO\s+'((?:[^']|'')*)'\s+IN\b/i.exec(description);
  return m ? m[1]!.replace(/''/g, "'") : undefined;
}

/** Settings for our own S3 reads; undefined for external:// collections. */
export function storageSettings(config: Config): StorageSettings | undefined {
  const c = config.collection;
  if (c.kind !== 's3') return undefined;
  const { accessKeyId, secretAccessKey, sessionToken } = config.aws;
  return {
    bucket: c.bucket,
    prefix: c.path ? `${c.path}/` : '',
    region: config.awsRegion ?? 'us-east-1',
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
    forcePathStyle: pathStyleWanted(config),
    ...(config.s3Auth === 'specified' && accessKeyId && secretAccessKey
      ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } }
      : {}),
  };
}
