import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LocalFileError, S3ServiceError, S3xferError, TransferAbortedError, UsageError, uploadFile } from '../../src/index.js';
import { MiB, randomFile, tempDir } from '../helpers/files.js';
import { abortSignalOf } from '../helpers/mock.js';

/**
 * The payload hash s3xfer gives the signer for `command` (x-amz-content-sha256): the command's own
 * middleware is run on a bare request, as the SDK runs it before signing.
 */
async function signedPayloadHash(command: PutObjectCommand | UploadPartCommand): Promise<string | undefined> {
  let headers: Record<string, string> = {};
  const stack = command.middlewareStack as PutObjectCommand['middlewareStack'];
  const handler = stack.resolve(async (args) => {
    headers = (args.request as { headers: Record<string, string> }).headers;
    return { output: { $metadata: {} }, response: {} };
  }, {} as never);
  await handler({ input: command.input as PutObjectCommand['input'], request: { headers: {} } } as Parameters<typeof handler>[0]);
  return headers['x-amz-content-sha256'];
}

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
let dir: string;
let small: string;
let large: string;

beforeAll(async () => {
  dir = await tempDir();
  small = await randomFile(dir, 'notes.txt', 1000);
  large = await randomFile(dir, 'big.bin', 20 * MiB + 5);
});
afterAll(() => rm(dir, { recursive: true, force: true }));
beforeEach(() => s3.reset());

function mockMultipartSuccess() {
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-1' });
  s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }));
  s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '' }); // Ceph's empty <ETag/>
  s3.on(HeadObjectCommand).resolves({ ETag: '"md5-3"', ContentLength: 20 * MiB + 5 });
}

describe('uploadFile below the multipart threshold', () => {
  it('sends one PutObject with the bytes, their length, their signed SHA-256 and a guessed Content-Type', async () => {
    s3.on(PutObjectCommand).resolves({ ETag: '"abc"' });
    const result = await uploadFile(client, small, 'bkt', 'k/notes.txt', { extraArgs: { CacheControl: 'no-cache', Metadata: { a: '1' } } });

    const calls = s3.commandCalls(PutObjectCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    const bytes = await readFile(small);
    expect(Buffer.compare(input.Body as Buffer, bytes)).toBe(0);
    // The server checks the body against the hash the request is signed with.
    expect(await signedPayloadHash(calls[0]!.args[0] as PutObjectCommand)).toBe(sha256Hex(bytes));
    expect(input).toMatchObject({
      Bucket: 'bkt',
      Key: 'k/notes.txt',
      ContentLength: 1000,
      ContentType: 'text/plain',
      CacheControl: 'no-cache',
      Metadata: { a: '1' },
    });
    expect(result).toMatchObject({
      direction: 'upload',
      bytes: 1000,
      etag: '"abc"',
      parts: 1,
      multipart: false,
      bucket: 'bkt',
      key: 'k/notes.txt',
    });
    expect(s3.commandCalls(CreateMultipartUploadCommand)).toHaveLength(0);
  });

  it('lets an explicit ContentType win over the guess', async () => {
    s3.on(PutObjectCommand).resolves({ ETag: '"abc"' });
    await uploadFile(client, small, 'bkt', 'k', { extraArgs: { ContentType: 'application/x-custom' } });
    expect(s3.commandCalls(PutObjectCommand)[0]!.args[0].input.ContentType).toBe('application/x-custom');
  });

  it('reports progress, then done, to subscribers', async () => {
    s3.on(PutObjectCommand).resolves({ ETag: '"abc"' });
    const events: string[] = [];
    await uploadFile(client, small, 'bkt', 'k', {
      subscribers: [
        {
          onQueued: (t) => events.push(`queued ${t.totalBytes}`),
          onProgress: (p) => events.push(`progress ${p.bytesDelta} ${p.bytesDone}`),
          onDone: (r) => events.push(`done ${r.bytes}`),
        },
      ],
    });
    expect(events).toEqual(['queued 1000', 'progress 1000 1000', 'done 1000']);
  });
});

describe('uploadFile at or above the multipart threshold', () => {
  it('uploads 8 MiB parts, each signed with its SHA-256, and takes the ETag from HeadObject when Complete has none', async () => {
    mockMultipartSuccess();
    const progress: number[] = [];
    const result = await uploadFile(client, large, 'bkt', 'big.bin', { onProgress: (p) => progress.push(p.bytesDone) });

    const commands = s3.commandCalls(UploadPartCommand).map((c) => c.args[0] as UploadPartCommand);
    const parts = commands.map((c) => c.input);
    expect(parts.map((p) => p.PartNumber).sort()).toEqual([1, 2, 3]);
    // Each part is signed with its own SHA-256: the server checks every part's bytes.
    for (const command of commands) expect(await signedPayloadHash(command)).toBe(sha256Hex(command.input.Body as Buffer));
    expect(parts.map((p) => (p.Body as Buffer).length).sort((a, b) => a - b)).toEqual([4 * MiB + 5, 8 * MiB, 8 * MiB]);
    expect(parts.every((p) => p.UploadId === 'up-1')).toBe(true);
    const complete = s3.commandCalls(CompleteMultipartUploadCommand)[0]!.args[0].input;
    expect(complete.MultipartUpload?.Parts?.map((p) => p.PartNumber)).toEqual([1, 2, 3]);
    expect(s3.commandCalls(CreateMultipartUploadCommand)[0]!.args[0].input.ContentType).toBe('application/octet-stream');
    expect(result).toMatchObject({ etag: '"md5-3"', parts: 3, multipart: true, bytes: 20 * MiB + 5 });
    expect(progress.at(-1)).toBe(20 * MiB + 5);
    expect(s3.commandCalls(AbortMultipartUploadCommand)).toHaveLength(0);
  });

  it('uses the configured part size, threshold and concurrency', async () => {
    mockMultipartSuccess();
    const result = await uploadFile(client, large, 'bkt', 'big.bin', { config: { partSize: 5 * MiB, concurrency: 2 } });
    expect(s3.commandCalls(UploadPartCommand)).toHaveLength(5);
    expect(result.parts).toBe(5);
  });

  it('aborts the multipart upload when a part fails, and reports the S3 error', async () => {
    mockMultipartSuccess();
    s3.on(UploadPartCommand).rejects(
      Object.assign(new Error(''), { name: 'InternalError', $metadata: { httpStatusCode: 500, attempts: 5 } }),
    );
    s3.on(AbortMultipartUploadCommand).resolves({});

    const failure = await uploadFile(client, large, 'bkt', 'big.bin').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as Error).message).toMatch(/InternalError, HTTP 500\) after 5 attempts/);
    const aborts = s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input);
    expect(aborts.length).toBeGreaterThanOrEqual(1);
    expect(aborts[0]).toEqual({ Bucket: 'bkt', Key: 'big.bin', UploadId: 'up-1' });
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  });

  it('aborts the multipart upload when CompleteMultipartUpload fails', async () => {
    mockMultipartSuccess();
    s3.on(CompleteMultipartUploadCommand).rejects(
      Object.assign(new Error(''), { name: 'InvalidPart', $metadata: { httpStatusCode: 400 } }),
    );
    s3.on(AbortMultipartUploadCommand).resolves({});
    await expect(uploadFile(client, large, 'bkt', 'big.bin')).rejects.toThrow(/InvalidPart/);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toContain('up-1');
  });

  it('stops in-flight parts on abort, aborts the upload on the server, and rejects with TransferAbortedError', async () => {
    mockMultipartSuccess();
    const controller = new AbortController();
    const reason = new Error('the user pressed cancel');
    s3.on(UploadPartCommand).callsFake(() => {
      // A part that never finishes on its own: only the signal s3xfer hands to send() can end it.
      const abortSignal = abortSignalOf(s3.send.lastCall);
      setTimeout(() => controller.abort(reason), 20); // the user presses Ctrl-C while parts are in flight
      return new Promise((_resolve, reject) => {
        const aborted = () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
        if (abortSignal?.aborted) aborted(); // as the SDK does for a signal aborted before the request
        abortSignal?.addEventListener('abort', aborted);
      });
    });
    s3.on(AbortMultipartUploadCommand).resolves({});

    const failure = await uploadFile(client, large, 'bkt', 'big.bin', { abortSignal: controller.signal }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(TransferAbortedError);
    // Its cause is what the caller gave abort(), not an error of s3xfer's own.
    expect((failure as Error).cause).toBe(reason);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toContain('up-1');
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  });

  it('retries the abort itself when lib-storage could not abort, so no parts are orphaned', async () => {
    mockMultipartSuccess();
    s3.on(UploadPartCommand).rejects(Object.assign(new Error(''), { name: 'InternalError', $metadata: { httpStatusCode: 500 } }));
    s3.on(AbortMultipartUploadCommand)
      .rejectsOnce(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .resolves({});
    await expect(uploadFile(client, large, 'bkt', 'big.bin')).rejects.toBeInstanceOf(S3ServiceError);
    expect(s3.commandCalls(AbortMultipartUploadCommand).length).toBeGreaterThanOrEqual(2);
  });

  it('says so, naming the UploadId, when the upload cannot be aborted at all', async () => {
    mockMultipartSuccess();
    s3.on(UploadPartCommand).rejects(Object.assign(new Error(''), { name: 'InternalError', $metadata: { httpStatusCode: 500 } }));
    s3.on(AbortMultipartUploadCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    const failure = await uploadFile(client, large, 'bkt', 'big.bin').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3xferError);
    expect((failure as S3xferError).code).toBe('AbortFailed');
    expect((failure as Error).message).toMatch(/InternalError.*the multipart upload up-1 could not be aborted/);
    // How to remove its parts, as a command to paste (the key quoted for a shell).
    expect((failure as Error).message).toContain(
      '(remove them with `aws s3api abort-multipart-upload --bucket bkt --key big.bin --upload-id up-1`',
    );
  });

  it('checks the stored size after completing', async () => {
    mockMultipartSuccess();
    s3.on(HeadObjectCommand).resolves({ ETag: '"x-3"', ContentLength: 123 });
    await expect(uploadFile(client, large, 'bkt', 'big.bin')).rejects.toThrow(/stored object has 123 bytes/);
  });
});

describe('uploadFile guards against what can go wrong mid-upload', () => {
  it('reports parts left on the server even when the user cancelled', async () => {
    mockMultipartSuccess();
    const controller = new AbortController();
    s3.on(UploadPartCommand).callsFake(() => {
      controller.abort();
      throw Object.assign(new Error('aborted'), { name: 'AbortError' });
    });
    s3.on(AbortMultipartUploadCommand).rejects(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const failure = await uploadFile(client, large, 'bkt', 'big.bin', { abortSignal: controller.signal }).catch((e: unknown) => e);
    expect(failure).not.toBeInstanceOf(TransferAbortedError);
    expect((failure as S3xferError).code).toBe('AbortFailed');
    expect((failure as Error).message).toMatch(/multipart upload up-1 could not be aborted/);
  });

  it('aborts instead of completing when the file shrinks during a multipart upload', async () => {
    const shrinking = await randomFile(dir, 'shrinking.bin', 30 * MiB);
    mockMultipartSuccess();
    s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => {
      if (input.PartNumber === 1) await truncate(shrinking, 12 * MiB);
      return { ETag: `"etag-${input.PartNumber}"` };
    });
    s3.on(AbortMultipartUploadCommand).resolves({});
    const failure = await uploadFile(client, shrinking, 'bkt', 'shrinking.bin', { config: { concurrency: 1 } }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LocalFileError);
    expect((failure as LocalFileError).code).toBe('FileChanged');
    expect((failure as Error).message).toMatch(/changed while it was being uploaded/);
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toContain('up-1');
  });

  it('sends a file of exactly one part as one PutObject, signed with its SHA-256, even at the threshold', async () => {
    const onePart = await randomFile(dir, 'one-part.bin', 8 * MiB);
    s3.on(PutObjectCommand).resolves({ ETag: '"x"' });
    const result = await uploadFile(client, onePart, 'bkt', 'one-part.bin', { config: { multipartThreshold: 8 * MiB } });
    const command = s3.commandCalls(PutObjectCommand)[0]!.args[0] as PutObjectCommand;
    expect(await signedPayloadHash(command)).toBe(sha256Hex(await readFile(onePart)));
    expect(s3.commandCalls(CreateMultipartUploadCommand)).toHaveLength(0);
    expect(result).toMatchObject({ parts: 1, multipart: false });
  });
});

describe('uploadFile refuses bad input before any request', () => {
  it('tells subscribers about the failure too', async () => {
    const failed: string[] = [];
    await uploadFile(client, join(dir, 'nope.bin'), 'bkt', 'k', { subscribers: [{ onFailed: (_t, e) => failed.push(e.message) }] }).catch(
      () => {},
    );
    expect(failed).toEqual([expect.stringMatching(/no such file or directory/)]);
  });

  it('an empty file name', async () => {
    await expect(uploadFile(client, '', 'bkt', 'k')).rejects.toBeInstanceOf(UsageError);
    expect(s3.calls()).toHaveLength(0);
  });

  it.each([
    ['a missing file', () => join(dir, 'nope.bin'), /no such file or directory/],
    ['a directory', () => dir, /is a directory/],
  ])('%s', async (_name, path, message) => {
    const failure = await uploadFile(client, path(), 'bkt', 'k').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LocalFileError);
    expect((failure as LocalFileError).isSource).toBe(true);
    expect((failure as Error).message).toMatch(message);
    expect(s3.calls()).toHaveLength(0);
  });

  it('an empty key', async () => {
    await expect(uploadFile(client, small, 'bkt', '')).rejects.toBeInstanceOf(UsageError);
    expect(s3.calls()).toHaveLength(0);
  });

  it('a part size below 5 MiB', async () => {
    await expect(uploadFile(client, large, 'bkt', 'k', { config: { partSize: 4 * MiB } })).rejects.toThrow(/from 5 MiB to [45] GiB/);
    expect(s3.calls()).toHaveLength(0);
  });

  it('an already aborted signal', async () => {
    await mkdir(dir, { recursive: true });
    await expect(uploadFile(client, small, 'bkt', 'k', { abortSignal: AbortSignal.abort() })).rejects.toBeInstanceOf(TransferAbortedError);
    expect(s3.calls()).toHaveLength(0);
  });
});

describe('uploadFile checks the multipart ETag the store reports against its parts', () => {
  const md5Of = (n: number) => createHash('md5').update(`part-${n}`).digest('hex');
  const assembled = (count: number) => {
    const digest = createHash('md5');
    for (let n = 1; n <= count; n++) digest.update(Buffer.from(md5Of(n), 'hex'));
    return `"${digest.digest('hex')}-${count}"`;
  };

  function mockParts(completeEtag: string) {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-1' });
    s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({ ETag: `"${md5Of(input.PartNumber)}"` }));
    s3.on(CompleteMultipartUploadCommand).resolves({ ETag: completeEtag });
  }

  it('accepts the ETag the parts make', async () => {
    mockParts(assembled(3));
    const result = await uploadFile(client, large, 'bkt', 'big.bin');
    expect(result.etag).toBe(assembled(3));
  });

  it('fails with EtagMismatch when the store assembled something else', async () => {
    mockParts(`"${'0'.repeat(32)}-3"`);
    const failure = await uploadFile(client, large, 'bkt', 'big.bin').catch((e: unknown) => e);
    expect((failure as S3xferError).code).toBe('EtagMismatch');
    expect((failure as Error).message).toMatch(/is not the one its parts make/);
  });
});

describe('uploadFile with a flexible checksum (--checksum-algorithm)', () => {
  it('asks for it on the PutObject of a small file', async () => {
    s3.on(PutObjectCommand).resolves({ ETag: '"abc"' });
    await uploadFile(client, small, 'bkt', 'k', { extraArgs: { ChecksumAlgorithm: 'CRC32' } });
    expect(s3.commandCalls(PutObjectCommand)[0]!.args[0].input.ChecksumAlgorithm).toBe('CRC32');
  });

  it('asks for it on Create and every part, and completes with the parts’ checksums', async () => {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-1' });
    s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({
      ETag: `"e${input.PartNumber}"`,
      ChecksumCRC32: `c${input.PartNumber}==`,
    }));
    s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '"m-3"' });
    await uploadFile(client, large, 'bkt', 'big.bin', { extraArgs: { ChecksumAlgorithm: 'CRC32' } });
    expect(s3.commandCalls(CreateMultipartUploadCommand)[0]!.args[0].input.ChecksumAlgorithm).toBe('CRC32');
    expect(s3.commandCalls(UploadPartCommand).map((c) => c.args[0].input.ChecksumAlgorithm)).toEqual(['CRC32', 'CRC32', 'CRC32']);
    expect(s3.commandCalls(CompleteMultipartUploadCommand)[0]!.args[0].input.MultipartUpload?.Parts).toEqual([
      { PartNumber: 1, ETag: '"e1"', ChecksumCRC32: 'c1==' },
      { PartNumber: 2, ETag: '"e2"', ChecksumCRC32: 'c2==' },
      { PartNumber: 3, ETag: '"e3"', ChecksumCRC32: 'c3==' },
    ]);
  });
});
