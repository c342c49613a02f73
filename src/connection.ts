/**
 * The connection-string inputs (connection-string, grant-connection-string,
 * verify-connection-string) and the TLS inputs, read as libpq, pg and
 * CockroachDB read them; and the secrets a connection string carries.
 */
import type { ConnectionConfig, SslMode } from './config.js';
import { clip, InputError } from './errors.js';

/** Query parameters that carry a secret in libpq's and pg's vocabulary (password, sslpassword, sslkey…). */
const SECRET_PARAM = /pass|secret|token|key/i;

/**
 * Every secret part of a connection string, as the driver reads it: the
 * password is the userinfo up to the LAST `@` (WHATWG URL parsing, which both
 * this action's parser and pg-connection-string use), so
 * `postgresql://root:Pa55@w0rd!x@host/db` logs in with `Pa55@w0rd!x`. pg also
 * takes `?password=` and `?sslpassword=`; they are rejected below, but their
 * values are masked first, as is the userinfo before the first `@` that a
 * reader might take for the password.
 */
export function connectionSecrets(connectionString: string): string[] {
  const found: string[] = [];
  const naive = /^[a-z]+:\/\/[^:@/]*:([^@/]*)@/i.exec(connectionString);
  if (naive) found.push(naive[1]!, safeDecode(naive[1]!));
  try {
    const url = new URL(connectionString);
    if (url.password) found.push(url.password, connectionPassword(url));
    for (const [key, value] of url.searchParams) if (SECRET_PARAM.test(key)) found.push(value);
  } catch {
    // Not a URL: the whole string is registered as the secret.
  }
  return [...new Set(found.filter((v) => v !== ''))];
}

/** The password handed to the driver: the URL's userinfo password, percent-decoded. */
function connectionPassword(url: URL): string {
  return safeDecode(url.password);
}

export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
const FILE_PARAMS: Record<string, string> = {
  sslrootcert: 'ca-cert',
  sslcert: 'client-cert',
  sslkey: 'client-key',
};
const PASSED_PARAMS = new Set(['options', 'connect_timeout']);

export function parseConnectionString(
  value: string,
  name: string,
  tls: { caCert?: string; clientCert?: string; clientKey?: string },
  required: boolean,
): ConnectionConfig | undefined {
  const example = 'postgresql://user:password@host:26257/defaultdb?sslmode=verify-full';
  if (value === '') {
    if (!required) return undefined;
    throw new InputError(name, `is required. Write a connection URL such as ${example}, from a secret.`);
  }
  if (!/^postgres(ql)?:\/\//i.test(value)) {
    throw new InputError(name, `must be a postgresql:// URL. Write one such as ${example}, from a secret.`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InputError(
      name,
      `is not a valid URL (characters such as @, : or / in the password must be percent-encoded). Write one such as ${example}.`,
    );
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new InputError(name, `has no host. Write one such as ${example}.`);
  const user = safeDecode(url.username);
  if (!user) throw new InputError(name, `has no user name. Write one such as ${example}.`);
  const port = url.port ? Number(url.port) : 26257;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InputError(name, `has an invalid port. Write e.g. :26257.`);
  const database = safeDecode(url.pathname.replace(/^\//, '')) || 'defaultdb';
  if (/[\u0000-\u001f/]/.test(database))
    throw new InputError(name, `has an invalid database name in its path.`);
  const params: Record<string, string> = {};
  let sslmode: SslMode | undefined;
  for (const [key, v] of url.searchParams) {
    if (key === 'sslmode') {
      if (!(SSL_MODES as readonly string[]).includes(v)) {
        throw new InputError(
          name,
          `sslmode=${clip(v)} is not a libpq sslmode. Write one of ${SSL_MODES.join(', ')} (verify-full recommended).`,
        );
      }
      sslmode = v as SslMode;
    } else if (Object.hasOwn(FILE_PARAMS, key)) {
      throw new InputError(
        name,
        `${key} points to a file, which the runner does not have. Remove it and put the PEM text in the ${FILE_PARAMS[key]} input instead.`,
      );
    } else if (key === 'application_name') {
      throw new InputError(
        name,
        `application_name is set by the action itself (so the DBA sees the workflow run). Remove it.`,
      );
    } else if (key === 'options' && optionKeys(v).includes('application_name')) {
      // The server applies startup parameters in order and pg sends options after application_name,
      // so this would replace the name the lost-answer procedure looks the submitting session up by.
      throw new InputError(
        name,
        `options sets application_name, which the action sets itself (so the DBA sees the workflow run, and a lost BACKUP answer can be traced to its session). Remove it from options.`,
      );
    } else if (key === 'connect_timeout' && !/^\d{1,4}$/.test(v)) {
      throw new InputError(
        name,
        `connect_timeout=${clip(v)} is not a number of seconds. Write e.g. connect_timeout=10, or remove it.`,
      );
    } else if (PASSED_PARAMS.has(key)) {
      params[key] = v;
    } else {
      throw new InputError(
        name,
        `has an unknown parameter "${clip(key)}". Remove it; supported: sslmode, options, connect_timeout.`,
      );
    }
  }
  const password = url.password ? connectionPassword(url) : undefined;
  return {
    input: name,
    host,
    port,
    database,
    user,
    ...(password !== undefined ? { password } : {}),
    sslmode: sslmode ?? (tls.caCert !== undefined ? 'verify-full' : 'prefer'),
    ...(tls.caCert !== undefined ? { caCert: tls.caCert } : {}),
    ...(tls.clientCert !== undefined ? { clientCert: tls.clientCert, clientKey: tls.clientKey } : {}),
    params,
  };
}

/**
 * The session variables an `options` startup parameter sets, read as
 * CockroachDB reads it (pkg/sql/pgwire/pre_serve_options.go, parseOptions):
 * query-unescaped, split on unescaped spaces, each `-c key=value`,
 * `-ckey=value` or `--key=value`, the key lower-cased with `-` read as `_`.
 * Malformed options are left for the server to refuse.
 */
export function optionKeys(options: string): string[] {
  let raw: string;
  try {
    raw = decodeURIComponent(options.replace(/\+/g, ' '));
  } catch {
    return [];
  }
  const words: string[] = [];
  for (const m of raw.matchAll(/(?:\\.|[^\s\\])+/gs)) words.push(m[0].replace(/\\(.)/gs, '$1'));
  const keys: string[] = [];
  for (let i = 0; i < words.length; i++) {
    let word = words[i]!;
    if (word === '-c') word = words[++i] ?? '';
    else if (word.startsWith('--') || word.startsWith('-c')) word = word.slice(2);
    else continue;
    const eq = word.indexOf('=');
    if (eq > 0) keys.push(word.slice(0, eq).toLowerCase().replace(/-/g, '_'));
  }
  return keys;
}

export function transportWarnings(c: ConnectionConfig): string[] {
  const loopback = /^(localhost|127\.\d+\.\d+\.\d+|::1)$/i.test(c.host);
  if (c.sslmode === 'require' && c.caCert === undefined) {
    return [
      `${c.input}: sslmode=require encrypts but does not verify the server. Use sslmode=verify-full with the ca-cert input.`,
    ];
  }
  if (['disable', 'allow', 'prefer'].includes(c.sslmode) && !loopback) {
    return [
      `${c.input}: sslmode=${c.sslmode} to ${c.host} may send the password and data unencrypted or to an unverified server. Use sslmode=verify-full with the ca-cert input.`,
    ];
  }
  return [];
}

export function optionalPem(
  value: string,
  name: string,
  kind: 'CERTIFICATE' | 'PRIVATE KEY',
): string | undefined {
  if (value === '') return undefined;
  const re =
    kind === 'CERTIFICATE'
      ? /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/
      : /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[\s\S]+-----END ([A-Z]+ )?PRIVATE KEY-----/;
  if (!re.test(value)) {
    throw new InputError(
      name,
      `is not a PEM ${kind.toLowerCase()}. Paste the PEM text (-----BEGIN ${kind}----- …) from a secret, not a file path.`,
    );
  }
  return value.endsWith('\n') ? value : `${value}\n`;
}
