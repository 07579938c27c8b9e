/**
 * TransferManager.uploadStream against a mocked S3 (a real S3Client whose send is stubbed): the
 * part plan, one PutObject for a short stream, the 10,000-part limit (lowered with maxParts),
 * and the guarantees around lib-storage: pool slots, abort signals, memory budget, and a
 * multipart upload aborted on every failure.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
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
import { beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_TRANSFER_CONFIG,
  planStreamUpload,
  S3ServiceError,
  TransferAbortedError,
  TransferManager,
  UsageError,
} from '../../src/index.js';

import { MiB } from '../helpers/files.js';
import { abortSignalOf } from '../helpers/mock.js';

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
beforeEach(() => s3.reset());

const GiB = 1024 * MiB;
const partSize = 5 * MiB;
const config = { partSize, concurrency: 4 };

/** A stream of `data` in 64 KiB chunks, as stdin delivers a pipe, counting what was read. */
function streamOf(data: Buffer) {
  const state = { read: 0 };
  const stream = Readable.from(
    (function* () {
      for (let offset = 0; offset < data.length; offset += 64 * 1024) {
        const chunk = data.subarray(offset, offset + 64 * 1024);
        state.read += chunk.length;
        yield chunk;
      }
    })(),
  );
  return { stream, state };
}

/** A long stream made as it is read (zeros), counting what was read. */
function endlessStream(size: number) {
  const state = { read: 0 };
  const chunk = Buffer.alloc(MiB);
  const stream = new Readable({
    read() {
      if (state.read >= size) return this.push(null);
      state.read += chunk.length;
      this.push(chunk);
    },
  });
  return { stream, state };
}

function mockMultipart() {
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-1' });
  s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }));
  s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '"done-3"' });
  s3.on(AbortMultipartUploadCommand).resolves({});
}

/** The abort signal of the request being faked (the fake runs inside send()). */
function currentSignal(): AbortSignal | undefined {
  return abortSignalOf(s3.send.lastCall);
}

/** A request that only ends when its abort signal fires, as the SDK's do. */
function hangUntilAborted(): Promise<never> {
  const signal = currentSignal();
  return new Promise((_resolve, reject) => {
    const aborted = () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
    if (signal?.aborted) aborted();
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

describe('planStreamUpload', () => {
  it('keeps the configured part size without an expected size, and bounds parts in flight by the budget', () => {
    expect(planStreamUpload(DEFAULT_TRANSFER_CONFIG)).toEqual({
      partSize: 8 * MiB,
      queueSize: 10,
      reservedBytes: 11 * 8 * MiB,
      maxBytes: 10_000 * 8 * MiB,
    });
    // 64 MiB parts in a 256 MiB budget: 3 in flight and one being filled.
    expect(planStreamUpload({ ...DEFAULT_TRANSFER_CONFIG, partSize: 64 * MiB })).toMatchObject({ queueSize: 3, reservedBytes: 256 * MiB });
  });

  it('raises the part size to a whole MiB so that the expected size fits in 10,000 parts, as the aws CLI does', () => {
    expect(planStreamUpload(DEFAULT_TRANSFER_CONFIG, 100 * GiB).partSize).toBe(11 * MiB);
    expect(planStreamUpload(DEFAULT_TRANSFER_CONFIG, 50 * GiB).partSize).toBe(8 * MiB);
    expect(planStreamUpload(DEFAULT_TRANSFER_CONFIG, 1000 * GiB)).toMatchObject({ partSize: 103 * MiB, queueSize: 1 });
    expect(planStreamUpload(DEFAULT_TRANSFER_CONFIG, 12 * MiB, 2).partSize).toBe(8 * MiB);
    expect(planStreamUpload(DEFAULT_TRANSFER_CONFIG, 17 * MiB, 2).partSize).toBe(9 * MiB);
  });

  it('refuses an expected size no S3 object can hold, and one that is not a byte count', () => {
    expect(() => planStreamUpload(DEFAULT_TRANSFER_CONFIG, 60_000 * GiB)).toThrow(UsageError);
    expect(() => planStreamUpload(DEFAULT_TRANSFER_CONFIG, -1)).toThrow(/invalid expected size/);
  });
});

describe('uploadStream', () => {
  it('sends a stream that fits in one part as one PutObject', async () => {
    s3.on(PutObjectCommand).resolves({ ETag: '"abc"' });
    const data = randomBytes(100_000);
    const result = await new TransferManager(client, { config }).uploadStream(streamOf(data).stream, 'bkt', 'k', {
      extraArgs: { ContentType: 'text/plain' },
    });

    const puts = s3.commandCalls(PutObjectCommand);
    expect(puts).toHaveLength(1);
    expect(Buffer.compare(puts[0]!.args[0].input.Body as Buffer, data)).toBe(0);
    expect(puts[0]!.args[0].input).toMatchObject({ Bucket: 'bkt', Key: 'k', ContentType: 'text/plain' });
    expect(s3.commandCalls(CreateMultipartUploadCommand)).toHaveLength(0);
    expect(result).toMatchObject({ source: '-', destination: 's3://bkt/k', bytes: 100_000, parts: 1, multipart: false, etag: '"abc"' });
  });

  it('sends an empty stream as one empty PutObject', async () => {
    s3.on(PutObjectCommand).resolves({ ETag: '"d41d8cd98f00b204e9800998ecf8427e"' });
    const result = await new TransferManager(client, { config }).uploadStream(Readable.from([]), 'bkt', 'empty');
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(1);
    expect((s3.commandCalls(PutObjectCommand)[0]!.args[0].input.Body as Buffer).length).toBe(0);
    expect(result).toMatchObject({ bytes: 0, parts: 1, multipart: false });
  });

  it('uploads a longer stream in parts through the pool, records the part size, and gives its budget back', async () => {
    mockMultipart();
    const data = randomBytes(2 * partSize + 1234);
    const progress: number[] = [];
    const manager = new TransferManager(client, { config: { ...config, concurrency: 2 } });
    const result = await manager.uploadStream(streamOf(data).stream, 'bkt', 'big', { onProgress: (p) => progress.push(p.bytesDone) });

    const parts = s3
      .commandCalls(UploadPartCommand)
      .map((c) => c.args[0].input)
      .sort((a, b) => a.PartNumber! - b.PartNumber!);
    expect(Buffer.compare(Buffer.concat(parts.map((p) => p.Body as Buffer)), data)).toBe(0);
    expect(parts.every((p) => p.UploadId === 'up-1')).toBe(true);
    expect(s3.commandCalls(CreateMultipartUploadCommand)[0]!.args[0].input.Metadata).toEqual({ 's3xfer-part-size': String(partSize) });
    expect(s3.commandCalls(CompleteMultipartUploadCommand)[0]!.args[0].input.MultipartUpload?.Parts?.map((p) => p.PartNumber)).toEqual([
      1, 2, 3,
    ]);
    expect(result).toMatchObject({ bytes: data.length, parts: 3, multipart: true, etag: '"done-3"' });
    expect(progress.at(-1)).toBe(data.length);
    expect(s3.commandCalls(AbortMultipartUploadCommand)).toHaveLength(0);
    // All requests but CreateMultipartUpload (left to finish
    // so that an upload created during a cancellation is known and aborted) carried the signal.
    const unsignalled = s3.send
      .getCalls()
      .filter((call) => abortSignalOf(call) === undefined)
      .map((call) => call.args[0].constructor.name);
    expect(unsignalled).toEqual(['CreateMultipartUploadCommand']);
    // The parts in flight plus the one being filled were counted in the budget, and given back.
    expect(manager.stats.maxBufferedBytes).toBe(3 * partSize);
    expect(manager.stats.bufferedBytes).toBe(0);
  });

  it("shares the manager's pool and budget with its other transfers", async () => {
    mockMultipart();
    s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { ETag: `"etag-${input.PartNumber}"` };
    });
    // Each upload alone would run 2 parts at once (queueSize = concurrency): 4 together.
    const manager = new TransferManager(client, { config: { ...config, concurrency: 2 } });
    const results = await Promise.all(
      ['a', 'b'].map((key) => manager.uploadStream(streamOf(randomBytes(4 * partSize)).stream, 'bkt', key)),
    );
    expect(results.map((r) => r.parts)).toEqual([4, 4]);
    expect(manager.stats.maxRequestsInFlight).toBe(2);
    expect(manager.stats.maxBufferedBytes).toBe(2 * 3 * partSize);
    expect(manager.stats.bufferedBytes).toBe(0);
  });

  it('takes the ETag from HeadObject when CompleteMultipartUpload has none (Ceph), and checks the stored size', async () => {
    mockMultipart();
    s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '' });
    const data = randomBytes(partSize + 1);
    s3.on(HeadObjectCommand).resolves({ ETag: '"md5-2"', ContentLength: data.length });
    const result = await new TransferManager(client, { config }).uploadStream(streamOf(data).stream, 'bkt', 'big');
    expect(result.etag).toBe('"md5-2"');

    s3.on(HeadObjectCommand).resolves({ ETag: '"md5-2"', ContentLength: 7 });
    await expect(new TransferManager(client, { config }).uploadStream(streamOf(data).stream, 'bkt', 'big')).rejects.toThrow(
      /stored object has 7 bytes, the stream had 5242881/,
    );
  });
});

describe('uploadStream beyond maxParts × part size', () => {
  it('fails with StreamTooLarge before the part S3 would refuse, and aborts the multipart upload', async () => {
    mockMultipart();
    const { stream, state } = endlessStream(64 * MiB);
    const failure = await new TransferManager(client, { config })
      .uploadStream(stream, 'bkt', 'big', { maxParts: 2 })
      .catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(UsageError);
    expect((failure as UsageError).code).toBe('StreamTooLarge');
    expect((failure as Error).message).toMatch(/longer than 2 parts of 5\.0 MiB \(10\.0 MiB\).*--expected-size/);
    expect(s3.commandCalls(UploadPartCommand).map((c) => c.args[0].input.PartNumber)).not.toContain(3);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input)).toContainEqual({
      Bucket: 'bkt',
      Key: 'big',
      UploadId: 'up-1',
    });
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
    // The stream was read one MiB past the limit, no further, and destroyed.
    expect(state.read).toBe(11 * MiB);
    expect(stream.destroyed).toBe(true);
  });

  it('succeeds with an expected size that raises the part size', async () => {
    mockMultipart();
    const data = randomBytes(11 * MiB);
    const result = await new TransferManager(client, { config }).uploadStream(streamOf(data).stream, 'bkt', 'big', {
      maxParts: 2,
      expectedSize: data.length,
    });
    expect(result).toMatchObject({ parts: 2, bytes: data.length });
    expect(s3.commandCalls(UploadPartCommand).map((c) => (c.args[0].input.Body as Buffer).length)).toContain(6 * MiB);
    expect(s3.commandCalls(CreateMultipartUploadCommand)[0]!.args[0].input.Metadata).toEqual({ 's3xfer-part-size': String(6 * MiB) });
  });
});

describe('uploadStream failures', () => {
  it('cancels the parts in flight and stops reading at the first failed part, reports it, and aborts the upload', async () => {
    mockMultipart();
    // Part 1 would never finish on its own; part 2 fails.
    const partSignals: AbortSignal[] = [];
    s3.on(UploadPartCommand, { PartNumber: 1 }).callsFake(() => {
      partSignals.push(currentSignal()!);
      return hangUntilAborted();
    });
    s3.on(UploadPartCommand, { PartNumber: 2 }).rejects(
      Object.assign(new Error(''), { name: 'InternalError', $metadata: { httpStatusCode: 500, attempts: 5 } }),
    );
    const { stream, state } = endlessStream(GiB);
    const failure = await new TransferManager(client, { config }).uploadStream(stream, 'bkt', 'big').catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as Error).message).toMatch(/InternalError/);
    expect(partSignals.map((signal) => signal.aborted)).toEqual([true]);
    expect(state.read).toBeLessThan(100 * MiB);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toContain('up-1');
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  });

  it('cancels parts in flight on abort, aborts the upload on the server, and rejects with TransferAbortedError', async () => {
    mockMultipart();
    s3.on(UploadPartCommand).callsFake(hangUntilAborted);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const manager = new TransferManager(client, { config });
    const failure = await manager
      .uploadStream(endlessStream(GiB).stream, 'bkt', 'big', { abortSignal: controller.signal })
      .catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(TransferAbortedError);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toContain('up-1');
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
    expect(manager.stats.requestsInFlight).toBe(0);
    expect(manager.stats.bufferedBytes).toBe(0);
  });

  it('aborts an upload whose CreateMultipartUpload was answered after the cancellation', async () => {
    const controller = new AbortController();
    s3.on(CreateMultipartUploadCommand).callsFake(async () => {
      controller.abort();
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { UploadId: 'late-1' };
    });
    s3.on(AbortMultipartUploadCommand).resolves({});
    const failure = await new TransferManager(client, { config })
      .uploadStream(endlessStream(GiB).stream, 'bkt', 'big', { abortSignal: controller.signal })
      .catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(TransferAbortedError);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toEqual(['late-1']);
    expect(s3.commandCalls(UploadPartCommand)).toHaveLength(0);
  });

  it('reports a failing input stream as a source error', async () => {
    mockMultipart();
    const stream = Readable.from(
      (async function* () {
        yield Buffer.alloc(6 * MiB);
        throw Object.assign(new Error('read EIO'), { code: 'EIO', syscall: 'read' });
      })(),
    );
    const failure = await new TransferManager(client, { config }).uploadStream(stream, 'bkt', 'big').catch((e: unknown) => e);
    expect((failure as Error).message).toMatch(/the input stream failed/);
    expect((failure as { isSource?: boolean }).isSource).toBe(true);
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  });
});
