import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, lstatSync, openSync, renameSync, unlinkSync, utimesSync, writeSync, writevSync } from 'node:fs';
import { type FileHandle, lstat, open, rename, stat, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type ErrorContext, LocalFileError } from '../errors.js';
import { keyBaseName } from '../location.js';
import { fileError } from '../transfer/error-mapping.js';

/** Temp files of downloads in progress: `.<name>.<12 hex>.s3xfer-part` (or `.<12 hex>.s3xfer-part` for long names). */
export const TEMP_FILE_SUFFIX = '.s3xfer-part';

/**
 * The file a download writes: `filename` itself, or `filename/<key's base name>` when `filename`
 * is an existing directory (or ends with a path separator).
 * @throws {LocalFileError} when the destination's directory does not exist or the target is a directory.
 */
export async function resolveDownloadPath(filename: string, key: string): Promise<string> {
  const isDir = await statOrUndefined(filename).then((s) => s?.isDirectory() ?? false);
  const endsWithSep = /[\\/]$/.test(filename);
  const target = isDir || endsWithSep ? join(filename, keyBaseName(key)) : filename;
  const context = { operation: 'download', destination: target };
  const parent = await statOrUndefined(dirname(target));
  if (!parent?.isDirectory()) {
    throw new LocalFileError(`${dirname(target)}: destination directory does not exist`, 'ENOENT', context);
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
  const existing = small ? lstatSyncOrUndefined(path) : await lstatOrUndefined(path);
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
    private readonly file: FileHandle | number,
    private readonly mtime: Date | undefined,
  ) {}

  /** Creates the temp file (exclusively, so two downloads never share one). */
  static async create(path: string, options: { mode?: number; mtime?: Date; sync?: boolean } = {}): Promise<AtomicFile> {
    const { mode, mtime, sync = false } = options;
    const name = basename(path);
    // Keep the temp name within NAME_MAX (255 bytes) when the destination's name is long.
    const stem = Buffer.byteLength(name) > 200 ? '' : `${name}.`;
    const tempPath = join(dirname(path), `.${stem}${randomBytes(6).toString('hex')}${TEMP_FILE_SUFFIX}`);
    try {
      if (sync) {
        const fd = openSync(tempPath, 'wx', mode);
        if (mode !== undefined) tryQuietly(() => fchmodSync(fd, mode)); // open() applies the umask
        return new AtomicFile(path, tempPath, fd, mtime);
      }
      const handle = await open(tempPath, 'wx', mode);
      if (mode !== undefined) await handle.chmod(mode).catch(() => {});
      return new AtomicFile(path, tempPath, handle, mtime);
    } catch (error) {
      throw fileError(path, error, downloadContext(path), 'cannot create a file here');
    }
  }

  /** The end of the furthest byte written: the file's size (no fstat needed at commit). */
  private end = 0;
  /** Whether a descriptor (sync) was closed: never close its number twice, it may be another file's by then. */
  private closed = false;

  async write(chunks: Uint8Array[], position: number): Promise<void> {
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    this.end = Math.max(this.end, position + length);
    const file = this.file;
    try {
      let bytesWritten = typeof file === 'number' ? writevSync(file, chunks, position) : (await file.writev(chunks, position)).bytesWritten;
      // A short write (rare on regular files): write the rest chunk by chunk.
      for (const chunk of chunks) {
        if (bytesWritten >= chunk.length) {
          bytesWritten -= chunk.length;
          position += chunk.length;
          continue;
        }
        for (let offset = bytesWritten; offset < chunk.length; ) {
          const at = position + offset;
          offset +=
            typeof file === 'number'
              ? writeSync(file, chunk, offset, chunk.length - offset, at)
              : (await file.write(chunk, offset, chunk.length - offset, at)).bytesWritten;
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
    const size = this.end;
    const file = this.file;
    if (typeof file === 'number') {
      this.closed = true;
      closeSync(file);
    } else {
      await file.close();
    }
    if (size !== expectedSize) {
      throw new LocalFileError(`${this.path}: wrote ${size} bytes, expected ${expectedSize}`, 'SizeMismatch', { destination: this.path });
    }
    // The time is set after the close (some file systems, FUSE and SMB ones, set it again when
    // they flush at close), and before the rename: the file appears with its time.
    if (typeof file === 'number') {
      if (this.mtime) tryQuietly(() => utimesSync(this.tempPath, new Date(), this.mtime!));
      renameSync(this.tempPath, this.path);
    } else {
      if (this.mtime) await utimes(this.tempPath, new Date(), this.mtime).catch(() => {});
      await rename(this.tempPath, this.path);
    }
  }

  async discard(): Promise<void> {
    const file = this.file;
    if (typeof file === 'number') {
      if (!this.closed) tryQuietly(() => closeSync(file));
      this.closed = true;
      tryQuietly(() => unlinkSync(this.tempPath));
      return;
    }
    await file.close().catch(() => {});
    await unlink(this.tempPath).catch(() => {});
  }
}

/** Runs a best-effort step (its failure changes nothing that matters). */
function tryQuietly(step: () => void): void {
  try {
    step();
  } catch {
    // ignored
  }
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

function lstatSyncOrUndefined(path: string) {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined; // creating the temp file then says what is wrong
  }
}

async function lstatOrUndefined(path: string) {
  return lstat(path).catch(() => undefined);
}

async function statOrUndefined(path: string) {
  return stat(path).catch(() => undefined);
}
