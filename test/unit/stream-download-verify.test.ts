/**
 * downloadToStream's verification against a mocked S3: ranges above the multipart threshold are
 * hashed in the order they are written and checked at the end (a plain MD5 ETag, a full-object
 * CRC64NVME), `verify: 'require'` refuses an unverifiable object before any GET, and a failure
 * after bytes went out says how many were written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import {
  GetObjectCommand,
  type GetObjectCommandInput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, TransferManager } from '../../src/index.js';
import { createDigest } from '../../src/integrity/digests.js';
import { MiB } from '../helpers/files.js';

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
beforeEach(() => s3.reset());

const partSize = 5 * MiB;
const config = { partSize, multipartThreshold: partSize, concurrency: 4 };
const md5Etag = (data: Buffer) => `"${createHash('md5').update(data).digest('hex')}"`;

/** Serves `data` (HEAD answers with `head`), flipping byte `flipAt` of the object in its GET. */
function serve(data: Buffer, head: Omit<HeadObjectCommandOutput, '$metadata'>, flipAt?: number) {
  const gets: string[] = [];
  s3.on(HeadObjectCommand).resolves({ ContentLength: data.length, ...head });
  s3.on(GetObjectCommand).callsFake(async (input: GetObjectCommandInput) => {
    gets.push(input.Range ?? '');
    const match = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? '');
    const start = match ? Number(match[1]) : 0;
    const end = match ? Number(match[2]) : data.length - 1;
    const slice = Buffer.from(data.subarray(start, end + 1));
    if (flipAt !== undefined && flipAt >= start && flipAt <= end) slice[flipAt - start]! ^= 0xff;
    return {
      Body: Readable.from([slice]) as never,
      ContentLength: slice.length,
      ...(match ? { ContentRange: `bytes ${start}-${end}/${data.length}` } : {}),
      ETag: head.ETag,
    };
  });
  return gets;
}

function collector() {
  const chunks: Buffer[] = [];
  const writable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  return { writable, data: () => Buffer.concat(chunks) };
}

describe('downloadToStream above the multipart threshold', () => {
  it('checks the ranges, hashed as written, against a plain MD5 ETag', async () => {
    const data = randomBytes(3 * partSize + 7);
    serve(data, { ETag: md5Etag(data) });
    const out = collector();
    const result = await new TransferManager(client, { config }).downloadToStream('bkt', 'key', out.writable);
    expect(result).toMatchObject({ multipart: true, verified: 'md5-etag' });
    expect(out.data().equals(data)).toBe(true);
  });

  it('checks a full-object CRC64NVME', async () => {
    const data = randomBytes(2 * partSize + 1);
    const crc = createDigest('crc64nvme');
    crc.update(data);
    serve(data, { ETag: '"0123456789abcdef0123456789abcdef-3"', ChecksumCRC64NVME: (await crc.digest()).toString('base64') });
    const out = collector();
    const result = await new TransferManager(client, { config }).downloadToStream('bkt', 'key', out.writable);
    expect(result.verified).toBe('crc64nvme');
    expect(out.data().equals(data)).toBe(true);
  });

  it('fails with an IntegrityError saying the output is corrupt when a byte was flipped', async () => {
    const data = randomBytes(3 * partSize + 7);
    serve(data, { ETag: md5Etag(data) }, 2 * partSize + 5);
    const out = collector();
    const failure = await new TransferManager(client, { config }).downloadToStream('bkt', 'key', out.writable).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe('ChecksumMismatch');
    expect((failure as Error).message).toMatch(
      new RegExp(`MD5 ETag: expected [0-9a-f]{32}, got [0-9a-f]{32}: the output is corrupt \\(${data.length} bytes were written to - `),
    );
    expect(out.data().length).toBe(data.length);
  });

  it("with verify: 'require', refuses an object it cannot verify before any GET", async () => {
    const data = randomBytes(3 * partSize);
    const gets = serve(data, { ETag: '"not-an-md5"' });
    const out = collector();
    const manager = new TransferManager(client, { config: { ...config, verify: 'require' } });
    const failure = await manager.downloadToStream('bkt', 'key', out.writable).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe('Unverifiable');
    expect(gets).toEqual([]);
    expect(out.data().length).toBe(0);
  });

  it("with verify: 'auto', streams an unverifiable object with a warning", async () => {
    const data = randomBytes(2 * partSize);
    serve(data, { ETag: '"not-an-md5"' });
    const out = collector();
    const result = await new TransferManager(client, { config }).downloadToStream('bkt', 'key', out.writable);
    expect(result.verified).toBe(false);
    expect(result.warnings).toEqual([expect.stringMatching(/could not be verified/)]);
    expect(out.data().equals(data)).toBe(true);
  });

  it("with verify: 'off', checks nothing", async () => {
    const data = randomBytes(2 * partSize);
    serve(data, { ETag: md5Etag(data) }, 7);
    const out = collector();
    const result = await new TransferManager(client, { config: { ...config, verify: 'off' } }).downloadToStream('bkt', 'key', out.writable);
    expect(result.verified).toBe(false);
    expect(out.data().length).toBe(data.length);
  });
});
