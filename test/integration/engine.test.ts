import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  S3ServiceError,
  type S3xferError,
  TransferAbortedError,
  TransferManager,
  type TransferResult,
  uploadFile,
} from '../../src/index.js';
import {
  type FaultProxy,
  isGetObject,
  isUploadPart,
  type ProxiedRequest,
  type ProxyLogEntry,
  startFaultProxy,
} from '../helpers/fault-proxy.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { abortOpenUploads, createTestBucket, openMultipartUploads, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';

// The transfer engine against the real gateway: one TransferManager runs many transfers at once
// through one request pool and one memory budget. The fault proxy sits between them as a scripted
// endpoint: it counts the requests really in flight, logs their order of arrival, and, where a
// test needs transfers to be caught mid-flight, holds requests for a while (stalls) so that
// timing on a loaded machine cannot decide the outcome.

const PART = 5 * MiB;
const BIG_SIZE = 40 * MiB;
const SMALL_COUNT = 150;

let direct: S3Client;
let bucket: string;
let dir: string;
let big: string;
let smalls: string[];
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-engine');
  dir = await tempDir();
  big = await randomFile(dir, 'big.bin', BIG_SIZE);
  await mkdir(join(dir, 'small'));
  // Sizes from 0 B to ~24 KiB, every one different: a mix-up between files would show.
  smalls = await Promise.all(Array.from({ length: SMALL_COUNT }, (_, i) => randomFile(join(dir, 'small'), `s-${i}.txt`, i * 163)));
  // Sources of the download tests, uploaded once.
  await uploadFile(direct, big, bucket, 'src/big.bin', { config: { partSize: PART } });
  const limit = pLimit(16);
  await Promise.all(smalls.map((file, i) => limit(() => uploadFile(direct, file, bucket, `src/small-${i}`))));
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  // Each test checks that the bucket has no open upload: one test's leftovers must not fail the next.
  await abortOpenUploads(direct, bucket);
});
afterAll(async () => {
  await removeTestBucket(direct, bucket);
  await rm(dir, { recursive: true, force: true });
});

/** A client whose every request goes through a fresh fault proxy with these rules. */
async function throughProxy(rules: Parameters<typeof startFaultProxy>[0]['rules'] = []): Promise<S3Client> {
  proxy = await startFaultProxy({ upstream: s3Server().endpoint, seed: 3, rules });
  return testClient({ endpoint: proxy.url });
}

/** The object key a proxied request or log entry is about (path-style: /bucket/key). */
function keyOf(entry: { path: string }): string {
  return decodeURIComponent(entry.path.replace(/^\/[^/]+\/?/, ''));
}

/** Whether a log entry is an UploadPart (a PUT with a part number). */
function isPartEntry(entry: ProxyLogEntry): boolean {
  return entry.method === 'PUT' && new URLSearchParams(entry.query).has('partNumber');
}

/** A rule predicate for the requests about objects under `prefix` in the test bucket. */
function under(prefix: string, also: (r: ProxiedRequest) => boolean): (r: ProxiedRequest) => boolean {
  return (r) => r.path.startsWith(`/${bucket}/`) && keyOf(r).startsWith(prefix) && also(r);
}

/** The ETag S3 gives a file uploaded whole (its MD5) or in parts of `partSize` (MD5 of the part MD5s, `-N`). */
async function expectedEtag(path: string, partSize?: number): Promise<string> {
  const bytes = await readFile(path);
  if (partSize === undefined) return `"${createHash('md5').update(bytes).digest('hex')}"`;
  const outer = createHash('md5');
  let parts = 0;
  for (let start = 0; start < bytes.length; start += partSize, parts++) {
    outer.update(
      createHash('md5')
        .update(bytes.subarray(start, start + partSize))
        .digest(),
    );
  }
  return `"${outer.digest('hex')}-${parts}"`;
}

/** Key → ETag and size of every object under `prefix`. */
async function storedObjects(prefix: string): Promise<Map<string, { etag: string; size: number }>> {
  const { Contents } = await direct.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return new Map((Contents ?? []).map((o) => [o.Key!, { etag: o.ETag!, size: o.Size! }]));
}

/** Settles every promise; returns each one's result or typed error. */
async function outcomes(promises: Array<Promise<TransferResult>>): Promise<Array<TransferResult | S3xferError>> {
  const settled = await Promise.allSettled(promises);
  return settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as S3xferError)));
}

describe('one TransferManager: one request pool shared by many concurrent transfers', () => {
  it('uploads a 40 MiB file and 150 small ones with never more than `concurrency` requests in flight, without starving the small ones', async () => {
    const client = await throughProxy();
    const done: string[] = [];
    const manager = new TransferManager(client, {
      config: { concurrency: 4, partSize: PART },
      subscribers: [{ onDone: (r) => done.push(r.key) }],
    });
    const bigUpload = manager.upload(big, bucket, 'up/big.bin');
    // The small files arrive once the big file's parts wait in the pool: a pool that served the
    // big file's queue first (no round robin) would send all its parts before any small file.
    await vi.waitFor(() => expect(proxy!.log.some(isPartEntry)).toBe(true), { timeout: 30_000, interval: 5 });
    const smallUploads = smalls.map((file, i) => manager.upload(file, bucket, `up/small-${i}`));
    await Promise.all([bigUpload, ...smallUploads]);
    const summary = await manager.drain();

    expect(summary.failed).toEqual([]);
    expect(summary.succeeded).toBe(SMALL_COUNT + 1);
    // Checked at the endpoint: the pool was used to the full and never beyond it.
    expect(proxy!.stats.maxInFlight).toBe(4);
    expect(manager.stats.maxRequestsInFlight).toBe(4);
    // Small files went out between the big file's parts, and one finished before the big file.
    const log = proxy!.log;
    const firstSmall = log.findIndex((e) => e.method === 'PUT' && keyOf(e).startsWith('up/small-'));
    const lastPart = log.findLastIndex((e) => isPartEntry(e) && keyOf(e) === 'up/big.bin');
    expect(firstSmall).toBeGreaterThan(-1);
    expect(firstSmall).toBeLessThan(lastPart);
    expect(done.findIndex((key) => key.startsWith('up/small-'))).toBeLessThan(done.indexOf('up/big.bin'));
    // Every object has the bytes of its file.
    const stored = await storedObjects('up/');
    expect(stored.size).toBe(SMALL_COUNT + 1);
    expect(stored.get('up/big.bin')).toEqual({ etag: await expectedEtag(big, PART), size: BIG_SIZE });
    for (const [i, file] of smalls.entries()) {
      expect(stored.get(`up/small-${i}`), file).toEqual({ etag: await expectedEtag(file), size: i * 163 });
    }
  });

  it('downloads a 40 MiB object in ranges and 150 small ones the same way, byte for byte', async () => {
    const client = await throughProxy();
    const target = join(dir, 'down');
    await mkdir(target);
    const done: string[] = [];
    const manager = new TransferManager(client, {
      config: { concurrency: 4, partSize: PART },
      subscribers: [{ onDone: (r) => done.push(r.key) }],
    });
    const bigDownload = manager.download(bucket, 'src/big.bin', join(target, 'big.bin'));
    // Wait until the ranged GETs of the big object wait in the pool (its HEAD comes first).
    await vi.waitFor(() => expect(proxy!.log.some((e) => e.method === 'GET' && keyOf(e) === 'src/big.bin')).toBe(true), {
      timeout: 30_000,
      interval: 5,
    });
    const smallDownloads = smalls.map((_, i) => manager.download(bucket, `src/small-${i}`, join(target, `small-${i}`)));
    await Promise.all([bigDownload, ...smallDownloads]);
    const summary = await manager.drain();

    expect(summary.failed).toEqual([]);
    expect(summary.succeeded).toBe(SMALL_COUNT + 1);
    expect(proxy!.stats.maxInFlight).toBe(4);
    expect(manager.stats.maxRequestsInFlight).toBe(4);
    const log = proxy!.log;
    const bigGets = log.filter((e) => e.method === 'GET' && keyOf(e) === 'src/big.bin');
    expect(bigGets).toHaveLength(BIG_SIZE / PART);
    const firstSmall = log.findIndex((e) => keyOf(e).startsWith('src/small-'));
    expect(firstSmall).toBeLessThan(log.lastIndexOf(bigGets.at(-1)!));
    expect(done.findIndex((key) => key.startsWith('src/small-'))).toBeLessThan(done.indexOf('src/big.bin'));
    expect(await sha256File(join(target, 'big.bin'))).toBe(await sha256File(big));
    for (const [i, file] of smalls.entries()) {
      expect((await readFile(join(target, `small-${i}`))).equals(await readFile(file)), file).toBe(true);
    }
    expect(await leftoverTempFiles(target)).toEqual([]);
  });
});

describe('one memory budget for every transfer of a manager', () => {
  it('holds the part buffers of several multipart uploads at once within the budget, and the bytes stay right', async () => {
    const files = await Promise.all([0, 1, 2].map((i) => randomFile(dir, `budget-${i}.bin`, 18 * MiB + 1000 * i)));
    const budget = 12 * MiB;
    const manager = new TransferManager(direct, { config: { concurrency: 8, partSize: PART, memoryBudget: budget } });
    await Promise.all(files.map((file, i) => manager.upload(file, bucket, `budget/${i}.bin`)));
    await manager.drain();

    // Eight slots, but only two 5 MiB part buffers fit in 12 MiB.
    expect(manager.stats.maxBufferedBytes).toBeLessThanOrEqual(budget);
    // The budget was what limited them (two parts at once), and every buffer was given back.
    expect(manager.stats.maxBufferedBytes).toBe(2 * PART);
    expect(manager.stats.bufferedBytes).toBe(0);
    const stored = await storedObjects('budget/');
    for (const [i, file] of files.entries()) {
      expect(stored.get(`budget/${i}.bin`)).toEqual({ etag: await expectedEtag(file, PART), size: 18 * MiB + 1000 * i });
    }
  });
});

describe('failure policy', () => {
  it('"continue": one transfer fails, every other one completes, and drain() lists the one failure', async () => {
    const target = join(dir, 'continue');
    await mkdir(target);
    const manager = new TransferManager(direct, { config: { concurrency: 4, partSize: PART }, failurePolicy: 'continue' });
    const transfers = [
      manager.upload(big, bucket, 'continue/big.bin'),
      manager.download(bucket, 'src/big.bin', join(target, 'big.bin')),
      manager.download(bucket, 'continue/no-such-key.bin', join(target, 'missing.bin')),
      ...smalls.slice(0, 20).map((file, i) => manager.upload(file, bucket, `continue/small-${i}`)),
    ];
    const results = await outcomes(transfers);
    const summary = await manager.drain();

    const failed = results.filter((r) => r instanceof Error);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toBeInstanceOf(S3ServiceError);
    expect((failed[0] as S3ServiceError).code).toBe('NoSuchKey');
    expect(summary.succeeded).toBe(transfers.length - 1);
    expect(summary.failed.map((f) => [f.transfer.source, f.error.code])).toEqual([
      [`s3://${bucket}/continue/no-such-key.bin`, 'NoSuchKey'],
    ]);
    // The others did all their work.
    const stored = await storedObjects('continue/');
    expect(stored.get('continue/big.bin')?.etag).toBe(await expectedEtag(big, PART));
    expect(stored.size).toBe(21);
    expect(await sha256File(join(target, 'big.bin'))).toBe(await sha256File(big));
    await expect(stat(join(target, 'missing.bin'))).rejects.toThrow(/ENOENT/);
    expect(await leftoverTempFiles(target)).toEqual([]);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });

  it('"stop": the first failure cancels the rest, in flight or queued, and nothing is left behind', async () => {
    // Parts and ranges are held 1 s at the proxy: every transfer is caught mid-flight when the
    // failure comes, and none can complete before the cancellation.
    const client = await throughProxy([
      { match: under('stop/', isUploadPart), fault: { type: 'stall', ms: 1000 } },
      { match: under('src/', isGetObject), fault: { type: 'stall', ms: 1000 } },
    ]);
    const target = join(dir, 'stop');
    await mkdir(target);
    const existing = join(target, 'existing.bin');
    await writeFile(existing, 'the previous version');
    // Six transfers under way at once: the five big ones and the failing one. The small ones
    // submitted after it wait their turn (queued, not started) until the failure frees a place.
    const manager = new TransferManager(client, {
      config: { concurrency: 4, partSize: PART },
      failurePolicy: 'stop',
      maxActiveTransfers: 6,
    });
    const running = [
      ...[0, 1, 2].map((i) => manager.upload(big, bucket, `stop/big-${i}.bin`)),
      manager.download(bucket, 'src/big.bin', join(target, 'big.bin')),
      manager.download(bucket, 'src/big.bin', existing),
    ];
    // Every upload has sent a part and every download a ranged GET.
    await vi.waitFor(
      () => {
        const keys = new Set(proxy!.log.filter((e) => isPartEntry(e) || e.method === 'GET').map(keyOf));
        expect([...keys].sort()).toEqual(['src/big.bin', 'stop/big-0.bin', 'stop/big-1.bin', 'stop/big-2.bin']);
        expect(proxy!.log.filter((e) => e.method === 'GET' && keyOf(e) === 'src/big.bin').length).toBeGreaterThanOrEqual(2);
      },
      { timeout: 60_000, interval: 10 },
    );
    const failing = manager.upload(smalls[1]!, `${bucket}-missing`, 'stop/refused.txt');
    const queued = smalls.slice(2, 12).map((file, i) => manager.upload(file, bucket, `stop/small-${i}`));
    const [failure, ...rest] = await outcomes([failing, ...running, ...queued]);
    const summary = await manager.drain();

    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as S3ServiceError).code).toBe('NoSuchBucket');
    for (const outcome of rest) {
      expect(outcome).toBeInstanceOf(TransferAbortedError);
      expect((outcome as TransferAbortedError).code).toBe('Cancelled');
    }
    expect(summary.succeeded).toBe(0);
    expect(summary.failed).toHaveLength(1 + rest.length);
    // Nothing left behind: no multipart upload, no object, no temp file; the old file untouched.
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
    expect([...(await storedObjects('stop/')).keys()]).toEqual([]);
    expect(await leftoverTempFiles(target)).toEqual([]);
    await expect(stat(join(target, 'big.bin'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(existing, 'utf8')).toBe('the previous version');
  });
});

describe('TransferManager.abort()', () => {
  it('cancels multipart uploads and ranged downloads mid-flight: every promise rejects, nothing is left behind', async () => {
    const client = await throughProxy([
      { match: under('abort/', isUploadPart), fault: { type: 'stall', ms: 1000 } },
      { match: under('src/', isGetObject), fault: { type: 'stall', ms: 1000 } },
    ]);
    const [first, second] = [join(dir, 'abort-a'), join(dir, 'abort-b')];
    await mkdir(first);
    await mkdir(second);
    const existing = join(first, 'existing.bin');
    await writeFile(existing, 'the previous version');
    const before = await stat(existing);
    const progressed = new Set<string>();
    const manager = new TransferManager(client, {
      config: { concurrency: 4, partSize: PART },
      subscribers: [{ onProgress: (p) => progressed.add(p.transfer.destination) }],
    });
    const destinations = [join(first, 'new.bin'), existing, join(second, 'new.bin')];
    const transfers = [
      ...[0, 1, 2].map((i) => manager.upload(big, bucket, `abort/big-${i}.bin`)),
      ...destinations.map((file) => manager.download(bucket, 'src/big.bin', file)),
    ];
    // Abort once every transfer has moved bytes: parts stored, ranges written to temp files.
    await vi.waitFor(() => expect(progressed.size).toBe(6), { timeout: 60_000, interval: 10 });
    // Read before the abort: a cancelled request frees its slot at once, but the proxy counts it
    // until its connection's close arrives, after the clean-ups' requests may have started.
    const peakBeforeAbort = proxy!.stats.maxInFlight;
    manager.abort();
    const results = await outcomes(transfers);
    const late = manager.upload(smalls[1]!, bucket, 'abort/late.txt');

    for (const result of results) {
      expect(result).toBeInstanceOf(TransferAbortedError);
      expect((result as TransferAbortedError).code).toBe('Aborted');
    }
    await expect(late).rejects.toBeInstanceOf(TransferAbortedError);
    expect((await manager.drain()).failed).toHaveLength(7);
    expect(peakBeforeAbort).toBe(4);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
    expect([...(await storedObjects('abort/')).keys()]).toEqual([]);
    expect(await leftoverTempFiles(first)).toEqual([]);
    expect(await leftoverTempFiles(second)).toEqual([]);
    await expect(stat(destinations[0]!)).rejects.toThrow(/ENOENT/);
    await expect(stat(destinations[2]!)).rejects.toThrow(/ENOENT/);
    expect(await readFile(existing, 'utf8')).toBe('the previous version');
    expect((await stat(existing)).mtimeMs).toBe(before.mtimeMs);
  });
});
