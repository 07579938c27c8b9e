import { stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { SiblingFailed } from '../engine/stop-reasons.js';
import type { TransferManager } from '../engine/transfer-manager.js';
import { LocalFileError, type S3xferError, TransferAbortedError, UsageError } from '../errors.js';
import { directoryPrefix, formatS3Url, type LocalLocation, type Location, type S3Location } from '../location.js';
import { makeDirectories, statSyncOrUndefined } from '../sinks/download-file.js';
import { unreadableReason } from '../sources/file-source.js';
import { deleteFailureError, deleteObjects, MAX_DELETE_BATCH } from '../storage/delete-objects.js';
import type { LocalListingEntry, S3ListingEntry, StorageEntry } from '../storage/entries.js';
import { createFilter, type FilterRule, type PathFilter } from '../storage/filters.js';
import { createPrefixConflictDetector, localPathForKey } from '../storage/keys.js';
import { listLocal } from '../storage/local-listing.js';
import { listS3 } from '../storage/s3-listing.js';
import { type CompareOptions, compareListings, type SyncDecision, type SyncMode } from '../storage/sync-compare.js';
import { fileError, fileErrorReason, isAbortError, toS3xferError } from '../transfer/error-mapping.js';
import type { UploadExtraArgs } from '../transfer/upload.js';
import { type Shard, ShardSlicer, shardWeight } from './shard.js';

/** Something a directory job did not transfer, and why. */
export interface SkippedItem {
  /** The local path or `s3://` URL. */
  path: string;
  /** Stable code: `UnsafeKey`, `NameTooLong`, `FileAndPrefix`, `SpecialFile`, `DirectoryLoop`, `Unreadable`, `Unwritable`, … */
  code: string;
  reason: string;
}

/** A change a job makes (or, with `dryRun`, would make). */
export interface PlannedChange {
  action: 'upload' | 'download' | 'delete' | 'mkdir';
  source?: string;
  destination: string;
}

/** Events of a directory job besides the transfers' own (which go to the manager's subscribers). */
export interface TreeEvents {
  /** A file or key was skipped (counts towards exit code 2 in the CLI). */
  onSkip?(item: SkippedItem): void;
  /** With `dryRun`: what would be done. Without it: deletions and directories made. */
  onPlanned?(change: PlannedChange): void;
  /** A delete failed; the job goes on. */
  onDeleteFailed?(target: string, error: S3xferError): void;
  /**
   * A transfer failed; the job goes on (unless the manager's failure policy is `stop`). Transfers
   * the manager cancelled (an abort, `stop`, an unreachable endpoint) are not reported one by one:
   * they are in the summary's `failed`, as `TransferAbortedError`.
   */
  onTransferFailed?(source: string, destination: string, error: S3xferError): void;
}

/** Options of {@link copyTree} and {@link syncTree}. */
export interface TreeOptions {
  /** `--exclude`/`--include` rules in order; the last match wins. Default: everything. */
  filters?: FilterRule[];
  /** Follow symlinks in a local source tree (loops are detected). Default true. */
  followSymlinks?: boolean;
  /** Report what would be done (`onPlanned`) and change nothing. Default false. */
  dryRun?: boolean;
  /** Object settings for every upload. */
  extraArgs?: UploadExtraArgs;
  /** Content-Type from each file's extension when `extraArgs` sets none. Default true (see `UploadTransferOptions`). */
  guessContentType?: boolean;
  /** Keys per listing request of the S3 side (`MaxKeys`, the aws CLI's `--page-size`). Default: the store's, 1,000. */
  pageSize?: number;
  /**
   * Only this slice of the work (`--shard K/N`): N jobs with the same operands split the source
   * into contiguous slices of about equal bytes, no overlap and no gap (see {@link ShardSlicer}).
   * Costs one more listing pass. Default: all of it.
   */
  shard?: Shard;
  events?: TreeEvents;
}

/** Options of {@link syncTree}. */
export interface SyncTreeOptions extends TreeOptions {
  /** How files on both sides are compared. Default `size-and-mtime`. */
  mode?: SyncMode;
  /** Delete what the source lacks (`--delete`). Default false. */
  deleteExtra?: boolean;
}

/** What a directory job did. */
export interface TreeSummary {
  /** Transfers that succeeded, and their bytes. */
  transferred: number;
  bytes: number;
  /** Transfers that failed (the others still ran, unless the manager's policy is `stop`). */
  failed: Array<{ source: string; destination: string; error: S3xferError }>;
  skipped: number;
  deleted: number;
  deleteFailed: number;
  /** Files found the same on both sides (sync). */
  unchanged: number;
  seconds: number;
  /**
   * Only with `dryRun` (when `transferred`, `bytes` and `deleted` stay 0): the transfers the job
   * would have made, their bytes, and the deletions. Nothing was changed.
   */
  dryRun?: DryRunCounts;
}

/** What a `dryRun` job would have done. */
export interface DryRunCounts {
  transfers: number;
  bytes: number;
  deletes: number;
}

/**
 * `cp --recursive`: every file under a local directory to keys under an S3 prefix, or every object
 * under a prefix to files under a directory. Transfers start while the listing goes on and share
 * the manager's pool; a failed transfer never stops the others (unless the manager's failure policy
 * is `stop`). Keys that would land outside the directory are skipped, never written.
 * @throws {UsageError} for operands that are not one local directory and one S3 prefix.
 * @throws {TransferAbortedError} when the manager is aborted (every transfer cleaned up first).
 */
export async function copyTree(
  manager: TransferManager,
  source: Location,
  destination: Location,
  options: TreeOptions = {},
): Promise<TreeSummary> {
  const job = new TreeJob(manager, options);
  return job.run(async () => {
    if (source.kind === 'local' && destination.kind === 's3') {
      const { root } = await job.localSource(source);
      const prefix = await job.s3Prefix(destination);
      const list = () => walked(listLocal(root, { followSymlinks: options.followSymlinks ?? true, signal: manager.signal }), job.filter);
      const mine = await job.slicer(list);
      for await (const entry of list()) {
        if (!mine(entry)) continue;
        if (entry.kind === 'skip') job.skipLocal(entry);
        else await job.upload(entry, destination.bucket, prefix + entry.relative);
      }
    } else if (source.kind === 's3' && destination.kind === 'local') {
      const prefix = await job.s3Prefix(source);
      const root = await job.localDestination(destination);
      const list = () => walked(job.listS3(source.bucket, prefix), job.filter);
      const mine = await job.slicer(list);
      for await (const entry of list()) {
        if (entry.kind === 'file' && mine(entry)) await job.download(entry, root);
      }
    } else {
      throw directionError(source, destination);
    }
  });
}

/**
 * `sync`: transfers what is missing at the destination or differs (size and modification time by
 * default; see `compareListings`), and with `deleteExtra` deletes what the source lacks. The two
 * listings are compared as one streaming sorted merge: no listing is held in memory.
 * @throws {UsageError} for operands that are not one local directory and one S3 prefix.
 * @throws {TransferAbortedError} when the manager is aborted (every transfer cleaned up first).
 */
export async function syncTree(
  manager: TransferManager,
  source: Location,
  destination: Location,
  options: SyncTreeOptions = {},
): Promise<TreeSummary> {
  const job = new TreeJob(manager, options);
  const compare = { mode: options.mode, deleteExtra: options.deleteExtra, filter: job.filter };
  return job.run(async () => {
    if (source.kind === 'local' && destination.kind === 's3') {
      const { root } = await job.localSource(source);
      const prefix = await job.s3Prefix(destination);
      const list = () => listLocal(root, { followSymlinks: options.followSymlinks ?? true, signal: manager.signal });
      const mine = await job.slicer(job.sourceRecords(list, { ...compare, direction: 'upload' }));
      const to = job.listS3(destination.bucket, prefix);
      const doomed: string[] = [];
      for await (const decision of compareListings(list(), to, { ...compare, direction: 'upload' })) {
        if (!job.decisionIsMine(decision, mine)) continue;
        if (decision.action === 'copy' && decision.source)
          await job.upload(decision.source, destination.bucket, prefix + decision.relative);
        else if (decision.action === 'delete' && decision.destination?.s3) {
          // Deleted a batch at a time as the merge finds them: no list of every extra key in memory.
          doomed.push(decision.destination.s3.key);
          if (doomed.length >= MAX_DELETE_BATCH) await job.deleteKeys(destination.bucket, doomed.splice(0));
        } else if (decision.action === 'skip-source' && decision.skipped) job.skipLocal(decision.skipped);
        else if (decision.action === 'skip-same') job.summary.unchanged++;
      }
      await job.deleteKeys(destination.bucket, doomed);
    } else if (source.kind === 's3' && destination.kind === 'local') {
      const prefix = await job.s3Prefix(source);
      const root = await job.localDestination(destination);
      const list = () => job.listS3(source.bucket, prefix);
      const mine = await job.slicer(job.sourceRecords(list, { ...compare, direction: 'download' }));
      // A dry run does not make a missing destination: it is compared as an empty directory.
      const to = (await exists(root))
        ? listLocal(root, { followSymlinks: options.followSymlinks ?? true, signal: manager.signal })
        : emptyListing();
      for await (const decision of compareListings(list(), to, { ...compare, direction: 'download' })) {
        if (!job.decisionIsMine(decision, mine)) continue;
        if (decision.action === 'copy' && decision.source) await job.download(decision.source, root);
        else if (decision.action === 'delete' && decision.destination?.local) await job.deleteFile(decision.destination.local.path);
        else if (decision.action === 'skip-same') job.summary.unchanged++;
      }
    } else {
      throw directionError(source, destination);
    }
  });
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

async function* emptyListing(): AsyncGenerator<never> {}

/** The records a copy walks: files the filter keeps and skip records; no prefixes. */
async function* walked<T extends LocalListingEntry | S3ListingEntry>(listing: AsyncIterable<T>, filter: PathFilter): AsyncGenerator<T> {
  for await (const entry of listing) {
    if (entry.kind === 'prefix' || (entry.kind === 'file' && !filter(entry.relative))) continue;
    yield entry;
  }
}

/** The prefix of an S3 location taken as a directory: `a/b` and `a/b/` both mean `a/b/`. */
function prefixOf(location: S3Location): string {
  return directoryPrefix(location.key);
}

function directionError(source: Location, destination: Location): UsageError {
  const name = (l: Location) => (l.kind === 's3' ? formatS3Url(l.bucket, l.key) : l.path);
  return new UsageError(
    `a directory job needs one local directory and one s3://bucket/prefix (got "${name(source)}" and "${name(destination)}")`,
    'BadOperands',
  );
}

/** The state one copy or sync job shares between its steps. */
class TreeJob {
  readonly filter: PathFilter;
  readonly summary: TreeSummary = {
    transferred: 0,
    bytes: 0,
    failed: [],
    skipped: 0,
    deleted: 0,
    deleteFailed: 0,
    unchanged: 0,
    seconds: 0,
  };
  private readonly pending = new Set<Promise<void>>();
  private readonly madeDirectories = new Set<string>();
  /** The destination directory to make before the first object is written (see `localDestination`). */
  private rootToMake: string | undefined;
  private readonly conflicts = createPrefixConflictDetector();
  private readonly started = performance.now();
  private shardSlicer: ShardSlicer | undefined;

  constructor(
    private readonly manager: TransferManager,
    private readonly options: TreeOptions,
  ) {
    this.filter = createFilter(options.filters ?? []);
    if (options.dryRun) this.summary.dryRun = { transfers: 0, bytes: 0, deletes: 0 };
  }

  /** The objects under an S3 prefix of the job, listed with its client, signal and page size. */
  listS3(bucket: string, prefix: string): AsyncGenerator<S3ListingEntry> {
    return listS3(this.manager.client, bucket, prefix, { signal: this.manager.signal, pageSize: this.options.pageSize });
  }

  /**
   * With a shard, a first pass over the source listing (the same records, filtered the same way,
   * as the job will walk) sizes the slices; the returned test then tells, record by record in
   * listing order, which are this job's. Without a shard, everything is.
   */
  async slicer(
    records: () => AsyncIterable<{ kind: string; size?: number }>,
  ): Promise<(record: { kind: string; size?: number }) => boolean> {
    const shard = this.options.shard;
    if (!shard) return () => true;
    async function* weights() {
      for await (const record of records()) yield shardWeight(record);
    }
    const slicer = await ShardSlicer.measure(shard, weights());
    this.shardSlicer = slicer;
    return (record) => slicer.next(shardWeight(record));
  }

  /** The source-side records of a sync merge, as the merge itself yields them (for the first pass). */
  sourceRecords(list: () => AsyncIterable<LocalListingEntry | S3ListingEntry>, compare: CompareOptions) {
    return async function* () {
      for await (const decision of compareListings(list(), emptyListing(), { ...compare, deleteExtra: false })) {
        const record = decision.source ?? decision.skipped;
        if (record) yield record;
      }
    };
  }

  /**
   * Whether a sync decision is this shard's: decisions about a source record follow the source
   * slices; deletions of keys only at the destination go by a hash of the path.
   */
  decisionIsMine(decision: SyncDecision, mine: (record: { kind: string; size?: number }) => boolean): boolean {
    if (!this.shardSlicer) return true;
    const record = decision.source ?? decision.skipped;
    return record ? mine(record) : this.shardSlicer.owns(decision.relative);
  }

  /** Checks the local source directory first: a missing one is the caller's mistake (exit 2). */
  async localSource(location: LocalLocation): Promise<{ root: string }> {
    const info = await stat(location.path).catch((error: NodeJS.ErrnoException) => {
      throw new LocalFileError(
        `${location.path}: source directory does not exist or cannot be read (${error.code})`,
        error.code ?? 'ENOENT',
        {
          operation: 'upload',
          source: location.path,
          isSource: true,
        },
      );
    });
    if (!info.isDirectory()) {
      throw new LocalFileError(`${location.path}: is not a directory (to copy one file, use cp without --recursive)`, 'ENOTDIR', {
        source: location.path,
        isSource: true,
      });
    }
    return { root: location.path };
  }

  /**
   * The prefix, after checking the bucket exists: else every upload would fail alike, or a
   * download's directory would be made for nothing.
   */
  async s3Prefix(location: S3Location): Promise<string> {
    await this.checkBucket(location);
    return prefixOf(location);
  }

  private async checkBucket(location: S3Location): Promise<void> {
    try {
      await this.manager.client.send(new HeadBucketCommand({ Bucket: location.bucket }), { abortSignal: this.manager.signal });
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      // HEAD has no body: name the common case; other refusals (403) are left to the uploads.
      if (status === 404)
        throw toS3xferError(Object.assign(new Error(''), { name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } }), {
          bucket: location.bucket,
        });
      if (status !== 403) throw toS3xferError(error, { bucket: location.bucket });
    }
  }

  /**
   * The destination directory; a file in its place is refused now. A missing one is made when the
   * first object is about to be written ({@link makeRoot}), not before: a listing that fails
   * (credentials the store refuses, which a tolerated HeadBucket 403 cannot tell) or finds
   * nothing leaves no empty directory behind.
   */
  async localDestination(location: LocalLocation): Promise<string> {
    const info = await stat(location.path).catch(() => undefined);
    if (info && !info.isDirectory()) {
      throw new UsageError(`${location.path}: is a file, but a directory is needed to receive many objects`, 'NotADirectory');
    }
    if (!info && !this.options.dryRun) this.rootToMake = location.path;
    return location.path;
  }

  /** Makes the missing destination directory, once. */
  private async makeRoot(): Promise<void> {
    const path = this.rootToMake;
    if (path === undefined) return;
    try {
      await makeDirectories(path);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'ENOTDIR' || code === 'EEXIST') {
        throw new UsageError(`${path}: a part of this path is a file, but a directory is needed to receive many objects`, 'NotADirectory');
      }
      throw fileError(path, error, { operation: 'download', destination: path }, 'cannot create the directory');
    }
    this.rootToMake = undefined;
  }

  skipLocal(entry: Extract<LocalListingEntry, { kind: 'skip' }>): void {
    if (!entry.warning) return; // symlinks skipped on purpose (--no-follow-symlinks)
    this.skip({ path: entry.path, code: entry.code, reason: entry.reason });
  }

  skip(item: SkippedItem): void {
    this.summary.skipped++;
    this.options.events?.onSkip?.(item);
  }

  async upload(entry: StorageEntry, bucket: string, key: string): Promise<void> {
    const path = entry.local?.path ?? entry.relative;
    // As the aws CLI: a file the user may not read is skipped with a warning (exit 2), like an
    // unreadable directory, not a failed transfer.
    const unreadable = unreadableReason(path);
    if (unreadable !== undefined) return this.skip({ path, code: 'Unreadable', reason: unreadable });
    if (this.options.dryRun) return this.plan({ action: 'upload', source: path, destination: formatS3Url(bucket, key) }, entry.size);
    await this.manager.ready();
    this.track(
      this.manager.upload(path, bucket, key, { extraArgs: this.options.extraArgs, guessContentType: this.options.guessContentType }),
      path,
      formatS3Url(bucket, key),
    );
  }

  async download(entry: Extract<S3ListingEntry, { kind: 'file' }>, root: string): Promise<void> {
    const { bucket, key } = entry.s3!;
    const url = formatS3Url(bucket, key);
    const target = localPathForKey(root, entry.relative);
    // An unsafe key is refused for what it is, and never counts as a file that others conflict with.
    if (!target.ok && target.code !== 'DirectoryMarker') return this.skip({ path: url, code: target.code, reason: target.reason });
    const conflict = this.conflicts(entry.relative);
    if (conflict !== undefined) {
      return this.skip({
        path: url,
        code: 'FileAndPrefix',
        reason: `"${conflict}" is both an object and a prefix of "${entry.relative}": one of them cannot be a file here`,
      });
    }
    await this.makeRoot();
    if (!target.ok) {
      // A folder marker (`photos/`) makes a directory, never a file.
      const directory = localPathForKey(root, entry.relative.replace(/\/+$/, ''));
      if (directory.ok) await this.makeDirectory(directory.path, true, url);
      return;
    }
    if (this.options.dryRun) return this.plan({ action: 'download', source: url, destination: target.path }, entry.size);
    if (!(await this.makeDirectory(dirname(target.path), false, url))) return;
    // A directory in the file's place: the download would go inside it (as `cp s3://… DIR` does).
    if (statSyncOrUndefined(target.path)?.isDirectory()) {
      return this.skip({
        path: url,
        code: 'FileAndPrefix',
        reason: `${target.path} is a directory here: the object cannot be a file there`,
      });
    }
    await this.manager.ready();
    // The object's time becomes the file's, so that a sync back does not upload it again.
    const done = this.manager.download(bucket, key, target.path, {
      known: { size: entry.size, etag: entry.etag },
      exactPath: true,
      mtime: new Date(entry.mtimeMs),
    });
    this.track(done, url, target.path);
  }

  async deleteKeys(bucket: string, keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    if (this.options.dryRun) {
      for (const key of keys) this.plan({ action: 'delete', destination: formatS3Url(bucket, key) });
      return;
    }
    const { onPlanned, onDeleteFailed } = this.options.events ?? {};
    const result = await deleteObjects(this.manager.client, bucket, keys, {
      signal: this.manager.signal,
      onDeleted: (key) => onPlanned?.({ action: 'delete', destination: formatS3Url(bucket, key) }),
      onError: (failure) => onDeleteFailed?.(formatS3Url(bucket, failure.key), deleteFailureError(bucket, failure)),
    });
    this.summary.deleted += result.deleted;
    this.summary.deleteFailed += result.failed;
  }

  async deleteFile(path: string): Promise<void> {
    if (this.options.dryRun) return this.plan({ action: 'delete', destination: path });
    try {
      await unlink(path);
      this.summary.deleted++;
      this.options.events?.onPlanned?.({ action: 'delete', destination: path });
    } catch (error) {
      this.summary.deleteFailed++;
      this.options.events?.onDeleteFailed?.(path, toS3xferError(error, { bucket: '', operation: 'delete', destination: path }));
    }
  }

  /**
   * Runs the job's steps, then waits for every transfer and returns the summary. When a step
   * throws, the transfers already started are settled (cleaned up) first; a job stopped by a failed
   * transfer (failure policy `stop`) rejects with that failure rather than the cancellation; a job
   * whose manager the caller aborted rejects with TransferAbortedError, however far it had got.
   */
  async run(steps: () => Promise<void>): Promise<TreeSummary> {
    try {
      await steps();
    } catch (error) {
      await this.settle();
      const stoppedBy = this.summary.failed.find((f) => !isAbortError(f.error));
      throw isAbortError(error) && this.manager.signal.reason instanceof SiblingFailed && stoppedBy ? stoppedBy.error : error;
    }
    await this.settle();
    // Cancelled by the caller: the job rejects, whether or not its listing had ended by then.
    const { signal } = this.manager;
    if (signal.aborted && !(signal.reason instanceof SiblingFailed)) throw new TransferAbortedError({ cause: signal.reason });
    this.summary.seconds = (performance.now() - this.started) / 1000;
    return this.summary;
  }

  private async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** A dry run's change: reported, and counted (`bytes` for a transfer) in the summary. */
  private plan(change: PlannedChange, bytes?: number): void {
    const counts = this.summary.dryRun;
    if (counts && change.action === 'delete') counts.deletes++;
    else if (counts && change.action !== 'mkdir') {
      counts.transfers++;
      counts.bytes += bytes ?? 0;
    }
    this.options.events?.onPlanned?.(change);
  }

  /**
   * Makes a directory (once) for the key at `url`; when a file is in its way, or it cannot be made,
   * the key is reported as skipped and false returned: the other keys go on.
   */
  private async makeDirectory(path: string, announce: boolean, url: string): Promise<boolean> {
    if (this.madeDirectories.has(path)) return true;
    if (this.options.dryRun) {
      if (announce) this.plan({ action: 'mkdir', destination: path });
      this.madeDirectories.add(path);
      return true;
    }
    try {
      await makeDirectories(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const inTheWay = code === 'EEXIST' || code === 'ENOTDIR';
      this.skip({
        path: url,
        code: inTheWay ? 'FileAndPrefix' : 'Unwritable',
        reason: inTheWay
          ? `a file is in the way of the directory ${path}`
          : `cannot make the directory ${path}: ${fileErrorReason(error) ?? String(error)}`,
      });
      return false;
    }
    this.madeDirectories.add(path);
    return true;
  }

  private track(transfer: Promise<{ bytes: number }>, source: string, destination: string): void {
    const settled = transfer.then(
      (result) => {
        this.summary.transferred++;
        this.summary.bytes += result.bytes;
      },
      (error: S3xferError) => {
        this.summary.failed.push({ source, destination, error });
        // A job cancelled by Ctrl-C or by another failure reports that once, not per file.
        if (error.name !== 'TransferAbortedError') this.options.events?.onTransferFailed?.(source, destination, error);
      },
    );
    this.pending.add(settled);
    void settled.finally(() => this.pending.delete(settled));
  }
}
