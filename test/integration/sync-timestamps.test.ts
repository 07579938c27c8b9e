/**
 * Integration: `sync` run again transfers nothing, with `--exact-timestamps` too, against the real
 * S3 server. A download sets the file's mtime from the object's LastModified (whole ms on this
 * server); written through `utimes` with a Date, about half of those times came back a microsecond
 * short (…942 ms as …941.999 ms) and every `--exact-timestamps` sync downloaded those files again.
 */

import { stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalLocation, type S3Location, type SyncTreeOptions, syncTree, TransferManager } from '../../src/index.js';
import { MiB, rm, tempDir } from '../helpers/files.js';
import { createTestBucket, removeTestBucket, testClient } from '../helpers/s3.js';
import { lastModifiedUnder, putObjects } from '../helpers/trees.js';

let client: S3Client;
let bucket: string;
let work: string;

beforeAll(async () => {
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-sync-ts');
  work = await tempDir('s3xfer-sync-ts-');
});

afterAll(async () => {
  if (bucket) await removeTestBucket(client, bucket);
  if (work) await rm(work, { recursive: true, force: true });
  client?.destroy();
});

const s3 = (key: string): S3Location => ({ kind: 's3', bucket, key });
const local = (path: string): LocalLocation => ({ kind: 'local', path });
const sync = (from: LocalLocation | S3Location, to: LocalLocation | S3Location, options: SyncTreeOptions = {}) =>
  syncTree(new TransferManager(client, { config: { concurrency: 16, multipartThreshold: 8 * MiB, partSize: 8 * MiB } }), from, to, options);

/** The file's mtime in whole nanoseconds. */
const mtimeNs = async (path: string) => (await stat(path, { bigint: true })).mtimeNs;

describe('sync twice transfers nothing the second time', () => {
  // Enough objects that some LastModified is written short before the fix (each about one in
  // two), and one above the small-file limit (its time is set through the thread pool).
  const objects: Record<string, string | Uint8Array> = { 'big.bin': new Uint8Array(300 * 1024).fill(7) };
  for (let i = 0; i < 24; i++) objects[`f${String(i).padStart(2, '0')}.txt`] = `file ${i}`;
  const count = Object.keys(objects).length;

  it('down, then --exact-timestamps down twice, the default down and back up: each file keeps its object time to the ns', async () => {
    await putObjects(client, bucket, Object.fromEntries(Object.entries(objects).map(([name, body]) => [`ts/${name}`, body])));
    const times = await lastModifiedUnder(client, bucket, 'ts/');
    expect(times.size).toBe(count);
    const target = join(work, 'down');

    expect(await sync(s3('ts/'), local(target))).toMatchObject({ transferred: count, unchanged: 0 });
    // Each download wrote the object's LastModified exactly (before the fix: …941999000 ns).
    for (const [name, time] of times) expect(await mtimeNs(join(target, name)), name).toBe(BigInt(time) * 1_000_000n);

    for (let run = 0; run < 2; run++) {
      expect(await sync(s3('ts/'), local(target), { mode: 'exact-timestamps' })).toMatchObject({ transferred: 0, unchanged: count });
    }
    expect(await sync(s3('ts/'), local(target))).toMatchObject({ transferred: 0, unchanged: count });
    expect(await sync(local(target), s3('ts/'))).toMatchObject({ transferred: 0, unchanged: count });
    expect(await sync(local(target), s3('ts/'), { mode: 'exact-timestamps' })).toMatchObject({ transferred: 0, unchanged: count });
  });

  it('--exact-timestamps leaves alone files whose time an earlier download wrote a microsecond short, and sees 1 ms', async () => {
    const target = join(work, 'down');
    const times = await lastModifiedUnder(client, bucket, 'ts/');
    // As earlier versions (and other Node tools) set it: utimes with the Date.
    for (const [name, time] of times) await utimes(join(target, name), new Date(), new Date(time));
    const short: string[] = [];
    for (const [name, time] of times) if ((await mtimeNs(join(target, name))) !== BigInt(time) * 1_000_000n) short.push(name);
    expect(short.length).toBeGreaterThan(0);

    expect(await sync(s3('ts/'), local(target), { mode: 'exact-timestamps' })).toMatchObject({ transferred: 0, unchanged: count });
    expect(await sync(s3('ts/'), local(target))).toMatchObject({ transferred: 0, unchanged: count });
    expect(await sync(local(target), s3('ts/'))).toMatchObject({ transferred: 0, unchanged: count });

    // A time 1 ms off, either way, is a difference: downloaded again, with the object's time.
    const [later, earlier] = [short[0]!, [...times.keys()].find((name) => name !== short[0])!];
    await utimes(join(target, later), new Date(), new Date(times.get(later)! + 1));
    await utimes(join(target, earlier), new Date(), new Date(times.get(earlier)! - 1));
    expect(await sync(s3('ts/'), local(target), { mode: 'exact-timestamps' })).toMatchObject({ transferred: 2, unchanged: count - 2 });
    for (const name of [later, earlier]) expect(await mtimeNs(join(target, name))).toBe(BigInt(times.get(name)!) * 1_000_000n);
    expect(await sync(s3('ts/'), local(target), { mode: 'exact-timestamps' })).toMatchObject({ transferred: 0, unchanged: count });
  });
});
