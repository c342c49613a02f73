/** Self-tests of the S3 test server with the real AWS SDK: signatures, tokens, aws-chunked bodies, paging. */
import {
  CreateBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3TestServer } from './server.js';
import { startS3Server, TEST_S3_CREDENTIAL } from './server.js';

let s3: S3TestServer;
const TOKEN_CRED = {
  accessKeyId: 'ASIATEMPORARY0000001',
  secretAccessKey: 'temp/secret+value',
  sessionToken: 'FwoGZXIvYXdzEJr//token',
};
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['b'], credentials: [TEST_S3_CREDENTIAL, TOKEN_CRED] });
});
afterAll(async () => s3?.close());

const client = (
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  checksums: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED' = 'WHEN_REQUIRED',
) =>
  new S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: checksums,
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });

describe('S3 test server', () => {
  it('rejects an unknown access key with 403 InvalidAccessKeyId', async () => {
    await expect(
      client({ accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' }).send(
        new ListObjectsV2Command({ Bucket: 'b' }),
      ),
    ).rejects.toMatchObject({
      name: 'InvalidAccessKeyId',
      $metadata: { httpStatusCode: 403 },
    });
  });

  it('needs the session token of a temporary credential', async () => {
    await expect(client(TOKEN_CRED).send(new ListObjectsV2Command({ Bucket: 'b' }))).resolves.toBeDefined();
    const { sessionToken: _drop, ...withoutToken } = TOKEN_CRED;
    await expect(client(withoutToken).send(new ListObjectsV2Command({ Bucket: 'b' }))).rejects.toMatchObject({
      name: 'InvalidToken',
    });
  });

  it('decodes an aws-chunked streaming upload', async () => {
    const body = 'chunked '.repeat(10_000);
    await client(TEST_S3_CREDENTIAL, 'WHEN_SUPPORTED').send(
      new PutObjectCommand({
        Bucket: 'b',
        Key: 'chunked/obj',
        Body: Readable.from([Buffer.from(body)]),
        ContentLength: body.length,
      }),
    );
    expect(s3.getObject('b', 'chunked/obj')?.toString()).toBe(body);
    const head = await client(TEST_S3_CREDENTIAL).send(
      new HeadObjectCommand({ Bucket: 'b', Key: 'chunked/obj' }),
    );
    expect(head.ContentLength).toBe(body.length);
  });

  it('pages ListObjectsV2 with max-keys and continuation tokens, in key order', async () => {
    for (let i = 0; i < 2500; i++) s3.putObject('b', `page/${String(i).padStart(5, '0')}`, 'x');
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const r = await client(TEST_S3_CREDENTIAL).send(
        new ListObjectsV2Command({ Bucket: 'b', Prefix: 'page/', MaxKeys: 700, ContinuationToken: token }),
      );
      seen.push(...(r.Contents ?? []).map((c) => c.Key!));
      token = r.NextContinuationToken;
      pages++;
    } while (token && pages < 10);
    expect(pages).toBe(4);
    expect(seen).toHaveLength(2500);
    expect([...seen].sort()).toEqual(seen);
  });

  it('creates buckets, and refuses one that exists', async () => {
    await client(TEST_S3_CREDENTIAL).send(new CreateBucketCommand({ Bucket: 'fresh' }));
    await expect(
      client(TEST_S3_CREDENTIAL).send(new CreateBucketCommand({ Bucket: 'fresh' })),
    ).rejects.toMatchObject({ name: 'BucketAlreadyOwnedByYou' });
  });
});
