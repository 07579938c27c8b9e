import { execFileSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import { chmod, mkdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalFileError, TransferAbortedError } from '../../src/errors.js';
import { type LocalListingEntry, listLocal, type SkippedEntry, type StorageEntry, tempFileName } from '../../src/storage/index.js';
import { tempDir } from '../helpers/files.js';

// readdir stays the real one unless a test replaces it (to fail, or to count calls).
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, readdir: vi.fn(actual.readdir) };
});
const readdirMock = vi.mocked(fsp.readdir);

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  readdirMock.mockRestore();
  await chmod(dir, 0o700).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

async function collect(root: string, options?: Parameters<typeof listLocal>[1]): Promise<LocalListingEntry[]> {
  const entries: LocalListingEntry[] = [];
  for await (const entry of listLocal(root, options)) entries.push(entry);
  return entries;
}
const files = (entries: LocalListingEntry[]) => entries.filter((e): e is StorageEntry => e.kind === 'file').map((e) => e.relative);
const skips = (entries: LocalListingEntry[]) =>
  entries.filter((e): e is SkippedEntry => e.kind === 'skip').map((e) => ({ relative: e.relative, code: e.code, directory: e.directory }));

/** Creates files (and their directories) under `dir`. */
async function tree(paths: string[]) {
  for (const path of paths) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), path);
  }
}
const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('listLocal order', () => {
  it('yields keys in UTF-8 byte order across directories, not per-directory name order', async () => {
    const names = [
      'a-b',
      'a/c',
      'a/d/e',
      'a0',
      'a.txt',
      'a!',
      'A',
      'b c/d',
      'b',
      'x+y',
      'x%41',
      'x%2F',
      'h#1',
      'q?',
      'é-nfc\u00e9',
      'é-nfde\u0301',
      '\uff5e',
      '😀/inside',
      '日本/語',
      `${'long'.repeat(63)}xyz`,
      'z/z/z/z/z/z/z/z',
      'z-',
      'z0',
    ];
    await tree(names);
    const listed = files(await collect(dir));
    expect(listed).toEqual([...names].sort(byUtf8));
    expect(listed.indexOf('a-b')).toBeLessThan(listed.indexOf('a/c'));
    expect(listed.indexOf('a/d/e')).toBeLessThan(listed.indexOf('a0'));
    expect(listed.indexOf('\uff5e')).toBeLessThan(listed.indexOf('😀/inside'));
  });

  it('keeps NFC and NFD spellings apart, as on disk', async () => {
    await tree(['\u00e9', 'e\u0301']);
    expect(files(await collect(dir))).toEqual(['e\u0301', '\u00e9']);
  });

  it('gives size, mtime and where the file is', async () => {
    await tree(['d/f.txt']);
    const when = new Date('2024-01-02T03:04:05Z'); // whole seconds, as S3's LastModified
    await utimes(join(dir, 'd/f.txt'), when, when);
    const [entry] = (await collect(dir)) as StorageEntry[];
    const info = await stat(join(dir, 'd/f.txt'));
    expect(entry).toEqual({
      kind: 'file',
      relative: 'd/f.txt',
      size: 7,
      mtimeMs: when.getTime(),
      local: { path: join(dir, 'd/f.txt'), dev: info.dev, ino: info.ino },
    });
  });

  it('walks lazily: the first entry comes before deeper directories are read', async () => {
    await tree(['a/1', 'b/1', 'c/1', 'd/1']);
    const listing = listLocal(dir);
    const first = await listing.next();
    expect(first.value).toMatchObject({ relative: 'a/1' });
    expect(readdirMock).toHaveBeenCalledTimes(2); // the root and a/
    await listing.return(undefined);
  });

  it('skips empty directories and never lists download temp files', async () => {
    await tree(['keep', 'sub/keep']);
    await mkdir(join(dir, 'empty/deeper'), { recursive: true });
    await writeFile(join(dir, tempFileName('keep')), 'partial');
    await writeFile(join(dir, 'sub', tempFileName('x'.repeat(230))), 'partial');
    await writeFile(join(dir, '.keep.0123456789ab.s3xfer-part.bak'), 'not ours');
    expect(await collect(dir)).toEqual([
      expect.objectContaining({ relative: '.keep.0123456789ab.s3xfer-part.bak' }),
      expect.objectContaining({ relative: 'keep' }),
      expect.objectContaining({ relative: 'sub/keep' }),
    ]);
  });
});

describe('listLocal and symlinks', () => {
  it('follows symlinks to files and directories by default, sorting a linked directory as "name/"', async () => {
    await tree(['real/f', 'target.txt']);
    await symlink(join(dir, 'real'), join(dir, 'link'));
    await symlink('target.txt', join(dir, 'link-file'));
    await symlink(join(dir, 'real'), join(dir, 'l'));
    const listed = await collect(dir);
    expect(files(listed)).toEqual(['l/f', 'link-file', 'link/f', 'real/f', 'target.txt']);
    expect(listed.find((e) => e.relative === 'link/f')).toMatchObject({ local: { path: join(dir, 'link/f') } });
  });

  it('reports a symlink loop as a skip and ends', async () => {
    await tree(['a/f', 'a/b/g']);
    await symlink('..', join(dir, 'a/b/up'));
    await symlink(dir, join(dir, 'a/root'));
    await symlink('.', join(dir, 'self'));
    const listed = await collect(dir);
    expect(files(listed)).toEqual(['a/b/g', 'a/f']);
    expect(skips(listed)).toEqual([
      { relative: 'a/b/up', code: 'DirectoryLoop', directory: true },
      { relative: 'a/root', code: 'DirectoryLoop', directory: true },
      { relative: 'self', code: 'DirectoryLoop', directory: true },
    ]);
    expect(listed.map((e) => e.relative)).toEqual(['a/b/g', 'a/b/up', 'a/f', 'a/root', 'self']);
  });

  it('lists a directory reached twice through different links twice (not a loop)', async () => {
    await tree(['shared/f']);
    await symlink(join(dir, 'shared'), join(dir, 'one'));
    expect(files(await collect(dir))).toEqual(['one/f', 'shared/f']);
  });

  it('reports broken symlinks and symlink chains that loop', async () => {
    await tree(['ok']);
    await symlink('missing', join(dir, 'broken'));
    await symlink('cycle-b', join(dir, 'cycle-a'));
    await symlink('cycle-a', join(dir, 'cycle-b'));
    const listed = await collect(dir);
    expect(skips(listed)).toEqual([
      { relative: 'broken', code: 'BrokenSymlink', directory: false },
      { relative: 'cycle-a', code: 'BrokenSymlink', directory: false },
      { relative: 'cycle-b', code: 'BrokenSymlink', directory: false },
    ]);
    expect(listed.find((e) => e.relative === 'cycle-a')).toMatchObject({ reason: expect.stringMatching(/too many levels/), warning: true });
  });

  it('skips symlinks quietly with followSymlinks: false, as the aws CLI does', async () => {
    await tree(['real/f']);
    await symlink(join(dir, 'real'), join(dir, 'link'));
    await symlink('real/f', join(dir, 'file-link'));
    const listed = await collect(dir, { followSymlinks: false });
    expect(files(listed)).toEqual(['real/f']);
    expect(listed.filter((e) => e.kind === 'skip')).toEqual([
      expect.objectContaining({ relative: 'file-link', code: 'Symlink', warning: false }),
      expect.objectContaining({ relative: 'link', code: 'Symlink', warning: false }),
    ]);
  });

  it('follows a root that is a symlink even with followSymlinks: false', async () => {
    await tree(['real/f']);
    await symlink(join(dir, 'real'), join(dir, 'root-link'));
    expect(files(await collect(join(dir, 'root-link'), { followSymlinks: false }))).toEqual(['f']);
  });
});

describe('listLocal and special files', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((done) => (server ? server.close(() => done()) : done())));

  it('skips FIFOs, sockets and devices with a warning', async () => {
    await tree(['a', 'z']);
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    server = createServer();
    await new Promise<void>((done) => server!.listen(join(dir, 'sock'), done));
    await symlink('/dev/null', join(dir, 'null'));
    const listed = await collect(dir);
    expect(files(listed)).toEqual(['a', 'z']);
    expect(listed.filter((e) => e.kind === 'skip')).toEqual([
      expect.objectContaining({ relative: 'fifo', code: 'SpecialFile', reason: 'is a FIFO (named pipe)', warning: true }),
      expect.objectContaining({ relative: 'null', code: 'SpecialFile', reason: 'is a character device', warning: true }),
      expect.objectContaining({ relative: 'sock', code: 'SpecialFile', reason: 'is a socket', warning: true }),
    ]);
  });

  it('skips names that are not valid UTF-8 (first in their directory)', async () => {
    await tree(['a', 'sub/b']);
    const bad = Buffer.concat([Buffer.from(join(dir, 'sub/')), Buffer.from([0x66, 0xff, 0x6f])]);
    await writeFile(bad, 'x');
    const listed = await collect(dir);
    expect(listed.map((e) => [e.relative, e.kind])).toEqual([
      ['a', 'file'],
      ['sub/f\ufffdo', 'skip'],
      ['sub/b', 'file'],
    ]);
    expect(listed[1]).toMatchObject({ code: 'InvalidName', warning: true });
  });
});

describe('listLocal failures', () => {
  it('reports an unreadable directory as a skip and goes on', async () => {
    await tree(['a', 'locked/secret', 'z']);
    const locked = join(dir, 'locked');
    const real = readdirMock.getMockImplementation()!;
    readdirMock.mockImplementation(((path: string, options: never) =>
      path === locked
        ? Promise.reject(
            Object.assign(new Error(`EACCES: permission denied, scandir '${locked}'`), { code: 'EACCES', syscall: 'scandir', path }),
          )
        : real(path, options)) as never);
    const listed = await collect(dir);
    expect(listed.map((e) => e.relative)).toEqual(['a', 'locked', 'z']);
    expect(listed[1]).toMatchObject({
      kind: 'skip',
      code: 'Unreadable',
      directory: true,
      reason: 'cannot read the directory: permission denied',
    });
  });

  it.skipIf(process.getuid?.() === 0)('reports a chmod 000 directory as a skip (not as root)', async () => {
    await tree(['a', 'locked/secret']);
    await chmod(join(dir, 'locked'), 0);
    try {
      expect(skips(await collect(dir))).toEqual([{ relative: 'locked', code: 'Unreadable', directory: true }]);
    } finally {
      await chmod(join(dir, 'locked'), 0o700);
    }
  });

  it('refuses a missing root with ENOENT', async () => {
    const error = await collect(join(dir, 'nope')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalFileError);
    expect(error).toMatchObject({ code: 'ENOENT', isSource: true, message: `${join(dir, 'nope')}: no such file or directory` });
  });

  it('refuses a root that is a file, clearly', async () => {
    await tree(['file']);
    const error = await collect(join(dir, 'file')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalFileError);
    expect(error).toMatchObject({ code: 'ENOTDIR', message: expect.stringMatching(/file: not a directory/) });
  });

  it('refuses an unreadable root', async () => {
    const real = readdirMock.getMockImplementation()!;
    readdirMock.mockImplementation(((path: string, options: never) =>
      path === dir
        ? Promise.reject(Object.assign(new Error('EACCES'), { code: 'EACCES', syscall: 'scandir', path }))
        : real(path, options)) as never);
    await expect(collect(dir)).rejects.toMatchObject({
      name: 'LocalFileError',
      code: 'EACCES',
      message: `${dir}: cannot read the directory: permission denied`,
    });
  });

  it('stops with TransferAbortedError when the signal aborts', async () => {
    await tree(['a', 'b', 'c']);
    const controller = new AbortController();
    const seen: string[] = [];
    const run = async () => {
      for await (const entry of listLocal(dir, { signal: controller.signal })) {
        seen.push(entry.relative);
        controller.abort();
      }
    };
    await expect(run()).rejects.toBeInstanceOf(TransferAbortedError);
    expect(seen).toEqual(['a']);
  });

  it('reports a file that vanishes while being listed', async () => {
    await tree(['a', 'b']);
    const listing = listLocal(dir);
    expect((await listing.next()).value).toMatchObject({ relative: 'a' });
    await rm(join(dir, 'b'));
    expect((await listing.next()).value).toMatchObject({
      kind: 'skip',
      relative: 'b',
      code: 'Changed',
      reason: 'vanished while being listed',
    });
    expect((await listing.next()).done).toBe(true);
  });
});
