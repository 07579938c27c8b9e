import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransferManager } from '../../src/index.js';
import { isPutObject, startFaultProxy } from '../helpers/fault-proxy.js';
import { randomFile, rm, tempDir } from '../helpers/files.js';
import { createTestBucket, removeTestBucket, testClient } from '../helpers/s3.js';

// A SlowDown storm: the store answers 503 SlowDown to a run of uploads, then recovers. The engine
// must lower its concurrency while it lasts, raise it again afterwards, and lose nothing.
let direct: S3Client;
let bucket: string;
let dir: string;
const files: string[] = [];

beforeAll(async () => {
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-throttle');
  dir = await tempDir();
  for (let i = 0; i < 120; i++) files.push(await randomFile(dir, `f${i}.bin`, 1000 + i));
});
afterAll(async () => {
  await removeTestBucket(direct, bucket);
  await rm(dir, { recursive: true, force: true });
});

describe('under sustained SlowDown', () => {
  it('backs off its concurrency, recovers it when the store does, and uploads every file', async () => {
    const proxy = await startFaultProxy({
      upstream: await endpointOf(direct),
      seed: 7,
      rules: [{ match: isPutObject, fault: { type: 'status', status: 503, code: 'SlowDown' }, probability: 0.5, times: 16 }],
    });
    try {
      const client = testClient({ endpoint: proxy.url, maxAttempts: 12 });
      const manager = new TransferManager(client, { config: { concurrency: 8 } });
      const results = await Promise.allSettled(files.map((file, i) => manager.upload(file, bucket, `k/${i}`)));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(proxy.stats.faults).toBe(16);
      // It backed off while throttled…
      expect(manager.stats.minConcurrency).toBeLessThanOrEqual(4);
      // …never sent more than it was allowed…
      expect(proxy.stats.maxInFlight).toBeLessThanOrEqual(8);
      // …and was back at full concurrency once the store recovered.
      expect(manager.stats.concurrency).toBe(8);
      const head = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k/119' }));
      expect(head.ContentLength).toBe(1119);
    } finally {
      await proxy.close();
    }
  });
});

async function endpointOf(client: S3Client): Promise<string> {
  const endpoint = await client.config.endpoint?.();
  return `${endpoint?.protocol}//${endpoint?.hostname}${endpoint?.port ? `:${endpoint.port}` : ''}`;
}
