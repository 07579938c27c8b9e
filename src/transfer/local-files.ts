import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LocalFileError } from '../errors.js';
import { keyBaseName } from '../location.js';
import { fileErrorReason } from './error-mapping.js';

/** An open source file and its size, fixed at open time. */
export interface SourceFile {
  handle: FileHandle;
  size: number;
}

/**
 * Opens a file to upload. Opening (rather than checking permissions first) is the one reliable
 * test of readability, and keeps the same file for the whole transfer.
 * @throws {LocalFileError} (isSource) when the path is missing, a directory, not a regular file or unreadable.
 */
export async function openSourceFile(path: string): Promise<SourceFile> {
  const context = { operation: 'upload', source: path, isSource: true };
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new LocalFileError(`${path}: ${fileErrorReason(error) ?? String(error)}`, codeOf(error), { ...context, cause: error });
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) {
      throw new LocalFileError(`${path}: is a directory (directories are not supported yet; give a file)`, 'EISDIR', context);
    }
    if (!info.isFile()) throw new LocalFileError(`${path}: not a regular file`, 'ENOTREG', context);
    // A read of 0 bytes still fails on directories opened on some systems and on unreadable FIFOs.
    await handle.read(Buffer.alloc(1), 0, 1, 0);
    return { handle, size: info.size };
  } catch (error) {
    await handle.close().catch(() => {});
    if (error instanceof LocalFileError) throw error;
    throw new LocalFileError(`${path}: ${fileErrorReason(error) ?? String(error)}`, codeOf(error), { ...context, cause: error });
  }
}

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

/**
 * A download's destination, written atomically: bytes go to a hidden temp file in the same
 * directory (same file system, so the final rename is atomic) and only `commit()` puts it in
 * place. `discard()` removes it; an existing destination file is untouched until commit.
 */
export class AtomicFile {
  private constructor(
    readonly path: string,
    readonly tempPath: string,
    private readonly handle: FileHandle,
  ) {}

  /** Creates the temp file (exclusively, so two downloads never share one). */
  static async create(path: string): Promise<AtomicFile> {
    const tempPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.s3xfer-part`);
    try {
      return new AtomicFile(path, tempPath, await open(tempPath, 'wx'));
    } catch (error) {
      throw new LocalFileError(`${path}: cannot create a file here: ${fileErrorReason(error) ?? String(error)}`, codeOf(error), {
        operation: 'download',
        destination: path,
        cause: error,
      });
    }
  }

  /** Writes all of `data` at `position`. */
  async write(data: Uint8Array, position: number): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await this.handle.write(data, offset, data.length - offset, position + offset);
      offset += bytesWritten;
    }
  }

  /** Closes the temp file, checks its size, and renames it over the destination. */
  async commit(expectedSize: number): Promise<void> {
    const { size } = await this.handle.stat();
    await this.handle.close();
    if (size !== expectedSize) {
      throw new LocalFileError(`${this.path}: wrote ${size} bytes, expected ${expectedSize}`, 'SizeMismatch', { destination: this.path });
    }
    await rename(this.tempPath, this.path);
  }

  /** Closes and removes the temp file; never throws. */
  async discard(): Promise<void> {
    await this.handle.close().catch(() => {});
    await unlink(this.tempPath).catch(() => {});
  }
}

async function statOrUndefined(path: string) {
  return stat(path).catch(() => undefined);
}

function codeOf(error: unknown): string {
  return (error as { code?: string } | undefined)?.code ?? 'EIO';
}
