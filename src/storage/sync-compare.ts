import { S3xferError } from '../errors.js';
import type { PrefixEntry, SkippedEntry, StorageEntry } from './entries.js';
import type { PathFilter } from './filters.js';
import { compareKeys } from './keys.js';

/**
 * How `sync` decides that a file present on both sides must be copied (the aws CLI's sync
 * strategies, awscli/customizations/s3/syncstrategy/):
 * - `size-and-mtime`: the default (`SizeAndLastModifiedSync`).
 * - `size-only`: only a size difference counts (`--size-only`, `SizeOnlySync`).
 * - `exact-timestamps`: for downloads, any time difference counts (`--exact-timestamps`,
 *   `ExactTimestampsSync`); other directions behave as `size-and-mtime`.
 */
export type SyncMode = 'size-and-mtime' | 'size-only' | 'exact-timestamps';

/** Where bytes go: local → S3, S3 → local, or S3 → S3 (compared like uploads, as the aws CLI does). */
export type SyncDirection = 'upload' | 'download' | 'copy';

/** Options of {@link compareListings}. */
export interface CompareOptions {
  /** How files on both sides are compared. Default `size-and-mtime`. */
  mode?: SyncMode;
  direction: SyncDirection;
  /** Delete what exists only at the destination (`--delete`). Default false. */
  deleteExtra?: boolean;
  /**
   * The `--exclude`/`--include` filter (see `createFilter`), applied to both listings, as the
   * aws CLI does: an excluded destination file is never deleted. Default: everything included.
   */
  filter?: PathFilter;
}

/** Why a decision was made. Stable strings, for scripts and reporters. */
export type SyncReason =
  /** copy: nothing at the destination. */
  | 'missing-at-destination'
  /** copy: the sizes differ. */
  | 'size-differs'
  /** copy: the source was modified after the destination (uploads and S3 → S3). */
  | 'source-newer'
  /** copy: the local file is newer than the object (downloads, `size-and-mtime`; see {@link compareListings}). */
  | 'destination-newer'
  /** copy: the times differ (downloads, `exact-timestamps`). */
  | 'timestamp-differs'
  /** skip-same: nothing to do. */
  | 'same'
  /** delete: only at the destination, and `deleteExtra` is set. */
  | 'not-at-source'
  /** skip-source / keep-destination: the source could not be listed here (see `skipped`). */
  | 'source-skipped';

/** What `sync` should do about one relative path. */
export interface SyncDecision {
  /**
   * - `copy`: transfer `source` (over `destination`, when there is one).
   * - `delete`: remove `destination`.
   * - `skip-same`: both sides match; nothing to do.
   * - `skip-source`: the source listing skipped this path (`skipped` says why: a FIFO, an
   *   unreadable directory, …); nothing is copied, and the destination, if any, is left alone.
   * - `keep-destination`: only at the destination and `deleteExtra` is set, but it lies under a
   *   source directory that could not be listed, so it is not deleted.
   */
  action: 'copy' | 'delete' | 'skip-same' | 'skip-source' | 'keep-destination';
  relative: string;
  reason: SyncReason;
  source?: StorageEntry;
  destination?: StorageEntry;
  skipped?: SkippedEntry;
}

/** What a listing may yield; prefix records (from a delimited S3 listing) are ignored. */
type ListingItem = StorageEntry | SkippedEntry | PrefixEntry;

interface Keyed {
  /** The merge key: `relative`, or `relative/` for a skipped directory. */
  key: string;
  item: StorageEntry | SkippedEntry;
}

/**
 * Compares a source and a destination listing the way `aws s3 sync` does
 * (awscli/customizations/s3/comparator.py): both come sorted by key ({@link compareKeys}, which is
 * how `listLocal` and `listS3` yield them), and one streaming merge walks them side by side, so no
 * listing is ever held in memory. Per relative path:
 *
 * - only at the source → `copy` (`MissingFileSync`);
 * - only at the destination → `delete` with `deleteExtra` (`--delete`), else nothing (`NeverSync`);
 * - on both sides → `copy` or `skip-same` by `mode` (`syncstrategy/base.py`, `compare_size` and
 *   `compare_time`; times compared to the millisecond, S3's precision: see {@link syncTimeMs}):
 *   - `size-only`: copy when the sizes differ (`--size-only`).
 *   - `size-and-mtime`, uploads and S3 → S3: copy when the sizes differ or the source is newer
 *     than the destination (the object's LastModified is its upload time, so an unchanged file
 *     stays older than its copy).
 *   - `size-and-mtime`, downloads: copy when the sizes differ or the local file is newer than the
 *     object; an object newer than the local file is *not* copied ("The default behavior is to
 *     ignore same-sized items unless the local version is newer than the S3 version",
 *     `--exact-timestamps` help). This relies on downloads setting the file's mtime to the
 *     object's LastModified, as the aws CLI does.
 *   - `exact-timestamps`, downloads: copy when the sizes or the times differ at all ("same-sized
 *     items will be ignored only when the timestamps match exactly"); other directions as
 *     `size-and-mtime`.
 *
 * Departures from the aws CLI, for safety: a source path the listing skipped (a FIFO, an
 * unreadable directory, a symlink loop) is reported as `skip-source` and protects the destination
 * files at and under it from `--delete` (`keep-destination`): the aws CLI would delete them.
 * Folder markers (keys ending in `/`) take no part on either side (the aws CLI's listings drop
 * them too); skip records in the destination listing are ignored.
 *
 * @throws {S3xferError} (`UnsortedListing`) when either listing is out of order or repeats a key:
 *   a merge of unsorted listings would copy and delete the wrong files.
 */
export async function* compareListings(
  source: AsyncIterable<ListingItem>,
  destination: AsyncIterable<ListingItem>,
  options: CompareOptions,
): AsyncGenerator<SyncDecision> {
  const mode = options.mode ?? 'size-and-mtime';
  const deleteExtra = options.deleteExtra ?? false;
  const unordered: SkippedEntry[] = [];
  const sources = ordered(source, 'source', options.filter, unordered);
  const destinations = ordered(destination, 'destination', options.filter, undefined);
  // The latest skipped source directory, as `dir/`: destination keys under it are not deleted.
  let protectedPrefix: string | undefined;
  try {
    let s = await sources.next();
    let d = await destinations.next();
    while (!s.done || !d.done) {
      // Skips of undecodable names have no place in key order: pass them on as they come.
      for (const skipped of unordered.splice(0)) yield skipDecision(skipped);
      const order = s.done ? 1 : d.done ? -1 : compareKeys(s.value.key, d.value.key);
      if (order < 0 && !s.done) {
        const item = s.value.item;
        if (item.kind === 'skip') {
          if (item.directory) protectedPrefix = s.value.key;
          yield skipDecision(item);
        } else {
          yield { action: 'copy', relative: item.relative, reason: 'missing-at-destination', source: item };
        }
        s = await sources.next();
      } else if (order > 0 && !d.done) {
        const item = d.value.item as StorageEntry;
        if (deleteExtra) {
          const kept = protectedPrefix !== undefined && d.value.key.startsWith(protectedPrefix);
          yield kept
            ? { action: 'keep-destination', relative: item.relative, reason: 'source-skipped', destination: item }
            : { action: 'delete', relative: item.relative, reason: 'not-at-source', destination: item };
        }
        d = await destinations.next();
      } else if (!s.done && !d.done) {
        const item = s.value.item;
        const other = d.value.item as StorageEntry;
        if (item.kind === 'skip') {
          yield { ...skipDecision(item), destination: other };
        } else {
          const reason = copyReason(item, other, mode, options.direction);
          yield reason === undefined
            ? { action: 'skip-same', relative: item.relative, reason: 'same', source: item, destination: other }
            : { action: 'copy', relative: item.relative, reason, source: item, destination: other };
        }
        s = await sources.next();
        d = await destinations.next();
      }
    }
    for (const skipped of unordered.splice(0)) yield skipDecision(skipped);
  } finally {
    await Promise.all([sources.return(undefined), destinations.return(undefined)]);
  }
}

function skipDecision(skipped: SkippedEntry): SyncDecision {
  return { action: 'skip-source', relative: skipped.relative, reason: 'source-skipped', skipped };
}

/** Why a file on both sides must be copied, or undefined when it need not be. */
function copyReason(source: StorageEntry, destination: StorageEntry, mode: SyncMode, direction: SyncDirection): SyncReason | undefined {
  if (source.size !== destination.size) return 'size-differs';
  if (mode === 'size-only') return undefined;
  const sourceMs = syncTimeMs(source.mtimeMs);
  const destinationMs = syncTimeMs(destination.mtimeMs);
  if (direction !== 'download') return destinationMs < sourceMs ? 'source-newer' : undefined;
  if (mode === 'exact-timestamps') return destinationMs !== sourceMs ? 'timestamp-differs' : undefined;
  return destinationMs > sourceMs ? 'destination-newer' : undefined;
}

/**
 * A listing entry's time as `sync` compares it, in every mode and direction: to the nearest whole
 * millisecond. An object's LastModified has whole milliseconds at best (often whole seconds), so a
 * finer comparison only sees noise on the local side: a file's mtime set from a LastModified
 * through `utimes` (a Date becomes a float number of seconds, which libuv truncates to the
 * microsecond) reads back up to a microsecond short (.942 as .941999), and `mtimeMs` itself, read
 * as nanoseconds through a float, is off by a fraction of a microsecond. Rounding, not flooring,
 * absorbs both; times a millisecond or more apart still compare as different. (The aws CLI
 * compares Python datetimes, to the microsecond.)
 */
function syncTimeMs(mtimeMs: number): number {
  return Math.round(mtimeMs);
}

/**
 * The files and (for the source) skip records of a listing, filtered, with their merge keys,
 * checked to be in strictly increasing key order. Skips of names that are not UTF-8 go to
 * `unordered` instead (they have no place in key order).
 */
async function* ordered(
  listing: AsyncIterable<ListingItem>,
  side: 'source' | 'destination',
  filter: PathFilter | undefined,
  unordered: SkippedEntry[] | undefined,
): AsyncGenerator<Keyed, void, undefined> {
  let previous: string | undefined;
  for await (const item of listing) {
    if (item.kind === 'prefix' || (item.kind === 'file' && item.isDirMarker)) continue;
    if (item.kind === 'skip' && unordered === undefined) continue;
    const key = item.kind === 'skip' && item.directory ? `${item.relative}/` : item.relative;
    if (filter !== undefined && !filter(key)) continue;
    if (item.kind === 'skip' && item.code === 'InvalidName') {
      unordered?.push(item);
      continue;
    }
    if (previous !== undefined && compareKeys(previous, key) >= 0) {
      throw new S3xferError(`the ${side} listing is not in S3 key order: "${key}" came after "${previous}"`, 'UnsortedListing');
    }
    previous = key;
    yield { key, item };
  }
}
