import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  type DeleteObjectsCommandInput,
  ListBucketsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandInput,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { S3ServiceError, TransferAbortedError, UsageError } from '../../src/errors.js';
import { type DeleteFailure, deleteObjects, listBuckets, listLocation, listS3 } from '../../src/storage/index.js';
import { tempDir } from '../helpers/files.js';

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
beforeEach(() => s3.reset());

const serviceError = (name: string, status: number) => Object.assign(new Error(''), { name, $metadata: { httpStatusCode: status } });
const abortError = () => Object.assign(new Error('aborted'), { name: 'AbortError' });

async function collect<T>(listing: AsyncIterable<T>): Promise<T[]> {
  const entries: T[] = [];
  for await (const entry of listing) entries.push(entry);
  return entries;
}

/** A fake bucket answering ListObjectsV2 like S3: sorted keys, MaxKeys pages, delimiter, url encoding. */
function serveBucket(keys: string[], options: { encode?: boolean } = {}) {
  const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  s3.on(ListObjectsV2Command).callsFake((input: ListObjectsV2CommandInput) => {
    const prefix = input.Prefix ?? '';
    const max = input.MaxKeys ?? 1000;
    const start = input.ContinuationToken ? Number(input.ContinuationToken) : 0;
    const items: Array<{ key: string; prefix: boolean }> = [];
    let i = start;
    for (; i < sorted.length && items.length < max; i++) {
      const key = sorted[i]!;
      if (!key.startsWith(prefix)) continue;
      const at = input.Delimiter ? key.indexOf(input.Delimiter, prefix.length) : -1;
      if (at === -1) {
        items.push({ key, prefix: false });
        continue;
      }
      const common = key.slice(0, at + input.Delimiter!.length);
      if (items.at(-1)?.key !== common) items.push({ key: common, prefix: true });
      while (i + 1 < sorted.length && sorted[i + 1]!.startsWith(common)) i++;
    }
    const rest = sorted.slice(i).some((key) => key.startsWith(prefix));
    const encode = (key: string) => (options.encode && input.EncodingType === 'url' ? encodeURIComponent(key).replace(/%20/g, '+') : key);
    return {
      Contents: items
        .filter((item) => !item.prefix)
        .map((item) => ({ Key: encode(item.key), Size: item.key.length, LastModified: new Date(1e12), ETag: '"e"' })),
      CommonPrefixes: items.filter((item) => item.prefix).map((item) => ({ Prefix: encode(item.key) })),
      IsTruncated: rest,
      ...(rest ? { NextContinuationToken: String(i) } : {}),
      ...(options.encode && input.EncodingType === 'url' ? { EncodingType: 'url' } : {}),
    };
  });
}

describe('listS3', () => {
  it('follows continuation tokens across pages and yields keys relative to the prefix', async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `p/${String(i).padStart(2, '0')}`);
    serveBucket([...keys, 'other', 'p0']); // the fake's tokens are indexes: 'other' comes first
    const entries = await collect(listS3(client, 'bkt', 'p/', { pageSize: 10 }));
    expect(entries.map((e) => e.relative)).toEqual(keys.map((k) => k.slice(2)));
    const calls = s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input);
    expect(calls).toEqual([
      { Bucket: 'bkt', Prefix: 'p/', MaxKeys: 10, EncodingType: 'url' },
      { Bucket: 'bkt', Prefix: 'p/', MaxKeys: 10, EncodingType: 'url', ContinuationToken: '11' },
      { Bucket: 'bkt', Prefix: 'p/', MaxKeys: 10, EncodingType: 'url', ContinuationToken: '21' },
    ]);
    expect(entries[0]).toEqual({
      kind: 'file',
      relative: '00',
      size: 4,
      mtimeMs: 1e12,
      etag: '"e"',
      s3: { bucket: 'bkt', key: 'p/00' },
    });
  });

  it('streams page by page: the first entry comes before the second page is asked for', async () => {
    serveBucket(['a', 'b', 'c']);
    const listing = listS3(client, 'bkt', '', { pageSize: 1 });
    expect((await listing.next()).value).toMatchObject({ relative: 'a' });
    expect(s3.commandCalls(ListObjectsV2Command)).toHaveLength(1);
    await listing.return(undefined);
  });

  it('marks folder markers and merges common prefixes into key order', async () => {
    serveBucket(['d/', 'd/a-b', 'd/a/x', 'd/a/y', 'd/a0', 'd/b/', 'd/b/z']);
    const entries = await collect(listS3(client, 'bkt', 'd/', { delimiter: '/' }));
    expect(entries.map((e) => [e.kind, e.relative, e.kind === 'file' ? (e.isDirMarker ?? false) : '-'])).toEqual([
      ['file', '', true],
      ['file', 'a-b', false],
      ['prefix', 'a/', '-'],
      ['file', 'a0', false],
      ['prefix', 'b/', '-'],
    ]);
    expect(entries[2]).toEqual({ kind: 'prefix', relative: 'a/', s3: { bucket: 'bkt', key: 'd/a/' } });
    const all = await collect(listS3(client, 'bkt', 'd/'));
    expect(all.filter((e) => e.kind === 'file' && e.isDirMarker).map((e) => e.relative)).toEqual(['', 'b/']);
  });

  it('with prefixesFirst, each page gives its common prefixes before its objects, as `aws s3 ls` prints them', async () => {
    serveBucket(['d/', 'd/a/x', 'd/a-b', 'd/a0', 'd/b/', 'd/b/y', 'd/c', 'd/e/z']);
    const page = (entries: Array<{ kind: string; relative: string }>) =>
      entries.map((e) => `${e.kind === 'prefix' ? 'PRE ' : ''}${e.relative}`);
    expect(page(await collect(listS3(client, 'bkt', 'd/', { delimiter: '/', prefixesFirst: true })))).toEqual([
      'PRE a/',
      'PRE b/',
      'PRE e/',
      '',
      'a-b',
      'a0',
      'c',
    ]);
    // Page by page: two pages of three, each prefixes first.
    expect(page(await collect(listS3(client, 'bkt', 'd/', { delimiter: '/', prefixesFirst: true, pageSize: 3 })))).toEqual([
      'PRE a/',
      '',
      'a-b',
      'PRE b/',
      'a0',
      'c',
      'PRE e/',
    ]);
  });

  it('decodes URL-encoded keys when the store encoded them, and only then', async () => {
    const keys = ['a b', 'a+b', 'a%20b', 'x/é', 'ctl\u0001'];
    serveBucket(keys, { encode: true });
    expect((await collect(listS3(client, 'bkt', ''))).map((e) => e.relative).sort()).toEqual([...keys].sort());
    s3.reset();
    serveBucket(keys, { encode: false }); // a store that ignores EncodingType
    expect((await collect(listS3(client, 'bkt', ''))).map((e) => e.relative).sort()).toEqual([...keys].sort());
  });

  it('maps errors, refuses a token that never changes and stops on abort', async () => {
    s3.on(ListObjectsV2Command).rejects(serviceError('NoSuchBucket', 404));
    const missing = await collect(listS3(client, 'nope', 'x/')).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(S3ServiceError);
    expect(missing).toMatchObject({ code: 'NoSuchBucket', operation: 'ListObjectsV2', source: 's3://nope/x/' });

    s3.reset();
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'a' }], IsTruncated: true, NextContinuationToken: 't' });
    await expect(collect(listS3(client, 'bkt', ''))).rejects.toMatchObject({ code: 'InvalidContinuationToken' });
    expect(s3.commandCalls(ListObjectsV2Command)).toHaveLength(2);

    s3.reset();
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'a' }], IsTruncated: true });
    await expect(collect(listS3(client, 'bkt', ''))).rejects.toMatchObject({ code: 'InvalidContinuationToken' });

    s3.reset();
    s3.on(ListObjectsV2Command).rejects(abortError());
    const controller = new AbortController();
    controller.abort();
    await expect(collect(listS3(client, 'bkt', '', { signal: controller.signal }))).rejects.toBeInstanceOf(TransferAbortedError);
    expect((s3.commandCalls(ListObjectsV2Command)[0]!.args as unknown[])[1]).toMatchObject({ abortSignal: controller.signal });
  });
});

describe('listBuckets', () => {
  it('returns every bucket, following ListBuckets pages when the store paginates', async () => {
    s3.on(ListBucketsCommand, {}).resolves({ Buckets: [{ Name: 'a', CreationDate: new Date(1000) }], ContinuationToken: 'next' });
    s3.on(ListBucketsCommand, { ContinuationToken: 'next' }).resolves({ Buckets: [{ Name: 'b' }] });
    expect(await listBuckets(client)).toEqual([{ name: 'a', createdMs: 1000 }, { name: 'b' }]);
  });

  it('maps errors without naming a bucket', async () => {
    s3.on(ListBucketsCommand).rejects(serviceError('AccessDenied', 403));
    await expect(listBuckets(client)).rejects.toMatchObject({
      code: 'AccessDenied',
      message: 'access denied to the list of buckets (AccessDenied, HTTP 403)',
    });
  });
});

describe('deleteObjects', () => {
  const keys = (n: number, prefix = 'k') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const batches = () => s3.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input as DeleteObjectsCommandInput);

  it('sends batches of 1,000 keys in quiet mode and reports every key', async () => {
    s3.on(DeleteObjectsCommand).resolves({});
    const deleted: string[] = [];
    const result = await deleteObjects(client, 'bkt', keys(2500), { onDeleted: (key) => deleted.push(key) });
    expect(result).toEqual({ deleted: 2500, failed: 0 });
    expect(batches().map((b) => b.Delete!.Objects!.length)).toEqual([1000, 1000, 500]);
    expect(batches()[0]).toMatchObject({ Bucket: 'bkt', Delete: { Quiet: true, Objects: expect.arrayContaining([{ Key: 'k0' }]) } });
    expect(new Set(deleted)).toEqual(new Set(keys(2500)));
  });

  it('reads keys lazily from an async iterable, never more than the batches in flight need', async () => {
    let read = 0;
    async function* source() {
      for (const key of keys(5000)) {
        read++;
        yield key;
      }
    }
    let releaseFirst!: () => void;
    const firstAnswered = new Promise<void>((resolve) => (releaseFirst = resolve));
    s3.on(DeleteObjectsCommand)
      .callsFakeOnce(() => firstAnswered.then(() => ({})))
      .resolves({});
    const run = deleteObjects(client, 'bkt', source(), { concurrency: 1, batchSize: 1000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(read).toBe(1000); // waiting for the first batch before reading the second
    releaseFirst();
    expect(await run).toEqual({ deleted: 5000, failed: 0 });
    expect(batches()).toHaveLength(5);
  });

  it('reports per-key errors through onError and counts them, without throwing', async () => {
    s3.on(DeleteObjectsCommand).resolves({
      Errors: [
        { Key: 'k1', Code: 'AccessDenied', Message: 'Access Denied' },
        { Key: 'k3', Code: 'InternalError' },
      ],
    });
    const failures: DeleteFailure[] = [];
    const deleted: string[] = [];
    const result = await deleteObjects(client, 'bkt', ['k0', 'k1', 'k2', 'k3', '', 'k0'], {
      onError: (failure) => failures.push(failure),
      onDeleted: (key) => deleted.push(key),
    });
    expect(result).toEqual({ deleted: 2, failed: 3 });
    expect(deleted).toEqual(['k0', 'k2']);
    expect(failures).toEqual([
      { key: '', code: 'InvalidKey', message: 'an empty key cannot be deleted' },
      { key: 'k1', code: 'AccessDenied', message: 'Access Denied' },
      { key: 'k3', code: 'InternalError', message: 'InternalError' },
    ]);
    expect(batches()[0]!.Delete!.Objects).toEqual([{ Key: 'k0' }, { Key: 'k1' }, { Key: 'k2' }, { Key: 'k3' }]);
  });

  it('deletes keys XML cannot carry one by one', async () => {
    s3.on(DeleteObjectsCommand).resolves({});
    s3.on(DeleteObjectCommand).resolves({});
    const result = await deleteObjects(client, 'bkt', ['a', 'ctl\u0001', 'b\tc']);
    expect(result).toEqual({ deleted: 3, failed: 0 });
    expect(batches()[0]!.Delete!.Objects).toEqual([{ Key: 'a' }, { Key: 'b\tc' }]);
    expect(s3.commandCalls(DeleteObjectCommand).map((c) => c.args[0].input)).toEqual([{ Bucket: 'bkt', Key: 'ctl\u0001' }]);
  });

  it('throws a whole-request failure after the batches in flight settle, reading no further keys', async () => {
    s3.on(DeleteObjectsCommand).resolvesOnce({}).rejects(serviceError('NoSuchBucket', 404));
    let read = 0;
    function* source() {
      for (const key of keys(10_000)) {
        read++;
        yield key;
      }
    }
    const error = await deleteObjects(client, 'bkt', source(), { concurrency: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(S3ServiceError);
    expect(error).toMatchObject({ code: 'NoSuchBucket', operation: 'DeleteObjects' });
    expect(read).toBeLessThan(5000);
  });

  it('stops on abort with TransferAbortedError', async () => {
    const controller = new AbortController();
    s3.on(DeleteObjectsCommand).callsFake(() => {
      controller.abort();
      return {};
    });
    await expect(deleteObjects(client, 'bkt', keys(3000), { signal: controller.signal, concurrency: 1 })).rejects.toBeInstanceOf(
      TransferAbortedError,
    );
    expect(batches()).toHaveLength(1);
  });

  it('cancelled with requests in flight: says those keys may still be deleted (the store carries them out)', async () => {
    const controller = new AbortController();
    s3.on(DeleteObjectsCommand).callsFake(() => {
      controller.abort();
      throw Object.assign(new Error('aborted'), { name: 'AbortError' });
    });
    const error = await deleteObjects(client, 'bkt', keys(1500), { signal: controller.signal, concurrency: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransferAbortedError);
    expect((error as TransferAbortedError).unfinished).toBe(
      'delete requests for 1000 keys were sent without an answer: the store may have deleted some or all of them (and goes on with a request it has)',
    );
  });

  it('a request whose answer was lost: the error says its keys may be deleted; a refused one (4xx) does not', async () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', $metadata: { attempts: 5 } });
    s3.on(DeleteObjectsCommand).rejects(reset);
    const lost = await deleteObjects(client, 'bkt', keys(700), { concurrency: 1 }).catch((e: unknown) => e);
    expect((lost as Error).message).toBe(
      'cannot reach the S3 endpoint: connection reset (ECONNRESET) after 5 attempts; delete requests for 700 keys were sent without an answer: the store may have deleted some or all of them (and goes on with a request it has)',
    );
    s3.reset();
    s3.on(DeleteObjectsCommand).rejects(serviceError('AccessDenied', 403));
    const refused = await deleteObjects(client, 'bkt', keys(700)).catch((e: unknown) => e);
    expect((refused as Error).message).not.toMatch(/may have deleted/);
  });

  it('keys deleted one by one: an endpoint that stops answering stops the job (no retry of every later key)', async () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', $metadata: { attempts: 5 } });
    s3.on(DeleteObjectCommand).rejects(reset);
    const failures: DeleteFailure[] = [];
    const ctl = Array.from({ length: 40 }, (_, i) => `k\u0001${i}`);
    const error = await deleteObjects(client, 'bkt', ctl, { concurrency: 4, onError: (f) => failures.push(f) }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ECONNRESET', message: expect.stringContaining('may have deleted') });
    expect(failures).toEqual([]);
    expect(s3.commandCalls(DeleteObjectCommand).length).toBeLessThanOrEqual(4);
  });
});

describe('listLocation', () => {
  it('lists an S3 location with the client and refuses one without', async () => {
    serveBucket(['p/a', 'p/b']);
    const entries = await collect(listLocation({ kind: 's3', bucket: 'bkt', key: 'p/' }, { client }));
    expect(entries.map((e) => e.relative)).toEqual(['a', 'b']);
    expect(() => listLocation({ kind: 's3', bucket: 'bkt', key: '' })).toThrow(UsageError);
  });

  it('lists a local directory', async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir, 'f'), 'x');
      expect((await collect(listLocation({ kind: 'local', path: dir }))).map((e) => e.relative)).toEqual(['f']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
