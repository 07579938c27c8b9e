/**
 * The listing records shared by the local file system and S3: one shape for a file or an object,
 * so `cp --recursive`, `sync`, `ls` and `rm` never branch on where bytes live.
 */

/** A file under a local root or an object under an S3 prefix: something a directory command transfers. */
export interface StorageEntry {
  kind: 'file';
  /**
   * The path under the listed root, `/`-separated whatever the platform (`photos/2024/a.jpg`), or
   * the key with the listed prefix removed. Listings yield entries sorted by {@link compareKeys}.
   */
  relative: string;
  /** Size in bytes. */
  size: number;
  /** The file's modification time, or the object's `LastModified`, in ms since the epoch. */
  mtimeMs: number;
  /** The object's ETag, quotes included (S3 only). */
  etag?: string;
  /**
   * True for an S3 key ending in `/` (a "folder" made by consoles and other tools): it stands for a
   * directory and carries no file. Local listings never yield it.
   */
  isDirMarker?: boolean;
  /** Where a local entry lives. */
  local?: LocalEntryInfo;
  /** Where an S3 entry lives. */
  s3?: S3EntryInfo;
}

/** The local side of a {@link StorageEntry}. */
export interface LocalEntryInfo {
  /** The file's path: the listed root joined with the relative path (symlinks not resolved). */
  path: string;
  /**
   * Device and inode of the file (of the symlink's target when followed). Numbers, so entries
   * survive `JSON.stringify`; inodes above 2^53 lose precision here (loop detection uses exact values).
   */
  dev: number;
  ino: number;
}

/** The S3 side of a {@link StorageEntry}. */
export interface S3EntryInfo {
  bucket: string;
  /** The full key (prefix included). */
  key: string;
  /** `STANDARD`, `GLACIER`, …, when the listing says. */
  storageClass?: string;
}

/** A common prefix (a "directory") of an S3 listing made with a delimiter, as `ls` shows them. */
export interface PrefixEntry {
  kind: 'prefix';
  /** The prefix relative to the listed prefix, ending with the delimiter (`photos/`). */
  relative: string;
  s3: { bucket: string; key: string };
}

/** Why something under a local root is not transferred. Stable strings, for scripts. */
export type SkipCode =
  /** A symlink while `followSymlinks` is false (the aws CLI skips these silently). */
  | 'Symlink'
  /** A symlink whose target does not exist (or is a chain of symlinks that loops). */
  | 'BrokenSymlink'
  /** A directory that is already on the path being walked (a symlink or bind-mount loop). */
  | 'DirectoryLoop'
  /** A socket, FIFO, or character or block device. */
  | 'SpecialFile'
  /** A name that is not valid UTF-8: it cannot be an S3 key. */
  | 'InvalidName'
  /** The entry vanished or changed type between being listed and being examined. */
  | 'Changed'
  /** A directory that could not be read (EACCES, …), a file the user may not read, or one that could not be examined. */
  | 'Unreadable';

/** Something found while listing that is not transferred, with the reason. */
export interface SkippedEntry {
  kind: 'skip';
  /**
   * The path under the root, `/`-separated. For an `InvalidName` skip it is a lossy rendering
   * (invalid bytes become U+FFFD) and the record is not in sorted position.
   */
  relative: string;
  /** The local path. */
  path: string;
  /** True when the skipped thing is a directory (everything below it is missing from the listing). */
  directory: boolean;
  code: SkipCode;
  /** What happened, for a person: `permission denied`, `is a FIFO`, … */
  reason: string;
  /**
   * True when the user should be told (the aws CLI prints "warning: Skipping file …"); false for
   * skips the user asked for (symlinks with `followSymlinks: false`).
   */
  warning: boolean;
}

/** What a local listing yields. */
export type LocalListingEntry = StorageEntry | SkippedEntry;

/** What an S3 listing yields. */
export type S3ListingEntry = StorageEntry | PrefixEntry;
