import {
  AbortMultipartUploadCommand,
  type AbortMultipartUploadCommandInput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import pRetry from 'p-retry';
import { quote } from 'shell-quote';
import type { TransferContext } from '../engine/transfer-context.js';
import { IntegrityError } from '../errors.js';
import { statusOf } from './error-mapping.js';

/** What identifies the object of an upload in a HeadObject (SSE-C keys included). */
export interface StoredObjectScope {
  Bucket?: string;
  Key?: string;
  SSECustomerAlgorithm?: string;
  SSECustomerKey?: string;
  SSECustomerKeyMD5?: string;
}

/**
 * The ETag and version of an object a multipart upload just completed, as results carry them.
 * Ceph answers CompleteMultipartUpload with an empty `<ETag/>` (and a repeated Complete with an
 * unquoted one): then HeadObject supplies it and checks the stored size against `size`. The object
 * is stored whatever HeadObject answers, so a refusal (write-only credentials get 403) or an outage
 * only skips the check, with a warning.
 * @throws {IntegrityError} (`SizeMismatch`) when the stored object has another size.
 */
export async function storedObject(
  t: TransferContext,
  scope: StoredObjectScope,
  completed: { ETag?: string; VersionId?: string },
  size: number,
  warnings: string[],
  /** What the bytes came from, for the message: `the file`, `the stream`. */
  origin: string,
): Promise<{ etag?: string; versionId?: string }> {
  const etag = completed.ETag && !completed.ETag.startsWith('"') ? `"${completed.ETag}"` : completed.ETag;
  if (etag) return { etag, versionId: completed.VersionId };
  const { Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5 } = scope;
  let head: HeadObjectCommandOutput;
  try {
    head = await t.send<HeadObjectCommandOutput>(
      new HeadObjectCommand({
        Bucket,
        Key,
        SSECustomerAlgorithm,
        SSECustomerKey,
        SSECustomerKeyMD5,
        ...(completed.VersionId ? { VersionId: completed.VersionId } : {}),
      }),
    );
  } catch (error) {
    t.throwIfAborted();
    const status = statusOf(error);
    const why = status === 403 ? 'HeadObject was refused (403)' : `HeadObject failed (${(error as Error).name || status})`;
    warnings.push(`${t.info.destination}: stored, but its size and ETag were not checked: ${why}`);
    return { versionId: completed.VersionId };
  }
  if (head.ContentLength !== size) {
    throw new IntegrityError(
      `${t.info.destination}: the stored object has ${head.ContentLength} bytes, ${origin} had ${size}`,
      'SizeMismatch',
      {
        source: t.info.source,
        destination: t.info.destination,
      },
    );
  }
  return { etag: head.ETag, versionId: completed.VersionId ?? head.VersionId };
}

/**
 * The clean-up of a failed multipart upload. Sent through the pool but not cancelled: it must run
 * after a Ctrl-C. The client retries each request already; a second round rides out a longer
 * outage. An upload the server no longer knows (NoSuchUpload) needs no abort.
 * @throws {Error} naming the UploadId when the upload could not be aborted.
 */
export async function abortMultipartUpload(t: TransferContext, input: AbortMultipartUploadCommandInput): Promise<void> {
  const noSuchUpload = (error: unknown) => (error as { name?: string }).name === 'NoSuchUpload';
  try {
    await pRetry(() => t.sendUncancelled(new AbortMultipartUploadCommand(input)), {
      retries: 2,
      minTimeout: 500,
      shouldRetry: ({ error }) => !noSuchUpload(error),
    });
  } catch (error) {
    if (noSuchUpload(error)) return;
    // Its parts cost storage until removed: say how (s3xfer has no command of its own for it).
    const how = quote([
      'aws',
      's3api',
      'abort-multipart-upload',
      '--bucket',
      input.Bucket ?? '',
      '--key',
      input.Key ?? '',
      '--upload-id',
      input.UploadId ?? '',
    ]);
    throw new Error(
      `the multipart upload ${input.UploadId} could not be aborted, so its parts remain on the server (remove them with \`${how}\`, or a lifecycle rule that aborts incomplete multipart uploads)`,
      { cause: error },
    );
  }
}
