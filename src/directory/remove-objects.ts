import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type S3xferError, UsageError } from '../errors.js';
import { directoryPrefix, formatS3Url } from '../location.js';
import { deleteFailureError, deleteObjects } from '../storage/delete-objects.js';
import { createFilter, type FilterRule } from '../storage/filters.js';
import { listS3 } from '../storage/s3-listing.js';
import { toS3xferError } from '../transfer/error-mapping.js';
import type { DryRunCounts } from './tree-jobs.js';

/** Options of {@link removeObjects}. */
export interface RemoveOptions {
  /**
   * Delete every object under `key` taken as a directory (`a/b` and `a/b/` both mean the keys
   * under `a/b/`, never `a/bc`), as `cp --recursive` and `sync` take it. Default false: `key` is one object.
   */
  recursive?: boolean;
  /** `--exclude`/`--include` rules (recursive only), matched against keys relative to the prefix. */
  filters?: FilterRule[];
  /** Report what would be deleted (`onDeleted`) and delete nothing. Default false. */
  dryRun?: boolean;
  /** Keys per listing request (recursive only; `MaxKeys`, the aws CLI's `--page-size`). Default: the store's, 1,000. */
  pageSize?: number;
  signal?: AbortSignal;
  /** Called per key deleted (or, with `dryRun`, that would be). */
  onDeleted?: (key: string) => void;
  /** Called per key the store refused; the others are still deleted. */
  onError?: (key: string, error: S3xferError) => void;
}

/** What {@link removeObjects} did; with `dryRun`, `dryRun.deletes` says how many it would have deleted. */
export interface RemoveSummary {
  deleted: number;
  deleteFailed: number;
  dryRun?: DryRunCounts;
}

/**
 * `rm`: deletes one object, or every object under a prefix (listed page by page, deleted in
 * batches of 1,000 with DeleteObjects). Per-key refusals are reported through `onError`, not thrown.
 * @throws {UsageError} for an empty bucket, or an empty key without `recursive` (never a DeleteBucket).
 * @throws {S3xferError} when the listing or a whole request fails (missing bucket, no access).
 */
export async function removeObjects(client: S3Client, bucket: string, key: string, options: RemoveOptions = {}): Promise<RemoveSummary> {
  if (typeof bucket !== 'string' || bucket === '') throw new UsageError('no bucket given to remove from', 'MissingBucket');
  if (!options.recursive) {
    // DeleteObject with an empty key is `DELETE /bucket/`: DeleteBucket, which removes an empty bucket.
    if (typeof key !== 'string' || key === '') {
      throw new UsageError(`no key given to remove from s3://${bucket}/ (to remove every object under a prefix: recursive)`, 'MissingKey');
    }
    if (options.dryRun) {
      options.onDeleted?.(key);
      return { deleted: 0, deleteFailed: 0, dryRun: { transfers: 0, bytes: 0, deletes: 1 } };
    }
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: options.signal });
    } catch (error) {
      throw toS3xferError(error, { bucket, key, operation: 'delete', destination: formatS3Url(bucket, key) });
    }
    options.onDeleted?.(key);
    return { deleted: 1, deleteFailed: 0 };
  }
  const filter = createFilter(options.filters ?? []);
  async function* keys(): AsyncGenerator<string> {
    for await (const entry of listS3(client, bucket, directoryPrefix(key), { signal: options.signal, pageSize: options.pageSize })) {
      if (entry.kind === 'file' && filter(entry.relative)) yield entry.s3!.key;
    }
  }
  if (options.dryRun) {
    let deletes = 0;
    for await (const k of keys()) {
      deletes++;
      options.onDeleted?.(k);
    }
    return { deleted: 0, deleteFailed: 0, dryRun: { transfers: 0, bytes: 0, deletes } };
  }
  const result = await deleteObjects(client, bucket, keys(), {
    signal: options.signal,
    onDeleted: options.onDeleted,
    onError: (failure) => options.onError?.(failure.key, deleteFailureError(bucket, failure)),
  });
  return { deleted: result.deleted, deleteFailed: result.failed };
}
