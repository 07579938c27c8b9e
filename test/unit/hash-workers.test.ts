import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Check, PassDigests } from '../../src/integrity/checks.js';
import { type FileDigest, HashWorkers } from '../../src/integrity/hash-workers.js';
import { MD5X4_WASM } from '../../src/integrity/md5x4-wasm.js';
import { MiB, tempDir } from '../helpers/files.js';

// Worker threads hash a big download's parts from the file as it is written (src/integrity/hash-workers.ts).
let dir: string;
let path: string;
let bytes: Buffer;
const workers = new HashWorkers(2);

beforeAll(async () => {
  dir = await tempDir();
  path = join(dir, 'data.bin');
  bytes = randomBytes(3 * MiB + 123);
  await writeFile(path, bytes);
});

afterAll(async () => {
  await workers.close();
  await rm(dir, { recursive: true, force: true });
});

const hex = (algorithm: string, data: Uint8Array) => createHash(algorithm).update(data).digest('hex');

/** How many descriptors of this process (its threads included) are open on `file`. */
async function openHere(file: string): Promise<number> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((target) => target === file).length;
}

describe('a file digest', () => {
  it.each(['md5', 'sha256'] as const)('of bytes reported written in pieces is the %s of those bytes', async (algorithm) => {
    const digest = workers.fileDigest(path, algorithm);
    // Pieces of odd sizes, larger than the worker's 1 MiB read buffer too.
    for (const [start, end] of [
      [0, 1],
      [1, 65_537],
      [65_537, 2 * MiB + 3],
      [2 * MiB + 3, bytes.length],
    ] as const) {
      digest.written(start, end);
    }
    expect((await digest.digest()).toString('hex')).toBe(hex(algorithm, bytes));
  });

  it('of a range in the middle of the file hashes only that range', async () => {
    const digest = workers.fileDigest(path, 'md5');
    digest.written(MiB, 2 * MiB);
    expect((await digest.digest()).toString('hex')).toBe(hex('md5', bytes.subarray(MiB, 2 * MiB)));
  });

  it('of no bytes is the digest of nothing', async () => {
    expect((await workers.fileDigest(path, 'sha256').digest()).toString('hex')).toBe(hex('sha256', Buffer.alloc(0)));
  });

  it('fails with the reason when the file cannot be read', async () => {
    const digest = workers.fileDigest(join(dir, 'missing.bin'), 'md5');
    digest.written(0, 10);
    await expect(digest.digest()).rejects.toThrow(/^hashing the downloaded file failed: ENOENT/);
  });

  it('fails when the file is shorter than the bytes reported written', async () => {
    const digest = workers.fileDigest(path, 'md5');
    digest.written(bytes.length - 5, bytes.length + 5);
    await expect(digest.digest()).rejects.toThrow(/ends at byte \d+, before byte \d+/);
  });

  it('is computed from the file on the calling thread when its thread stopped in between', async () => {
    const pool = new HashWorkers(1);
    const digest = pool.fileDigest(path, 'md5');
    digest.written(0, MiB);
    await pool.close(); // the thread is gone, with the state of the first MiB
    digest.written(MiB, 2 * MiB);
    expect((await digest.digest()).toString('hex')).toBe(hex('md5', bytes.subarray(0, 2 * MiB)));
  });

  it("of a new thread in a stopped one's place is not disturbed by the old one's end", async () => {
    const pool = new HashWorkers(1);
    const before = pool.fileDigest(path, 'sha256');
    before.written(0, 10);
    await pool.close();
    const after = pool.fileDigest(path, 'sha256');
    after.written(10, MiB);
    const [a, b] = await Promise.all([after.digest(), before.digest()]);
    expect(a.toString('hex')).toBe(hex('sha256', bytes.subarray(10, MiB)));
    expect(b.toString('hex')).toBe(hex('sha256', bytes.subarray(0, 10)));
    await pool.close();
  });

  it('once dropped, no thread holds the file open (a failed download removes its temp file, and its disk can be unmounted)', async () => {
    const own = join(dir, 'dropped.bin');
    await writeFile(own, bytes);
    const digest = workers.fileDigest(own, 'md5');
    digest.written(0, bytes.length);
    await vi.waitFor(async () => expect(await openHere(own)).toBe(1)); // the thread has read it
    await digest.drop();
    expect(await openHere(own)).toBe(0);
  });

  it('cannot be asked for once dropped', async () => {
    const digest = workers.fileDigest(path, 'md5');
    digest.written(0, 100);
    digest.drop();
    await expect(digest.digest()).rejects.toThrow('the digest was dropped');
  });
});

describe('digests of parts written side by side (MD5, four streams at a time)', () => {
  /** `count` units splitting `bytes` (the last one shorter), each with its own MD5. */
  const split = (count: number, size: number) =>
    Array.from({ length: count }, (_, i) => ({ start: i * size, end: Math.min((i + 1) * size, bytes.length) })).filter(
      (u) => u.start < u.end,
    );
  const md5s = (list: { start: number; end: number }[]) => list.map((u) => hex('md5', bytes.subarray(u.start, u.end)));

  /** Reports each unit's bytes written in pieces of random sizes, the units interleaved at random. */
  function writeInterleaved(digests: FileDigest[], list: { start: number; end: number }[], seed: number): void {
    let state = seed || 1;
    const random = (n: number) => {
      // xorshift32: the same interleaving on every run
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    const at = list.map((u) => u.start);
    for (let open = list.length; open > 0; ) {
      const i = random(list.length);
      if (at[i] === list[i]!.end) continue;
      const end = Math.min(list[i]!.end, at[i]! + 1 + random(300_000));
      digests[i]!.written(at[i]!, end);
      at[i] = end;
      if (end === list[i]!.end) open--;
    }
  }

  /** The hex MD5s of `list`'s units in `pool`, their bytes reported written interleaved (`seed`). */
  async function hashInterleaved(pool: HashWorkers, list: { start: number; end: number }[], seed: number): Promise<string[]> {
    const digests = list.map((u) => pool.fileDigest(path, 'md5', { streams: u }));
    writeInterleaved(digests, list, seed);
    return (await Promise.all(digests.map((d) => d.digest()))).map((d) => d.toString('hex'));
  }

  it.each([
    ['7 parts of 450,000 bytes (not whole blocks) on one thread', 7, 450_000, 1],
    ['13 parts of 256 KiB on two threads', 13, 256 * 1024, 2],
    ['3 parts: fewer than four streams', 3, 1_100_000, 1],
    ['parts of 1, 55, 56, 63 and 64 bytes: the padding cases', 0, 0, 1],
  ])('%s: each is the MD5 of its own bytes', async (_, count, size, threads) => {
    const pool = new HashWorkers(threads);
    const list =
      count > 0 ? split(count, size) : [1, 55, 56, 63, 64, 65, 119, 120].map((length, i) => ({ start: i * 1000, end: i * 1000 + length }));
    expect(await hashInterleaved(pool, list, count + size)).toEqual(md5s(list));
    expect(pool.multiStreamDigests).toBe(list.length);
    await pool.close();
  });

  it('are the same, by node:crypto, in a pool told not to hash four at a time', async () => {
    const pool = new HashWorkers(1, false);
    const list = split(5, 700_001);
    expect(await hashInterleaved(pool, list, 7)).toEqual(md5s(list));
    expect(pool.multiStreamDigests).toBe(0);
    await pool.close();
  });

  it('come from a module that takes only its memory and gives only md5x4 (src/integrity/md5x4-wasm.ts is built from md5x4.c)', () => {
    // (The project's TypeScript settings have no WebAssembly types.)
    type ModuleClass = { new (bytes: Uint8Array): object; imports(module: object): unknown; exports(module: object): unknown };
    const { Module } = (globalThis as unknown as { WebAssembly: { Module: ModuleClass } }).WebAssembly;
    const module = new Module(Buffer.from(MD5X4_WASM, 'base64'));
    expect(Module.imports(module)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    expect(Module.exports(module)).toEqual([{ name: 'md5x4', kind: 'function' }]);
  });

  it('are by node:crypto when the module gives a wrong answer to the known-answer test it must pass when it loads', async () => {
    // md5x4.c's module with one lane's first round constant changed: it loads and runs, and is wrong.
    const broken = Buffer.from(MD5X4_WASM, 'base64');
    const constant = broken.indexOf(Buffer.from([0x78, 0xa4, 0x6a, 0xd7])); // 0xd76aa478, little-endian
    expect(constant).toBeGreaterThan(0);
    broken[constant] = broken[constant]! ^ 1;
    const pool = new HashWorkers(1, broken);
    const list = split(5, 600_000);
    expect(await hashInterleaved(pool, list, 11)).toEqual(md5s(list));
    expect(pool.multiStreamDigests).toBe(0);
    await pool.close();
  });

  it('hash bytes waiting without four partners once 64 MiB wait (parts bigger than usual)', async () => {
    const big = join(dir, 'big-parts.bin');
    const size = 3 * 24 * MiB;
    await writeFile(big, Buffer.alloc(size, 7));
    const pool = new HashWorkers(1);
    // Eight parts of 24 MiB; three are written whole, five not begun (so four or more are still
    // being written): 72 MiB wait.
    const list = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ start: (i % 3) * 24 * MiB, end: ((i % 3) + 1) * 24 * MiB }));
    const digests = list.map((u) => pool.fileDigest(big, 'md5', { streams: u }));
    for (const i of [0, 1, 2]) digests[i]!.written(list[i]!.start, list[i]!.end);
    // The thread hashes them now (and so has the file open), not only when asked.
    await vi.waitFor(async () => expect(await openHere(big)).toBe(3), { timeout: 5000 });
    const expected = hex('md5', Buffer.alloc(24 * MiB, 7));
    expect((await digests[0]!.digest()).toString('hex')).toBe(expected);
    await Promise.all(digests.slice(1).map((d) => d.drop()));
    await pool.close();
    await rm(big);
  });

  it('do not wait for partners that never come: asked for, a digest is finished alone', async () => {
    const pool = new HashWorkers(1);
    const list = split(6, 512 * 1024);
    const digests = list.map((u) => pool.fileDigest(path, 'md5', { streams: u }));
    // Five parts have begun (a block each) and stall; the thread waits for them to hash four at a time.
    for (const i of [1, 2, 3, 4, 5]) digests[i]!.written(list[i]!.start, list[i]!.start + 64);
    digests[0]!.written(list[0]!.start, list[0]!.end);
    expect((await digests[0]!.digest()).toString('hex')).toBe(md5s(list)[0]);
    await Promise.all(digests.slice(1).map((d) => d.drop()));
    await pool.close();
  });

  it('of a part announced but never written is the MD5 of nothing (the file need not exist)', async () => {
    const pool = new HashWorkers(1);
    const digest = pool.fileDigest(join(dir, 'never-made.bin'), 'md5', { streams: { start: MiB, end: 2 * MiB } });
    expect((await digest.digest()).toString('hex')).toBe(hex('md5', Buffer.alloc(0)));
    await pool.close();
  });

  it('of bytes reported out of order fails, and its thread closes the file', async () => {
    const own = join(dir, 'out-of-order.bin');
    await writeFile(own, bytes);
    const pool = new HashWorkers(1);
    const digest = pool.fileDigest(own, 'sha256');
    digest.written(0, 1000);
    digest.written(2000, 3000);
    await vi.waitFor(async () => expect(await openHere(own)).toBe(1));
    await expect(digest.digest()).rejects.toThrow('were reported out of order');
    await digest.drop();
    expect(await openHere(own)).toBe(0);
    await pool.close();
  });

  it('fail with the reason when the file is shorter than the bytes reported written', async () => {
    const pool = new HashWorkers(1);
    // Part 2 is said to go 4 KiB past the file's end.
    const list = [0, 1, 2, 3, 4].map((i) => ({
      start: bytes.length - 300_000 - i * 10_000,
      end: bytes.length + (i === 2 ? 4096 : -i * 10_000),
    }));
    const digests = list.map((u) => pool.fileDigest(path, 'md5', { streams: u }));
    for (const [i, d] of digests.entries()) d.written(list[i]!.start, list[i]!.end);
    const results = await Promise.allSettled(digests.map((d) => d.digest()));
    expect(results[2]).toMatchObject({
      status: 'rejected',
      reason: { message: expect.stringMatching(/ends at byte \d+, before byte \d+/) },
    });
    // The others, hashed in the same steps, are not disturbed.
    for (const i of [0, 1, 3, 4]) {
      expect((results[i] as PromiseFulfilledResult<Buffer>).value.toString('hex')).toBe(
        hex('md5', bytes.subarray(bytes.length - 300_000 - i * 10_000, bytes.length - i * 10_000)),
      );
    }
    await pool.close();
  });

  it('once dropped, leave no descriptor of the file open', async () => {
    const own = join(dir, 'dropped-streams.bin');
    await writeFile(own, bytes);
    const pool = new HashWorkers(1);
    const list = split(3, MiB + 5);
    const digests = list.map((u) => pool.fileDigest(own, 'md5', { streams: u }));
    for (const [i, d] of digests.entries()) d.written(list[i]!.start, list[i]!.end);
    await vi.waitFor(async () => expect(await openHere(own)).toBe(3)); // the thread is reading them
    await Promise.all(digests.map((d) => d.drop()));
    expect(await openHere(own)).toBe(0);
    await pool.close();
  });
});

describe('pass digests with a file', () => {
  // Three parts of 1 MiB and a short last one; fed in batches that straddle part boundaries.
  const check: Check = { method: 'multipart-etag', algorithm: 'md5', shape: 'parts', expected: '', certain: true, label: 'test' };
  const units = [0, 1, 2, 3].map((i) => ({ start: i * MiB, end: Math.min((i + 1) * MiB, 3 * MiB + 123) - 1 }));

  it('give each part the digest of its own bytes, as inline hashing does', async () => {
    const inFile = new PassDigests(check, units, { path, workers });
    const inline = new PassDigests(check, units);
    for (let position = 0; position < bytes.length; position += 700_000) {
      const batch = [bytes.subarray(position, position + 300_000), bytes.subarray(position + 300_000, position + 700_000)];
      inFile.feed(position, batch);
      inline.feed(position, batch);
    }
    const expected = units.map((u) => hex('md5', bytes.subarray(u.start, u.end + 1)));
    expect((await inFile.unitDigests()).map((d) => d.toString('hex'))).toEqual(expected);
    expect((await inline.unitDigests()).map((d) => d.toString('hex'))).toEqual(expected);
  });

  it('fetched side by side, hash their parts four at a time, to the same digests', async () => {
    const pool = new HashWorkers(1);
    const sideBySide = new PassDigests(check, units, { path, workers: pool }, true);
    for (let position = 0; position < bytes.length; position += 700_000) {
      sideBySide.feed(position, [bytes.subarray(position, position + 700_000)]);
    }
    const expected = units.map((u) => hex('md5', bytes.subarray(u.start, u.end + 1)));
    expect((await sideBySide.unitDigests()).map((d) => d.toString('hex'))).toEqual(expected);
    expect(pool.multiStreamDigests).toBe(units.length);
    await pool.close();
  });

  it("of objects in one part (one digest each) hash by node:crypto alone, and four at a time alongside a directory job's others", async () => {
    const whole: Check = { method: 'md5-etag', algorithm: 'md5', shape: 'whole', expected: '', certain: true, label: 'test' };
    const pool = new HashWorkers(1);
    const objects = [0, 1, 2, 3, 4].map((i) => ({ start: i * 600_000, end: (i + 1) * 600_000 - 1 }));
    const passes = (alongside: boolean) => objects.map((unit) => new PassDigests(whole, [unit], { path, workers: pool, alongside }));
    for (const alongside of [false, true]) {
      const all = passes(alongside);
      // The files' bytes arrive interleaved, as a directory job's do.
      for (let at = 0; at < 600_000; at += 200_000) {
        for (const [i, pass] of all.entries())
          pass.feed(objects[i]!.start + at, [bytes.subarray(objects[i]!.start + at, objects[i]!.start + at + 200_000)]);
      }
      const digests = await Promise.all(all.map(async (pass) => (await pass.unitDigests())[0]!.toString('hex')));
      expect(digests).toEqual(objects.map((u) => hex('md5', bytes.subarray(u.start, u.end + 1))));
      expect(pool.multiStreamDigests).toBe(alongside ? objects.length : 0);
    }
    await pool.close();
  });

  it("of objects in parts that one GET fetches in turn hash by node:crypto alone, and four at a time alongside a directory job's others", async () => {
    const pool = new HashWorkers(1);
    // Five objects of 600,000 bytes, each two parts (400,000 + 200,000): a GET writes part 1, then part 2.
    const objects = [0, 1, 2, 3, 4].map((i) => ({ start: i * 600_000, end: (i + 1) * 600_000 - 1 }));
    const partsOf = (o: { start: number; end: number }) => [
      { start: o.start, end: o.start + 399_999 },
      { start: o.start + 400_000, end: o.end },
    ];
    for (const alongside of [false, true]) {
      const before = pool.multiStreamDigests;
      const all = objects.map((o) => new PassDigests(check, partsOf(o), { path, workers: pool, alongside }));
      for (let at = 0; at < 600_000; at += 100_000) {
        for (const [i, pass] of all.entries())
          pass.feed(objects[i]!.start + at, [bytes.subarray(objects[i]!.start + at, objects[i]!.start + at + 100_000)]);
      }
      const digests = await Promise.all(all.map(async (pass) => (await pass.unitDigests()).map((d) => d.toString('hex'))));
      expect(digests).toEqual(objects.map((o) => partsOf(o).map((u) => hex('md5', bytes.subarray(u.start, u.end + 1)))));
      expect(pool.multiStreamDigests - before).toBe(alongside ? objects.length * 2 : 0);
    }
    await pool.close();
  });

  it('stopped twice (the check voided, then the download failed): the second stop also waits for the file to be closed', async () => {
    const own = join(dir, 'stopped-twice.bin');
    await writeFile(own, bytes);
    const pass = new PassDigests(check, units, { path: own, workers });
    pass.feed(0, [bytes]);
    await vi.waitFor(async () => expect(await openHere(own)).toBeGreaterThan(0));
    void pass.stop();
    await pass.stop();
    expect(await openHere(own)).toBe(0);
  });
});

describe('the pool', () => {
  it('does not keep a process alive once its digests are dropped or delivered', () => {
    // The built module (`npm test` builds first): a plain Node process cannot load TypeScript.
    const module = new URL('../../dist/integrity/hash-workers.js', import.meta.url).pathname;
    const script = `
      const { HashWorkers } = await import(${JSON.stringify(module)});
      const pool = new HashWorkers(2);
      const dropped = pool.fileDigest(${JSON.stringify(path)}, 'md5');
      dropped.written(0, 1000);
      dropped.drop();
      const kept = pool.fileDigest(${JSON.stringify(path)}, 'md5');
      kept.written(0, 1000);
      console.log((await kept.digest()).toString('hex'));
      // Parts hashed four at a time, one of them never written (its thread is told of it at once).
      const parts = [0, 1, 2].map((i) => pool.fileDigest(${JSON.stringify(path)}, 'md5', { streams: { start: i * 1000, end: (i + 1) * 1000 } }));
      parts[0].written(0, 1000);
      parts[1].written(1000, 2000);
      console.log((await parts[0].digest()).toString('hex'));
      await parts[2].drop();
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.error, run.stderr).toBeUndefined();
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n')).toEqual([hex('md5', bytes.subarray(0, 1000)), hex('md5', bytes.subarray(0, 1000))]);
  });
});
