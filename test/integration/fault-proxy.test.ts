import { join } from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, uploadFile } from '../../src/index.js';
import {
  type FaultProxy,
  isCompleteMultipartUpload,
  isCreateMultipartUpload,
  isGetObject,
  isHeadObject,
  isPutObject,
  isUploadPart,
  startFaultProxy,
} from '../helpers/fault-proxy.js';
import { MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { createTestBucket, openMultipartUploads, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';

// Smoke test of the fault proxy against the real gateway: SigV4 signatures survive the forwarding
// (Host unchanged), the S3 shape helpers pick the requests the SDK really sends, and faults the
// library is built to ride out leave the data intact.
let direct: S3Client;
let bucket: string;
let dir: string;
let source: string;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-fault-proxy');
  dir = await tempDir();
  source = await randomFile(dir, 'source.bin', 12 * MiB);
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});
afterAll(async () => {
  await removeTestBucket(direct, bucket);
  await rm(dir, { recursive: true, force: true });
});

describe('the fault proxy in front of the real gateway', () => {
  it('a multipart upload and a ranged download pass through it and survive its faults', async () => {
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      seed: 1,
      rules: [
        { match: isCreateMultipartUpload, fault: { type: 'reset-request' }, times: 1 },
        { match: isUploadPart, fault: { type: 'status', status: 503 }, times: 1 },
        { match: isUploadPart, fault: { type: 'reset-response' }, times: 1 },
        { match: isHeadObject, fault: { type: 'status', status: 500 }, times: 1 },
        { match: isGetObject, fault: { type: 'truncate' }, times: 1 },
      ],
    });
    const client = testClient({ endpoint: proxy.url });
    const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 2 };

    const uploaded = await uploadFile(client, source, bucket, 'big.bin', { config });
    expect(uploaded.bytes).toBe(12 * MiB);
    const target = join(dir, 'big.copy');
    await downloadFile(client, bucket, 'big.bin', target, { config });

    expect(await sha256File(target)).toBe(await sha256File(source));
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
    expect(proxy.stats.faultsByRule).toEqual([1, 1, 1, 1, 1]);
    expect(proxy.stats.maxInFlight).toBeLessThanOrEqual(config.concurrency);
    expect(proxy.stats.inFlight).toBe(0);
    // Every part reached the store and was stored, whatever happened to it on the way.
    const storedParts = proxy.log
      .filter((e) => e.method === 'PUT' && e.upstreamStatus === 200)
      .map((e) => new URLSearchParams(e.query).get('partNumber'));
    expect(new Set(storedParts)).toEqual(new Set(['1', '2', '3']));
    expect(proxy.log.filter((e) => e.upstreamStatus === 403)).toEqual([]);
    expect(proxy.log.some((e) => isCompleteMultipartUpload({ ...e, query: new URLSearchParams(e.query), headers: {} }))).toBe(true);
  });

  it('a lost PutObject answer: the store has the object, the client only saw its connection reset', async () => {
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      seed: 1,
      rules: [{ match: isPutObject, fault: { type: 'lose-answer' } }],
    });
    const oneShot = testClient({ endpoint: proxy.url, maxAttempts: 1 });
    const small = await randomFile(dir, 'small.bin', 1000);

    await expect(uploadFile(oneShot, small, bucket, 'lost.bin')).rejects.toThrow();

    expect(proxy.log).toEqual([expect.objectContaining({ method: 'PUT', upstreamStatus: 200, fault: 'lose-answer' })]);
    expect(proxy.log[0]!.status).toBeUndefined();
    const head = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: 'lost.bin' }));
    expect(head.ContentLength).toBe(1000);
  });
});
