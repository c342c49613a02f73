/**
 * Self-tests of the S3 test server with the real AWS SDK: the operations a
 * backup and the action use, S3's XML errors, listing with delimiters and
 * paging, counters, and injected faults.
 */
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { createHash, createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from './server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from './server.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['b', 'other'] });
});
afterAll(async () => s3?.close());
afterEach(() => s3.clearFaults());

const client = (credentials: { accessKeyId: string; secretAccessKey: string } = TEST_S3_CREDENTIAL) =>
  new S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });

/** A GET signed with SigV4 by hand (independent of the SDK), to read the raw answer. */
async function signedGet(path: string, cred: { accessKeyId: string; secretAccessKey: string }) {
  const url = new URL(path, s3.endpoint);
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const payload = createHash('sha256').update('').digest('hex');
  const headers: Record<string, string> = {
    host: url.host,
    'x-amz-content-sha256': payload,
    'x-amz-date': amzDate,
  };
  const names = Object.keys(headers).sort();
  const query = [...url.searchParams]
    .map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [
    'GET',
    url.pathname,
    query,
    names.map((n) => `${n}:${headers[n]}\n`).join(''),
    names.join(';'),
    payload,
  ].join('\n');
  const scope = `${date}/us-east-1/s3/aws4_request`;
  const toSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonical).digest('hex'),
  ].join('\n');
  const h = (k: string | Buffer, d: string) => createHmac('sha256', k).update(d).digest();
  const key = h(h(h(h(`AWS4${cred.secretAccessKey}`, date), 'us-east-1'), 's3'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const res = await fetch(url, {
    headers: {
      ...headers,
      authorization: `AWS4-HMAC-SHA256 Credential=${cred.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
    },
  });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

describe('S3 test server: errors', () => {
  it('answers a wrong secret with 403 SignatureDoesNotMatch, as the SDK and as S3 XML', async () => {
    const wrong = { ...TEST_S3_CREDENTIAL, secretAccessKey: 'not/the+secret' };
    await expect(client(wrong).send(new ListObjectsV2Command({ Bucket: 'b' }))).rejects.toMatchObject({
      name: 'SignatureDoesNotMatch',
      $metadata: { httpStatusCode: 403 },
      message: expect.stringContaining('The request signature we calculated does not match'),
    });
    const raw = await signedGet('/b?list-type=2', wrong);
    expect(raw.status).toBe(403);
    expect(raw.type).toBe('application/xml');
    expect(raw.body).toMatch(
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Error><Code>SignatureDoesNotMatch<\/Code><Message>The request signature we calculated does not match the signature you provided\. Check your key and signing method\.<\/Message><Resource>\/b<\/Resource><RequestId>[0-9a-f-]{36}<\/RequestId><\/Error>$/,
    );
    // The same request with the right secret passes: the hand-made signature is a valid one.
    expect((await signedGet('/b?list-type=2', TEST_S3_CREDENTIAL)).status).toBe(200);
  });

  it('answers an unknown access key with 403 InvalidAccessKeyId, as the SDK and as S3 XML', async () => {
    const unknown = { accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: 'x' };
    await expect(client(unknown).send(new GetObjectCommand({ Bucket: 'b', Key: 'k' }))).rejects.toMatchObject(
      { name: 'InvalidAccessKeyId', $metadata: { httpStatusCode: 403 } },
    );
    const raw = await signedGet('/b/k', unknown);
    expect(raw.status).toBe(403);
    expect(raw.body).toContain(
      '<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><Resource>/b/k</Resource>',
    );
  });

  it('refuses an unsigned request with AccessDenied', async () => {
    const res = await fetch(`${s3.endpoint}/b?list-type=2`);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('<Code>AccessDenied</Code>');
  });
});

describe('S3 test server: buckets and objects', () => {
  it('HeadBucket: 200 with the region for a bucket, 404 for a missing one', async () => {
    const ok = await client().send(new HeadBucketCommand({ Bucket: 'b' }));
    expect(ok.$metadata.httpStatusCode).toBe(200);
    expect(ok.BucketRegion).toBe('us-east-1');
    await expect(client().send(new HeadBucketCommand({ Bucket: 'nope' }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
  });

  it('ListBuckets lists every bucket', async () => {
    const r = await client().send(new ListBucketsCommand({}));
    expect((r.Buckets ?? []).map((b) => b.Name)).toEqual(expect.arrayContaining(['b', 'other']));
  });

  it('PutObject, GetObject, HeadObject and DeleteObject round-trip; a missing key is NoSuchKey', async () => {
    const c = client();
    const body = 'manifest bytes \u00e9';
    const put = await c.send(new PutObjectCommand({ Bucket: 'b', Key: 'obj/one', Body: body }));
    const md5 = `"${createHash('md5').update(body).digest('hex')}"`;
    expect(put.ETag).toBe(md5);
    const got = await c.send(new GetObjectCommand({ Bucket: 'b', Key: 'obj/one' }));
    expect(await got.Body!.transformToString()).toBe(body);
    const head = await c.send(new HeadObjectCommand({ Bucket: 'b', Key: 'obj/one' }));
    expect(head.ContentLength).toBe(Buffer.byteLength(body));
    expect(head.ETag).toBe(md5);
    expect(head.LastModified).toBeInstanceOf(Date);
    await c.send(new DeleteObjectCommand({ Bucket: 'b', Key: 'obj/one' }));
    expect(s3.hasObject('b', 'obj/one')).toBe(false);
    await expect(c.send(new GetObjectCommand({ Bucket: 'b', Key: 'obj/one' }))).rejects.toMatchObject({
      name: 'NoSuchKey',
      $metadata: { httpStatusCode: 404 },
    });
    await expect(c.send(new HeadObjectCommand({ Bucket: 'b', Key: 'obj/one' }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
    await expect(
      c.send(new PutObjectCommand({ Bucket: 'missing', Key: 'x', Body: 'x' })),
    ).rejects.toMatchObject({ name: 'NoSuchBucket' });
  });

  it('DeleteObjects deletes many keys and reports them, or nothing in quiet mode', async () => {
    for (const k of ['del/a', 'del/b', 'del/c', 'del/d']) s3.putObject('b', k, k);
    const r = await client().send(
      new DeleteObjectsCommand({
        Bucket: 'b',
        Delete: { Objects: [{ Key: 'del/a' }, { Key: 'del/b' }, { Key: 'del/never' }] },
      }),
    );
    expect((r.Deleted ?? []).map((d) => d.Key).sort()).toEqual(['del/a', 'del/b', 'del/never']);
    expect(r.Errors ?? []).toEqual([]);
    const quiet = await client().send(
      new DeleteObjectsCommand({ Bucket: 'b', Delete: { Objects: [{ Key: 'del/c' }], Quiet: true } }),
    );
    expect(quiet.Deleted ?? []).toEqual([]);
    expect(s3.listKeys('b', 'del/')).toEqual(['del/d']);
  });
});

describe('S3 test server: ListObjectsV2', () => {
  const coll = 'lst/coll';
  const keys = [
    `${coll}/2025/01/02-030405.67/BACKUP-LOCK-1`,
    `${coll}/2025/01/02-030405.67/BACKUP_MANIFEST`,
    `${coll}/2025/01/02-030405.67/data/1.sst`,
    `${coll}/2025/01/02-030405.67/data/2.sst`,
    `${coll}/2025/02/03-000000.00/BACKUP_MANIFEST`,
    `${coll}/incrementals/2025/01/02-030405.67/20250103/000000.00/BACKUP_MANIFEST`,
    `${coll}/metadata/latest/LATEST-fffffe`,
    `${coll}/top-level-file`,
  ];
  beforeAll(() => {
    for (const k of keys) s3.putObject('b', k, 'x');
  });

  it('folds deeper objects into common prefixes with delimiter "/"', async () => {
    const r = await client().send(
      new ListObjectsV2Command({ Bucket: 'b', Prefix: `${coll}/`, Delimiter: '/' }),
    );
    expect((r.CommonPrefixes ?? []).map((p) => p.Prefix)).toEqual([
      `${coll}/2025/`,
      `${coll}/incrementals/`,
      `${coll}/metadata/`,
    ]);
    expect((r.Contents ?? []).map((c) => c.Key)).toEqual([`${coll}/top-level-file`]);
    expect(r.KeyCount).toBe(4);
    const deeper = await client().send(
      new ListObjectsV2Command({ Bucket: 'b', Prefix: `${coll}/2025/01/`, Delimiter: '/' }),
    );
    expect((deeper.CommonPrefixes ?? []).map((p) => p.Prefix)).toEqual([`${coll}/2025/01/02-030405.67/`]);
    expect(deeper.Contents ?? []).toEqual([]);
  });

  it('with delimiter "data/" (as SHOW BACKUPS lists) keeps manifests and folds everything up to a `data/`', async () => {
    const r = await client().send(
      new ListObjectsV2Command({ Bucket: 'b', Prefix: `${coll}/`, Delimiter: 'data/' }),
    );
    // The delimiter is a plain substring: `metadata/` ends in `data/` too, as on real S3.
    expect((r.CommonPrefixes ?? []).map((p) => p.Prefix)).toEqual([
      `${coll}/2025/01/02-030405.67/data/`,
      `${coll}/metadata/`,
    ]);
    expect((r.Contents ?? []).map((c) => c.Key)).toEqual(keys.filter((k) => !k.includes('data/')));
  });

  it('pages with max-keys and continuation tokens, counting common prefixes, without repeats', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    let page: ListObjectsV2CommandOutput;
    do {
      page = await client().send(
        new ListObjectsV2Command({
          Bucket: 'b',
          Prefix: `${coll}/`,
          Delimiter: '/',
          MaxKeys: 1,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      pages++;
      expect(page.KeyCount).toBe(1);
      expect(page.MaxKeys).toBe(1);
      seen.push(
        ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!),
        ...(page.Contents ?? []).map((c) => c.Key!),
      );
      token = page.NextContinuationToken;
      if (token) expect(page.IsTruncated).toBe(true);
    } while (token && pages < 20);
    expect(page.IsTruncated).toBe(false);
    expect(pages).toBe(4);
    expect(seen).toEqual([
      `${coll}/2025/`,
      `${coll}/incrementals/`,
      `${coll}/metadata/`,
      `${coll}/top-level-file`,
    ]);
    const flat: string[] = [];
    token = undefined;
    pages = 0;
    do {
      page = await client().send(
        new ListObjectsV2Command({
          Bucket: 'b',
          Prefix: `${coll}/`,
          MaxKeys: 3,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      pages++;
      flat.push(...(page.Contents ?? []).map((c) => c.Key!));
      token = page.NextContinuationToken;
    } while (token && pages < 20);
    expect(pages).toBe(3);
    expect(flat).toEqual(keys);
  });
});

describe('S3 test server: counters and faults', () => {
  it('counts requests per operation and records each one', async () => {
    s3.resetCounts();
    const c = client();
    await c.send(new PutObjectCommand({ Bucket: 'b', Key: 'cnt/a', Body: 'a' }));
    await c.send(new PutObjectCommand({ Bucket: 'b', Key: 'cnt/b', Body: 'b' }));
    await c.send(new GetObjectCommand({ Bucket: 'b', Key: 'cnt/a' }));
    await c.send(new ListObjectsV2Command({ Bucket: 'b', Prefix: 'cnt/', Delimiter: '/' }));
    await c.send(new HeadBucketCommand({ Bucket: 'b' }));
    await expect(c.send(new GetObjectCommand({ Bucket: 'b', Key: 'cnt/none' }))).rejects.toThrow();
    expect(s3.counts).toMatchObject({
      PutObject: 2,
      GetObject: 2,
      ListObjectsV2: 1,
      HeadBucket: 1,
      DeleteObject: 0,
      total: 6,
    });
    expect(s3.requests.map((r) => [r.op, r.key ?? r.prefix ?? r.bucket, r.status])).toEqual([
      ['PutObject', 'cnt/a', 200],
      ['PutObject', 'cnt/b', 200],
      ['GetObject', 'cnt/a', 200],
      ['ListObjectsV2', 'cnt/', 200],
      ['HeadBucket', 'b', 200],
      ['GetObject', 'cnt/none', 404],
    ]);
    expect(s3.requests[3]).toMatchObject({ delimiter: '/' });
    expect(s3.requests.every((r) => r.accessKeyId === TEST_S3_CREDENTIAL.accessKeyId)).toBe(true);
  });

  it('injects a 403 for one operation under one key prefix only', async () => {
    s3.putObject('b', 'f403/x', 'x');
    s3.putObject('b', 'ok/x', 'x');
    s3.inject({ op: 'GetObject', keyPrefix: 'f403/', status: 403 });
    const c = client();
    await expect(c.send(new GetObjectCommand({ Bucket: 'b', Key: 'f403/x' }))).rejects.toMatchObject({
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    await expect(c.send(new GetObjectCommand({ Bucket: 'b', Key: 'ok/x' }))).resolves.toBeDefined();
    await expect(c.send(new HeadObjectCommand({ Bucket: 'b', Key: 'f403/x' }))).resolves.toBeDefined();
    s3.clearFaults();
    await expect(c.send(new GetObjectCommand({ Bucket: 'b', Key: 'f403/x' }))).resolves.toBeDefined();
  });

  it('injects a 500 a given number of times, for any operation, and can be removed', async () => {
    const c = client();
    s3.inject({ op: '*', keyPrefix: 'f500/', status: 500, times: 1 });
    await expect(
      c.send(new PutObjectCommand({ Bucket: 'b', Key: 'f500/a', Body: 'a' })),
    ).rejects.toMatchObject({
      name: 'InternalError',
      $metadata: { httpStatusCode: 500 },
    });
    await expect(
      c.send(new PutObjectCommand({ Bucket: 'b', Key: 'f500/a', Body: 'a' })),
    ).resolves.toBeDefined();
    const remove = s3.inject({ op: 'PutObject', status: 503, code: 'SlowDown' });
    await expect(c.send(new PutObjectCommand({ Bucket: 'b', Key: 'any', Body: 'a' }))).rejects.toMatchObject({
      name: 'SlowDown',
    });
    remove();
    await expect(c.send(new PutObjectCommand({ Bucket: 'b', Key: 'any', Body: 'a' }))).resolves.toBeDefined();
  });

  it('injects a delay for one operation', async () => {
    s3.putObject('b', 'slow/x', 'x');
    s3.inject({ op: 'HeadObject', keyPrefix: 'slow/', delayMs: 300 });
    const c = client();
    let t0 = Date.now();
    await c.send(new HeadObjectCommand({ Bucket: 'b', Key: 'slow/x' }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    t0 = Date.now();
    await c.send(new GetObjectCommand({ Bucket: 'b', Key: 'slow/x' }));
    expect(Date.now() - t0).toBeLessThan(250);
  });

  it('reports an injected failure for one key inside DeleteObjects', async () => {
    for (const k of ['pk/keep', 'pk/go']) s3.putObject('b', k, k);
    s3.inject({ op: 'DeleteObjects', keyPrefix: 'pk/keep', status: 403, times: 1 });
    const r = await client().send(
      new DeleteObjectsCommand({ Bucket: 'b', Delete: { Objects: [{ Key: 'pk/keep' }, { Key: 'pk/go' }] } }),
    );
    expect((r.Errors ?? []).map((e) => [e.Key, e.Code])).toEqual([['pk/keep', 'AccessDenied']]);
    expect((r.Deleted ?? []).map((d) => d.Key)).toEqual(['pk/go']);
    expect(s3.listKeys('b', 'pk/')).toEqual(['pk/keep']);
  });
});
