import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryBudget, reusableSize } from '../../src/engine/memory-budget.js';
import { RequestPool } from '../../src/engine/request-pool.js';
import { AdaptiveConcurrency, isThrottling } from '../../src/engine/throttle.js';
import { type FailurePolicy, type S3xferError, TransferAbortedError, TransferManager, UsageError } from '../../src/index.js';
import { MiB, randomFile, rm, tempDir } from '../helpers/files.js';
import { abortSignalOf } from '../helpers/mock.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('RequestPool', () => {
  it('never runs more than its limit at once, across lanes', async () => {
    const pool = new RequestPool(3);
    let running = 0;
    let peak = 0;
    const work = async () => {
      running++;
      peak = Math.max(peak, running);
      await tick();
      running--;
    };
    const lanes = [pool.lane(), pool.lane(), pool.lane(), pool.lane()];
    await Promise.all(lanes.flatMap((lane) => Array.from({ length: 10 }, () => lane.run(work))));
    expect(peak).toBe(3);
    expect(pool.maxInFlight).toBe(3);
    expect(pool.inFlight).toBe(0);
  });

  it('serves lanes in turn, so work queued behind a long lane starts early', async () => {
    const pool = new RequestPool(1);
    const order: string[] = [];
    const big = pool.lane();
    const small = pool.lane();
    const jobs = Array.from({ length: 5 }, (_, i) => big.run(async () => void order.push(`big${i}`)));
    jobs.push(small.run(async () => void order.push('small')));
    await Promise.all(jobs);
    expect(order.indexOf('small')).toBeLessThanOrEqual(2);
  });

  it('drops queued work whose signal aborts, with the signal reason', async () => {
    const pool = new RequestPool(1);
    const lane = pool.lane();
    let release!: () => void;
    const first = lane.run(() => new Promise<void>((resolve) => (release = resolve)));
    const controller = new AbortController();
    let started = false;
    const second = lane.run(async () => void (started = true), controller.signal);
    controller.abort(new Error('stop'));
    await expect(second).rejects.toThrow('stop');
    release();
    await first;
    expect(started).toBe(false);
  });

  it('follows a lowered limit for new work', async () => {
    const pool = new RequestPool(4);
    pool.setConcurrency(2);
    let running = 0;
    let peak = 0;
    const lane = pool.lane();
    await Promise.all(
      Array.from({ length: 8 }, () =>
        lane.run(async () => {
          peak = Math.max(peak, ++running);
          await tick();
          running--;
        }),
      ),
    );
    expect(peak).toBe(2);
  });
});

describe('MemoryBudget', () => {
  it('makes a taker wait until bytes are given back, and reuses the buffer', async () => {
    const budget = new MemoryBudget(10);
    const a = await budget.take(6);
    let granted: Buffer | undefined;
    const waiting = budget.take(6).then((b) => (granted = b));
    await tick();
    expect(granted).toBeUndefined();
    budget.give(a, false);
    await waiting;
    expect(granted).toHaveLength(6);
    expect(budget.maxInUse).toBe(6);
  });

  it('hands a given-back buffer straight to a waiting taker of its size (no new allocation)', async () => {
    const budget = new MemoryBudget(10);
    const a = await budget.take(6);
    const waiting = budget.take(6);
    budget.give(a);
    expect(await waiting).toBe(a);
    expect(budget.inUse).toBe(6);
  });

  it('gives a waiting taker of another size a buffer of its own size', async () => {
    const budget = new MemoryBudget(10);
    const a = await budget.take(6);
    const waiting = budget.take(5);
    budget.give(a);
    expect(await waiting).toHaveLength(5);
    expect(budget.inUse).toBe(5);
  });

  it('grants a waiting reservation its bytes when a buffer is given back', async () => {
    const budget = new MemoryBudget(10);
    const a = await budget.take(6);
    const reservation = budget.reserve(6);
    budget.give(a);
    const release = await reservation;
    expect(budget.inUse).toBe(6);
    release();
    expect(budget.inUse).toBe(0);
  });

  it('keeps spare buffers of 1 MiB or more for reuse', async () => {
    const budget = new MemoryBudget(8 * MiB);
    const a = await budget.take(MiB);
    budget.give(a);
    expect(await budget.take(MiB)).toBe(a);
  });

  it('replaces a spare buffer of another size with the new one: spares do not pile up as sizes vary', async () => {
    const budget = new MemoryBudget(100 * MiB);
    for (const size of [2, 3, 4, 5, 6]) budget.give(await budget.take(size * MiB));
    expect(budget.inUse).toBe(6 * MiB);
  });

  it('keeps its spares for a buffer too small to be kept itself', async () => {
    const budget = new MemoryBudget(100 * MiB);
    const a = await budget.take(2 * MiB);
    budget.give(a);
    budget.give(await budget.take(1000));
    expect(budget.inUse).toBe(2 * MiB);
    expect(await budget.take(2 * MiB)).toBe(a);
  });

  it('gives a taker of a varying size the smallest spare buffer that holds it, else a new one rounded up', async () => {
    const budget = new MemoryBudget(100 * MiB);
    const three = await budget.take(3 * MiB);
    const five = await budget.take(5 * MiB);
    budget.give(five);
    budget.give(three);
    expect(await budget.takeAtLeast(2 * MiB + 5)).toBe(three);
    expect(await budget.takeAtLeast(4 * MiB)).toBe(five);
    const fresh = await budget.takeAtLeast(6 * MiB + 1);
    expect(fresh).toHaveLength(7 * MiB);
    expect(budget.inUse).toBe(15 * MiB);
    budget.give(fresh);
    budget.give(await budget.take(MiB)); // the 7 MiB spare makes way for a 1 MiB one
    expect(budget.inUse).toBe(9 * MiB);
  });

  it('rounds sizes that vary up to a whole MiB from 1 MiB on, so that similar files share buffers', () => {
    expect(reusableSize(1000)).toBe(1000);
    expect(reusableSize(MiB - 1)).toBe(MiB - 1);
    expect(reusableSize(MiB)).toBe(MiB);
    expect(reusableSize(10 * MiB + 1)).toBe(11 * MiB);
    expect(reusableSize(11 * MiB)).toBe(11 * MiB);
  });

  it('grants one buffer larger than the whole budget when nothing else is held', async () => {
    const budget = new MemoryBudget(5);
    expect(await budget.take(50)).toHaveLength(50);
  });

  it('rejects a waiting taker whose signal aborts', async () => {
    const budget = new MemoryBudget(4);
    await budget.take(4);
    const controller = new AbortController();
    const waiting = budget.take(4, controller.signal);
    controller.abort(new Error('cancelled'));
    await expect(waiting).rejects.toThrow('cancelled');
  });
});

describe('TransferManager', () => {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const s3 = mockClient(client);
  let dir: string;
  let big: string;
  const small: string[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    big = await randomFile(dir, 'big.bin', 40 * MiB);
    for (let i = 0; i < 30; i++) small.push(await randomFile(dir, `small-${i}.txt`, 100 + i));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  beforeEach(() => s3.reset());

  /** A store that answers after a short delay and counts the requests in flight. */
  /** A store that answers each request after 5 ms; `failFirstPut`: the first PutObject to arrive fails with it. */
  function slowStore(options: { failFirstPut?: Error } = {}) {
    const seen = { inFlight: 0, peak: 0, order: [] as string[] };
    let failNext = options.failFirstPut;
    const answer = async (name: string, output: object) => {
      // Like a real request, it ends early when the signal s3xfer passed to send() aborts.
      const abortSignal = abortSignalOf(s3.send.lastCall);
      seen.inFlight++;
      seen.peak = Math.max(seen.peak, seen.inFlight);
      try {
        await new Promise((resolve, reject) => {
          if (abortSignal?.aborted) return reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
          const timer = setTimeout(resolve, 5);
          abortSignal?.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
          });
        });
      } finally {
        seen.inFlight--;
      }
      seen.order.push(name);
      return output;
    };
    s3.on(PutObjectCommand).callsFake((input: { Key: string }) => {
      const failure = failNext;
      failNext = undefined;
      return failure ? Promise.reject(failure) : answer(input.Key, { ETag: '"e"' });
    });
    s3.on(CreateMultipartUploadCommand).callsFake(() => answer('create', { UploadId: 'u' }));
    s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) =>
      answer(`part${input.PartNumber}`, { ETag: `"p${input.PartNumber}"` }),
    );
    s3.on(CompleteMultipartUploadCommand).callsFake(() => answer('complete', { ETag: '"m-8"' }));
    s3.on(AbortMultipartUploadCommand).resolves({});
    return seen;
  }

  it('validates its config before any transfer or event exists', () => {
    const events: string[] = [];
    expect(
      () => new TransferManager(client, { config: { partSize: 1 }, subscribers: [{ onFailed: () => events.push('failed') }] }),
    ).toThrow(UsageError);
    expect(events).toEqual([]);
  });

  it('refuses bad arguments with typed errors: maxActiveTransfers below 1, an unknown failure policy, a stream that is not one, an empty bucket', async () => {
    for (const maxActiveTransfers of [0, -1, 1.5]) {
      expect(() => new TransferManager(client, { maxActiveTransfers })).toThrow(
        expect.objectContaining({ name: 'UsageError', code: 'InvalidMaxActiveTransfers' }),
      );
    }
    // From JavaScript, or a config file: a typo must not quietly mean "continue".
    for (const failurePolicy of ['bogus', 'Stop', '']) {
      expect(() => new TransferManager(client, { failurePolicy: failurePolicy as FailurePolicy })).toThrow(
        expect.objectContaining({
          name: 'UsageError',
          code: 'InvalidFailurePolicy',
          message: expect.stringContaining(`"${failurePolicy}"`),
        }),
      );
    }
    const manager = new TransferManager(client);
    // A string, a Buffer or null where a stream belongs: a UsageError, no request, nothing to clean up.
    s3.reset();
    for (const notAStream of ['text', Buffer.from('bytes'), null]) {
      await expect(manager.uploadStream(notAStream as unknown as Readable, 'b', 'k')).rejects.toMatchObject({
        name: 'UsageError',
        code: 'InvalidStream',
        message: expect.stringMatching(/^uploadStream needs a Readable stream, not (a string|a Buffer|null)/),
      });
      await expect(manager.downloadToStream('b', 'k', notAStream as unknown as Writable)).rejects.toMatchObject({
        name: 'UsageError',
        code: 'InvalidStream',
      });
    }
    expect(s3.calls()).toHaveLength(0);
    await expect(manager.download('', 'k', join(tmpdir(), 'never.bin'))).rejects.toMatchObject({ code: 'MissingBucket' });
    await expect(manager.download('', 'k', join(tmpdir(), 'never.bin'))).rejects.toBeInstanceOf(UsageError);
    // What JavaScript callers (no types) may pass: a UsageError that names what is missing, never a TypeError.
    const nothing = undefined as unknown as string;
    await expect(manager.upload(nothing, 'b', 'k')).rejects.toMatchObject({ name: 'UsageError', code: 'MissingFile' });
    await expect(manager.upload(small[0]!, 'b', nothing)).rejects.toMatchObject({ name: 'UsageError', code: 'MissingKey' });
    await expect(manager.download('b', nothing, 'f')).rejects.toMatchObject({ name: 'UsageError', code: 'MissingKey' });
    await expect(manager.download('b', 'k', nothing)).rejects.toMatchObject({ name: 'UsageError', code: 'MissingFile' });
    // Settings a transfer does not take are refused, as boto3 refuses them, not dropped.
    const bogus = { ContentTyp: 'text/plain' } as never;
    const invalid = {
      name: 'UsageError',
      code: 'InvalidExtraArgs',
      message: expect.stringMatching(/^invalid extraArgs key "ContentTyp" for an upload: it must be one of ACL, /),
    };
    await expect(manager.upload(small[0]!, 'b', 'k', { extraArgs: bogus })).rejects.toMatchObject(invalid);
    await expect(manager.uploadStream(Readable.from([Buffer.from('x')]), 'b', 'k', { extraArgs: bogus })).rejects.toMatchObject(invalid);
    await expect(manager.download('b', 'k', 'f', { extraArgs: { Range: 'bytes=0-1' } as never })).rejects.toMatchObject({
      code: 'InvalidExtraArgs',
      message: expect.stringContaining('"Range" for a download'),
    });
    await expect(
      manager.downloadToStream('b', 'k', new PassThrough(), { extraArgs: { Range: 'bytes=0-1' } as never }),
    ).rejects.toMatchObject({
      code: 'InvalidExtraArgs',
    });
    expect(s3.calls()).toHaveLength(0);
  });

  it('shares one pool: a big file and many small ones never exceed `concurrency` requests in flight', async () => {
    const seen = slowStore();
    const manager = new TransferManager(client, { config: { concurrency: 4, partSize: 5 * MiB } });
    const all = [manager.upload(big, 'b', 'big.bin'), ...small.map((file, i) => manager.upload(file, 'b', `s/${i}`))];
    await Promise.all(all);
    expect(seen.peak).toBe(4);
    expect(manager.stats.maxRequestsInFlight).toBe(4);
    // Small files are not starved behind the big file's parts: they finish before its last part.
    expect(seen.order.indexOf('s/0')).toBeLessThan(seen.order.indexOf('complete'));
    expect(seen.order.indexOf('s/0')).toBeLessThan(seen.order.indexOf('part8'));
  });

  it('holds part buffers within the memory budget', async () => {
    slowStore();
    const manager = new TransferManager(client, { config: { concurrency: 8, partSize: 5 * MiB, memoryBudget: 12 * MiB } });
    await manager.upload(big, 'b', 'big.bin');
    expect(manager.stats.maxBufferedBytes).toBeLessThanOrEqual(12 * MiB);
    expect(manager.stats.maxBufferedBytes).toBeGreaterThanOrEqual(10 * MiB);
  });

  it('failure policy "continue": the others finish, the failures are collected', async () => {
    slowStore();
    s3.on(PutObjectCommand, { Key: 's/3' }).rejects(
      Object.assign(new Error(''), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }),
    );
    const manager = new TransferManager(client, { config: { concurrency: 2 } });
    const results = await Promise.allSettled(small.slice(0, 8).map((file, i) => manager.upload(file, 'b', `s/${i}`)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(7);
    const summary = await manager.drain();
    expect(summary.succeeded).toBe(7);
    expect(summary.failed.map((f) => f.error.code)).toEqual(['AccessDenied']);
  });

  it('failure policy "stop": the first failure cancels the rest, which say why', async () => {
    // The first upload to reach the store fails, whichever file that is (the file system decides).
    slowStore({ failFirstPut: Object.assign(new Error(''), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }) });
    const manager = new TransferManager(client, { config: { concurrency: 1 }, failurePolicy: 'stop' });
    const results = await Promise.allSettled(small.slice(0, 6).map((file, i) => manager.upload(file, 'b', `s/${i}`)));
    // After the failure nothing new starts.
    const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as S3xferError).code));
    expect(codes.filter((c) => c === 'AccessDenied')).toHaveLength(1);
    expect(codes.filter((c) => c === 'Cancelled').length).toBeGreaterThanOrEqual(1);
    expect(codes.every((c) => ['ok', 'AccessDenied', 'Cancelled'].includes(c))).toBe(true);
    // Nothing new was sent after the failure (one request may have taken the freed slot and been cancelled).
    expect(s3.commandCalls(PutObjectCommand).length).toBeLessThanOrEqual(codes.filter((c) => c === 'ok').length + 2);
  });

  it('abort() cancels every transfer and aborts the multipart upload it started', async () => {
    slowStore();
    const manager = new TransferManager(client, { config: { concurrency: 2, partSize: 5 * MiB } });
    const running = manager.upload(big, 'b', 'big.bin');
    setTimeout(() => manager.abort(), 12);
    await expect(running).rejects.toBeInstanceOf(TransferAbortedError);
    await expect(manager.upload(small[0]!, 'b', 'late')).rejects.toBeInstanceOf(TransferAbortedError);
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toEqual(['u']);
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  });

  it('reports progress and results of every transfer to its subscribers', async () => {
    slowStore();
    const done: string[] = [];
    let bytes = 0;
    const manager = new TransferManager(client, {
      subscribers: [{ onDone: (r) => done.push(r.key), onProgress: (p) => (bytes += p.bytesDelta) }],
    });
    await Promise.all([manager.upload(small[0]!, 'b', 'x'), manager.upload(join(dir, 'small-1.txt'), 'b', 'y')]);
    expect(done.sort()).toEqual(['x', 'y']);
    expect(bytes).toBe(100 + 101);
  });

  it('a subscriber that throws, or whose async handler rejects, breaks neither the transfer nor the process', async () => {
    slowStore();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const manager = new TransferManager(client, {
        subscribers: [
          {
            onProgress: () => {
              throw new Error('a rendering bug');
            },
            onDone: async () => {
              throw new Error('an async rendering bug');
            },
          },
        ],
      });
      await expect(manager.upload(small[0]!, 'b', 'z')).resolves.toMatchObject({ key: 'z' });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('AdaptiveConcurrency: the store says slow down', () => {
  it('halves the pool on throttling, once per burst, and climbs back by one per round of answers', () => {
    let now = 0;
    const pool = new RequestPool(8);
    const adaptive = new AdaptiveConcurrency(pool, 8, () => now);
    adaptive.throttled();
    adaptive.throttled(); // same burst: requests sent together are throttled together
    expect(pool.concurrency).toBe(4);
    now += 2000;
    adaptive.throttled();
    expect(pool.concurrency).toBe(2);
    expect(adaptive.minimum).toBe(2);
    for (let i = 0; i < 2; i++) adaptive.answered();
    expect(pool.concurrency).toBe(3);
    for (let i = 0; i < 100; i++) adaptive.answered();
    expect(pool.concurrency).toBe(8);
  });

  it('never goes below one request', () => {
    let now = 0;
    const pool = new RequestPool(2);
    const adaptive = new AdaptiveConcurrency(pool, 2, () => now);
    for (let i = 0; i < 5; i++) {
      now += 5000;
      adaptive.throttled();
    }
    expect(pool.concurrency).toBe(1);
  });

  it('knows throttling by code or status, not other failures', () => {
    expect(isThrottling({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isThrottling({ name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isThrottling({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } })).toBe(true);
    expect(isThrottling({ name: 'TooManyRequests', $metadata: { httpStatusCode: 429 } })).toBe(true);
    expect(isThrottling({ name: 'InternalError', $metadata: { httpStatusCode: 500 } })).toBe(false);
    expect(isThrottling({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } })).toBe(false);
  });
});
