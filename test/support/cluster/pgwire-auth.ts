/**
 * Authentication on the test cluster's wire: cleartext, md5, SCRAM-SHA-256 and client certificates,
 * each with the messages and failure texts CockroachDB sends.
 */
import type { Socket } from 'node:net';
import { TLSSocket, createServer as createTlsServer } from 'node:tls';
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Engine } from './protocol-types.js';
import { SqlError } from './protocol-types.js';
import type { AuthMethod, TlsOptions } from './pgwire.js';
import { BodyReader, cstr, frame, int32 } from './pgwire-codec.js';

const SCRAM_ITERATIONS = 4096;

/** What an authentication exchange needs from the connection. */
export interface AuthChannel {
  send(b: Buffer): void;
  /** The body of the next PasswordMessage / SASL message, or undefined if the client went. */
  receivePassword(): Promise<Buffer | undefined>;
}

export type AuthOutcome = { ok: true } | { ok: false; error: SqlError };

export const passwordFailed = (user: string): AuthOutcome => ({
  ok: false,
  error: new SqlError('28P01', `password authentication failed for user ${user}`),
});

function cstringOf(body: Buffer): string {
  const end = body.indexOf(0);
  return body.subarray(0, end < 0 ? body.length : end).toString('utf8');
}

export async function cleartextAuth(
  ch: AuthChannel,
  user: string,
  password: string | undefined,
): Promise<AuthOutcome> {
  ch.send(frame('R', int32(3)));
  const body = await ch.receivePassword();
  if (body === undefined || password === undefined || !sameText(cstringOf(body), password))
    return passwordFailed(user);
  return { ok: true };
}

function md5Hex(...parts: (string | Buffer)[]): string {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

export async function md5Auth(
  ch: AuthChannel,
  user: string,
  password: string | undefined,
): Promise<AuthOutcome> {
  const salt = randomBytes(4);
  ch.send(frame('R', int32(5), salt));
  const body = await ch.receivePassword();
  if (body === undefined || password === undefined) return passwordFailed(user);
  const expected = 'md5' + md5Hex(md5Hex(password, user), salt);
  return sameText(cstringOf(body), expected) ? { ok: true } : passwordFailed(user);
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

interface ScramKeys {
  storedKey: Buffer;
  serverKey: Buffer;
}

function scramKeys(password: string, salt: Buffer): ScramKeys {
  const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

function parseSaslInitialResponse(body: Buffer): { mechanism: string; data: string } {
  const r = new BodyReader(body);
  const mechanism = r.cstring();
  const len = r.int32();
  return { mechanism, data: len < 0 ? '' : r.bytes(len).toString('utf8') };
}

function scramAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

/**
 * SCRAM-SHA-256 without channel binding (the PLUS variant is not offered).
 * An unknown user goes through the whole exchange so that the failure looks
 * the same as a wrong password.
 */
export async function scramAuth(
  ch: AuthChannel,
  user: string,
  password: string | undefined,
): Promise<AuthOutcome> {
  ch.send(frame('R', int32(10), cstr('SCRAM-SHA-256'), Buffer.from([0])));
  const initial = await ch.receivePassword();
  if (initial === undefined) return passwordFailed(user);
  const { mechanism, data: clientFirst } = parseSaslInitialResponse(initial);
  const gs2 = /^([ny]),[^,]*,/.exec(clientFirst);
  if (mechanism !== 'SCRAM-SHA-256' || !gs2) return passwordFailed(user);
  const clientFirstBare = clientFirst.slice(gs2[0].length);
  const clientNonce = scramAttributes(clientFirstBare).get('r') ?? '';
  const nonce = clientNonce + randomBytes(18).toString('base64');
  const salt = randomBytes(16);
  const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${SCRAM_ITERATIONS}`;
  ch.send(frame('R', int32(11), Buffer.from(serverFirst)));

  const final = await ch.receivePassword();
  if (final === undefined || password === undefined || clientNonce === '') return passwordFailed(user);
  const clientFinal = final.toString('utf8');
  const withoutProof = clientFinal.replace(/,p=[^,]*$/, '');
  const attrs = scramAttributes(clientFinal);
  if (attrs.get('r') !== nonce || attrs.get('c') !== Buffer.from(gs2[0]).toString('base64'))
    return passwordFailed(user);
  const keys = scramKeys(password, salt);
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  if (!scramProofMatches(attrs.get('p') ?? '', keys, authMessage)) return passwordFailed(user);
  const serverSignature = createHmac('sha256', keys.serverKey).update(authMessage).digest('base64');
  ch.send(frame('R', int32(12), Buffer.from(`v=${serverSignature}`)));
  return { ok: true };
}

function scramProofMatches(proofBase64: string, keys: ScramKeys, authMessage: string): boolean {
  const proof = Buffer.from(proofBase64, 'base64');
  if (proof.length !== 32) return false;
  const clientSignature = createHmac('sha256', keys.storedKey).update(authMessage).digest();
  const clientKey = Buffer.from(proof.map((b, i) => b ^ clientSignature[i]!));
  return timingSafeEqual(createHash('sha256').update(clientKey).digest(), keys.storedKey);
}

export function verifiedPeerCommonName(socket: Socket | TLSSocket): string | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}

export function certAuth(socket: Socket | TLSSocket, user: string, exists: boolean): AuthOutcome {
  const cn = verifiedPeerCommonName(socket);
  if (cn === undefined)
    return { ok: false, error: new SqlError('28000', 'connection requires a valid client certificate') };
  if (cn !== user || !exists)
    return {
      ok: false,
      error: new SqlError('28000', `certificate authentication failed for user "${user}"`),
    };
  return { ok: true };
}

/** Whether `user` may log in, by the server's method; `channel` carries the password exchange. */
export async function checkCredentials(
  server: { readonly auth: AuthMethod; readonly requireTls: boolean; readonly engine: Engine },
  socket: Socket | TLSSocket,
  user: string,
  channel: AuthChannel,
): Promise<AuthOutcome> {
  const tls = socket instanceof TLSSocket;
  if (server.requireTls && !tls)
    return {
      ok: false,
      error: new SqlError('28000', 'node is running secure mode, SSL connection required'),
    };
  const record = server.engine.findUser(user);
  const password = record?.password;
  switch (server.auth) {
    case 'trust':
      return record ? { ok: true } : passwordFailed(user);
    case 'cert':
      return certAuth(socket, user, record !== undefined);
    case 'cleartext':
      return cleartextAuth(channel, user, password);
    case 'md5':
      return md5Auth(channel, user, password);
    case 'scram-sha-256':
      return scramAuth(channel, user, password);
  }
}

const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A TLS server that never listens does the handshake on the upgraded socket:
 * only a tls.Server makes node verify a client certificate and set `authorized`.
 */
export function handshake(
  raw: Socket,
  tls: TlsOptions,
  requestCert: boolean,
): Promise<TLSSocket | undefined> {
  const server = createTlsServer({
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca ? { ca: tls.ca } : {}),
    requestCert,
    rejectUnauthorized: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  return new Promise((resolve) => {
    server.once('secureConnection', (socket: TLSSocket) => resolve(socket));
    server.once('tlsClientError', () => resolve(undefined));
    raw.once('close', () => resolve(undefined));
    server.emit('connection', raw);
  });
}
