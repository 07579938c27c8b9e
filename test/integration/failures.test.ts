import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, S3ServiceError, TransferAbortedError, uploadFile } from '../../src/index.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { createTestBucket, listKeys, openMultipartUploads, removeTestBucket, testClient } from '../helpers/s3.js';

let client: S3Client;
let bucket: string;
let dir: string;
let big: string;

beforeAll(async () => {
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-failures');
  dir = await tempDir();
  big = await randomFile(dir, 'big.bin', 64 * MiB);
});
afterAll(async () => {
  await removeTestBucket(client, bucket);
  await rm(dir, { recursive: true, force: true });
});

describe('after a failed or cancelled transfer nothing is left behind', () => {
  it('an upload aborted after its first part leaves no multipart upload and no object', async () => {
    const controller = new AbortController();
    const failure = await uploadFile(client, big, bucket, 'aborted-upload.bin', {
      config: { partSize: 5 * MiB, concurrency: 2 },
      abortSignal: controller.signal,
      onProgress: () => controller.abort(),
    }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(TransferAbortedError);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain('aborted-upload.bin');
  });

  it('an upload whose second part fails leaves no multipart upload and no object', async () => {
    // A real multipart upload on the real server, with one part made to fail in the client.
    const failing = testClient({ maxAttempts: 1 });
    failing.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { PartNumber?: number; UploadId?: string };
        if (input.UploadId && input.PartNumber === 2)
          throw Object.assign(new Error('injected'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } });
        return next(args);
      },
      { step: 'initialize', name: 'failSecondPart' },
    );
    let started = false;
    const failure = await uploadFile(failing, big, bucket, 'refused.bin', {
      config: { partSize: 5 * MiB, concurrency: 1 },
      onProgress: () => (started = true),
    }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as Error).message).toMatch(/InternalError, HTTP 500/);
    expect(started).toBe(true); // part 1 really was stored before the failure
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain('refused.bin');
  });

  it.each([
    ['a single PUT', 3 * MiB, {}],
    ['a part', 12 * MiB, { partSize: 5 * MiB, multipartThreshold: 5 * MiB }],
  ])(
    'bytes that differ from the SHA-256 %s is signed with are refused by the server, and nothing is stored',
    async (what, size, config) => {
      // One byte of every body is changed after signing, on its way to the socket, as a bad
      // network card or proxy might: the server must refuse it (XAmzContentSHA256Mismatch).
      const source = await randomFile(dir, `tampered-${size}.bin`, size);
      const tampering = testClient({ maxAttempts: 1 });
      tampering.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { body?: unknown };
          if (Buffer.isBuffer(request.body) && request.body.length > 0) {
            const body = Buffer.from(request.body); // a copy: the caller's buffer stays as it was
            body[body.length >> 1]! ^= 0xff;
            request.body = body;
          }
          return next(args);
        },
        { step: 'deserialize', name: 'tamperAfterSigning' },
      );
      const failure = await uploadFile(tampering, source, bucket, `tampered-${size}.bin`, { config }).catch((e: unknown) => e);
      expect(failure, what).toBeInstanceOf(S3ServiceError);
      expect((failure as S3ServiceError).code).toBe('XAmzContentSHA256Mismatch');
      expect(await openMultipartUploads(client, bucket)).toEqual([]);
      expect(await listKeys(client, bucket)).not.toContain(`tampered-${size}.bin`);
    },
  );

  it('a download aborted midway removes its temp file and leaves the existing destination as it was', async () => {
    await uploadFile(client, big, bucket, 'to-download.bin');
    const target = join(dir, 'existing.bin');
    await writeFile(target, 'the previous version');
    const controller = new AbortController();
    const failure = await downloadFile(client, bucket, 'to-download.bin', target, {
      config: { partSize: 5 * MiB, concurrency: 2 },
      abortSignal: controller.signal,
      onProgress: (p) => p.bytesDone > 6 * MiB && controller.abort(),
    }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(TransferAbortedError);
    expect(await readFile(target, 'utf8')).toBe('the previous version');
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('a download whose object is overwritten midway fails (If-Match) and leaves nothing', async () => {
    await uploadFile(client, big, bucket, 'changing.bin');
    const target = join(dir, 'changing.bin');
    let overwritten: Promise<unknown> | undefined;
    const failure = await downloadFile(client, bucket, 'changing.bin', target, {
      config: { partSize: 5 * MiB, concurrency: 1 },
      onProgress: () => {
        overwritten ??= client.send(new PutObjectCommand({ Bucket: bucket, Key: 'changing.bin', Body: 'new content' }));
      },
    }).catch((e: unknown) => e);
    await overwritten;

    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as S3ServiceError).code).toMatch(/PreconditionFailed|InvalidRange/);
    await expect(readFile(target)).rejects.toThrow(/ENOENT/);
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('a download of a missing key fails with NoSuchKey and creates no file', async () => {
    const failure = await downloadFile(client, bucket, 'no/such/key.bin', join(dir, 'nothing.bin')).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as S3ServiceError).code).toBe('NoSuchKey');
    await expect(readFile(join(dir, 'nothing.bin'))).rejects.toThrow(/ENOENT/);
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('a download from a missing bucket says the bucket does not exist', async () => {
    await expect(downloadFile(client, 'no-such-bucket-s3xfer', 'k', join(dir, 'x'))).rejects.toThrow(
      'bucket "no-such-bucket-s3xfer" does not exist (NoSuchBucket, HTTP 404)',
    );
  });

  it('an upload to a missing bucket says the bucket does not exist, for single and multipart uploads', async () => {
    const small = await randomFile(dir, 'small.bin', 10);
    await expect(uploadFile(client, small, 'no-such-bucket-s3xfer', 'k')).rejects.toThrow(/bucket "no-such-bucket-s3xfer" does not exist/);
    await expect(uploadFile(client, big, 'no-such-bucket-s3xfer', 'k')).rejects.toThrow(/bucket "no-such-bucket-s3xfer" does not exist/);
  });

  it('a file that is read back verifies against what was uploaded', async () => {
    const target = join(dir, 'verify.bin');
    await uploadFile(client, big, bucket, 'verify.bin');
    await downloadFile(client, bucket, 'verify.bin', target);
    expect(await sha256File(target)).toBe(await sha256File(big));
  });
});
