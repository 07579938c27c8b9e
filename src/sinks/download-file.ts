import {
  closeSync,
  fchmodSync,
  lstatSync,
  openSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { type FileHandle, lstat, mkdir, open, rename, rmdir, stat, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type ErrorContext, LocalFileError } from '../errors.js';
import { keyBaseName } from '../location.js';
import { tempFileName } from '../storage/keys.js';
import { fileError } from '../transfer/error-mapping.js';

/**
 * The file a download writes: `filename` itself, or `filename/<key's base name>` when `filename`
 * is an existing directory (or ends with a path separator).
 * @param makeParents a missing directory is the caller's to make ({@link makeParentDirectories}).
 * @throws {LocalFileError} when the destination's directory does not exist (unless `makeParents`)
 *   or is a file, or the target is a directory.
 */
export async function resolveDownloadPath(filename: string, key: string, makeParents = false): Promise<string> {
  const isDir = await statOrUndefined(filename).then((s) => s?.isDirectory() ?? false);
  const endsWithSep = /[\\/]$/.test(filename);
  const target = isDir || endsWithSep ? join(filename, keyBaseName(key)) : filename;
  const context = { operation: 'download', destination: target };
  if (!(await statOrUndefined(dirname(target)))?.isDirectory()) {
    // A file in the way is found now, not when directories are made: a dry run says what the copy would.
    const inTheWay = await fileInTheWay(dirname(target));
    if (inTheWay) throw notADirectory(inTheWay, context);
    if (!makeParents) throw new LocalFileError(`${dirname(target)}: destination directory does not exist`, 'ENOENT', context);
  }
  if ((await statOrUndefined(target))?.isDirectory()) {
    throw new LocalFileError(`${target}: is a directory`, 'EISDIR', context);
  }
  return target;
}

/** Where a download's bytes go: written at offsets, then committed or discarded. */
export interface DownloadSink {
  readonly path: string;
  /** Whether writes may arrive out of order (ranged GETs in parallel). */
  readonly positional: boolean;
  /** Writes all of `chunks`, one after another, starting at `position`. */
  write(chunks: Uint8Array[], position: number): Promise<void>;
  /** Finishes the file after `expectedSize` bytes. */
  commit(expectedSize: number): Promise<void>;
  /** Undoes what can be undone; never throws. */
  discard(): Promise<void>;
}

/** Objects up to this size are written with synchronous calls (see {@link AtomicFile}). */
export const SMALL_FILE_BYTES = 256 * 1024;

/** What a sink may know before the first byte. */
export interface SinkOptions {
  /** The object's size: a small one is written synchronously. */
  size?: number;
  /** The modification time to give the file when it is committed. */
  mtime?: Date;
}

/**
 * Opens the right sink for a download's destination: an {@link AtomicFile} for a regular or new
 * file, a {@link DirectFile} for a device or FIFO (`/dev/null`, a named pipe), which must be
 * written in place rather than replaced. A symlink is replaced by the downloaded file, as
 * `aws s3 cp` does.
 */
export async function openDownloadSink(path: string, options: SinkOptions = {}): Promise<DownloadSink> {
  const small = options.size !== undefined && options.size <= SMALL_FILE_BYTES;
  const existing = small ? statSyncOrUndefined(path, true) : await lstatOrUndefined(path);
  if (existing && (existing.isCharacterDevice() || existing.isBlockDevice() || existing.isFIFO() || existing.isSocket())) {
    return DirectFile.open(path);
  }
  const mode = existing?.isFile() ? existing.mode & 0o7777 : undefined;
  return AtomicFile.create(path, { mode, mtime: options.mtime, sync: small });
}

/**
 * A download's destination, written atomically: bytes go to a hidden temp file in the same
 * directory (same file system, so the final rename is atomic) and only `commit()` puts it in
 * place. `discard()` removes it; an existing destination file is untouched until commit, and
 * its permissions carry over to the new file.
 *
 * A small file (`sync`) is opened, written, closed, timed and renamed with synchronous calls on
 * the main thread: for a few KiB each call is one quick system call, where the thread pool's
 * round trip cost ~0.1 ms of CPU and a context switch each, the larger part of a small
 * download's local work (BENCHMARKS.md, "Many small files").
 */
export class AtomicFile implements DownloadSink {
  readonly positional = true;

  private constructor(
    readonly path: string,
    readonly tempPath: string,
    private readonly io: TempFileCalls,
    private readonly mtime: Date | undefined,
  ) {}

  /** Creates the temp file (exclusively, so two downloads never share one). */
  static async create(path: string, options: { mode?: number; mtime?: Date; sync?: boolean } = {}): Promise<AtomicFile> {
    const { mode, mtime, sync = false } = options;
    const tempPath = join(dirname(path), tempFileName(basename(path)));
    try {
      const io = sync ? syncCalls(tempPath, mode) : await threadPoolCalls(tempPath, mode);
      return new AtomicFile(path, tempPath, io, mtime);
    } catch (error) {
      throw fileError(path, error, downloadContext(path), 'cannot create a file here');
    }
  }

  /** The end of the furthest byte written: the file's size (no fstat needed at commit). */
  private end = 0;

  async write(chunks: Uint8Array[], position: number): Promise<void> {
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    this.end = Math.max(this.end, position + length);
    try {
      let bytesWritten = await this.io.writev(chunks, position);
      // A short write (rare on regular files): write the rest chunk by chunk.
      for (const chunk of chunks) {
        if (bytesWritten >= chunk.length) {
          bytesWritten -= chunk.length;
          position += chunk.length;
          continue;
        }
        for (let offset = bytesWritten; offset < chunk.length; ) {
          offset += await this.io.write(chunk, offset, chunk.length - offset, position + offset);
        }
        position += chunk.length;
        bytesWritten = 0;
      }
    } catch (error) {
      throw fileError(this.path, error, downloadContext(this.path), 'cannot write');
    }
  }

  /** Closes the temp file, checks its size, sets its modification time, and renames it over the destination. */
  async commit(expectedSize: number): Promise<void> {
    await this.io.close();
    if (this.end !== expectedSize) {
      throw new LocalFileError(`${this.path}: wrote ${this.end} bytes, expected ${expectedSize}`, 'SizeMismatch', {
        destination: this.path,
      });
    }
    // The time is set after the close (some file systems, FUSE and SMB ones, set it again when
    // they flush at close), and before the rename: the file appears with its time.
    if (this.mtime) await this.io.setTimes(this.mtime).catch(() => {});
    await this.io.rename(this.path);
  }

  async discard(): Promise<void> {
    await this.io.close().catch(() => {});
    await this.io.unlink().catch(() => {});
  }
}

/** The calls an {@link AtomicFile} makes on its temp file. `close` may be called more than once. */
interface TempFileCalls {
  writev(chunks: Uint8Array[], position: number): Promise<number>;
  write(chunk: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
  setTimes(mtime: Date): Promise<void>;
  rename(to: string): Promise<void>;
  unlink(): Promise<void>;
}

/** Through the thread pool (fs/promises): a big file's writes never block the main thread. */
async function threadPoolCalls(tempPath: string, mode: number | undefined): Promise<TempFileCalls> {
  const handle = await open(tempPath, 'wx', mode);
  if (mode !== undefined) await handle.chmod(mode).catch(() => {}); // open() applies the umask
  return {
    writev: async (chunks, position) => (await handle.writev(chunks, position)).bytesWritten,
    write: async (chunk, offset, length, position) => (await handle.write(chunk, offset, length, position)).bytesWritten,
    close: () => handle.close(),
    setTimes: (mtime) => utimes(tempPath, new Date(), utimesSeconds(mtime)),
    rename: (to) => rename(tempPath, to),
    unlink: () => unlink(tempPath),
  };
}

/**
 * `mtime` as the number of seconds given to `utimes`, chosen so that the file reads back with
 * exactly that millisecond (an object's LastModified). Node turns a Date into a float number of
 * seconds (.942 may become .94199999…) and libuv truncates that to the microsecond, so about half
 * of all times were written a microsecond short (.941999, which the aws CLI's `sync
 * --exact-timestamps` sees as different). A quarter of a microsecond added exceeds the float's
 * error (at most 0.12 µs until 2106) and stays below the next microsecond, so the truncation
 * lands on the millisecond itself (on Windows, which keeps 100 ns, within a fraction of a
 * microsecond of it). A time before 1970, or not a time, is passed on as the Date: Node reads a
 * negative number of seconds as "now".
 */
function utimesSeconds(mtime: Date): number | Date {
  const ms = mtime.getTime();
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 + 2.5e-7 : mtime;
}

/** Synchronous calls on the main thread: for a small file each is one quick system call. */
function syncCalls(tempPath: string, mode: number | undefined): TempFileCalls {
  const fd = openSync(tempPath, 'wx', mode);
  if (mode !== undefined) {
    try {
      fchmodSync(fd, mode); // open() applies the umask
    } catch {
      // the umask's mode is kept
    }
  }
  // Never close the number twice: by then it may be another file's descriptor.
  let isOpen = true;
  return {
    writev: async (chunks, position) => writevSync(fd, chunks, position),
    write: async (chunk, offset, length, position) => writeSync(fd, chunk, offset, length, position),
    close: async () => {
      if (!isOpen) return;
      isOpen = false; // before the call: a close that fails has still let go of the number
      closeSync(fd);
    },
    setTimes: async (mtime) => utimesSync(tempPath, new Date(), utimesSeconds(mtime)),
    rename: async (to) => renameSync(tempPath, to),
    unlink: async () => unlinkSync(tempPath),
  };
}

/**
 * A device or FIFO destination, written in place and in order (so one sequential GET). There is
 * nothing to roll back: a failed download has already written what it wrote.
 */
export class DirectFile implements DownloadSink {
  readonly positional = false;
  private written = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<DirectFile> {
    try {
      return new DirectFile(path, await open(path, 'w'));
    } catch (error) {
      throw fileError(path, error, downloadContext(path), 'cannot open');
    }
  }

  async write(chunks: Uint8Array[], position: number): Promise<void> {
    if (position !== this.written) {
      throw new LocalFileError(`${this.path}: cannot write out of order to a device or pipe`, 'ESPIPE', { destination: this.path });
    }
    try {
      for (const chunk of chunks) {
        for (let offset = 0; offset < chunk.length; ) {
          const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
        }
        this.written += chunk.length;
      }
    } catch (error) {
      throw fileError(this.path, error, downloadContext(this.path), 'cannot write');
    }
  }

  async commit(): Promise<void> {
    await this.handle.close();
  }

  async discard(): Promise<void> {
    await this.handle.close().catch(() => {});
  }
}

function downloadContext(path: string): ErrorContext {
  return { operation: 'download', destination: path };
}

/**
 * A path's stat (its lstat with `link`) in one synchronous call, where a thread-pool round trip
 * costs more per small file; undefined when nothing is there or it cannot be looked at (the
 * download that follows says what is wrong).
 */
export function statSyncOrUndefined(path: string, link = false): Stats | undefined {
  try {
    return (link ? lstatSync : statSync)(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

async function lstatOrUndefined(path: string) {
  return lstat(path).catch(() => undefined);
}

async function statOrUndefined(path: string) {
  return stat(path).catch(() => undefined);
}

/**
 * `mkdir -p` for download destinations. Not Node's `mkdir(path, { recursive: true })`: that spins
 * at 100% CPU forever when an existing parent cannot hold children, as under /proc, where the
 * child's mkdir answers ENOENT and the parent's EEXIST. Here the missing directories are made one
 * by one from the deepest one that exists, and the first refusal is thrown as the system gave it
 * (ENOENT, EACCES, ENOTDIR when a file is in the way, EEXIST when `path` itself is a file).
 * Returns the directories it made, outermost first.
 */
export async function makeDirectories(path: string): Promise<string[]> {
  const missing: string[] = [];
  for (let current = resolve(path); ; ) {
    const info = await stat(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (info) {
      if (missing.length === 0 && !info.isDirectory()) throw existsError(current);
      break;
    }
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  const made: string[] = [];
  for (const directory of missing.reverse()) {
    try {
      await mkdir(directory);
      made.push(directory);
    } catch (error) {
      // Made meanwhile by another job is fine; a file or a dangling link in its place is not.
      const exists = (error as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(directory).catch(() => undefined))?.isDirectory();
      if (!exists) {
        await removeEmptyDirectories(made); // none of a half-made path is left
        throw error;
      }
    }
  }
  return made;
}

/**
 * Makes the missing directories above a download's file; returns those it made, deepest last.
 * @throws {LocalFileError} when one cannot be made (a file in the way, no permission).
 */
export async function makeParentDirectories(file: string): Promise<string[]> {
  const directory = dirname(file);
  try {
    return await makeDirectories(directory);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST') throw notADirectory((await fileInTheWay(directory)) ?? directory, downloadContext(file));
    throw fileError(directory, error, downloadContext(file), 'cannot create the directory');
  }
}

function notADirectory(path: string, context: ErrorContext): LocalFileError {
  return new LocalFileError(`${path}: not a directory (a file is in the way)`, 'ENOTDIR', context);
}

/** The path of `directory` or of its nearest ancestor that exists, when that is not a directory. */
async function fileInTheWay(directory: string): Promise<string | undefined> {
  for (let path = directory; ; path = dirname(path)) {
    const info = await statOrUndefined(path);
    if (info) return info.isDirectory() ? undefined : path;
    if (dirname(path) === path) return undefined;
  }
}

/** Removes directories a failed download made, deepest first, as long as they are empty. */
export async function removeEmptyDirectories(made: string[]): Promise<void> {
  for (const directory of [...made].reverse()) {
    try {
      await rmdir(directory);
    } catch {
      return; // not empty (another download wrote there), or gone
    }
  }
}

function existsError(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EEXIST: file already exists, mkdir '${path}'`), { code: 'EEXIST', errno: -17, syscall: 'mkdir', path });
}
