/**
 * Streams against the real S3 server, through the library: the part-count limit (lowered with
 * maxParts, since 10,000 parts of 5 MiB are 50 GiB) fails clean and expectedSize lifts it;
 * memory stays bounded while a stream much larger than it goes up; a slow reader of a download
 * never makes s3xfer hold more than its window of ranges.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransferManager, UsageError } from '../../src/index.js';
import { hashingSink, MiB } from '../helpers/files.js';
import { createTestBucket, listKeys, openMultipartUploads, removeTestBucket, testClient } from '../helpers/s3.js';

let client: S3Client;
let bucket: string;

beforeAll(async () => {
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-streams');
});
afterAll(async () => {
  await removeTestBucket(client, bucket);
  client.destroy();
});

/** `size` bytes made as they are read (a 1 MiB random block, repeated), and their sha256. */
function generated(size: number) {
  const block = randomBytes(MiB);
  const hash = createHash('sha256');
  let made = 0;
  const stream = new Readable({
    read() {
      if (made >= size) return this.push(null);
      const chunk = block.subarray(0, Math.min(MiB, size - made));
      made += chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

describe('a stream longer than maxParts × part size', () => {
  it('fails with StreamTooLarge, leaving no multipart upload and no object', async () => {
    const manager = new TransferManager(client, { config: { partSize: 5 * MiB } });
    const failure = await manager
      .uploadStream(generated(16 * MiB).stream, bucket, 'too-large.bin', { maxParts: 3 })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(UsageError);
    expect((failure as UsageError).code).toBe('StreamTooLarge');
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain('too-large.bin');
  });

  it('goes up with expectedSize, in parts raised to fit, and comes back byte for byte', async () => {
    const source = generated(16 * MiB);
    const manager = new TransferManager(client, { config: { partSize: 5 * MiB, multipartThreshold: 5 * MiB } });
    const uploaded = await manager.uploadStream(source.stream, bucket, 'fits.bin', { maxParts: 3, expectedSize: 16 * MiB });
    expect(uploaded).toMatchObject({ bytes: 16 * MiB, parts: 3, multipart: true });
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'fits.bin' }));
    expect(head.Metadata?.['s3xfer-part-size']).toBe(String(6 * MiB));
    expect(head.ETag).toBe(uploaded.etag);

    const sink = hashingSink();
    const downloaded = await manager.downloadToStream(bucket, 'fits.bin', sink.writable);
    expect(sink.sha256()).toBe(source.sha256());
    expect(downloaded).toMatchObject({ bytes: 16 * MiB, parts: 4, multipart: true });
  });
});

describe('memory', () => {
  it('stays bounded by the parts in flight while a 256 MiB stream goes up', async () => {
    const size = 256 * MiB;
    const source = generated(size);
    const manager = new TransferManager(client, { config: { concurrency: 4 } });
    const before = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - before)), 10);
    try {
      await manager.uploadStream(source.stream, bucket, 'big-stream.bin');
    } finally {
      clearInterval(sampler);
    }
    // 4 parts of 8 MiB in flight and one being filled are 40 MiB (about 75 MiB measured: each
    // part keeps lib-storage's slightly larger concatenation alive, and the garbage collector
    // lags); half the stream still proves it is never held whole (unbounded: about 300 MiB).
    expect(peak).toBeLessThan(128 * MiB);
    expect(manager.stats.maxBufferedBytes).toBe(5 * 8 * MiB);

    const sink = hashingSink();
    await manager.downloadToStream(bucket, 'big-stream.bin', sink.writable);
    expect(sink.sha256()).toBe(source.sha256());
  });

  it('holds at most maxBufferedRanges ranges for a slow reader', async () => {
    const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 8 };
    const source = generated(40 * MiB);
    await new TransferManager(client, { config }).uploadStream(source.stream, bucket, 'slow-reader.bin');
    const manager = new TransferManager(client, { config });
    const sink = hashingSink(30);
    const result = await manager.downloadToStream(bucket, 'slow-reader.bin', sink.writable, { maxBufferedRanges: 2 });
    expect(sink.sha256()).toBe(source.sha256());
    expect(result.parts).toBe(8);
    expect(manager.stats.maxBufferedBytes).toBe(2 * 5 * MiB);
    expect(manager.stats.maxRequestsInFlight).toBeLessThanOrEqual(2);
  });
});
