/**
 * An S3 server for tests: path-style addressing, real SigV4 header
 * verification, the operations a CockroachDB backup and this action use, an
 * in-memory store tests can seed and inspect, request counters and injected
 * faults. Binds 127.0.0.1 only.
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type S3Operation =
  | 'CreateBucket'
  | 'HeadBucket'
  | 'ListBuckets'
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'DeleteObjects'
  | 'ListObjectsV2';

const OPERATIONS: S3Operation[] = [
  'CreateBucket',
  'HeadBucket',
  'ListBuckets',
  'PutObject',
  'GetObject',
  'HeadObject',
  'DeleteObject',
  'DeleteObjects',
  'ListObjectsV2',
];

export interface S3Credential {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** `/` and `+` in the secret make encoding bugs show. */
export const TEST_S3_CREDENTIAL: S3Credential = {
  accessKeyId: 'AKIATESTBACKUP000001',
  secretAccessKey: 'tEst/Secret+Key0123456789abcdefGHIJKLmnop',
};

export interface S3ServerOptions {
  credentials?: S3Credential[];
  region?: string;
  buckets?: string[];
}

export interface S3Fault {
  op?: S3Operation | '*';
  bucket?: string;
  keyPrefix?: string;
  status?: number;
  code?: string;
  /** The error's Message (default: `injected fault for <op>`); tests use it for hostile texts. */
  message?: string;
  delayMs?: number;
  times?: number;
}

export interface S3RequestRecord {
  op: S3Operation | 'Unknown';
  bucket?: string;
  key?: string;
  prefix?: string;
  delimiter?: string;
  status: number;
  accessKeyId?: string;
}

export interface S3TestServer {
  readonly endpoint: string;
  readonly port: number;
  readonly region: string;
  addCredential(c: S3Credential): void;
  createBucket(name: string): void;
  putObject(bucket: string, key: string, body: string | Buffer, opts?: { lastModified?: Date }): void;
  getObject(bucket: string, key: string): Buffer | undefined;
  hasObject(bucket: string, key: string): boolean;
  deleteObject(bucket: string, key: string): void;
  listKeys(bucket: string, prefix?: string): string[];
  readonly counts: Readonly<Record<S3Operation | 'total', number>>;
  resetCounts(): void;
  readonly requests: readonly S3RequestRecord[];
  inject(fault: S3Fault): () => void;
  clearFaults(): void;
  close(): Promise<void>;
}

interface StoredObject {
  body: Buffer;
  etag: string;
  lastModified: Date;
}

/** One bucket: a map plus a lazily rebuilt sorted key list for listing. */
class Bucket {
  readonly objects = new Map<string, StoredObject>();
  private sorted: string[] | undefined;
  put(key: string, body: Buffer, lastModified = new Date()): StoredObject {
    const obj = { body, etag: `"${createHash('md5').update(body).digest('hex')}"`, lastModified };
    if (!this.objects.has(key)) this.sorted = undefined;
    this.objects.set(key, obj);
    return obj;
  }
  delete(key: string): void {
    if (this.objects.delete(key)) this.sorted = undefined;
  }
  keys(): string[] {
    this.sorted ??= [...this.objects.keys()].sort(compareKeys);
    return this.sorted;
  }
}

/** S3 orders keys by UTF-8 bytes. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function lowerBound(keys: string[], target: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, target) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function startS3Server(opts: S3ServerOptions = {}): Promise<S3TestServer> {
  const region = opts.region ?? 'us-east-1';
  const credentials = new Map<string, S3Credential>();
  for (const c of opts.credentials ?? [TEST_S3_CREDENTIAL]) credentials.set(c.accessKeyId, c);
  const buckets = new Map<string, Bucket>();
  for (const b of opts.buckets ?? []) buckets.set(b, new Bucket());
  const counts = Object.fromEntries([...OPERATIONS, 'total'].map((k) => [k, 0])) as Record<
    S3Operation | 'total',
    number
  >;
  const requests: S3RequestRecord[] = [];
  let faults: (S3Fault & { left: number })[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const [bucketName, key] = splitPath(url.pathname);
    const op = operationOf(req.method ?? 'GET', bucketName, key, url.searchParams);
    const record: S3RequestRecord = {
      op,
      ...(bucketName ? { bucket: bucketName } : {}),
      ...(key !== undefined ? { key } : {}),
      ...(url.searchParams.has('prefix') ? { prefix: url.searchParams.get('prefix')! } : {}),
      ...(url.searchParams.has('delimiter') ? { delimiter: url.searchParams.get('delimiter')! } : {}),
      status: 200,
    };
    requests.push(record);
    counts.total++;
    if (op !== 'Unknown') counts[op]++;
    try {
      const accessKeyId = verifySignature(req, url, body, credentials, region);
      record.accessKeyId = accessKeyId;
      const payload = decodePayload(req, body);
      await applyFaults(op, bucketName, key, url, payload);
      const out = dispatch(op, bucketName, key, url, payload, req);
      record.status = out.status;
      res.writeHead(out.status, out.headers);
      res.end(req.method === 'HEAD' ? undefined : out.body);
    } catch (err) {
      const e = err instanceof S3Error ? err : new S3Error(500, 'InternalError', String(err));
      record.status = e.status;
      const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${xmlEscape(e.message)}</Message><Resource>${xmlEscape(url.pathname)}</Resource><RequestId>${randomUUID()}</RequestId></Error>`;
      res.writeHead(e.status, { 'content-type': 'application/xml', 'x-amz-request-id': randomUUID() });
      res.end(req.method === 'HEAD' ? undefined : xml);
    }
  }

  async function applyFaults(
    op: S3Operation | 'Unknown',
    bucket: string,
    key: string | undefined,
    url: URL,
    payload: Buffer,
  ): Promise<void> {
    const target = key ?? url.searchParams.get('prefix') ?? '';
    for (const f of faults) {
      if (f.left <= 0) continue;
      if (f.op && f.op !== '*' && f.op !== op) continue;
      if (f.bucket && f.bucket !== bucket) continue;
      if (f.keyPrefix !== undefined && op !== 'DeleteObjects' && !target.startsWith(f.keyPrefix)) continue;
      if (f.keyPrefix !== undefined && op === 'DeleteObjects') {
        // Per-key failures are reported inside the DeleteObjects result instead.
        if (!parseDeleteKeys(payload).keys.some((k) => k.startsWith(f.keyPrefix!))) continue;
        if (f.status === undefined) continue;
        f.left--;
        perKeyDeleteFaults.push(f);
        continue;
      }
      f.left--;
      if (f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs));
      if (f.status !== undefined)
        throw new S3Error(f.status, f.code ?? defaultCode(f.status), f.message ?? `injected fault for ${op}`);
    }
  }
  const perKeyDeleteFaults: S3Fault[] = [];

  function bucketOf(name: string): Bucket {
    const b = buckets.get(name);
    if (!b) throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist');
    return b;
  }

  function dispatch(
    op: S3Operation | 'Unknown',
    bucketName: string,
    key: string | undefined,
    url: URL,
    payload: Buffer,
    req: IncomingMessage,
  ): { status: number; headers: Record<string, string>; body?: string | Buffer } {
    const xml = (s: string) => ({
      status: 200,
      headers: { 'content-type': 'application/xml' },
      body: `<?xml version="1.0" encoding="UTF-8"?>\n${s}`,
    });
    switch (op) {
      case 'ListBuckets':
        return xml(
          `<ListAllMyBucketsResult><Owner><ID>test</ID></Owner><Buckets>${[...buckets.keys()]
            .map(
              (b) =>
                `<Bucket><Name>${b}</Name><CreationDate>${new Date().toISOString()}</CreationDate></Bucket>`,
            )
            .join('')}</Buckets></ListAllMyBucketsResult>`,
        );
      case 'CreateBucket':
        if (buckets.has(bucketName))
          throw new S3Error(
            409,
            'BucketAlreadyOwnedByYou',
            'Your previous request to create the named bucket succeeded and you already own it.',
          );
        buckets.set(bucketName, new Bucket());
        return { status: 200, headers: { location: `/${bucketName}` } };
      case 'HeadBucket':
        bucketOf(bucketName);
        return { status: 200, headers: { 'x-amz-bucket-region': region } };
      case 'PutObject': {
        const b = bucketOf(bucketName);
        const md5 = req.headers['content-md5'];
        if (typeof md5 === 'string' && createHash('md5').update(payload).digest('base64') !== md5) {
          throw new S3Error(
            400,
            'BadDigest',
            'The Content-MD5 you specified did not match what we received.',
          );
        }
        const obj = b.put(key!, payload);
        return { status: 200, headers: { etag: obj.etag } };
      }
      case 'GetObject':
      case 'HeadObject': {
        const obj = bucketOf(bucketName).objects.get(key!);
        if (!obj) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
        return {
          status: 200,
          headers: {
            etag: obj.etag,
            'content-length': String(obj.body.length),
            'last-modified': obj.lastModified.toUTCString(),
            'content-type': 'application/octet-stream',
          },
          body: obj.body,
        };
      }
      case 'DeleteObject':
        bucketOf(bucketName).delete(key!);
        return { status: 204, headers: {} };
      case 'DeleteObjects':
        return xml(deleteObjects(bucketOf(bucketName), payload));
      case 'ListObjectsV2':
        return xml(listObjects(bucketName, bucketOf(bucketName), url.searchParams));
      default:
        throw new S3Error(
          501,
          'NotImplemented',
          `${req.method} ${url.pathname}${url.search} is not implemented by the test server`,
        );
    }
  }

  function deleteObjects(bucket: Bucket, payload: Buffer): string {
    const { keys, quiet } = parseDeleteKeys(payload);
    if (keys.length > 1000)
      throw new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed: more than 1000 keys');
    const failing = perKeyDeleteFaults.splice(0);
    const parts: string[] = [];
    for (const key of keys) {
      const fault = failing.find((f) => key.startsWith(f.keyPrefix!));
      if (fault) {
        parts.push(
          `<Error><Key>${xmlEscape(key)}</Key><Code>${fault.code ?? defaultCode(fault.status ?? 403)}</Code><Message>injected fault</Message></Error>`,
        );
        continue;
      }
      bucket.delete(key);
      if (!quiet) parts.push(`<Deleted><Key>${xmlEscape(key)}</Key></Deleted>`);
    }
    return `<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${parts.join('')}</DeleteResult>`;
  }

  function listObjects(name: string, bucket: Bucket, q: URLSearchParams): string {
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const maxKeys = Math.min(1000, Math.max(0, Number(q.get('max-keys') ?? 1000)));
    const token = q.get('continuation-token');
    const startAfter = token ? Buffer.from(token, 'base64').toString('utf8') : (q.get('start-after') ?? '');
    const encode = q.get('encoding-type') === 'url';
    const keys = bucket.keys();
    let i = lowerBound(keys, prefix);
    if (startAfter) {
      // A token after a common prefix skips everything below it.
      const after =
        startAfter.endsWith(delimiter) && delimiter ? `${startAfter}\uffff` : `${startAfter}\u0000`;
      i = Math.max(i, lowerBound(keys, after));
    }
    const contents: string[] = [];
    const prefixes: string[] = [];
    let last = '';
    let truncated = false;
    while (i < keys.length && keys[i]!.startsWith(prefix)) {
      if (contents.length + prefixes.length >= maxKeys) {
        truncated = true;
        break;
      }
      const key = keys[i]!;
      const rest = key.slice(prefix.length);
      const cut = delimiter ? rest.indexOf(delimiter) : -1;
      if (cut >= 0) {
        const cp = prefix + rest.slice(0, cut + delimiter.length);
        prefixes.push(cp);
        last = cp;
        i = lowerBound(keys, `${cp}\uffff`);
        continue;
      }
      const obj = bucket.objects.get(key)!;
      contents.push(
        `<Contents><Key>${xmlEscape(encode ? encodeURIComponent(key) : key)}</Key><LastModified>${obj.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(obj.etag)}</ETag><Size>${obj.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
      );
      last = key;
      i++;
    }
    const enc = (s: string) => xmlEscape(encode ? encodeURIComponent(s) : s);
    return (
      `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${name}</Name><Prefix>${enc(prefix)}</Prefix>` +
      `<KeyCount>${contents.length + prefixes.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>` +
      (delimiter ? `<Delimiter>${enc(delimiter)}</Delimiter>` : '') +
      (encode ? '<EncodingType>url</EncodingType>' : '') +
      `<IsTruncated>${truncated}</IsTruncated>` +
      (token ? `<ContinuationToken>${xmlEscape(token)}</ContinuationToken>` : '') +
      (truncated
        ? `<NextContinuationToken>${Buffer.from(last).toString('base64')}</NextContinuationToken>`
        : '') +
      contents.join('') +
      prefixes.map((p) => `<CommonPrefixes><Prefix>${enc(p)}</Prefix></CommonPrefixes>`).join('') +
      '</ListBucketResult>'
    );
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    region,
    addCredential: (c) => void credentials.set(c.accessKeyId, c),
    createBucket: (name) => void (buckets.has(name) || buckets.set(name, new Bucket())),
    putObject(bucket, key, body, o) {
      bucketOf(bucket).put(key, Buffer.isBuffer(body) ? body : Buffer.from(body), o?.lastModified);
    },
    getObject: (bucket, key) => buckets.get(bucket)?.objects.get(key)?.body,
    hasObject: (bucket, key) => buckets.get(bucket)?.objects.has(key) ?? false,
    deleteObject: (bucket, key) => buckets.get(bucket)?.delete(key),
    listKeys(bucket, prefix = '') {
      return (buckets.get(bucket)?.keys() ?? []).filter((k) => k.startsWith(prefix));
    },
    counts,
    resetCounts() {
      for (const k of Object.keys(counts)) counts[k as keyof typeof counts] = 0;
      requests.length = 0;
    },
    requests,
    inject(fault) {
      const f = { ...fault, left: fault.times ?? Number.POSITIVE_INFINITY };
      faults.push(f);
      return () => {
        faults = faults.filter((x) => x !== f);
      };
    },
    clearFaults() {
      faults = [];
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function defaultCode(status: number): string {
  return status === 403
    ? 'AccessDenied'
    : status === 503
      ? 'SlowDown'
      : status === 404
        ? 'NoSuchKey'
        : 'InternalError';
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function splitPath(pathname: string): [string, string | undefined] {
  const parts = pathname.split('/');
  const bucket = decodeURIComponent(parts[1] ?? '');
  if (parts.length <= 2 || (parts.length === 3 && parts[2] === '')) return [bucket, undefined];
  return [bucket, decodeURIComponent(parts.slice(2).join('/'))];
}

function operationOf(
  method: string,
  bucket: string,
  key: string | undefined,
  q: URLSearchParams,
): S3Operation | 'Unknown' {
  if (!bucket) return method === 'GET' ? 'ListBuckets' : 'Unknown';
  if (key === undefined) {
    if (method === 'PUT') return 'CreateBucket';
    if (method === 'HEAD') return 'HeadBucket';
    if (method === 'POST' && q.has('delete')) return 'DeleteObjects';
    if (method === 'GET' && q.get('list-type') === '2') return 'ListObjectsV2';
    return 'Unknown';
  }
  return (
    ({ PUT: 'PutObject', GET: 'GetObject', HEAD: 'HeadObject', DELETE: 'DeleteObject' } as const)[
      method as 'PUT'
    ] ?? 'Unknown'
  );
}

// ---- SigV4 -------------------------------------------------------------------------------------------

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/** RFC 3986 encoding as SigV4 wants it. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalQuery(rawQuery: string): string {
  if (!rawQuery) return '';
  const pairs = rawQuery
    .split('&')
    .filter(Boolean)
    .map((p) => {
      const at = p.indexOf('=');
      const k = decodeURIComponent((at < 0 ? p : p.slice(0, at)).replace(/\+/g, '%20'));
      const v = at < 0 ? '' : decodeURIComponent(p.slice(at + 1).replace(/\+/g, '%20'));
      return [uriEncode(k), uriEncode(v)] as const;
    });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request,\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})$/;

/** Verifies the Authorization header; returns the access key id. */
function verifySignature(
  req: IncomingMessage,
  url: URL,
  body: Buffer,
  credentials: Map<string, S3Credential>,
  region: string,
): string {
  const header = req.headers.authorization;
  if (!header) throw new S3Error(403, 'AccessDenied', 'Access Denied');
  const m = AUTH.exec(header);
  if (!m) throw new S3Error(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed.');
  const [, accessKeyId, date, signedRegion, signedHeaders, signature] = m as unknown as string[];
  const cred = credentials.get(accessKeyId!);
  if (!cred)
    throw new S3Error(
      403,
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
    );
  if (signedRegion !== region) {
    throw new S3Error(
      400,
      'AuthorizationHeaderMalformed',
      `The authorization header is malformed; the region '${signedRegion}' is wrong; expecting '${region}'`,
    );
  }
  const token = req.headers['x-amz-security-token'];
  if (cred.sessionToken !== undefined && token !== cred.sessionToken) {
    throw new S3Error(403, 'InvalidToken', 'The provided token is malformed or otherwise invalid.');
  }
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const skew = Math.abs(
    Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z')) -
      Date.now(),
  );
  if (!(skew <= 15 * 60_000))
    throw new S3Error(
      403,
      'RequestTimeTooSkewed',
      'The difference between the request time and the current time is too large.',
    );
  const payloadHash = String(req.headers['x-amz-content-sha256'] ?? '');
  if (/^[0-9a-f]{64}$/.test(payloadHash) && sha256(body) !== payloadHash) {
    throw new S3Error(
      400,
      'XAmzContentSHA256Mismatch',
      'The provided x-amz-content-sha256 header does not match what was computed.',
    );
  }
  const names = signedHeaders!.split(';');
  const canonicalHeaders = names
    .map((n) => {
      const v = req.headers[n];
      return `${n}:${(Array.isArray(v) ? v.join(',') : (v ?? '')).trim().replace(/\s+/g, ' ')}\n`;
    })
    .join('');
  const rawPath = (req.url ?? '/').split('?')[0]!;
  const rawQuery = (req.url ?? '').includes('?')
    ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1)
    : '';
  const canonicalRequest = [
    req.method,
    rawPath,
    canonicalQuery(rawQuery),
    canonicalHeaders,
    signedHeaders,
    payloadHash,
  ].join('\n');
  const scope = `${date}/${signedRegion}/s3/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${cred.secretAccessKey}`, date!), signedRegion!), 's3'),
    'aws4_request',
  );
  const expected = createHmac('sha256', key).update(stringToSign).digest();
  const given = Buffer.from(signature!, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new S3Error(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    );
  }
  void url;
  return accessKeyId!;
}

/** Undo aws-chunked content encoding (`<hex size>[;chunk-signature=…]\r\n<data>\r\n … 0\r\n[trailers]\r\n`). */
function decodePayload(req: IncomingMessage, body: Buffer): Buffer {
  const mode = String(req.headers['x-amz-content-sha256'] ?? '');
  const encoding = String(req.headers['content-encoding'] ?? '');
  if (!mode.startsWith('STREAMING-') && !encoding.includes('aws-chunked')) return body;
  const out: Buffer[] = [];
  let i = 0;
  for (let guard = 0; guard < 1_000_000 && i < body.length; guard++) {
    const eol = body.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(body.subarray(i, eol).toString('latin1').split(';')[0]!, 16);
    if (!Number.isFinite(size)) throw new S3Error(400, 'InvalidRequest', 'malformed aws-chunked body');
    if (size === 0) break;
    out.push(body.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

function parseDeleteKeys(payload: Buffer): { keys: string[]; quiet: boolean } {
  const text = payload.toString('utf8');
  const keys = [...text.matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((m) => xmlUnescape(m[1]!));
  return { keys, quiet: /<Quiet>true<\/Quiet>/i.test(text) };
}

function xmlEscape(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function xmlUnescape(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)))
    .replace(/&amp;/g, '&');
}
