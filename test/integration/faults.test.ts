import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, uploadFile } from '../../src/index.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { countAttempts, createTestBucket, openMultipartUploads, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';

// The gateway process is SIGKILLed mid-transfer and started again (~1 s): requests in flight
// break and new ones are refused until it is back. Only possible on the project's own server.
const local = s3Server().local;
const restartGateway = () => promisify(execFile)('bash', ['scripts/s3-server.sh', 'restart-gateway']);

let client: S3Client;
let bucket: string;
let dir: string;
let source: string;

beforeAll(async () => {
  if (!local) return;
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-faults');
  dir = await tempDir();
  source = await randomFile(dir, 'source.bin', 96 * MiB);
});
afterAll(async () => {
  if (!local) return;
  await removeTestBucket(client, bucket);
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!local)('transfers survive the gateway being killed and restarted', () => {
  const config = { partSize: 5 * MiB, concurrency: 2 };

  it('a multipart upload retries its parts and completes', async () => {
    let restart: Promise<unknown> | undefined;
    const faulty = testClient();
    const attempts = countAttempts(faulty);
    const result = await uploadFile(faulty, source, bucket, 'upload.bin', {
      config,
      onProgress: (p) => {
        if (p.bytesDone >= 10 * MiB) restart ??= restartGateway();
      },
    });
    await restart;
    expect(restart).toBeDefined();
    // The restart really broke requests that were then retried: the test proves recovery.
    expect(attempts.failures).toBeGreaterThan(0);
    expect(result.bytes).toBe(96 * MiB);
    const target = join(dir, 'check.bin');
    await downloadFile(client, bucket, 'upload.bin', target);
    expect(await sha256File(target)).toBe(await sha256File(source));
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
  });

  it('a ranged download resumes its broken streams and completes byte-for-byte', async () => {
    await uploadFile(client, source, bucket, 'download.bin');
    let restart: Promise<unknown> | undefined;
    const target = join(dir, 'downloaded.bin');
    const faulty = testClient();
    const attempts = countAttempts(faulty);
    const result = await downloadFile(faulty, bucket, 'download.bin', target, {
      config,
      onProgress: (p) => {
        if (p.bytesDone >= 10 * MiB) restart ??= restartGateway();
      },
    });
    await restart;
    expect(restart).toBeDefined();
    // Broken streams were resumed or refused requests retried: more GETs than ranges (the ranges
    // follow the upload's part layout, which verification needs).
    expect(result.parts).toBeGreaterThan(1);
    expect(attempts.failures + (attempts.requests.get('GetObjectCommand') ?? 0)).toBeGreaterThan(result.parts);
    expect(await sha256File(target)).toBe(await sha256File(source));
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });
});
