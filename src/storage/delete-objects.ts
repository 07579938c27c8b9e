import { DeleteObjectCommand, DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3ServiceError, type S3xferError, TransferAbortedError } from '../errors.js';
import { formatS3Url } from '../location.js';
import { statusOf, toS3xferError } from '../transfer/error-mapping.js';

/** A key S3 refused to delete (reported by {@link deleteObjects}, not thrown). */
export interface DeleteFailure {
  key: string;
  /** S3's error code (`AccessDenied`, …), or `InvalidKey` for an empty key, which is never sent. */
  code: string;
  message: string;
}

/**
 * A key the store refused, as the error rm and sync --delete report (`not deleted (AccessDenied)`;
 * the reporter puts the key's URL before it, and a message that only repeats the code adds nothing).
 */
export function deleteFailureError(bucket: string, failure: DeleteFailure): S3ServiceError {
  const detail = failure.message && failure.message !== failure.code ? `: ${failure.message}` : '';
  return new S3ServiceError(`not deleted (${failure.code}${detail})`, failure.code, {
    operation: 'delete',
    destination: formatS3Url(bucket, failure.key),
  });
}

/** Options of {@link deleteObjects}. */
export interface DeleteObjectsOptions {
  /** Stops sending batches and cancels those in flight; the call throws a TransferAbortedError. Default: none. */
  signal?: AbortSignal;
  /** Called once per key S3 deleted (or found already gone: S3 treats that as success). Default: none. */
  onDeleted?: (key: string) => void;
  /** Called once per key S3 refused. Default: none. */
  onError?: (failure: DeleteFailure) => void;
  /** Keys per DeleteObjects request, 1–1,000 (the S3 limit). Default 1,000. */
  batchSize?: number;
  /** DeleteObjects requests in flight at once. Default 4. */
  concurrency?: number;
}

/** What {@link deleteObjects} did. */
export interface DeleteResult {
  deleted: number;
  failed: number;
}

/** The most keys one DeleteObjects request may carry. */
export const MAX_DELETE_BATCH = 1000;

// Characters XML 1.0 cannot carry (C0 controls other than tab, LF and CR; U+FFFE, U+FFFF): a
// DeleteObjects body naming such a key is refused whole, so those keys go through DeleteObject.
function isXmlSafe(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0xfffe || c === 0xffff) return false;
  }
  return true;
}

/**
 * Deletes keys with DeleteObjects in batches of up to 1,000, reading `keys` lazily (a listing can
 * feed it directly). Quiet mode: S3 answers only with the keys it could not delete, each reported
 * through `onError` and counted, never thrown; every other key of the batch is reported through
 * `onDeleted`. A key repeated within a batch is sent and reported once. The SDK adds the checksum DeleteObjects requires (a CRC32 header; Content-MD5 is
 * not needed by AWS or Ceph RGW).
 *
 * @throws {S3ServiceError} when a whole request fails (NoSuchBucket, AccessDenied on the bucket,
 *   5xx after retries): batches in flight are awaited first, later keys are not read.
 * @throws {TransferAbortedError} when `signal` aborts.
 */
export async function deleteObjects(
  client: S3Client,
  bucket: string,
  keys: AsyncIterable<string> | Iterable<string>,
  options: DeleteObjectsOptions = {},
): Promise<DeleteResult> {
  const batchSize = Math.min(MAX_DELETE_BATCH, Math.max(1, Math.floor(options.batchSize ?? MAX_DELETE_BATCH)));
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const { signal } = options;
  const result: DeleteResult = { deleted: 0, failed: 0 };
  const inFlight = new Set<Promise<void>>();
  let failure: S3xferError | undefined;

  const deleted = (key: string) => {
    result.deleted++;
    options.onDeleted?.(key);
  };
  const failed = (key: string, code: string, message: string) => {
    result.failed++;
    options.onError?.({ key, code, message });
  };

  // Keys of requests that were sent but got no answer (cancelled, connection lost, a 5xx): the
  // store may have deleted some or all of them, and goes on deleting after a cancellation.
  let unanswered = 0;
  const unanswering = (error: unknown, keys: number) => {
    const status = statusOf(error);
    if (status === undefined || status >= 500) unanswered += keys;
  };

  const sendBatch = async (batch: string[]) => {
    let refused: Map<string, { Code?: string; Message?: string }>;
    try {
      const output = await client.send(
        new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        { abortSignal: signal },
      );
      refused = new Map((output.Errors ?? []).filter((error) => error.Key !== undefined).map((error) => [error.Key!, error]));
    } catch (error) {
      unanswering(error, batch.length);
      throw toS3xferError(error, { bucket, operation: 'DeleteObjects', destination: formatS3Url(bucket, '') });
    }
    for (const key of batch) {
      const error = refused.get(key);
      if (error === undefined) deleted(key);
      else failed(key, error.Code ?? 'Unknown', error.Message || error.Code || 'not deleted');
    }
  };

  const sendOne = async (key: string) => {
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      deleted(key);
    } catch (error) {
      const mapped = toS3xferError(error, { bucket, key, operation: 'DeleteObject' });
      // A key the store refused is that key's failure; no answer at all (a cancellation, an
      // endpoint gone after its retries) stops the job, as for a batch.
      if (mapped instanceof TransferAbortedError || statusOf(error) === undefined) {
        unanswering(error, 1);
        throw mapped;
      }
      failed(key, mapped.code, mapped.message);
    }
  };

  const launch = (work: Promise<void>) => {
    const tracked: Promise<void> = work
      .catch((error: S3xferError) => {
        failure ??= error;
      })
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  const maybeDeleted = () =>
    `delete requests for ${unanswered} key${unanswered === 1 ? '' : 's'} were sent without an answer: the store may have deleted some or all of them (and goes on with a request it has)`;
  const aborted = () =>
    new TransferAbortedError({
      operation: 'DeleteObjects',
      destination: formatS3Url(bucket, ''),
      cause: signal?.reason,
      ...(unanswered > 0 ? { unfinished: maybeDeleted() } : {}),
    });
  let batch = new Set<string>();
  const flush = async () => {
    if (batch.size > 0) launch(sendBatch([...batch]));
    batch = new Set();
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
  };

  try {
    for await (const key of keys) {
      if (failure !== undefined) break;
      if (signal?.aborted) throw aborted();
      if (key === '') failed(key, 'InvalidKey', 'an empty key cannot be deleted');
      else if (!isXmlSafe(key)) {
        launch(sendOne(key));
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
      } else {
        batch.add(key);
        if (batch.size >= batchSize) await flush();
      }
    }
    if (failure === undefined && !signal?.aborted) await flush();
  } finally {
    await Promise.all(inFlight);
  }
  if (signal?.aborted || failure instanceof TransferAbortedError) throw aborted();
  if (failure !== undefined) {
    if (unanswered > 0) failure.message += `; ${maybeDeleted()}`;
    throw failure;
  }
  return result;
}
