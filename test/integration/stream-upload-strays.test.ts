import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NetworkError, TransferManager } from '../../src/index.js';
import {
  type FaultProxy,
  type FaultRule,
  isAbortMultipartUpload,
  isCreateMultipartUpload,
  type ProxyLogEntry,
  startFaultProxy,
} from '../helpers/fault-proxy.js';
import { MiB } from '../helpers/files.js';
import { abortOpenUploads, createTestBucket, openMultipartUploads, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';

// Lost CreateMultipartUpload answers for uploads of unknown length (uploadStream, stdin): the
// store created the upload, the client never heard (the proxy reads the store's whole answer,
// then resets the connection), and the SDK's retry created another. As for files, the uploads
// the lost attempts created must be aborted, whether the upload then succeeds or fails.

const config = { partSize: 5 * MiB, concurrency: 2 };
const SIZE = 12 * MiB + 7;

let direct: S3Client;
let bucket: string;
let data: Buffer;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-stream-lost');
  data = randomBytes(SIZE);
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await abortOpenUploads(direct, bucket);
});
afterAll(async () => {
  await removeTestBucket(direct, bucket);
});

/** A client (with the SDK's retries, or `maxAttempts`) whose requests go through a proxy with these rules. */
async function throughProxy(rules: FaultRule[], maxAttempts?: number): Promise<S3Client> {
  proxy = await startFaultProxy({ upstream: s3Server().endpoint, seed: 5, rules });
  return testClient({ endpoint: proxy.url, ...(maxAttempts ? { maxAttempts } : {}) });
}

/** Log entries as requests, for the fault proxy's S3 shape predicates. */
function requests(log: ProxyLogEntry[], predicate: typeof isCreateMultipartUpload): ProxyLogEntry[] {
  return log.filter((e) => predicate({ method: e.method, path: e.path, query: new URLSearchParams(e.query), headers: {} }));
}

/** The data as a stream of unknown length, in 64 KiB chunks as stdin delivers a pipe. */
function streamOf(bytes: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < bytes.length; offset += 64 * 1024) yield bytes.subarray(offset, offset + 64 * 1024);
    })(),
  );
}

async function storedBytes(key: string): Promise<Buffer> {
  const object = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

describe('a lost CreateMultipartUpload answer of a stream upload', () => {
  it('once: the stream is stored, and the upload created by the lost attempt is aborted', async () => {
    const client = await throughProxy([{ match: isCreateMultipartUpload, fault: { type: 'lose-answer' }, times: 1 }]);

    const result = await new TransferManager(client, { config }).uploadStream(streamOf(data), bucket, 'stream-create-1.bin');

    expect(result).toMatchObject({ bytes: SIZE, multipart: true, parts: 3 });
    expect(result.warnings).toBeUndefined();
    expect(Buffer.compare(await storedBytes('stream-create-1.bin'), data)).toBe(0);
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
      .uploadStream(streamOf(data), bucket, 'stream-create-lost.bin')
      .catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(NetworkError);
    expect((failure as NetworkError).code).toBe('ECONNRESET');
    expect(requests(proxy!.log, isCreateMultipartUpload).map((e) => e.upstreamStatus)).toEqual([200, 200]);
    expect(requests(proxy!.log, isAbortMultipartUpload)).toHaveLength(2);
    expect(await openMultipartUploads(direct, bucket)).toEqual([]);
  });
});
