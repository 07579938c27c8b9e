import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteBucketPolicyCommand, PutBucketPolicyCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ServiceError } from '../../src/errors.js';
import {
  compareListings,
  type DeleteFailure,
  deleteObjects,
  listBuckets,
  listLocal,
  listS3,
  type S3ListingEntry,
  type StorageEntry,
} from '../../src/storage/index.js';
import { tempDir } from '../helpers/files.js';
import { createTestBucket, listKeys, removeTestBucket, testClient } from '../helpers/s3.js';

let client: S3Client;
let bucket: string;
let dir: string;

beforeAll(async () => {
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-storage');
  dir = await tempDir();
});
afterAll(async () => {
  await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket })).catch(() => {});
  // removeTestBucket deletes one listing page (1,000 keys): empty the bucket first.
  await deleteObjects(client, bucket, keysUnder(''));
  await removeTestBucket(client, bucket);
  await rm(dir, { recursive: true, force: true });
});

const limit = pLimit(32);
async function put(keys: string[], body = '') {
  await Promise.all(keys.map((Key) => limit(() => client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: body })))));
}
async function collect<T>(listing: AsyncIterable<T>): Promise<T[]> {
  const entries: T[] = [];
  for await (const entry of listing) entries.push(entry);
  return entries;
}
const relatives = (entries: S3ListingEntry[]) => entries.map((e) => e.relative);

describe('listS3 against the real server', () => {
  const many = Array.from({ length: 1050 }, (_, i) => `many/${String(i).padStart(4, '0')}`);

  beforeAll(async () => {
    await put([...many, 'many0', 'manx']);
  });

  it('pages through more than 1,000 keys (small pages, and the server default of 1,000)', async () => {
    const small = await collect(listS3(client, bucket, 'many/', { pageSize: 97 }));
    expect(relatives(small)).toEqual(many.map((k) => k.slice('many/'.length)));
    expect(small[0]).toMatchObject({
      kind: 'file',
      size: 0,
      s3: { bucket, key: 'many/0000' },
      etag: expect.stringMatching(/^"[0-9a-f]{32}"$/),
    });
    expect(Math.abs((small[0] as StorageEntry).mtimeMs - Date.now())).toBeLessThan(10 * 60_000);
    const whole = await collect(listS3(client, bucket, 'many/'));
    expect(whole).toHaveLength(1050);
    // The prefix is literal: without the slash, "many0" and "manx"… come too.
    expect(relatives(await collect(listS3(client, bucket, 'many', { pageSize: 500 }))).slice(-1)).toEqual(['0']);
  });

  it('groups common prefixes with a delimiter, in key order with the objects', async () => {
    await put(['tree/a-b', 'tree/a/1', 'tree/a/2', 'tree/a0', 'tree/b/', 'tree/b/c/d', 'tree/z']);
    const entries = await collect(listS3(client, bucket, 'tree/', { delimiter: '/', pageSize: 2 }));
    expect(entries.map((e) => `${e.kind}:${e.relative}`)).toEqual(['file:a-b', 'prefix:a/', 'file:a0', 'prefix:b/', 'file:z']);
    const all = await collect(listS3(client, bucket, 'tree/'));
    expect(all.filter((e) => e.kind === 'file' && e.isDirMarker).map((e) => e.relative)).toEqual(['b/']);
  });

  it('lists awkward keys exactly, in the same order as listLocal lists the same names', async () => {
    const names = [
      'a b',
      'a+b',
      'a%20b',
      'a%2Fb',
      'h#1',
      'q?x=1&y',
      'a-b',
      'a/c',
      'a0',
      '\u00e9',
      'e\u0301',
      '\uff5e',
      '😀',
      '日本/語',
      'x<y>&"\'',
      'tab\there',
      'ctl\u0001x',
      `${'n'.repeat(200)}`,
    ];
    await put(names.map((name) => `odd/${name}`));
    const listedS3 = relatives(await collect(listS3(client, bucket, 'odd/', { pageSize: 5 })));
    const local = join(dir, 'odd');
    for (const name of names) {
      await mkdir(join(local, name, '..'), { recursive: true });
      await writeFile(join(local, name), '');
    }
    const listedLocal = (await collect(listLocal(local))).map((e) => e.relative);
    expect(new Set(listedS3)).toEqual(new Set(names));
    expect(listedLocal).toEqual(listedS3);
    // And the merge agrees: the same names on both sides are all "same size" (empty).
    const decisions = await collect(
      compareListings(listLocal(local), listS3(client, bucket, 'odd/'), { direction: 'upload', mode: 'size-only' }),
    );
    expect(decisions.map((d) => d.action)).toEqual(names.map(() => 'skip-same'));
  });

  it('fails with a typed error for a missing bucket', async () => {
    const error = await collect(listS3(client, `${bucket}-missing`, '')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(S3ServiceError);
    expect(error).toMatchObject({ code: 'NoSuchBucket', status: 404 });
  });
});

describe('listBuckets against the real server', () => {
  it('includes the test bucket with its creation time', async () => {
    const buckets = await listBuckets(client);
    const ours = buckets.find((b) => b.name === bucket);
    expect(ours).toBeDefined();
    expect(Math.abs(ours!.createdMs! - Date.now())).toBeLessThan(10 * 60_000);
  });
});

describe('deleteObjects against the real server', () => {
  it('deletes in batches of up to 1,000 keys, with the checksum DeleteObjects requires', async () => {
    // One key XML cannot carry: it goes through DeleteObject.
    const keys = [...Array.from({ length: 1202 }, (_, i) => `del/${i}`), 'del/ctl\u0001'];
    await put(keys);
    const sent: Array<Record<string, string>> = [];
    const recording = testClient();
    recording.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'DeleteObjectsCommand') sent.push((args.request as { headers: Record<string, string> }).headers);
        return next(args);
      },
      { step: 'finalizeRequest', name: 'recordHeaders' },
    );
    const deleted: string[] = [];
    const result = await deleteObjects(recording, bucket, keysUnder('del/'), { onDeleted: (key) => deleted.push(key), concurrency: 2 });
    expect(result).toEqual({ deleted: 1203, failed: 0 });
    expect(new Set(deleted)).toEqual(new Set(keys));
    expect(await listKeys(client, bucket).then((all) => all.filter((k) => k.startsWith('del/')))).toEqual([]);
    expect(sent).toHaveLength(2);
    // No Content-MD5: the SDK sends a CRC32 and Ceph accepts it.
    for (const headers of sent) expect(Object.keys(headers).map((h) => h.toLowerCase())).toContain('x-amz-checksum-crc32');
  });

  it('reports keys the server refuses, per key, without throwing', async () => {
    await put(['guard/keep-1', 'guard/keep-2', 'guard/free-1', 'guard/free-2']);
    await client.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/guard/keep-*` }],
        }),
      }),
    );
    try {
      const failures: DeleteFailure[] = [];
      const result = await deleteObjects(client, bucket, ['guard/free-1', 'guard/keep-1', 'guard/free-2', 'guard/keep-2'], {
        onError: (failure) => failures.push(failure),
      });
      expect(result).toEqual({ deleted: 2, failed: 2 });
      expect(failures.map((f) => [f.key, f.code])).toEqual([
        ['guard/keep-1', 'AccessDenied'],
        ['guard/keep-2', 'AccessDenied'],
      ]);
    } finally {
      await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    }
    expect((await listKeys(client, bucket)).filter((k) => k.startsWith('guard/'))).toEqual(['guard/keep-1', 'guard/keep-2']);
  });

  it('counts a key that does not exist as deleted (S3 semantics)', async () => {
    expect(await deleteObjects(client, bucket, ['never/existed'])).toEqual({ deleted: 1, failed: 0 });
  });
});

async function* keysUnder(prefix: string): AsyncGenerator<string> {
  for await (const entry of listS3(client, bucket, prefix, { pageSize: 250 })) if (entry.kind === 'file') yield entry.s3!.key;
}
