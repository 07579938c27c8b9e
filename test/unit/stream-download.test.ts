/**
 * TransferManager.downloadToStream against a mocked S3 (a real S3Client whose send is stubbed):
 * ranges completing out of order are written in order, the window of buffered ranges is never
 * exceeded, and an abort or a closed output stops every request and returns every buffer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandInput, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, LocalFileError, TransferAbortedError, TransferManager } from '../../src/index.js';
import { MiB } from '../helpers/files.js';
import { abortSignalOf } from '../helpers/mock.js';

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
beforeEach(() => s3.reset());

const partSize = 5 * MiB;
const config = { partSize, multipartThreshold: partSize, concurrency: 8 };
const md5 = (data: Buffer) => `"${createHash('md5').update(data).digest('hex')}"`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Index of the range a GET asks for (0 for a GET without Range). */
const rangeIndex = (input: GetObjectCommandInput) => Math.floor(Number(/^bytes=(\d+)-/.exec(input.Range ?? '')?.[1] ?? 0) / partSize);

interface Served {
  /** Range indexes in the order their responses were sent. */
  completed: number[];
  /** The abort signal each GET was sent with. */
  signals: AbortSignal[];
}

/**
 * One object: HEAD, and ranged GETs answered after `delay(rangeIndex)` ms, or once the promise it
 * returns resolves (`undefined`: never, until the request's abort signal fires, as the SDK does).
 */
function serveObject(data: Buffer, delay: (index: number) => number | Promise<void> | undefined = () => 0, etag = '"multi"'): Served {
  const served: Served = { completed: [], signals: [] };
  s3.on(HeadObjectCommand).resolves({ ContentLength: data.length, ETag: etag });
  s3.on(GetObjectCommand).callsFake(async (input: GetObjectCommandInput) => {
    // The fake runs inside send(): lastCall is this request.
    const signal = abortSignalOf(s3.send.lastCall);
    if (signal) served.signals.push(signal);
    const index = rangeIndex(input);
    const wait = delay(index);
    await new Promise<void>((resolve, reject) => {
      const aborted = () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      if (signal?.aborted) return aborted();
      signal?.addEventListener('abort', aborted, { once: true });
      if (typeof wait === 'number') setTimeout(resolve, wait);
      else void wait?.then(resolve);
    });
    served.completed.push(index);
    const match = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? '');
    const start = match ? Number(match[1]) : 0;
    const end = match ? Number(match[2]) : data.length - 1;
    const slice = data.subarray(start, end + 1);
    return {
      Body: Readable.from([slice]) as never,
      ContentLength: slice.length,
      ...(match ? { ContentRange: `bytes ${start}-${end}/${data.length}` } : {}),
      ETag: etag,
    };
  });
  return served;
}

/** A writable that keeps what it gets, each write taking `delayMs`, and tells when a write completes. */
function collector(delayMs = 0, onWritten: (bytes: number) => void = () => {}) {
  const chunks: Buffer[] = [];
  const writable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      // Copy: the buffer goes back to the budget once the write completes.
      chunks.push(Buffer.from(chunk));
      setTimeout(() => {
        onWritten(chunk.length);
        callback();
      }, delayMs);
    },
  });
  return { writable, data: () => Buffer.concat(chunks) };
}

describe('downloadToStream: ranges in parallel, written in order', () => {
  it('writes ranges that complete in reverse order in their order', async () => {
    const data = randomBytes(5 * partSize + 123);
    // Once all six GETs are in flight, they are answered last range first, 10 ms apart.
    let inFlight = 0;
    let allIn: () => void = () => {};
    const all = new Promise<void>((resolve) => (allIn = resolve));
    const served = serveObject(data, async (index) => {
      if (++inFlight === 6) allIn();
      await all;
      await sleep((6 - index) * 10);
    });
    const out = collector();
    const manager = new TransferManager(client, { config });
    const result = await manager.downloadToStream('bkt', 'big', out.writable);

    expect(served.completed).toEqual([5, 4, 3, 2, 1, 0]);
    expect(out.data().equals(data)).toBe(true);
    expect(result).toMatchObject({ destination: '-', bytes: data.length, parts: 6, multipart: true });
    expect(out.writable.writableFinished).toBe(true);
    // Every buffer went back to the budget.
    await manager.drain();
    expect(manager.stats.bufferedBytes).toBe(0);
  });

  it('never holds more than maxBufferedRanges ranges, however slow the reader', async () => {
    const data = randomBytes(10 * partSize);
    let started = 0;
    let written = 0;
    const held: number[] = [];
    serveObject(data, () => {
      started++;
      held.push(started - written);
      return 5;
    });
    const out = collector(40, () => written++);
    const manager = new TransferManager(client, { config });
    await manager.downloadToStream('bkt', 'big', out.writable, { maxBufferedRanges: 3 });

    expect(out.data().equals(data)).toBe(true);
    // Ranges held (requested, not yet written) when each GET starts: the window fills, and each
    // range written lets exactly one more in.
    expect(held).toEqual([1, 2, 3, 3, 3, 3, 3, 3, 3, 3]);
    expect(manager.stats.maxBufferedBytes).toBeLessThanOrEqual(3 * partSize);
    expect(manager.stats.maxRequestsInFlight).toBeLessThanOrEqual(3);
  });

  it('holds no more ranges than the memory budget has room for', async () => {
    const data = randomBytes(6 * partSize);
    serveObject(data, () => 5);
    const manager = new TransferManager(client, { config: { ...config, memoryBudget: 2 * partSize } });
    const out = collector(20);
    await manager.downloadToStream('bkt', 'big', out.writable);
    expect(out.data().equals(data)).toBe(true);
    expect(manager.stats.maxBufferedBytes).toBeLessThanOrEqual(2 * partSize);
  });

  it('stops on abort: every request cancelled, TransferAbortedError, every buffer back in the budget', async () => {
    const data = randomBytes(6 * partSize);
    const controller = new AbortController();
    // Range 0 answers; the others hang until cancelled.
    const served = serveObject(data, (index) => (index === 0 ? 0 : undefined));
    const out = collector(0, () => setTimeout(() => controller.abort(), 10));
    const manager = new TransferManager(client, { config });
    const failure = await manager.downloadToStream('bkt', 'big', out.writable, { abortSignal: controller.signal }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(TransferAbortedError);
    expect(out.data().equals(data.subarray(0, partSize))).toBe(true);
    expect(served.signals.length).toBeGreaterThan(1);
    expect(served.signals.every((signal) => signal.aborted)).toBe(true);
    expect(out.writable.destroyed).toBe(true);
    await manager.drain();
    expect(manager.stats.bufferedBytes).toBe(0);
  });

  it('fails with LocalFileError EPIPE when the reader goes away, cancelling the other requests', async () => {
    const data = randomBytes(6 * partSize);
    const served = serveObject(data, (index) => (index === 0 ? 0 : undefined));
    const writable = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' }));
      },
    });
    writable.on('error', () => {}); // as the CLI does for stdout
    const manager = new TransferManager(client, { config });
    const failure = await manager.downloadToStream('bkt', 'big', writable, { end: false }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(LocalFileError);
    expect((failure as LocalFileError).code).toBe('EPIPE');
    expect((failure as Error).message).toBe('-: the output was closed before the download finished');
    expect(served.signals.every((signal) => signal.aborted)).toBe(true);
    await manager.drain();
    expect(manager.stats.bufferedBytes).toBe(0);
  });

  it('reports the failed range, not the cancellations it caused, and returns the buffers of ranges never written', async () => {
    const data = randomBytes(4 * partSize);
    // Range 0 hangs until cancelled, ranges 1 and 3 arrive (and wait for it), range 2 fails later.
    serveObject(data, (index) => (index === 0 ? undefined : 0));
    s3.on(GetObjectCommand, { Range: `bytes=${2 * partSize}-${3 * partSize - 1}` }).callsFake(async () => {
      await sleep(50);
      throw Object.assign(new Error(''), { name: 'InternalError', $metadata: { httpStatusCode: 500, attempts: 5 } });
    });
    const out = collector();
    const manager = new TransferManager(client, { config });
    const failure = await manager.downloadToStream('bkt', 'big', out.writable).catch((e: unknown) => e);
    expect((failure as Error).message).toMatch(/InternalError/);
    expect(out.data().length).toBe(0);
    await manager.drain();
    expect(manager.stats.bufferedBytes).toBe(0);
  });
});

describe('downloadToStream below the multipart threshold', () => {
  it('sends one GET without a Range, checks the MD5 ETag and writes the object', async () => {
    const data = randomBytes(1000);
    serveObject(data, () => 0, md5(data));
    const out = collector();
    const result = await new TransferManager(client, { config }).downloadToStream('bkt', 'small', out.writable);
    expect(out.data().equals(data)).toBe(true);
    expect(s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input)).toEqual([{ Bucket: 'bkt', Key: 'small', IfMatch: md5(data) }]);
    expect(result).toMatchObject({ bytes: 1000, parts: 1, multipart: false });
  });

  it('writes nothing when the bytes do not match the MD5 ETag', async () => {
    const data = randomBytes(1000);
    serveObject(data, () => 0, `"${'0'.repeat(32)}"`);
    const out = collector();
    const failure = await new TransferManager(client, { config }).downloadToStream('bkt', 'small', out.writable).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect(out.data().length).toBe(0);
  });

  it('writes nothing for an empty object and ends the stream', async () => {
    serveObject(Buffer.alloc(0), () => 0, md5(Buffer.alloc(0)));
    const out = collector();
    await new TransferManager(client, { config }).downloadToStream('bkt', 'empty', out.writable);
    expect(out.data().length).toBe(0);
    expect(s3.commandCalls(GetObjectCommand)[0]!.args[0].input.Range).toBeUndefined();
    expect(out.writable.writableFinished).toBe(true);
  });

  it('resumes a response stream that breaks, from the first missing byte', async () => {
    const data = randomBytes(1000);
    serveObject(data, () => 0, md5(data));
    let calls = 0;
    s3.on(GetObjectCommand).callsFake((input: GetObjectCommandInput) => {
      if (calls++ === 0) {
        return {
          Body: Readable.from(
            (async function* () {
              yield data.subarray(0, 400);
              throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
            })(),
          ) as never,
          ContentLength: 1000,
        };
      }
      const slice = data.subarray(400);
      expect(input.Range).toBe('bytes=400-999');
      return { Body: Readable.from([slice]) as never, ContentLength: slice.length, ContentRange: 'bytes 400-999/1000' };
    });
    const out = collector();
    await new TransferManager(client, { config }).downloadToStream('bkt', 'small', out.writable);
    expect(out.data().equals(data)).toBe(true);
    await sleep(0);
  });
});
