import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, uploadFile } from '../../src/index.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { createTestBucket, openMultipartUploads, removeTestBucket, testClient } from '../helpers/s3.js';

let client: S3Client;
let bucket: string;
let dir: string;

beforeAll(async () => {
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-roundtrip');
  dir = await tempDir();
});
afterAll(async () => {
  await removeTestBucket(client, bucket);
  await rm(dir, { recursive: true, force: true });
});

describe('round trips through the real S3 server are byte-for-byte', () => {
  it.each([
    ['0 B', 0],
    ['1 B', 1],
    ['5 MiB - 1', 5 * MiB - 1],
    ['8 MiB - 1', 8 * MiB - 1],
    ['8 MiB', 8 * MiB],
    ['8 MiB + 1', 8 * MiB + 1],
    ['16 MiB - 1', 16 * MiB - 1],
    ['16 MiB (two whole parts)', 16 * MiB],
    ['100 MiB', 100 * MiB],
  ])('%s', async (name, size) => {
    const source = await randomFile(dir, `up-${size}.bin`, size);
    const key = `roundtrip/${name.replace(/[^0-9A-Za-z+-]/g, '')}.bin`;
    const uploaded = await uploadFile(client, source, bucket, key);
    const target = join(dir, `down-${size}.bin`);
    const downloaded = await downloadFile(client, bucket, key, target);

    expect(await sha256File(target)).toBe(await sha256File(source));
    // Below the 16 MiB threshold a file goes up as one PUT; from it on, in 8 MiB parts.
    const multipart = size >= 16 * MiB;
    expect(uploaded).toMatchObject({ bytes: size, multipart, parts: multipart ? Math.ceil(size / (8 * MiB)) : 1 });
    // A single PUT's ETag is the MD5 of the bytes.
    expect(uploaded.etag).toMatch(multipart ? /^"[0-9a-f]{32}-\d+"$/ : /^"[0-9a-f]{32}"$/);
    expect(downloaded).toMatchObject({ bytes: size, etag: uploaded.etag, multipart });
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ContentLength).toBe(size);
    expect(head.ETag).toBe(uploaded.etag);
    expect(await leftoverTempFiles(dir)).toEqual([]);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
  });

  it('uses a multipart upload (ETag with a part count) from the threshold on', async () => {
    const source = await randomFile(dir, 'twenty.bin', 20 * MiB);
    const result = await uploadFile(client, source, bucket, 'twenty.bin');
    expect(result).toMatchObject({ multipart: true, parts: 3 });
    expect(result.etag).toMatch(/-3"$/);
  });

  it('honours part size, threshold and concurrency', async () => {
    const source = await randomFile(dir, 'twelve.bin', 12 * MiB);
    const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 2 };
    const up = await uploadFile(client, source, bucket, 'twelve.bin', { config });
    expect(up.etag).toMatch(/-3"$/);
    const target = join(dir, 'twelve.out');
    const down = await downloadFile(client, bucket, 'twelve.bin', target, { config });
    expect(down.parts).toBe(3);
    expect(await sha256File(target)).toBe(await sha256File(source));
  });

  it('stores the object settings given as extraArgs, and guesses Content-Type', async () => {
    const source = await randomFile(dir, 'page.html', 100);
    await uploadFile(client, source, bucket, 'page.html', {
      extraArgs: { CacheControl: 'max-age=60', ContentDisposition: 'inline', Metadata: { owner: 'ci', run: '7' } },
    });
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'page.html' }));
    expect(head).toMatchObject({
      ContentType: 'text/html',
      CacheControl: 'max-age=60',
      ContentDisposition: 'inline',
      Metadata: { owner: 'ci', run: '7' },
    });

    const big = await randomFile(dir, 'data.json', 9 * MiB);
    await uploadFile(client, big, bucket, 'data.json', { extraArgs: { ContentType: 'application/x-ndjson', Metadata: { k: 'v' } } });
    const bigHead = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'data.json' }));
    expect(bigHead).toMatchObject({ ContentType: 'application/x-ndjson', Metadata: { k: 'v' } });
  });

  it("downloads into an existing directory under the key's base name and replaces an existing file", async () => {
    const source = await randomFile(dir, 'named.bin', 3000);
    await uploadFile(client, source, bucket, 'nested/path/named-object.bin');
    const into = await tempDir();
    const first = await downloadFile(client, bucket, 'nested/path/named-object.bin', into);
    expect(first.destination).toBe(join(into, 'named-object.bin'));
    const other = await randomFile(dir, 'other.bin', 10);
    await uploadFile(client, other, bucket, 'nested/path/named-object.bin');
    await downloadFile(client, bucket, 'nested/path/named-object.bin', into);
    expect(await sha256File(join(into, 'named-object.bin'))).toBe(await sha256File(other));
    await rm(into, { recursive: true });
  });
});

describe('objects with headers the SDK parses leniently', () => {
  it('an object whose Expires header is not a date downloads (HEAD and GET), as it does through the SDK', async () => {
    // S3 and Ceph store any Expires a client sends; the SDK keeps one that is not a date as ExpiresString.
    const put = new PutObjectCommand({ Bucket: bucket, Key: 'odd-expires.txt', Body: 'bytes with an odd header' });
    put.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers.expires = 'when pigs fly';
        return next(args);
      },
      { step: 'build' },
    );
    await client.send(put);
    expect(await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'odd-expires.txt' }))).toMatchObject({
      ExpiresString: 'when pigs fly',
    });
    const into = await tempDir();
    const result = await downloadFile(client, bucket, 'odd-expires.txt', join(into, 'odd.txt'));
    expect(result.verified).toBe('md5-etag');
    expect(await readFile(join(into, 'odd.txt'), 'utf8')).toBe('bytes with an odd header');
    await rm(into, { recursive: true });
  });
});

describe('a flexible checksum asked for on upload (--checksum-algorithm)', () => {
  it('goes up single and multipart on a store that ignores it (Ceph), and the bytes round-trip', async () => {
    const client = testClient();
    const bucketName = await createTestBucket(client, 's3xfer-checksum');
    const workDir = await tempDir();
    try {
      for (const [name, size] of [
        ['single.bin', 1000],
        ['multi.bin', 9 * MiB],
      ] as const) {
        const file = await randomFile(workDir, name, size);
        await uploadFile(client, file, bucketName, name, { extraArgs: { ChecksumAlgorithm: 'CRC32' } });
        const back = join(workDir, `${name}.back`);
        await downloadFile(client, bucketName, name, back);
        expect(await sha256File(back)).toBe(await sha256File(file));
      }
    } finally {
      await removeTestBucket(client, bucketName);
      await rm(workDir, { recursive: true, force: true });
    }
  });
});
