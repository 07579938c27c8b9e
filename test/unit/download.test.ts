import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandInput, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { downloadFile, IntegrityError, LocalFileError, S3ServiceError, TransferAbortedError, UsageError } from '../../src/index.js';
import { leftoverTempFiles, MiB, tempDir } from '../helpers/files.js';

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
let dir: string;

beforeEach(async () => {
  s3.reset();
  dir = await tempDir();
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const md5 = (data: Buffer) => `"${createHash('md5').update(data).digest('hex')}"`;

/** A fake object store for one object: HEAD and (ranged) GET, as S3 answers them. */
function serveObject(
  data: Buffer,
  etag = md5(data),
  body: (slice: Buffer, input: GetObjectCommandInput, call: number) => Readable = (slice) => Readable.from([slice]),
) {
  let calls = 0;
  s3.on(HeadObjectCommand).resolves({ ContentLength: data.length, ETag: etag });
  s3.on(GetObjectCommand).callsFake((input: GetObjectCommandInput) => {
    if (input.IfMatch !== undefined && input.IfMatch !== etag) {
      throw Object.assign(new Error(''), { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });
    }
    const match = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? '');
    const start = match ? Number(match[1]) : 0;
    const end = match ? Math.min(Number(match[2]), data.length - 1) : data.length - 1;
    const slice = data.subarray(start, end + 1);
    return {
      Body: body(slice, input, calls++) as never,
      ContentLength: slice.length,
      ...(match ? { ContentRange: `bytes ${start}-${end}/${data.length}` } : {}),
      ETag: etag,
    };
  });
}

function getInputs(): GetObjectCommandInput[] {
  return s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input);
}

describe('downloadFile below the multipart threshold', () => {
  it('streams one GET pinned to the ETag into the destination and verifies the MD5', async () => {
    const data = randomBytes(1000);
    serveObject(data);
    const target = join(dir, 'out.bin');
    const result = await downloadFile(client, 'bkt', 'k/a.bin', target);

    expect(await readFile(target)).toEqual(data);
    expect(getInputs()).toEqual([{ Bucket: 'bkt', Key: 'k/a.bin', IfMatch: md5(data) }]);
    expect(result).toMatchObject({ direction: 'download', bytes: 1000, parts: 1, multipart: false, destination: target, etag: md5(data) });
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('writes an empty object as an empty file, asking for it without a Range', async () => {
    serveObject(Buffer.alloc(0));
    const target = join(dir, 'empty');
    await downloadFile(client, 'bkt', 'empty', target);
    expect((await readFile(target)).length).toBe(0);
    expect(getInputs()[0]!.Range).toBeUndefined();
  });

  it('refuses bytes whose MD5 differs from a plain ETag, leaving nothing behind', async () => {
    const data = randomBytes(1000);
    serveObject(data, `"${'0'.repeat(32)}"`);
    const failure = await downloadFile(client, 'bkt', 'k', join(dir, 'out')).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as Error).message).toMatch(/MD5/);
    expect(await leftoverTempFiles(dir)).toEqual([]);
    await expect(readFile(join(dir, 'out'))).rejects.toThrow(/ENOENT/);
  });

  it("saves into an existing directory under the key's base name", async () => {
    serveObject(Buffer.from('hello'));
    const result = await downloadFile(client, 'bkt', 'deep/path/hello.txt', dir);
    expect(result.destination).toBe(join(dir, 'hello.txt'));
    expect(await readFile(join(dir, 'hello.txt'), 'utf8')).toBe('hello');
  });
});

describe('downloadFile at or above the multipart threshold', () => {
  const size = 12 * MiB + 7;
  const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 2 };

  it('fetches every part with a Range pinned to the ETag and assembles the file', async () => {
    const data = randomBytes(size);
    serveObject(data, '"multi-3"');
    const target = join(dir, 'big.bin');
    const result = await downloadFile(client, 'bkt', 'big.bin', target, { config });

    expect(Buffer.compare(await readFile(target), data)).toBe(0);
    const ranges = getInputs()
      .map((i) => i.Range)
      .sort();
    expect(ranges).toEqual([`bytes=0-${5 * MiB - 1}`, `bytes=${10 * MiB}-${size - 1}`, `bytes=${5 * MiB}-${10 * MiB - 1}`].sort());
    expect(getInputs().every((i) => i.IfMatch === '"multi-3"')).toBe(true);
    expect(result).toMatchObject({ parts: 3, multipart: true, bytes: size });
  });

  it('resumes a stream that breaks mid-part from the first missing byte, without rewinding progress', async () => {
    const data = randomBytes(size);
    serveObject(data, '"multi-3"', (slice, _input, call) => {
      if (call === 0) {
        // The first response sends 1 MiB, then the connection drops.
        return Readable.from(
          (async function* () {
            yield slice.subarray(0, MiB);
            throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
          })(),
        );
      }
      return Readable.from([slice]);
    });
    const deltas: number[] = [];
    const target = join(dir, 'big.bin');
    await downloadFile(client, 'bkt', 'big.bin', target, {
      config: { ...config, concurrency: 1 },
      onProgress: (p) => deltas.push(p.bytesDelta),
    });

    expect(Buffer.compare(await readFile(target), data)).toBe(0);
    expect(getInputs().map((i) => i.Range)).toContain(`bytes=${MiB}-${5 * MiB - 1}`);
    expect(deltas.every((d) => d > 0)).toBe(true);
    expect(deltas.reduce((a, b) => a + b, 0)).toBe(size);
  });

  it('resumes a response that ends early without an error', async () => {
    const data = randomBytes(size);
    serveObject(data, '"multi-3"', (slice, _input, call) => Readable.from([call === 1 ? slice.subarray(0, 100) : slice]));
    const target = join(dir, 'big.bin');
    await downloadFile(client, 'bkt', 'big.bin', target, { config: { ...config, concurrency: 1 } });
    expect(Buffer.compare(await readFile(target), data)).toBe(0);
  });

  it('gives up after maxAttempts broken streams, removing the temp file and keeping the old destination', async () => {
    const data = randomBytes(size);
    serveObject(data, '"multi-3"', () =>
      Readable.from(
        (async function* () {
          yield Buffer.alloc(10);
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        })(),
      ),
    );
    const target = join(dir, 'big.bin');
    await writeFile(target, 'previous content');
    const failure = await downloadFile(client, 'bkt', 'big.bin', target, { config: { ...config, concurrency: 1, maxAttempts: 3 } }).catch(
      (e: unknown) => e,
    );

    expect((failure as Error).message).toMatch(/stream broke|connection reset/);
    expect(
      getInputs().filter((i) => i.Range?.startsWith('bytes=0') || i.Range === 'bytes=10-5242879' || i.Range === 'bytes=20-5242879'),
    ).toHaveLength(3);
    expect(await readFile(target, 'utf8')).toBe('previous content');
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('refuses a part whose Content-Range is not the one asked for', async () => {
    const data = randomBytes(size);
    serveObject(data, '"multi-3"');
    // Every GET answers with the first part (a fresh body each: a refused response's body is destroyed).
    s3.on(GetObjectCommand).callsFake(() => ({
      Body: Readable.from([data.subarray(0, 5 * MiB)]) as never,
      ContentRange: `bytes 0-${5 * MiB - 1}/${size}`,
      ContentLength: 5 * MiB,
    }));
    const failure = await downloadFile(client, 'bkt', 'big.bin', join(dir, 'big.bin'), { config }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe('RangeMismatch');
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('fails with PreconditionFailed when the object changes between parts', async () => {
    const data = randomBytes(size);
    serveObject(data, '"multi-3"');
    s3.on(HeadObjectCommand).resolves({ ContentLength: size, ETag: '"older-3"' });
    const failure = await downloadFile(client, 'bkt', 'big.bin', join(dir, 'big.bin'), { config }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as Error).message).toMatch(/changed while it was being downloaded/);
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('stops on abort: TransferAbortedError, no temp file, the old destination untouched', async () => {
    const data = randomBytes(size);
    const controller = new AbortController();
    serveObject(data, '"multi-3"', (slice) =>
      Readable.from(
        (async function* () {
          yield slice.subarray(0, 1000);
          controller.abort();
          await new Promise((resolve) => setTimeout(resolve, 50));
          yield slice.subarray(1000);
        })(),
      ),
    );
    const target = join(dir, 'big.bin');
    await writeFile(target, 'keep me');
    const failure = await downloadFile(client, 'bkt', 'big.bin', target, { config, abortSignal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(TransferAbortedError);
    expect(await readFile(target, 'utf8')).toBe('keep me');
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });
});

describe('downloadFile errors', () => {
  it('tells a missing bucket from a missing key: a HEAD 404 is followed by a one-byte GET', async () => {
    s3.on(HeadObjectCommand).rejects(Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } }));
    s3.on(GetObjectCommand).rejects(Object.assign(new Error(''), { name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } }));
    const failure = await downloadFile(client, 'nobkt', 'k', join(dir, 'x')).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as Error).message).toBe('bucket "nobkt" does not exist (NoSuchBucket, HTTP 404)');
    expect(getInputs()[0]!.Range).toBe('bytes=0-0');
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('refuses a missing destination directory before any request', async () => {
    const failure = await downloadFile(client, 'bkt', 'k', join(dir, 'missing', 'x')).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LocalFileError);
    expect((failure as Error).message).toMatch(/destination directory does not exist/);
    expect(s3.calls()).toHaveLength(0);
  });

  it.each(['', 'dir/'])('refuses the key %j, which names no object', async (key) => {
    await expect(downloadFile(client, 'bkt', key, join(dir, 'x'))).rejects.toBeInstanceOf(UsageError);
    expect(s3.calls()).toHaveLength(0);
  });
});
