import { randomUUID } from 'node:crypto';
import { posix, win32 } from 'node:path';

/**
 * Orders keys as S3 lists them: by the UTF-8 bytes of the key. UTF-8 byte order is code point
 * order; JavaScript's `<` compares UTF-16 code units, which agrees except that characters above
 * U+FFFF (surrogate pairs, U+D800–DFFF) sort below U+E000–U+FFFF. Remapping the two ranges at the
 * first differing unit fixes that without encoding either string. Note `'a-b' < 'a/c' < 'a0'`.
 * @returns a negative number, zero or a positive number, like `Array.prototype.sort` expects.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** The suffix of the hidden temp files a download writes before renaming them into place. */
export const TEMP_FILE_SUFFIX = '.s3xfer-part';

const TEMP_FILE_NAME = /^\.(?:[^/]*\.)?[0-9a-f]{12}\.s3xfer-part$/;

/**
 * The name of a download's temp file for the destination file name `name`:
 * `.<name>.<12 hex>.s3xfer-part`, or `.<12 hex>.s3xfer-part` when the name is longer than 200 bytes
 * (to stay within the 255-byte NAME_MAX).
 * @param id 12 lower-case hex digits. Default: 48 random bits, the first 12 hex digits of a v4 UUID
 *   (`randomUUID` draws from a cache of random bytes: ~0.3 µs, where `randomBytes(6)` costs a
 *   system call, ~18 µs, per temp file).
 */
export function tempFileName(name: string, id: string = randomId()): string {
  const stem = Buffer.byteLength(name) > 200 ? '' : `${name}.`;
  return `.${stem}${id}${TEMP_FILE_SUFFIX}`;
}

function randomId(): string {
  const uuid = randomUUID(); // xxxxxxxx-xxxx-4xxx-…: the first 12 hex digits are random
  return uuid.slice(0, 8) + uuid.slice(9, 13);
}

/**
 * True for a file name made by {@link tempFileName}: a download in progress (or one that crashed).
 * Listings never yield these, so `sync` neither uploads nor deletes another download's temp file.
 */
export function isTempFileName(name: string): boolean {
  return TEMP_FILE_NAME.test(name);
}

/** Where a downloaded key goes, or why it may not go anywhere. */
export type LocalPathResult =
  | { ok: true /** The path under the root, joined to the root as given (relative if it is). */; path: string }
  | {
      ok: false;
      /** `DirectoryMarker` (the caller makes a directory instead), `UnsafeKey` or `NameTooLong`. */
      code: 'DirectoryMarker' | 'UnsafeKey' | 'NameTooLong';
      reason: string;
    };

/** Options of {@link localPathForKey}. */
export interface LocalPathOptions {
  /** Path rules to apply. Default: the platform this runs on (`process.platform`). */
  platform?: 'posix' | 'win32';
}

/** NAME_MAX of Linux and macOS file systems, in bytes. */
const NAME_MAX_BYTES = 255;

/**
 * The local path an object key (relative to the listed prefix) is downloaded to under `root`, or
 * a refusal for keys that would land outside `root` or cannot name a file. Lexical only: it does
 * not look at the disk (a symlinked directory inside `root` can still lead elsewhere).
 *
 * Refused: the empty key; keys ending in `/` (`DirectoryMarker`: a directory, not a file);
 * absolute keys (`/etc/x`); `.` and `..` segments anywhere (`../x`, `a/../../x`, `a/./b`, which
 * would collide with `a/b`); empty segments (`a//b`); backslashes (a separator on Windows:
 * `C:\x`, `\\host\share`) and NUL anywhere; segments over 255 bytes; on Windows also `:` (drive
 * letters, alternate data streams).
 */
export function localPathForKey(root: string, relative: string, options: LocalPathOptions = {}): LocalPathResult {
  const platform = options.platform ?? (process.platform === 'win32' ? 'win32' : 'posix');
  const refuse = (reason: string, code: 'UnsafeKey' | 'NameTooLong' = 'UnsafeKey'): LocalPathResult => ({ ok: false, code, reason });
  if (relative === '') return refuse('the key is empty');
  if (relative.endsWith('/')) return { ok: false, code: 'DirectoryMarker', reason: 'the key ends with "/" (a directory marker)' };
  if (relative.includes('\0')) return refuse('the key contains a NUL character');
  if (relative.includes('\\')) return refuse('the key contains a backslash (a path separator on Windows)');
  if (relative.startsWith('/')) return refuse('the key is an absolute path');
  if (platform === 'win32' && relative.includes(':')) return refuse('the key contains ":" (a drive or stream separator on Windows)');
  const segments = relative.split('/');
  for (const segment of segments) {
    if (segment === '') return refuse('the key has an empty path segment ("//")');
    if (segment === '.' || segment === '..') return refuse(`the key has a "${segment}" path segment`);
    if (Buffer.byteLength(segment) > NAME_MAX_BYTES) return refuse(`a path segment is longer than ${NAME_MAX_BYTES} bytes`, 'NameTooLong');
  }
  const path = platform === 'win32' ? win32 : posix;
  const base = path.resolve(root);
  // Defence in depth: the checks above already keep the key inside the root.
  const inside = path.relative(base, path.join(base, ...segments));
  if (inside === '' || inside === '..' || inside.startsWith(`..${path.sep}`) || path.isAbsolute(inside))
    return refuse('the key leads outside the destination directory');
  // Under the root as the user gave it (`d1/a.txt`, as aws s3 cp prints it), not made absolute.
  return { ok: true, path: path.join(root, ...segments) };
}

/**
 * Detects the "file and prefix" conflict while streaming sorted keys: `a` and `a/b` cannot both be
 * downloaded (`a` cannot be a file and a directory). Feed it every key (or relative key) in
 * {@link compareKeys} order; it returns the earlier file key that the given key cannot coexist
 * with, else undefined. `a` may be followed by `a-b`, `a.txt`, … before `a/b` comes, so it keeps a
 * short stack of keys that are prefixes of one another; memory is bounded by that chain, not by
 * the listing. Keys ending in `/` (directory markers) never conflict with keys below them.
 * @example
 * const conflictOf = createPrefixConflictDetector();
 * conflictOf('a'); conflictOf('a-b'); conflictOf('a/b'); // → 'a'
 */
export function createPrefixConflictDetector(): (key: string) => string | undefined {
  const files: string[] = [];
  return (key) => {
    while (files.length > 0) {
      const top = files[files.length - 1]!;
      if (key.startsWith(top)) {
        const next = key.charCodeAt(top.length);
        if (next === 0x2f) return top;
        // `top` followed by a character below '/': keys under `top/` may still come.
        if (next < 0x2f) break;
      }
      files.pop();
    }
    if (!key.endsWith('/')) files.push(key);
    return undefined;
  };
}
