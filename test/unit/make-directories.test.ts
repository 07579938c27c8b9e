import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDirectories } from '../../src/sinks/download-file.js';
import { rm, tempDir } from '../helpers/files.js';

describe('makeDirectories (mkdir -p of download destinations)', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('make-directories-');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const isDirectory = async (path: string) => (await stat(path)).isDirectory();

  it('makes every missing level, and is a no-op on a directory that exists', async () => {
    const deep = join(work, 'a', 'b', 'c', 'd');
    await makeDirectories(deep);
    expect(await isDirectory(deep)).toBe(true);
    await makeDirectories(deep);
    await makeDirectories(work);
  });

  it('many at once on the same new tree: all succeed', async () => {
    const paths = Array.from({ length: 20 }, (_, i) => join(work, 'shared', 'sub', `d${i % 4}`));
    await Promise.all(paths.map((path) => makeDirectories(path)));
    for (const path of paths) expect(await isDirectory(path)).toBe(true);
  });

  it('returns what it made, outermost first; a path it cannot finish leaves none of it (ENAMETOOLONG)', async () => {
    expect(await makeDirectories(join(work, 'made', 'x', 'y'))).toEqual([
      join(work, 'made'),
      join(work, 'made', 'x'),
      join(work, 'made', 'x', 'y'),
    ]);
    await expect(makeDirectories(join(work, 'half', 'way', 'n'.repeat(300)))).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    await expect(stat(join(work, 'half'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a file in the way: ENOTDIR; the path itself a file: EEXIST', async () => {
    const file = join(work, 'a-file');
    await writeFile(file, 'x');
    await expect(makeDirectories(join(file, 'sub', 'deeper'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(makeDirectories(file)).rejects.toMatchObject({ code: 'EEXIST', path: file });
  });

  it.runIf(process.platform === 'linux')('a parent that cannot hold children (/proc): ENOENT at once, no endless loop', async () => {
    await expect(makeDirectories('/proc/s3xfer-no-such-dir/a/b')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
