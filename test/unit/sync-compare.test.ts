/**
 * sync's time comparison against real file times: a download sets the file's mtime from the
 * object's LastModified (whole milliseconds), and `sync` must then see them as equal in every mode
 * and direction, while a difference of a millisecond or more still counts. The times below are
 * real LastModified values that `utimes(path, atime, new Date(ms))` writes a microsecond short on
 * Linux (…942 ms reads back as …941.999 ms): the float number of seconds a Date becomes is
 * truncated to the microsecond.
 */

import { stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AtomicFile } from '../../src/sinks/download-file.js';
import {
  type CompareOptions,
  compareListings,
  type LocalListingEntry,
  listLocal,
  type StorageEntry,
  type SyncDecision,
} from '../../src/storage/index.js';
import { rm, tempDir } from '../helpers/files.js';

/** LastModified values (ms): the first four come back 1 µs short through utimes with a Date. */
const TIMES = [1700000000942, 1764290392895, 1719384595415, 1712602320658, 1700000000000, 1700000000500];
const names = TIMES.map((_, i) => `f${i}`);

let dir: string;
beforeEach(async () => {
  dir = await tempDir('s3xfer-sync-compare-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The objects, as listS3 records them: LastModified in whole ms. */
const objects = (times = TIMES): StorageEntry[] => names.map((relative, i) => ({ kind: 'file', relative, size: 1, mtimeMs: times[i]! }));

/** Writes the files and gives each the time `timeOf(i)` the way earlier downloads did: utimes with a Date. */
async function writeFiles(timeOf: (i: number) => number): Promise<void> {
  for (const [i, name] of names.entries()) {
    const path = join(dir, name);
    await writeFile(path, 'x');
    await utimes(path, new Date(), new Date(timeOf(i)));
  }
}

/** The local listing, as sync reads it (mtimeMs from the file's nanoseconds). */
async function localFiles(): Promise<StorageEntry[]> {
  const entries: LocalListingEntry[] = [];
  for await (const entry of listLocal(dir)) entries.push(entry);
  return entries.filter((e): e is StorageEntry => e.kind === 'file');
}

async function* stream<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

async function decide(source: StorageEntry[], destination: StorageEntry[], options: CompareOptions): Promise<string[]> {
  const decisions: SyncDecision[] = [];
  for await (const decision of compareListings(stream(source), stream(destination), options)) decisions.push(decision);
  return decisions.map((d) => `${d.action} ${d.relative} (${d.reason})`);
}

const all = (outcome: string) => names.map((name) => outcome.replace('NAME', name));

describe('sync compares a downloaded file with its object as equal', () => {
  it('when utimes with the LastModified Date wrote the time a microsecond short (…942 ms as …941.999 ms)', async () => {
    await writeFiles((i) => TIMES[i]!);
    // The precondition of the bug: some times really did come back short of the whole ms.
    const nanoseconds = await Promise.all(names.map(async (name) => (await stat(join(dir, name), { bigint: true })).mtimeNs));
    const short = nanoseconds.filter((ns, i) => ns !== BigInt(TIMES[i]!) * 1_000_000n);
    expect(short.length).toBeGreaterThan(0);
    const local = await localFiles();

    // S3 → local: --exact-timestamps and the default both leave the files alone.
    expect(await decide(objects(), local, { direction: 'download', mode: 'exact-timestamps' })).toEqual(all('skip-same NAME (same)'));
    expect(await decide(objects(), local, { direction: 'download' })).toEqual(all('skip-same NAME (same)'));
    // local → S3: the file is not newer than the object it came from.
    expect(await decide(local, objects(), { direction: 'upload', mode: 'exact-timestamps' })).toEqual(all('skip-same NAME (same)'));
    expect(await decide(local, objects(), { direction: 'upload' })).toEqual(all('skip-same NAME (same)'));
  });

  it.each([false, true])('when a download wrote the time (AtomicFile, sync calls: %s): exactly the LastModified', async (sync) => {
    for (const [i, name] of names.entries()) {
      const file = await AtomicFile.create(join(dir, name), { mtime: new Date(TIMES[i]!), sync });
      await file.write([Buffer.from('x')], 0);
      await file.commit(1);
    }
    for (const [i, name] of names.entries()) {
      expect((await stat(join(dir, name), { bigint: true })).mtimeNs).toBe(BigInt(TIMES[i]!) * 1_000_000n);
    }
    expect(await decide(objects(), await localFiles(), { direction: 'download', mode: 'exact-timestamps' })).toEqual(
      all('skip-same NAME (same)'),
    );
  });
});

describe('sync still sees a time difference of a millisecond', () => {
  it('with --exact-timestamps, either way, for a file written as downloads did', async () => {
    await writeFiles((i) => TIMES[i]! + 1);
    const later = await localFiles();
    expect(await decide(objects(), later, { direction: 'download', mode: 'exact-timestamps' })).toEqual(
      all('copy NAME (timestamp-differs)'),
    );
    await writeFiles((i) => TIMES[i]! - 1);
    const earlier = await localFiles();
    expect(await decide(objects(), earlier, { direction: 'download', mode: 'exact-timestamps' })).toEqual(
      all('copy NAME (timestamp-differs)'),
    );
  });

  it('by default: a local file a millisecond newer is downloaded again, or uploaded', async () => {
    await writeFiles((i) => TIMES[i]! + 1);
    const later = await localFiles();
    expect(await decide(objects(), later, { direction: 'download' })).toEqual(all('copy NAME (destination-newer)'));
    expect(await decide(later, objects(), { direction: 'upload' })).toEqual(all('copy NAME (source-newer)'));
    // An object a millisecond newer than the file: not downloaded by default, not uploaded over.
    expect(await decide(objects(TIMES.map((t) => t + 2)), later, { direction: 'download' })).toEqual(all('skip-same NAME (same)'));
    expect(await decide(later, objects(TIMES.map((t) => t + 2)), { direction: 'upload' })).toEqual(all('skip-same NAME (same)'));
  });

  it('S3 → S3: an object a millisecond newer than its copy is copied again', async () => {
    const copies = objects();
    expect(await decide(objects(TIMES.map((t) => t + 1)), copies, { direction: 'copy' })).toEqual(all('copy NAME (source-newer)'));
    expect(await decide(objects(), copies, { direction: 'copy' })).toEqual(all('skip-same NAME (same)'));
  });
});
