import { randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { inject } from 'vitest';
import { createS3Client, deleteObjects, listS3 } from '../../src/index.js';

/** The test server's settings (from the global setup). */
export function s3Server() {
  return inject('s3');
}

/** A client for the test server, built the way users build theirs. */
export function testClient(overrides: Parameters<typeof createS3Client>[0] = {}): S3Client {
  const s3 = s3Server();
  return createS3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    ...overrides,
  });
}

/** The environment a spawned CLI needs to reach the test server. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const s3 = s3Server();
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_ENDPOINT_URL: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
    // Keep the developer's ~/.aws out of the tests.
    AWS_CONFIG_FILE: '/nonexistent/config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    ...extra,
  };
}

/** Creates a uniquely named bucket. */
export async function createTestBucket(client: S3Client, prefix = 's3xfer-test'): Promise<string> {
  const bucket = `${prefix}-${randomBytes(4).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Multipart uploads still open in a bucket. */
export async function openMultipartUploads(client: S3Client, bucket: string): Promise<Array<{ Key?: string; UploadId?: string }>> {
  const { Uploads } = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return Uploads ?? [];
}

/** Aborts every multipart upload open in `bucket` (one test's leftovers must not fail the next). */
export async function abortOpenUploads(client: S3Client, bucket: string): Promise<void> {
  for (const u of await openMultipartUploads(client, bucket)) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  }
}

/** Keys in a bucket. */
export async function listKeys(client: S3Client, bucket: string): Promise<string[]> {
  const { Contents } = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (Contents ?? []).map((o) => o.Key!);
}

/**
 * Empties and deletes a bucket of any size: aborts every open multipart upload and deletes every
 * key, page after page (DeleteObjects in batches of 1,000).
 */
export async function removeTestBucket(client: S3Client, bucket: string): Promise<void> {
  for (let uploads = await openMultipartUploads(client, bucket); uploads.length > 0; uploads = await openMultipartUploads(client, bucket)) {
    await Promise.all(
      uploads.map((u) => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }))),
    );
  }
  const result = await deleteObjects(client, bucket, allKeys(client, bucket));
  if (result.failed > 0) throw new Error(`${bucket}: ${result.failed} keys could not be deleted`);
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

async function* allKeys(client: S3Client, bucket: string): AsyncGenerator<string> {
  for await (const entry of listS3(client, bucket, '')) if (entry.kind === 'file') yield entry.s3!.key;
}

/**
 * Counts, on a client, the requests of each command and the attempts that failed (the SDK retries
 * inside the count: the middleware sits below its retry loop), so fault tests can prove a fault hit.
 */
export function countAttempts(client: S3Client): { requests: Map<string, number>; failures: number } {
  const counts = { requests: new Map<string, number>(), failures: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? '?';
      counts.requests.set(name, (counts.requests.get(name) ?? 0) + 1);
      try {
        return await next(args);
      } catch (error) {
        counts.failures++;
        throw error;
      }
    },
    { step: 'deserialize', name: 's3xferTestAttemptCounter' },
  );
  return counts;
}

/** Uploads `data` as the aws CLI does: CreateMultipartUpload without metadata, parts of `partSizes`. */
export async function uploadInParts(client: S3Client, bucket: string, key: string, data: Buffer, partSizes: number[]): Promise<void> {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const parts = [];
  for (let i = 0, start = 0; i < partSizes.length; start += partSizes[i]!, i++) {
    const body = data.subarray(start, start + partSizes[i]!);
    const { ETag } = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body }));
    parts.push({ PartNumber: i + 1, ETag });
  }
  await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
}
