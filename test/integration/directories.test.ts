/**
 * Integration: the library's directory jobs — copyTree (`cp --recursive`), syncTree (`sync`) and
 * removeObjects (`rm`) — run by a TransferManager against the real S3 server. Each test states
 * one promise of the directory-commands issue; trees are small files (plus one multipart file)
 * so the whole file runs in a few seconds.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DeleteBucketPolicyCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutBucketPolicyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  copyTree,
  LocalFileError,
  type LocalLocation,
  type PlannedChange,
  removeObjects,
  type S3Location,
  S3ServiceError,
  type SkippedItem,
  type SyncTreeOptions,
  syncTree,
  TransferAbortedError,
  TransferManager,
  type TransferManagerOptions,
  type TreeOptions,
  UsageError,
} from '../../src/index.js';
import { hashWorkers } from '../../src/integrity/hash-workers.js';
import { type FaultProxy, isGetObject, isPutObject, isUploadPart, type ProxiedRequest, startFaultProxy } from '../helpers/fault-proxy.js';
import { MiB, rm, tempDir } from '../helpers/files.js';
import { createTestBucket, openMultipartUploads, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';
import {
  exists,
  hashes,
  keysUnder as keysIn,
  lastModifiedUnder as lastModifiedIn,
  namesUnder,
  putObjects as putIn,
  readTree,
  sha256,
  smallFiles,
  sortedPaths,
  writeTree,
} from '../helpers/trees.js';

let client: S3Client;
let bucket: string;
let work: string;

beforeAll(async () => {
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-dirs');
  work = await tempDir('s3xfer-dirs-');
});

afterAll(async () => {
  if (bucket) await removeTestBucket(client, bucket);
  if (work) await rm(work, { recursive: true, force: true });
  client?.destroy();
});

// --- helpers ---

/** Parts of 5 MiB from 5 MiB on, so one 6 MiB file is a two-part multipart upload. */
const CONFIG = { concurrency: 32, multipartThreshold: 5 * MiB, partSize: 5 * MiB };

function newManager(options: TransferManagerOptions = {}, via: S3Client = client): TransferManager {
  return new TransferManager(via, { config: CONFIG, ...options });
}

const s3 = (key: string, inBucket = bucket): S3Location => ({ kind: 's3', bucket: inBucket, key });
const local = (path: string): LocalLocation => ({ kind: 'local', path });
const url = (key: string) => `s3://${bucket}/${key}`;

/** What a job reported through its events. */
function recorder() {
  const skipped: SkippedItem[] = [];
  const planned: PlannedChange[] = [];
  const deleteFailed: string[] = [];
  const events: TreeOptions['events'] = {
    onSkip: (item) => skipped.push(item),
    onPlanned: (change) => planned.push(change),
    onDeleteFailed: (target) => deleteFailed.push(target),
  };
  return { skipped, planned, deleteFailed, events };
}

const copy = (from: LocalLocation | S3Location, to: LocalLocation | S3Location, options: TreeOptions = {}) =>
  copyTree(newManager(), from, to, options);
const sync = (from: LocalLocation | S3Location, to: LocalLocation | S3Location, options: SyncTreeOptions = {}) =>
  syncTree(newManager(), from, to, options);

const keysUnder = (prefix: string) => keysIn(client, bucket, prefix);
const lastModifiedUnder = (prefix: string) => lastModifiedIn(client, bucket, prefix);
const putObjects = (objects: Record<string, string>) => putIn(client, bucket, objects);

async function objectText(key: string): Promise<string> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return response.Body!.transformToString();
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: Error) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome.error;
}

// --- cp --recursive ---

describe('copyTree (cp --recursive)', () => {
  it('uploads every file of a directory to keys made of their relative paths joined by "/", and downloads them back byte for byte', async () => {
    const files = { ...smallFiles(300), 'big/multipart.bin': randomBytes(6 * MiB + 123), 'top level.txt': 'at the root' };
    const source = join(work, 'copy-src');
    await writeTree(source, files);

    const up = await copy(local(source), s3('copy/'));
    expect(up).toMatchObject({ transferred: 302, bytes: expect.any(Number), failed: [], skipped: 0 });
    expect(await keysUnder('copy/')).toEqual(sortedPaths(files));
    // The big file went up in two parts (a multipart ETag ends in "-<parts>").
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/big/multipart.bin' }));
    expect(head.ETag).toMatch(/-2"$/);

    const target = join(work, 'copy-dst');
    const down = await copy(s3('copy/'), local(target));
    expect(down).toMatchObject({ transferred: 302, failed: [], skipped: 0 });
    expect(await readTree(target)).toEqual(await readTree(source));
    // Every downloaded file carries its object's LastModified as its modification time.
    for (const [relative, time] of await lastModifiedUnder('copy/'))
      expect(Math.round((await stat(join(target, relative))).mtimeMs)).toBe(time);
  });

  /**
   * Uploads `files` under `name/`, downloads them again with `manager` and checks the bytes;
   * returns how many digests of that download went four at a time.
   */
  async function downloadCountingFourAtATime(name: string, files: Record<string, Buffer>, manager = newManager()): Promise<number> {
    const source = join(work, `${name}-src`);
    await writeTree(source, files);
    await copy(local(source), s3(`${name}/`));
    const before = hashWorkers().multiStreamDigests;
    const target = join(work, `${name}-dst`);
    const down = await copyTree(manager, s3(`${name}/`), local(target));
    expect(down).toMatchObject({ transferred: Object.keys(files).length, failed: [], skipped: 0 });
    expect(await readTree(target)).toEqual(await readTree(source));
    return hashWorkers().multiStreamDigests - before;
  }

  it("checks the MD5s of a job's medium files (1 MiB and more) in the hashing threads, four at a time", async () => {
    const files = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`m${i}.bin`, randomBytes(MiB + 1000 * i)]));
    // Single-part objects, one stream each: those checked while four downloads or more ran went
    // four at a time (all of them, unless the first began before three others did).
    const fourAtATime = await downloadCountingFourAtATime('medium', files);
    expect(fourAtATime).toBeGreaterThan(0);
    expect(fourAtATime).toBeLessThanOrEqual(12);
  });

  it("checks the part MD5s of a job's objects in parts, fetched in one GET each, four at a time", async () => {
    // Uploaded in two parts (5 + 1 MiB); downloaded below a 16 MiB threshold: one GET per file,
    // whose two parts are hashed one after the other, with the other files' parts as partners.
    const files = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`p${i}.bin`, randomBytes(6 * MiB + 1000 * i)]));
    const oneGet = newManager({ config: { concurrency: 32, multipartThreshold: 16 * MiB, partSize: 8 * MiB } });
    const fourAtATime = await downloadCountingFourAtATime('parts', files, oneGet);
    expect(fourAtATime).toBeGreaterThan(0);
    expect(fourAtATime).toBeLessThanOrEqual(12);
  });

  it('takes "prefix" and "prefix/" alike, and keeps keys outside the prefix out', async () => {
    await putObjects({ 'alike/a.txt': 'a', 'alike/sub/b.txt': 'b', 'alike-not/c.txt': 'c', alikeX: 'x' });
    const target = join(work, 'alike');
    expect(await copy(s3('alike'), local(target))).toMatchObject({ transferred: 2 });
    expect(await namesUnder(target)).toEqual(['a.txt', 'sub/', 'sub/b.txt']);
  });

  it('applies --exclude/--include in order, the last match winning', async () => {
    const source = join(work, 'filters');
    await writeTree(source, { 'a.txt': 'a', 'b.log': 'b', 'sub/c.txt': 'c', 'sub/d.log': 'd' });
    await copy(local(source), s3('filters/1/'), {
      filters: [
        { type: 'exclude', pattern: '*' },
        { type: 'include', pattern: '*.txt' },
      ],
    });
    expect(await keysUnder('filters/1/')).toEqual(['a.txt', 'sub/c.txt']);
    await copy(local(source), s3('filters/2/'), {
      filters: [
        { type: 'include', pattern: '*.txt' },
        { type: 'exclude', pattern: '*' },
      ],
    });
    expect(await keysUnder('filters/2/')).toEqual([]);
    // On downloads too: the patterns match keys relative to the prefix.
    const target = join(work, 'filters-down');
    await copy(s3('filters/1/'), local(target), { filters: [{ type: 'exclude', pattern: 'sub/*' }] });
    expect(await namesUnder(target)).toEqual(['a.txt']);
  });
});

// --- sync ---

describe('a directory job whose manager the caller aborts', () => {
  it.each(['while listing', 'after the listing ended'] as const)(
    'rejects with TransferAbortedError (%s), its cause the reason given, nothing left behind',
    async (when) => {
      // 30 files are fewer than the manager queues at once (the listing ends at the start); 400 are more.
      const files = smallFiles(when === 'while listing' ? 400 : 30);
      const root = join(work, `aborted-${when.replaceAll(' ', '-')}`);
      await writeTree(root, files);
      const reason = new Error('the user pressed cancel');
      let manager: TransferManager;
      const abortAt = 3;
      let done = 0;
      manager = newManager({ subscribers: [{ onDone: () => ++done === abortAt && manager.abort(reason) }] });
      const up = await rejection(copyTree(manager, local(root), s3(`aborted/${when}/`)));
      expect(up).toBeInstanceOf(TransferAbortedError);
      expect(up.cause).toBe(reason);
      expect(await openMultipartUploads(client, bucket)).toEqual([]);

      await copy(local(root), s3(`aborted/${when}-src/`));
      done = 0;
      manager = newManager({ subscribers: [{ onDone: () => ++done === abortAt && manager.abort(reason) }] });
      const target = join(work, `aborted-down-${when.replaceAll(' ', '-')}`);
      const down = await rejection(copyTree(manager, s3(`aborted/${when}-src/`), local(target)));
      expect(down).toBeInstanceOf(TransferAbortedError);
      expect((await namesUnder(target)).filter((name) => name.includes('.s3xfer-part'))).toEqual([]);
    },
  );
});

describe('syncTree (sync)', () => {
  it('copies everything the first time and nothing the second, in both directions; a sync back after a download sends nothing', async () => {
    const files = smallFiles(60);
    const source = join(work, 'sync-src');
    await writeTree(source, files);

    expect(await sync(local(source), s3('sync/'))).toMatchObject({ transferred: 60, unchanged: 0, failed: [] });
    expect(await sync(local(source), s3('sync/'))).toMatchObject({ transferred: 0, unchanged: 60, failed: [] });

    const copyDir = join(work, 'sync-copy');
    expect(await sync(s3('sync/'), local(copyDir))).toMatchObject({ transferred: 60, unchanged: 0, failed: [] });
    expect(await sync(s3('sync/'), local(copyDir))).toMatchObject({ transferred: 0, unchanged: 60, failed: [] });
    expect(await readTree(copyDir)).toEqual(await readTree(source));

    // Downloads took the objects' times, so the copy is not newer than the objects.
    expect(await sync(local(copyDir), s3('sync/'))).toMatchObject({ transferred: 0, unchanged: 60, failed: [] });
  });

  it('sends a file again when its size changed, either way', async () => {
    const source = join(work, 'resize-src');
    await writeTree(source, { 'a.txt': 'one', 'b.txt': 'two', 'c.txt': 'three' });
    await sync(local(source), s3('resize/'));
    const copyDir = join(work, 'resize-copy');
    await sync(s3('resize/'), local(copyDir));

    await appendFile(join(source, 'a.txt'), ' and more');
    expect(await sync(local(source), s3('resize/'))).toMatchObject({ transferred: 1, unchanged: 2 });
    expect(await objectText('resize/a.txt')).toBe('one and more');

    expect(await sync(s3('resize/'), local(copyDir))).toMatchObject({ transferred: 1, unchanged: 2 });
    expect(await readFile(join(copyDir, 'a.txt'), 'utf8')).toBe('one and more');
  });

  it('--size-only: a newer file of the same size is not sent (by default it is)', async () => {
    const source = join(work, 'size-only');
    await writeTree(source, { 'same.txt': 'aaaa' });
    await sync(local(source), s3('size-only/'));
    await writeFile(join(source, 'same.txt'), 'bbbb');
    const later = new Date(Date.now() + 60_000);
    await utimes(join(source, 'same.txt'), later, later);

    expect(await sync(local(source), s3('size-only/'), { mode: 'size-only' })).toMatchObject({ transferred: 0, unchanged: 1 });
    expect(await objectText('size-only/same.txt')).toBe('aaaa');
    expect(await sync(local(source), s3('size-only/'))).toMatchObject({ transferred: 1, unchanged: 0 });
    expect(await objectText('size-only/same.txt')).toBe('bbbb');
  });

  it('--exact-timestamps: downloads a same-sized object whose time differs at all (by default, only when the file is newer)', async () => {
    await putObjects({ 'exact/x.txt': 'from-s3' });
    const target = join(work, 'exact');
    await sync(s3('exact/'), local(target));
    const file = join(target, 'x.txt');
    const objectTime = (await lastModifiedUnder('exact/')).get('x.txt')!;

    await writeFile(file, 'mine-00');
    await utimes(file, new Date(objectTime - 60_000), new Date(objectTime - 60_000));
    expect(await sync(s3('exact/'), local(target))).toMatchObject({ transferred: 0, unchanged: 1 });
    expect(await readFile(file, 'utf8')).toBe('mine-00');

    expect(await sync(s3('exact/'), local(target), { mode: 'exact-timestamps' })).toMatchObject({ transferred: 1, unchanged: 0 });
    expect(await readFile(file, 'utf8')).toBe('from-s3');
    expect(Math.round((await stat(file)).mtimeMs)).toBe(objectTime);

    // A local file newer than the object is replaced by default.
    await writeFile(file, 'mine-01');
    await utimes(file, new Date(objectTime + 60_000), new Date(objectTime + 60_000));
    expect(await sync(s3('exact/'), local(target))).toMatchObject({ transferred: 1 });
    expect(await readFile(file, 'utf8')).toBe('from-s3');
  });

  it('--delete removes what the source lacks, either way; without it nothing is deleted', async () => {
    const source = join(work, 'delete-src');
    await writeTree(source, { 'keep.txt': 'keep', 'sub/keep.txt': 'keep' });
    await sync(local(source), s3('delete/'));
    await putObjects({ 'delete/gone.txt': 'x', 'delete/sub/gone.txt': 'x', 'delete-sibling/stays.txt': 'x' });

    expect(await sync(local(source), s3('delete/'))).toMatchObject({ deleted: 0 });
    expect(await keysUnder('delete/')).toEqual(['gone.txt', 'keep.txt', 'sub/gone.txt', 'sub/keep.txt']);
    const { planned, events } = recorder();
    expect(await sync(local(source), s3('delete/'), { deleteExtra: true, events })).toMatchObject({ deleted: 2, deleteFailed: 0 });
    expect(await keysUnder('delete/')).toEqual(['keep.txt', 'sub/keep.txt']);
    expect(planned).toEqual([
      { action: 'delete', destination: url('delete/gone.txt') },
      { action: 'delete', destination: url('delete/sub/gone.txt') },
    ]);
    expect(await keysUnder('delete-sibling/')).toEqual(['stays.txt']);

    const target = join(work, 'delete-dst');
    await writeTree(target, { 'old.txt': 'x', 'sub/old.txt': 'x' });
    expect(await sync(s3('delete/'), local(target))).toMatchObject({ transferred: 2, deleted: 0 });
    expect(await namesUnder(target)).toEqual(['keep.txt', 'old.txt', 'sub/', 'sub/keep.txt', 'sub/old.txt']);
    expect(await sync(s3('delete/'), local(target), { deleteExtra: true })).toMatchObject({ transferred: 0, deleted: 2 });
    expect(await namesUnder(target)).toEqual(['keep.txt', 'sub/', 'sub/keep.txt']);
  });

  it('dryRun reports every change it would make and makes none', async () => {
    const source = join(work, 'dry-src');
    await writeTree(source, { 'new.txt': 'new', 'changed.txt': 'changed, longer' });
    await putObjects({ 'dry/changed.txt': 'changed', 'dry/extra.txt': 'extra' });
    const before = await lastModifiedUnder('dry/');

    const up = recorder();
    await sync(local(source), s3('dry/'), { deleteExtra: true, dryRun: true, events: up.events });
    expect(up.planned).toEqual([
      { action: 'upload', source: join(source, 'changed.txt'), destination: url('dry/changed.txt') },
      { action: 'upload', source: join(source, 'new.txt'), destination: url('dry/new.txt') },
      // Objects are deleted once the uploads are done.
      { action: 'delete', destination: url('dry/extra.txt') },
    ]);
    expect(await lastModifiedUnder('dry/')).toEqual(before);

    // Downloads into a directory that does not exist yet: it is not made either.
    const fresh = join(work, 'dry-fresh');
    for (const job of [copy, sync]) {
      const down = recorder();
      await job(s3('dry/'), local(fresh), { dryRun: true, events: down.events });
      expect(down.planned).toEqual([
        { action: 'download', source: url('dry/changed.txt'), destination: join(fresh, 'changed.txt') },
        { action: 'download', source: url('dry/extra.txt'), destination: join(fresh, 'extra.txt') },
      ]);
      expect(await exists(fresh)).toBe(false);
    }

    const target = join(work, 'dry-dst');
    await writeTree(target, { 'local-only.txt': 'x' });
    const down = recorder();
    await sync(s3('dry/'), local(target), { deleteExtra: true, dryRun: true, events: down.events });
    expect(down.planned.map((c) => `${c.action} ${c.destination}`)).toEqual([
      `download ${join(target, 'changed.txt')}`,
      `download ${join(target, 'extra.txt')}`,
      `delete ${join(target, 'local-only.txt')}`,
    ]);
    expect(await namesUnder(target)).toEqual(['local-only.txt']);
  });
});

// --- safety ---

describe('safety', () => {
  it('never writes outside the destination: unsafe keys are skipped and reported, each for its own reason', async () => {
    const unsafe = {
      '../x': 'UnsafeKey',
      'a/../../x': 'UnsafeKey',
      '/etc/x': 'UnsafeKey',
      'C:\\x': 'UnsafeKey',
      '\\\\host\\share': 'UnsafeKey',
      '..': 'UnsafeKey',
      '.': 'UnsafeKey',
      'a//b': 'UnsafeKey',
      [`${'n'.repeat(256)}/x`]: 'NameTooLong',
    };
    await putObjects(Object.fromEntries([...Object.keys(unsafe), 'ok.txt'].map((k) => [`hostile/${k}`, 'evil'])));
    // The destination sits two empty directories deep, so that an escape would show.
    const jail = join(work, 'jail');
    const target = join(jail, 'inside', 'dest');
    await mkdir(target, { recursive: true });

    const { skipped, events } = recorder();
    const summary = await copy(s3('hostile/'), local(target), { events });

    expect(summary).toMatchObject({ transferred: 1, skipped: Object.keys(unsafe).length, failed: [] });
    expect(Object.fromEntries(skipped.map((s) => [s.path.slice(url('hostile/').length), s.code]))).toEqual(unsafe);
    expect(await namesUnder(jail)).toEqual(['inside/', 'inside/dest/', 'inside/dest/ok.txt']);
    expect(await exists('/etc/x')).toBe(false);

    // The same keys sync'd down: skipped as well, and nothing written beside the destination.
    const again = recorder();
    await sync(s3('hostile/'), local(target), { events: again.events });
    expect(again.skipped.map((s) => s.code).sort()).toEqual(Object.values(unsafe).sort());
    expect(await namesUnder(jail)).toEqual(['inside/', 'inside/dest/', 'inside/dest/ok.txt']);
  });

  it('a key ending in "/" makes a directory, and a key that is also a prefix ("a" and "a/b") is reported', async () => {
    await putObjects({ 'folders/empty/': '', 'folders/deep/er/': '', 'folders/a': 'file', 'folders/a/b': 'under', 'folders/a-b': 'x' });
    const target = join(work, 'folders');
    const { skipped, events } = recorder();
    const summary = await copy(s3('folders/'), local(target), { events });
    expect(summary).toMatchObject({ transferred: 2, skipped: 1 });
    expect(skipped).toEqual([{ path: url('folders/a/b'), code: 'FileAndPrefix', reason: expect.stringContaining('"a"') }]);
    expect(await namesUnder(target)).toEqual(['a', 'a-b', 'deep/', 'deep/er/', 'empty/']);
  });

  it('a local directory or file in the way of a key is reported, and the other keys still arrive', async () => {
    await putObjects({ 'inway/dir': 'an object', 'inway/file/x.txt': 'under a file', 'inway/z.txt': 'z' });
    const target = join(work, 'inway');
    await writeTree(target, { 'dir/kept.txt': 'a directory named like the key', file: 'a file named like the prefix' });
    const { skipped, events } = recorder();
    const summary = await copy(s3('inway/'), local(target), { events });
    expect(summary).toMatchObject({ transferred: 1, failed: [], skipped: 2 });
    expect(skipped.map((s) => [s.path, s.code])).toEqual([
      [url('inway/dir'), 'FileAndPrefix'],
      [url('inway/file/x.txt'), 'FileAndPrefix'],
    ]);
    expect(await readTree(target)).toEqual({
      'dir/kept.txt': sha256('a directory named like the key'),
      file: sha256('a file named like the prefix'),
      'z.txt': sha256('z'),
    });
  });

  it('file names with spaces, NFC and NFD unicode, "+", "%", "#", "?" and 200+ bytes round-trip, and sync finds them unchanged', async () => {
    const names = [
      'with space.txt',
      'caf\u00e9.txt',
      'cafe\u0301.txt',
      'a+b.txt',
      '100%.txt',
      'c#.txt',
      'what?.txt',
      `${'é'.repeat(120)}.txt`,
    ];
    const source = join(work, 'names-src');
    await writeTree(source, Object.fromEntries(names.map((name, i) => [`dir ü/${name}`, `content ${i}`])));
    expect(await copy(local(source), s3('names/'))).toMatchObject({ transferred: names.length, failed: [] });
    expect(new Set(await keysUnder('names/'))).toEqual(new Set(names.map((n) => `dir ü/${n}`)));

    const target = join(work, 'names-dst');
    expect(await copy(s3('names/'), local(target))).toMatchObject({ transferred: names.length, failed: [] });
    expect(await readTree(target)).toEqual(await readTree(source));
    expect(await sync(local(source), s3('names/'))).toMatchObject({ transferred: 0, unchanged: names.length });
    expect(await sync(s3('names/'), local(target))).toMatchObject({ transferred: 0, unchanged: names.length });
  });

  it("a local listing never picks up s3xfer's own temp files, so they are neither uploaded nor deleted", async () => {
    const temp = ['.a.txt.0123456789ab.s3xfer-part', 'sub/.0123456789ab.s3xfer-part'];
    const source = join(work, 'temps');
    await writeTree(source, { 'a.txt': 'a', [temp[0]!]: 'partial', [temp[1]!]: 'partial' });
    expect(await copy(local(source), s3('temps/'))).toMatchObject({ transferred: 1, skipped: 0 });
    expect(await keysUnder('temps/')).toEqual(['a.txt']);
    expect(await sync(local(source), s3('temps/'))).toMatchObject({ transferred: 0, unchanged: 1 });
    await sync(s3('temps/'), local(source), { deleteExtra: true });
    expect(await namesUnder(source)).toEqual([temp[0], 'a.txt', 'sub/', temp[1]]);
  });

  it('skips symlink loops and FIFOs with a warning; with followSymlinks false, skips symlinks quietly', async () => {
    const source = join(work, 'links');
    await writeTree(source, { 'real/file.txt': 'real' });
    await symlink('real/file.txt', join(source, 'link.txt'));
    await symlink('..', join(source, 'real', 'loop'));
    execFileSync('mkfifo', [join(source, 'fifo')]);

    const followed = recorder();
    expect(await copy(local(source), s3('links/1/'), { events: followed.events })).toMatchObject({ transferred: 2, skipped: 2 });
    expect(await keysUnder('links/1/')).toEqual(['link.txt', 'real/file.txt']);
    expect(followed.skipped.map((s) => [s.path, s.code])).toEqual([
      [join(source, 'fifo'), 'SpecialFile'],
      [join(source, 'real', 'loop'), 'DirectoryLoop'],
    ]);

    const quiet = recorder();
    expect(await copy(local(source), s3('links/2/'), { followSymlinks: false, events: quiet.events })).toMatchObject({
      transferred: 1,
      skipped: 1,
    });
    expect(await keysUnder('links/2/')).toEqual(['real/file.txt']);
    expect(quiet.skipped.map((s) => s.code)).toEqual(['SpecialFile']);
  });
});

// --- failures ---

describe('a failure on one file', () => {
  let proxy: FaultProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /** A client that sends through a fault proxy failing (500) the requests `match` picks, without retrying. */
  async function failingClient(match: (request: ProxiedRequest) => boolean) {
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [{ match, fault: { type: 'status', status: 500 } }],
    });
    return testClient({ endpoint: proxy.url, maxAttempts: 1 });
  }

  it('an upload whose part fails leaves no multipart upload behind and does not stop the others', async () => {
    const files = { ...smallFiles(40), 'big/multipart.bin': randomBytes(6 * MiB) };
    const source = join(work, 'fail-up');
    await writeTree(source, files);
    const via = await failingClient((r) => isUploadPart(r) && r.path.endsWith('/fail-up/big/multipart.bin'));

    const summary = await copyTree(newManager({}, via), local(source), s3('fail-up/'));

    expect(summary.failed.map((f) => [f.destination, f.error.code])).toEqual([[url('fail-up/big/multipart.bin'), 'InternalError']]);
    expect(summary.transferred).toBe(40);
    expect(await keysUnder('fail-up/')).toEqual(sortedPaths(smallFiles(40)));
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    via.destroy();
  });

  it('a download that fails leaves no temp file and does not stop the others', async () => {
    const files = { ...smallFiles(40), 'big/multipart.bin': randomBytes(6 * MiB), 'small/broken.txt': 'broken' };
    await copy(local(await tempTree('fail-down-src', files)), s3('fail-down/'));
    const via = await failingClient((r) => isGetObject(r) && /\/fail-down\/(big\/multipart\.bin|small\/broken\.txt)$/.test(r.path));
    const target = join(work, 'fail-down');

    const summary = await copyTree(newManager({}, via), s3('fail-down/'), local(target));

    expect(summary.failed.map((f) => f.source).sort()).toEqual([url('fail-down/big/multipart.bin'), url('fail-down/small/broken.txt')]);
    expect(summary.transferred).toBe(40);
    // The failed files' directories hold nothing (no temp file); the others arrived whole.
    expect(await namesUnder(join(target, 'big'))).toEqual([]);
    expect(await namesUnder(join(target, 'small'))).toEqual([]);
    const { 'big/multipart.bin': _big, 'small/broken.txt': _broken, ...arrived } = files;
    expect(await readTree(target)).toEqual(hashes(arrived));
    via.destroy();
  });

  it("with failurePolicy 'stop', the first failure stops the rest", async () => {
    const files = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${String(i).padStart(2, '0')}.txt`, `file ${i}`]));
    const source = await tempTree('stop-src', files);
    const via = await failingClient((r) => isPutObject(r) && r.path.endsWith('/f00.txt'));

    // One transfer at a time, so the order is known: f00 fails first. By default the others go on.
    const continuing = newManager({ config: { ...CONFIG, concurrency: 1 }, maxActiveTransfers: 1 }, via);
    const summary = await copyTree(continuing, local(source), s3('continue/'));
    expect(summary).toMatchObject({ transferred: 29, failed: [{ destination: url('continue/f00.txt') }] });

    let ended = 0;
    const stopping = newManager(
      {
        config: { ...CONFIG, concurrency: 1 },
        maxActiveTransfers: 1,
        failurePolicy: 'stop',
        subscribers: [{ onDone: () => ended++, onFailed: () => ended++ }],
      },
      via,
    );
    const error = await rejection(copyTree(stopping, local(source), s3('stop/')));
    const endedWhenRejected = ended;
    const { succeeded, failed } = await stopping.drain();

    // The job rejects with the failure that stopped it, once every transfer it started has ended.
    expect(error).toBeInstanceOf(S3ServiceError);
    expect(error).toMatchObject({ code: 'InternalError', message: expect.stringContaining('stop/f00.txt') });
    expect(endedWhenRejected).toBe(failed.length);
    expect(succeeded).toBe(0);
    expect(await keysUnder('stop/')).toEqual([]);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    via.destroy();
  });

  async function tempTree(name: string, files: Record<string, string | Uint8Array>): Promise<string> {
    const root = join(work, name);
    await writeTree(root, files);
    return root;
  }
});

// --- bad input ---

describe('bad input is refused before anything changes', () => {
  it('a missing source directory, a file where a directory is needed, S3 on both sides', async () => {
    const missingSource = await rejection(copy(local(join(work, 'no-such-dir')), s3('bad/')));
    expect(missingSource).toBeInstanceOf(LocalFileError);
    expect(missingSource).toMatchObject({ code: 'ENOENT', isSource: true });

    const file = join(work, 'a-file');
    await writeFile(file, 'stays');
    await putObjects({ 'bad/x.txt': 'x' });
    for (const job of [copy, sync]) {
      const fileInTheWay = await rejection(job(s3('bad/'), local(file)));
      expect(fileInTheWay).toBeInstanceOf(UsageError);
      expect(fileInTheWay).toMatchObject({ code: 'NotADirectory' });
      // A file as a part of the path (`a-file/sub`): the same one-line refusal, not a raw ENOTDIR.
      const fileInThePath = await rejection(job(s3('bad/'), local(join(file, 'sub'))));
      expect(fileInThePath).toBeInstanceOf(UsageError);
      expect(fileInThePath).toMatchObject({
        code: 'NotADirectory',
        message: `${join(file, 'sub')}: a part of this path is a file, but a directory is needed to receive many objects`,
      });
    }
    expect(await readFile(file, 'utf8')).toBe('stays');

    // A directory that cannot be made under /proc: refused at once (Node's recursive mkdir spins there).
    if (process.platform === 'linux') {
      for (const job of [copy, sync]) {
        const underProc = await rejection(job(s3('bad/'), local('/proc/s3xfer-no-such-dir/dst')));
        expect(underProc).toBeInstanceOf(LocalFileError);
        expect(underProc).toMatchObject({ code: 'ENOENT', message: expect.stringContaining('/proc/s3xfer-no-such-dir/dst') });
      }
    }

    const bothS3 = await rejection(copy(s3('bad/'), s3('elsewhere/')));
    expect(bothS3).toBeInstanceOf(UsageError);
    expect(bothS3).toMatchObject({ code: 'BadOperands' });
    expect(await keysUnder('bad/')).toEqual(['x.txt']);
  });

  it('credentials the store refuses: the listing error, and no directory made for the download', async () => {
    // HeadBucket's 403 is tolerated (write-only credentials may not HEAD): the listing fails first.
    const refused = testClient({ credentials: { accessKeyId: s3Server().accessKeyId, secretAccessKey: 'not-the-secret' } });
    await putObjects({ 'creds/a.txt': 'a' });
    const target = join(work, 'from-refused');
    for (const tree of [copyTree, syncTree]) {
      const error = await rejection(tree(newManager({}, refused), s3('creds/'), local(target)));
      expect(error).toMatchObject({ code: 'SignatureDoesNotMatch' });
      expect(await exists(target)).toBe(false);
    }
  });

  it('a missing bucket: NoSuchBucket, and no directory made for the download', async () => {
    const missing = `${bucket}-missing`;
    const source = join(work, 'to-missing');
    await writeTree(source, { 'a.txt': 'a' });
    const target = join(work, 'from-missing');
    for (const job of [copy, sync]) {
      for (const [from, to] of [
        [local(source), s3('x/', missing)],
        [s3('x/', missing), local(target)],
      ] as const) {
        const error = await rejection(job(from, to));
        expect(error).toBeInstanceOf(S3ServiceError);
        expect(error).toMatchObject({ code: 'NoSuchBucket' });
      }
      expect(await exists(target)).toBe(false);
    }
  });
});

// --- rm ---

describe('removeObjects (rm)', () => {
  it('deletes one key, or with recursive every key under the prefix that the filters keep; dryRun deletes nothing', async () => {
    await putObjects({ 'rm/a.txt': 'a', 'rm/b.log': 'b', 'rm/sub/c.txt': 'c', 'rm/sub/d.log': 'd', 'rm-sibling/e.txt': 'e' });

    expect(await removeObjects(client, bucket, 'rm/a.txt')).toEqual({ deleted: 1, deleteFailed: 0 });
    expect(await keysUnder('rm/')).toEqual(['b.log', 'sub/c.txt', 'sub/d.log']);

    const wouldDelete: string[] = [];
    await removeObjects(client, bucket, 'rm/', { recursive: true, dryRun: true, onDeleted: (key) => wouldDelete.push(key) });
    expect(wouldDelete).toEqual(['rm/b.log', 'rm/sub/c.txt', 'rm/sub/d.log']);
    expect(await keysUnder('rm/')).toEqual(['b.log', 'sub/c.txt', 'sub/d.log']);

    // The last matching filter wins: include-then-exclude keeps nothing.
    const nothing = await removeObjects(client, bucket, 'rm/', {
      recursive: true,
      filters: [
        { type: 'include', pattern: '*.log' },
        { type: 'exclude', pattern: '*' },
      ],
    });
    expect(nothing).toEqual({ deleted: 0, deleteFailed: 0 });
    const logs = await removeObjects(client, bucket, 'rm/', {
      recursive: true,
      filters: [
        { type: 'exclude', pattern: '*' },
        { type: 'include', pattern: '*.log' },
      ],
    });
    expect(logs).toEqual({ deleted: 2, deleteFailed: 0 });
    expect(await keysUnder('rm/')).toEqual(['sub/c.txt']);

    expect(await removeObjects(client, bucket, 'rm/', { recursive: true })).toEqual({ deleted: 1, deleteFailed: 0 });
    expect(await keysUnder('rm/')).toEqual([]);
    expect(await keysUnder('rm-sibling/')).toEqual(['e.txt']);
  });

  it('refuses an empty key without recursive (UsageError MissingKey), and never deletes the bucket (DeleteObject of "" is DeleteBucket)', async () => {
    const empty = await createTestBucket(client, 's3xfer-rm-empty');
    try {
      for (const key of ['', undefined as unknown as string]) {
        await expect(removeObjects(client, empty, key)).rejects.toMatchObject({ name: 'UsageError', code: 'MissingKey' });
        await expect(removeObjects(client, empty, key, { dryRun: true })).rejects.toMatchObject({ code: 'MissingKey' });
      }
      await expect(removeObjects(client, '', 'k')).rejects.toMatchObject({ name: 'UsageError', code: 'MissingBucket' });
      await client.send(new HeadBucketCommand({ Bucket: empty })); // still there
    } finally {
      await removeTestBucket(client, empty);
    }
  });

  it('takes the prefix as a directory ("pre" means "pre/", never "prefix-other"), its filters relative to it', async () => {
    await putObjects({ pre: 'the object pre', 'pre/x': 'x', 'pre/y.log': 'y', 'prefix-other': 'o' });
    const removed = await removeObjects(client, bucket, 'pre', { recursive: true, filters: [{ type: 'exclude', pattern: 'x' }] });
    expect(removed).toEqual({ deleted: 1, deleteFailed: 0 });
    expect(await keysUnder('pre')).toEqual(['', '/x', 'fix-other']);
  });

  it('never deletes what "--exclude \'*\'" protects, keys with "." and ".." segments included', async () => {
    // Keys are free text: S3 stores "ex/../a" as is (s3xfer never downloads it outside the directory).
    await putObjects({ 'ex/..': '1', 'ex/../a': '2', 'ex/./b': '3', 'ex/.': '4', 'ex/d': '5' });
    const removed = await removeObjects(client, bucket, 'ex/', { recursive: true, filters: [{ type: 'exclude', pattern: '*' }] });
    expect(removed).toEqual({ deleted: 0, deleteFailed: 0 });
    expect(await keysUnder('ex/')).toEqual(['.', '..', '../a', './b', 'd']);
  });

  it('reports the keys the store refuses, one by one, and deletes the others', async () => {
    await putObjects({ 'guarded/keep-1': 'x', 'guarded/free-1': 'x', 'guarded/keep-2': 'x', 'guarded/free-2': 'x' });
    await client.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/guarded/keep-*` }],
        }),
      }),
    );
    const refused: Array<[string, string]> = [];
    try {
      const result = await removeObjects(client, bucket, 'guarded/', {
        recursive: true,
        onError: (key, error) => refused.push([key, error.code]),
      });
      expect(result).toEqual({ deleted: 2, deleteFailed: 2 });
    } finally {
      await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    }
    expect(refused).toEqual([
      ['guarded/keep-1', 'AccessDenied'],
      ['guarded/keep-2', 'AccessDenied'],
    ]);
    expect(await keysUnder('guarded/')).toEqual(['keep-1', 'keep-2']);
  });

  it('a missing bucket is an error, not an empty listing', async () => {
    await expect(removeObjects(client, `${bucket}-missing`, 'x/', { recursive: true })).rejects.toMatchObject({ code: 'NoSuchBucket' });
  });
});
