import {
  ListBucketsCommand,
  type ListBucketsCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { S3ServiceError } from '../errors.js';
import { formatS3Url } from '../location.js';
import { toS3xferError } from '../transfer/error-mapping.js';
import type { PrefixEntry, S3ListingEntry, StorageEntry } from './entries.js';
import { compareKeys } from './keys.js';

/** Options of {@link listS3}. */
export interface ListS3Options {
  /**
   * Group keys that contain this string after the prefix into {@link PrefixEntry} records, as
   * `ls` without `--recursive` does (`/`). Default: none (every key under the prefix).
   */
  delimiter?: string;
  /**
   * With a `delimiter`: within each page, the common prefixes first, then the objects, as
   * `aws s3 ls` prints them. Default false: each page is one run in key order (what a merge needs).
   */
  prefixesFirst?: boolean;
  /** Keys per ListObjectsV2 page (`MaxKeys`). Default: the server's, 1,000 on AWS. */
  pageSize?: number;
  /** Cancels the request in flight; the generator throws a TransferAbortedError. Default: none. */
  signal?: AbortSignal;
}

/**
 * Lists the objects under `prefix` with ListObjectsV2, page by page (one page in memory; any
 * number of keys), in the order S3 returns them: by the UTF-8 bytes of the key. Each object is a
 * {@link StorageEntry} whose `relative` is the key without `prefix` (the prefix is taken
 * literally: `photos` also lists `photos2/…`; pass `photos/` for a "directory"). Keys ending in
 * `/` are folder markers (`isDirMarker`). With a `delimiter`, common prefixes come as
 * {@link PrefixEntry} records, merged into key order within each page.
 *
 * Keys are requested URL-encoded (`EncodingType=url`, as the aws CLI does) so that keys holding
 * characters XML 1.0 cannot carry still list; they are decoded here.
 *
 * @param prefix The key prefix; `''` lists the whole bucket.
 * @throws {S3ServiceError} and the other typed errors of `toS3xferError` (NoSuchBucket, AccessDenied, …).
 * @throws {TransferAbortedError} when `signal` aborts.
 */
export async function* listS3(
  client: S3Client,
  bucket: string,
  prefix: string,
  options: ListS3Options = {},
): AsyncGenerator<S3ListingEntry> {
  const context = { bucket, operation: 'ListObjectsV2', source: formatS3Url(bucket, prefix) };
  let token: string | undefined;
  for (;;) {
    let page: ListObjectsV2CommandOutput;
    try {
      page = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          ...(prefix === '' ? {} : { Prefix: prefix }),
          ...(options.delimiter === undefined ? {} : { Delimiter: options.delimiter }),
          ...(options.pageSize === undefined ? {} : { MaxKeys: options.pageSize }),
          ...(token === undefined ? {} : { ContinuationToken: token }),
          EncodingType: 'url',
        }),
        { abortSignal: options.signal },
      );
    } catch (error) {
      throw toS3xferError(error, context);
    }
    // A store that ignores EncodingType does not echo it: its keys are not encoded.
    const decode = page.EncodingType === 'url' ? decodeKey : (key: string) => key;
    const objects: S3ListingEntry[] = [];
    for (const object of page.Contents ?? []) {
      if (object.Key === undefined) continue;
      const key = decode(object.Key);
      const entry: StorageEntry = {
        kind: 'file',
        relative: relativeKey(key, prefix, context),
        size: object.Size ?? 0,
        mtimeMs: object.LastModified?.getTime() ?? 0,
        ...(object.ETag === undefined ? {} : { etag: object.ETag }),
        ...(key.endsWith('/') ? { isDirMarker: true } : {}),
        s3: { bucket, key, ...(object.StorageClass === undefined ? {} : { storageClass: object.StorageClass }) },
      };
      objects.push(entry);
    }
    const prefixes: S3ListingEntry[] = [];
    for (const common of page.CommonPrefixes ?? []) {
      if (common.Prefix === undefined) continue;
      const key = decode(common.Prefix);
      const entry: PrefixEntry = { kind: 'prefix', relative: relativeKey(key, prefix, context), s3: { bucket, key } };
      prefixes.push(entry);
    }
    if (options.prefixesFirst) {
      yield* prefixes;
      yield* objects;
    } else {
      // S3 returns Contents and CommonPrefixes as two lists; together they are one sorted run.
      const entries = objects.concat(prefixes);
      if (prefixes.length > 0 && objects.length > 0) entries.sort((a, b) => compareKeys(a.relative, b.relative));
      yield* entries;
    }

    if (!page.IsTruncated) return;
    const next = page.NextContinuationToken;
    // Guard against a store that would make this loop forever.
    if (!next || next === token) {
      throw new S3ServiceError(
        `${formatS3Url(bucket, prefix)}: the listing is truncated but the server gave no new continuation token`,
        'InvalidContinuationToken',
        context,
      );
    }
    token = next;
  }
}

/** A bucket, as ListBuckets returns it. */
export interface BucketEntry {
  name: string;
  /** When the bucket was created, in ms since the epoch, when the store says. */
  createdMs?: number;
}

/** Options of {@link listBuckets}. */
export interface ListBucketsOptions {
  /** Cancels the request in flight. Default: none. */
  signal?: AbortSignal;
}

/**
 * The buckets of the caller's account (all pages, when the store paginates ListBuckets).
 * @throws {S3ServiceError} and the other typed errors of `toS3xferError`.
 */
export async function listBuckets(client: S3Client, options: ListBucketsOptions = {}): Promise<BucketEntry[]> {
  const buckets: BucketEntry[] = [];
  let token: string | undefined;
  do {
    let page: ListBucketsCommandOutput;
    try {
      page = await client.send(new ListBucketsCommand(token === undefined ? {} : { ContinuationToken: token }), {
        abortSignal: options.signal,
      });
    } catch (error) {
      const mapped = toS3xferError(error, { bucket: '', operation: 'ListBuckets' });
      mapped.message = mapped.message.replace('bucket ""', 'the list of buckets');
      throw mapped;
    }
    for (const bucket of page.Buckets ?? []) {
      if (bucket.Name === undefined) continue;
      buckets.push({ name: bucket.Name, ...(bucket.CreationDate ? { createdMs: bucket.CreationDate.getTime() } : {}) });
    }
    token = page.ContinuationToken === token ? undefined : page.ContinuationToken;
  } while (token);
  return buckets;
}

/**
 * Decodes a key of an `EncodingType=url` listing. S3 form-encodes (a space may come as `+`, a
 * literal `+` as `%2B`), which is how botocore decodes it too (`unquote_plus`).
 */
function decodeKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    throw new S3ServiceError(`the server listed a key that is not validly URL-encoded: "${key}"`, 'InvalidListing', {
      operation: 'ListObjectsV2',
    });
  }
}

function relativeKey(key: string, prefix: string, context: { bucket: string; operation: string; source: string }): string {
  if (!key.startsWith(prefix)) {
    throw new S3ServiceError(
      `${context.source}: the server listed the key "${key}", which is outside the prefix`,
      'InvalidListing',
      context,
    );
  }
  return key.slice(prefix.length);
}
