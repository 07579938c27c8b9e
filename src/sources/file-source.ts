import { accessSync, constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { LocalFileError } from '../errors.js';
import { fileError, fileErrorReason } from '../transfer/error-mapping.js';

/** An open source file and its size and modification time, fixed at open time. */
export interface SourceFile {
  path: string;
  handle: FileHandle;
  size: number;
  mtimeMs: number;
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
    throw fileError(path, error, context);
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) {
      throw new LocalFileError(
        `${path}: is a directory (give a file; for a whole directory, cp --recursive or copyTree)`,
        'EISDIR',
        context,
      );
    }
    if (!info.isFile()) throw new LocalFileError(`${path}: not a regular file`, 'ENOTREG', context);
    return { path, handle, size: info.size, mtimeMs: info.mtimeMs };
  } catch (error) {
    await handle.close().catch(() => {});
    if (error instanceof LocalFileError) throw error;
    throw fileError(path, error, context);
  }
}

/**
 * Why this process may not read the file (`permission denied`), from its permission bits
 * (`access(R_OK)`: no open, one system call of a microsecond or so), or undefined when it may.
 * Directory jobs skip such files, as the aws CLI does; anything else (a file that vanished, one
 * that passes here but cannot be opened) is left to the upload, which fails with its reason.
 */
export function unreadableReason(path: string): string | undefined {
  try {
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? `cannot be read: ${fileErrorReason(error)}` : undefined;
  }
}

/**
 * Reads one byte: open() can succeed where reading fails (some file systems, special files), and a
 * multipart upload should learn that before it creates anything on the server. (A single PUT reads
 * the file before any request anyway.)
 * @throws {LocalFileError} (isSource) when the file cannot be read.
 */
export async function probeReadable(source: SourceFile): Promise<void> {
  try {
    await source.handle.read(Buffer.alloc(1), 0, 1, 0);
  } catch (error) {
    throw fileError(source.path, error, { operation: 'upload', source: source.path, isSource: true });
  }
}

/**
 * Fills `buffer[0, length)` with the file's bytes at `position`: a positional read into a buffer
 * the caller owns (and reuses), in calls of at most 1 GiB (Node refuses one read of 2 GiB or more).
 * @throws {LocalFileError} when the file ends early (it shrank since it was opened).
 */
export async function readInto(source: SourceFile, buffer: Buffer, position: number, length: number): Promise<Buffer> {
  for (let offset = 0; offset < length; ) {
    const { bytesRead } = await source.handle.read(buffer, offset, Math.min(length - offset, 1024 ** 3), position + offset);
    if (bytesRead === 0) throw fileChanged(source);
    offset += bytesRead;
  }
  return buffer.subarray(0, length);
}

/**
 * Fails when the file's size or modification time differs from when it was opened: an upload
 * must not store a mix of old and new bytes, nor a truncated file over an existing object.
 * @throws {LocalFileError}
 */
export async function assertSourceUnchanged(source: SourceFile): Promise<void> {
  const now = await source.handle.stat();
  if (now.size !== source.size || now.mtimeMs !== source.mtimeMs) throw fileChanged(source);
}

/** The error for a source file that changed during its upload. */
export function fileChanged(source: SourceFile): LocalFileError {
  return new LocalFileError(`${source.path}: the file changed while it was being uploaded`, 'FileChanged', {
    operation: 'upload',
    source: source.path,
  });
}
