import type { BigIntStats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalFileError, TransferAbortedError } from '../errors.js';
import { fileErrorReason } from '../transfer/error-mapping.js';
import type { LocalListingEntry, SkipCode, SkippedEntry, StorageEntry } from './entries.js';
import { compareKeys, isTempFileName } from './keys.js';

/** Options of {@link listLocal}. */
export interface ListLocalOptions {
  /**
   * Follow symbolic links to files and directories, as `aws s3 sync` does by default. When false,
   * symlinks are skipped (a `Symlink` skip record with `warning: false`), as with the aws CLI's
   * `--no-follow-symlinks`. The root itself is always followed. Default true.
   */
  followSymlinks?: boolean;
  /** Stops the walk: the generator throws a TransferAbortedError. Default: none. */
  signal?: AbortSignal;
}

type ItemType = 'file' | 'directory' | 'special' | 'symlink' | 'broken';

/** One name of a directory, typed before sorting (a directory sorts as `name/`). */
interface DirectoryItem {
  name: string;
  sortKey: string;
  type: ItemType;
  /** For `special` and `broken`: what it is or what went wrong. */
  detail?: { code: SkipCode; reason: string };
}

/**
 * Walks the directory tree under `root` lazily (one directory's names in memory per level being
 * walked) and yields its files in the order S3 lists keys: by the UTF-8 bytes of the relative
 * path ({@link compareKeys}), a directory's contents sorting as if its name ended with `/`
 * (`a-b` < `a/c` < `a0`), so the listing can be merged with an S3 listing by `compareListings`.
 *
 * Not yielded as files, but as {@link SkippedEntry} records at their sorted position: symlinks when
 * not followed; broken symlinks; directories already on the path being walked (symlink or
 * bind-mount loops, detected by device and inode, so the walk always ends); sockets, FIFOs and
 * devices; unreadable directories; entries that vanish or change type while being listed. Names
 * that are not valid UTF-8 cannot be S3 keys: their skip records come first in their directory.
 * s3xfer's own download temp files ({@link isTempFileName}) are never listed, and nor are empty
 * directories (S3 has no directories).
 *
 * @throws {LocalFileError} (isSource) when `root` is missing (`ENOENT`), not a directory
 *   (`ENOTDIR`) or unreadable.
 * @throws {TransferAbortedError} when `signal` aborts.
 */
export async function* listLocal(root: string, options: ListLocalOptions = {}): AsyncGenerator<LocalListingEntry> {
  const followSymlinks = options.followSymlinks ?? true;
  const context = { operation: 'list', source: root, isSource: true };
  let info: BigIntStats;
  try {
    info = await stat(root, { bigint: true });
  } catch (error) {
    throw new LocalFileError(`${root}: ${fileErrorReason(error) ?? String(error)}`, codeOf(error), { ...context, cause: error });
  }
  if (!info.isDirectory()) {
    throw new LocalFileError(`${root}: not a directory (only a directory can be listed)`, 'ENOTDIR', context);
  }
  let names: DirectoryItem[];
  let invalid: SkippedEntry[];
  try {
    ({ items: names, invalid } = await readDirectory(root, '', followSymlinks));
  } catch (error) {
    throw new LocalFileError(`${root}: cannot read the directory: ${fileErrorReason(error) ?? String(error)}`, codeOf(error), {
      ...context,
      cause: error,
    });
  }
  yield* walk({ root, followSymlinks, signal: options.signal }, root, '', [idOf(info)], names, invalid);
}

interface WalkContext {
  root: string;
  followSymlinks: boolean;
  signal: AbortSignal | undefined;
}

async function* walk(
  context: WalkContext,
  directory: string,
  prefix: string,
  ancestors: string[],
  items: DirectoryItem[],
  invalid: SkippedEntry[],
): AsyncGenerator<LocalListingEntry> {
  yield* invalid;
  for (const item of items) {
    if (context.signal?.aborted) throw new TransferAbortedError({ operation: 'list', source: context.root, cause: context.signal.reason });
    const path = join(directory, item.name);
    const relative = prefix + item.name;
    const skip = (code: SkipCode, reason: string, directory = false, warning = true): SkippedEntry => ({
      kind: 'skip',
      relative,
      path,
      directory,
      code,
      reason,
      warning,
    });
    switch (item.type) {
      case 'symlink':
        yield skip('Symlink', 'is a symbolic link (not followed)', false, false);
        continue;
      case 'special':
      case 'broken':
        yield skip(item.detail!.code, item.detail!.reason);
        continue;
      case 'file': {
        const info = await statOrError(path);
        if (!(info instanceof Error) && info.isFile()) {
          yield fileEntry(relative, path, info);
        } else {
          const { code, reason } = info instanceof Error ? statFailure(info) : changed('a file');
          yield skip(code, reason);
        }
        continue;
      }
      case 'directory': {
        const info = await statOrError(path);
        if (info instanceof Error || !info.isDirectory()) {
          const { code, reason } = info instanceof Error ? statFailure(info) : changed('a directory');
          yield skip(code, reason, true);
          continue;
        }
        const id = idOf(info);
        if (ancestors.includes(id)) {
          yield skip('DirectoryLoop', 'is a directory already being listed (a symlink loop)', true);
          continue;
        }
        let listing: Awaited<ReturnType<typeof readDirectory>>;
        try {
          listing = await readDirectory(path, `${relative}/`, context.followSymlinks);
        } catch (error) {
          yield skip('Unreadable', `cannot read the directory: ${fileErrorReason(error) ?? String(error)}`, true);
          continue;
        }
        yield* walk(context, path, `${relative}/`, [...ancestors, id], listing.items, listing.invalid);
      }
    }
  }
}

/** Reads one directory's names, classifies them (following symlinks when asked) and sorts them as S3 would. */
async function readDirectory(
  directory: string,
  prefix: string,
  followSymlinks: boolean,
): Promise<{ items: DirectoryItem[]; invalid: SkippedEntry[] }> {
  const dirents = await readdir(directory, { withFileTypes: true, encoding: 'buffer' });
  const items: DirectoryItem[] = [];
  const invalid: SkippedEntry[] = [];
  for (const dirent of dirents) {
    const name = dirent.name.toString('utf8');
    if (!Buffer.from(name, 'utf8').equals(dirent.name)) {
      invalid.push({
        kind: 'skip',
        relative: prefix + name,
        path: join(directory, name),
        directory: dirent.isDirectory(),
        code: 'InvalidName',
        reason: 'the name is not valid UTF-8, so it cannot be an S3 key',
        warning: true,
      });
      continue;
    }
    if (isTempFileName(name)) continue;
    items.push(await classify(directory, name, dirent, followSymlinks));
  }
  items.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
  return { items, invalid };
}

async function classify(
  directory: string,
  name: string,
  dirent: TypeTests & { isSymbolicLink(): boolean },
  followSymlinks: boolean,
): Promise<DirectoryItem> {
  let type: TypeTests = dirent;
  if (dirent.isSymbolicLink()) {
    if (!followSymlinks) return { name, sortKey: name, type: 'symlink' };
    // The target decides where the entry sorts: a directory sorts as `name/`.
    const target = await statOrError(join(directory, name));
    if (target instanceof Error) {
      const code = (target as NodeJS.ErrnoException).code;
      const broken = code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR';
      const reason = broken
        ? `is a broken symbolic link (${code === 'ELOOP' ? 'too many levels of symbolic links' : 'its target does not exist'})`
        : `cannot follow the symbolic link: ${fileErrorReason(target) ?? String(target)}`;
      return { name, sortKey: name, type: 'broken', detail: { code: broken ? 'BrokenSymlink' : 'Unreadable', reason } };
    }
    type = target;
  }
  if (type.isDirectory()) return { name, sortKey: `${name}/`, type: 'directory' };
  if (type.isFile()) return { name, sortKey: name, type: 'file' };
  return { name, sortKey: name, type: 'special', detail: { code: 'SpecialFile', reason: specialReason(type) } };
}

interface TypeTests {
  isDirectory(): boolean;
  isFile(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}

function specialReason(type: TypeTests): string {
  if (type.isFIFO()) return 'is a FIFO (named pipe)';
  if (type.isSocket()) return 'is a socket';
  if (type.isCharacterDevice()) return 'is a character device';
  if (type.isBlockDevice()) return 'is a block device';
  return 'is not a regular file';
}

function fileEntry(relative: string, path: string, info: BigIntStats): StorageEntry {
  return {
    kind: 'file',
    relative,
    size: Number(info.size),
    mtimeMs: Number(info.mtimeNs) / 1e6,
    local: { path, dev: Number(info.dev), ino: Number(info.ino) },
  };
}

function idOf(info: BigIntStats): string {
  return `${info.dev}:${info.ino}`;
}

async function statOrError(path: string): Promise<BigIntStats | Error> {
  return stat(path, { bigint: true }).catch((error: Error) => error);
}

function statFailure(error: Error): { code: SkipCode; reason: string } {
  return (error as NodeJS.ErrnoException).code === 'ENOENT'
    ? { code: 'Changed', reason: 'vanished while being listed' }
    : { code: 'Unreadable', reason: `cannot be examined: ${fileErrorReason(error) ?? String(error)}` };
}

function changed(was: string): { code: SkipCode; reason: string } {
  return { code: 'Changed', reason: `changed from ${was} to something else while being listed` };
}

function codeOf(error: unknown): string {
  return (error as { code?: string } | undefined)?.code ?? 'EIO';
}
