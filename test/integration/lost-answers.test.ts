import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateMultipartUploadCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { NetworkError, S3ServiceError, TransferAbortedError, TransferManager, uploadFile } from '../../src/index.js';
import {
  type FaultProxy,
  type FaultRule,
  isAbortMultipartUpload,
  isCompleteMultipartUpload,
  isCreateMultipartUpload,
  isHeadObject,
  type ProxyLogEntry,
  startFaultProxy,
} from '../helpers/fault-proxy.js';
import { MiB, randomFile, rm, tempDir } from '../helpers/files.js';
import { abortOpenUploads, createTestBucket, openMultipartUploads, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';

// Lost answers: the store did the work, the client never heard (the proxy forwards the request,
// reads the store's whole answer, then resets the client's connection). A lost
// CreateMultipartUpload answer makes the SDK's retry start a second upload; a lost
// CompleteMultipartUpload answer makes its retry meet an upload that is already complete.
// Neither may leave an upload open on the server or fail a transfer whose object is stored.

const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 2 };
const SIZE = 12 * MiB + 7;

let direct: S3Client;
let bucket: string;
let dir: string;
let source: string;
let other: string;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-lost');
  dir = await tempDir();
  source = await randomFile(dir, 'source.bin', SIZE);
  other = await randomFile(dir, 'other.bin', SIZE);
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

/** S3's answer about an upload that is gone (completed or aborted). */
const noSuchUpload = { type: 'status', status: 404, code: 'NoSuchUpload', message: 'The specified upload does not exist.' } as const;

/** A client (with the SDK's retries, or `maxAttempts`) whose requests go through a proxy with these rules. */
async function throughProxy(rules: FaultRule[], maxAttempts?: number): Promise<S3Client> {
  proxy = await startFaultProxy({ upstream: s3Server().endpoint, seed: 5, rules });
  return testClient({ endpoint: proxy.url, ...(maxAttempts ? { maxAttempts } : {}) });
}

/** Log entries as requests, for the fault proxy's S3 shape predicates. */
function requests(log: ProxyLogEntry[], predicate: typeof isCreateMultipartUpload): ProxyLogEntry[] {
  return log.filter((e) => predicate({ method: e.method, path: e.path, query: new URLSearchParams(e.query), headers: {} }));
}

/** ETag and size of the stored object, via a client that bypasses the proxy. */
async function stored(key: string): Promise<{ etag?: string; size?: number }> {
  const head = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return { etag: head.ETag, size: head.ContentLength };
}

/** What the same file gives when uploaded without faults (the reference ETag). */
async function reference(file: string, key: string): Promise<{ etag?: string; size?: number }> {
  await uploadFile(direct, file, bucket, key, { config });
  return stored(key);
}

describe('a lost CreateMultipartUpload answer', () => {
  it('once: the upload created by the lost attempt is aborted; uploads of other keys and older ones are left alone', async () => {
    const expected = await reference(source, 'ref-create-1.bin');
    // Open uploads the sweep must not touch: an upload of the same key started well before the
    // transfer (before the window of its Create attempts, slack included), and one of a longer key
    // with the same prefix, started just before the transfer (inside that window).
    const older = await direct.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'create-1.bin' }));
    await delay(5_000);
    const longer = await direct.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'create-1.bin.part2' }));
    const client = await throughProxy([{ match: isCreateMultipartUpload, fault: { type: 'lose-answer' }, times: 1 }]);

    const result = await uploadFile(client, source, bucket, 'create-1.bin', { config });

    expect(result.warnings).toBeUndefined();
    expect(await stored('create-1.bin')).toEqual(expected);
    // Two uploads were created (the first answer lost), one was used and the other aborted.
    const creates = requests(proxy!.log, isCreateMultipartUpload);
    expect(creates.map((e) => [e.upstreamStatus, e.fault])).toEqual([
      [200, 'lose-answer'],
      [200, undefined],
    ]);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(1);
    const open = await openMultipartUploads(direct, bucket);
    expect(open.map((u) => u.UploadId).sort()).toEqual([longer.UploadId, older.UploadId].sort());
  });

  it('twice: both uploads created by lost attempts are aborted', async () => {
    const expected = await reference(source, 'ref-create-2.bin');
    const client = await throughProxy([{ match: isCreateMultipartUpload, fault: { type: 'lose-answer' }, times: 2 }]);

    const result = await uploadFile(client, source, bucket, 'create-2.bin', { config });

    expect(result.warnings).toBeUndefined();
    expect(await stored('create-2.bin')).toEqual(expected);
    expect(requests(proxy!.log, isCreateMultipartUpload).map((e) => e.upstreamStatus)).toEqual([200, 200, 200]);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(2);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });

  it('on every attempt: the upload fails with the network error, and the uploads its attempts created are aborted', async () => {
    const client = await throughProxy([{ match: isCreateMultipartUpload, fault: { type: 'lose-answer' } }], 2);

    const failure = await uploadFile(client, source, bucket, 'create-lost.bin', { config }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(NetworkError);
    expect((failure as NetworkError).code).toBe('ECONNRESET');
    expect(requests(proxy!.log, isCreateMultipartUpload).map((e) => e.upstreamStatus)).toEqual([200, 200]);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(2);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });

  it('cancelled while the answer is on its way: the upload the store created is aborted', async () => {
    // The store's answer is held after its headers: the client waits for the body when it is cancelled.
    const client = await throughProxy([{ match: isCreateMultipartUpload, fault: { type: 'stall', ms: 30_000, afterBytes: 0 } }]);
    const controller = new AbortController();

    const running = uploadFile(client, source, bucket, 'create-cancelled.bin', { config, abortSignal: controller.signal });
    await vi.waitFor(() => expect(requests(proxy!.log, isCreateMultipartUpload)[0]?.upstreamStatus).toBe(200), { timeout: 30_000 });
    controller.abort();

    await expect(running).rejects.toBeInstanceOf(TransferAbortedError);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(1);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });
});

describe('a lost CompleteMultipartUpload answer', () => {
  it('the retry is answered as a success (Ceph remembers completed uploads): the upload succeeds', async () => {
    const expected = await reference(source, 'ref-complete.bin');
    const client = await throughProxy([{ match: isCompleteMultipartUpload, fault: { type: 'lose-answer' }, times: 1 }]);

    const result = await uploadFile(client, source, bucket, 'complete.bin', { config });

    expect(result.etag).toBe(expected.etag);
    expect(await stored('complete.bin')).toEqual(expected);
    expect(requests(proxy!.log, isCompleteMultipartUpload).map((e) => e.fault)).toEqual(['lose-answer', undefined]);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });

  it('the retry gets NoSuchUpload (as from S3): the stored object is checked, found to be ours, and accepted', async () => {
    const expected = await reference(source, 'ref-complete-gone.bin');
    const client = await throughProxy([
      { match: isCompleteMultipartUpload, fault: { type: 'lose-answer' }, times: 1 },
      { match: isCompleteMultipartUpload, fault: noSuchUpload, times: 1 },
    ]);

    const result = await uploadFile(client, source, bucket, 'complete-gone.bin', { config });

    expect(result.etag).toBe(expected.etag);
    expect(result.bytes).toBe(SIZE);
    expect(await stored('complete-gone.bin')).toEqual(expected);
    expect(proxy!.stats.faultsByRule).toEqual([1, 1]);
    expect(requests(proxy!.log, isHeadObject)).toHaveLength(1);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(0);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });

  it('NoSuchUpload without a completion: an object of the same size at the key is not taken for ours', async () => {
    // Someone else's object of the same size is at the key; our Complete never reaches the store.
    const theirs = await reference(other, 'complete-theirs.bin');
    const client = await throughProxy([{ match: isCompleteMultipartUpload, fault: noSuchUpload, times: 1 }]);

    const failure = await uploadFile(client, source, bucket, 'complete-theirs.bin', { config }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as S3ServiceError).code).toBe('NoSuchUpload');
    expect(requests(proxy!.log, isHeadObject)).toHaveLength(1);
    expect(await stored('complete-theirs.bin')).toEqual(theirs);
    // Our upload was still open (the store never completed it): the clean-up aborted it.
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(1);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
    const { Contents } = await direct.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'complete-theirs' }));
    expect(Contents?.map((o) => o.Key)).toEqual(['complete-theirs.bin']);
  });
});

/** A file as a stream of unknown length, in 64 KiB chunks as stdin delivers a pipe (uploadStream, `cp -`). */
function streamOf(file: string): Readable {
  return createReadStream(file, { highWaterMark: 64 * 1024 });
}

async function storedBytes(key: string): Promise<Buffer> {
  const object = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

// Uploads of unknown length (uploadStream, stdin) send their Create through lib-storage; the same
// sweep must abort the uploads lost answers created, whether the upload then succeeds or fails.
describe('a lost CreateMultipartUpload answer of a stream upload', () => {
  it('once: the stream is stored, and the upload created by the lost attempt is aborted', async () => {
    const client = await throughProxy([{ match: isCreateMultipartUpload, fault: { type: 'lose-answer' }, times: 1 }]);

    const result = await new TransferManager(client, { config }).uploadStream(streamOf(source), bucket, 'stream-create-1.bin');

    expect(result).toMatchObject({ bytes: SIZE, multipart: true, parts: 3 });
    expect(result.warnings).toBeUndefined();
    expect(Buffer.compare(await storedBytes('stream-create-1.bin'), await readFile(source))).toBe(0);
    expect(requests(proxy!.log, isCreateMultipartUpload).map((e) => [e.upstreamStatus, e.fault])).toEqual([
      [200, 'lose-answer'],
      [200, undefined],
    ]);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(1);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });

  it('on every attempt: the upload fails with the network error, and the uploads its attempts created are aborted', async () => {
    const client = await throughProxy([{ match: isCreateMultipartUpload, fault: { type: 'lose-answer' } }], 2);

    const failure = await new TransferManager(client, { config })
      .uploadStream(streamOf(source), bucket, 'stream-create-lost.bin')
      .catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(NetworkError);
    expect((failure as NetworkError).code).toBe('ECONNRESET');
    expect(requests(proxy!.log, isCreateMultipartUpload).map((e) => e.upstreamStatus)).toEqual([200, 200]);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(2);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });
});
