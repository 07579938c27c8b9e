import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import mime from 'mime';
import { uploadPartSize, uploadQueueSize } from '../config.js';
import { IntegrityError, S3xferError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { formatS3Url } from '../location.js';
import { assertSourceUnchanged, fileChanged, openSourceFile, readSourceBytes, type SourceFile } from './local-files.js';
import { type CommonTransferOptions, TransferContext } from './transfer-context.js';

/**
 * Object settings an upload may set (boto3's `ExtraArgs` for `upload_file`). Content-Type is
 * guessed from the file name when not given.
 */
export type UploadExtraArgs = Partial<
  Pick<
    PutObjectCommandInput,
    | 'ACL'
    | 'BucketKeyEnabled'
    | 'CacheControl'
    | 'ContentDisposition'
    | 'ContentEncoding'
    | 'ContentLanguage'
    | 'ContentType'
    | 'ExpectedBucketOwner'
    | 'Expires'
    | 'GrantFullControl'
    | 'GrantRead'
    | 'GrantReadACP'
    | 'GrantWriteACP'
    | 'Metadata'
    | 'ObjectLockLegalHoldStatus'
    | 'ObjectLockMode'
    | 'ObjectLockRetainUntilDate'
    | 'RequestPayer'
    | 'SSECustomerAlgorithm'
    | 'SSECustomerKey'
    | 'SSECustomerKeyMD5'
    | 'SSEKMSEncryptionContext'
    | 'SSEKMSKeyId'
    | 'ServerSideEncryption'
    | 'StorageClass'
    | 'Tagging'
    | 'WebsiteRedirectLocation'
  >
>;

/** Options of {@link uploadFile}. */
export interface UploadOptions extends CommonTransferOptions {
  /** Object settings: Content-Type, Metadata, StorageClass, SSE, ACL, Tagging, … */
  extraArgs?: UploadExtraArgs;
}

/**
 * Uploads a local file to `s3://bucket/key` — the port of boto3's
 * `s3.upload_file(filename, bucket, key)`. Below `multipartThreshold` one PutObject (with
 * Content-MD5, so the server checks the bytes); at or above it a multipart upload through
 * lib-storage with `concurrency` parts in flight. A failed or aborted multipart upload is always
 * aborted on the server: no orphaned parts.
 * @throws {S3xferError} a typed error: UsageError, LocalFileError, S3ServiceError, NetworkError,
 *   CredentialsError, IntegrityError or TransferAbortedError.
 */
export async function uploadFile(
  client: S3Client,
  filename: string,
  bucket: string,
  key: string,
  options: UploadOptions = {},
): Promise<TransferResult> {
  const destination = formatS3Url(bucket, key);
  const transfer = new TransferContext({ direction: 'upload', source: filename, destination }, bucket, key, options);
  let source: SourceFile | undefined;
  try {
    if (filename === '') throw new UsageError('no file name given for the upload', 'MissingFile');
    if (key === '') throw new UsageError(`no key given for the upload of ${filename} to s3://${bucket}/`, 'MissingKey');
    source = await openSourceFile(filename);
    transfer.events.queued(source.size);
    transfer.throwIfAborted();
    const extraArgs = options.extraArgs ?? {};
    const contentType = extraArgs.ContentType ?? mime.getType(filename) ?? undefined;
    const params: PutObjectCommandInput = { ...extraArgs, Bucket: bucket, Key: key, ...(contentType ? { ContentType: contentType } : {}) };
    // A file that fits in one part goes up as one PutObject either way: ours carries Content-MD5.
    const { multipartThreshold, partSize } = transfer.config;
    const result =
      source.size < multipartThreshold || source.size <= partSize
        ? await putWhole(client, source, params, transfer)
        : await putInParts(client, source, params, transfer);
    transfer.events.done(result);
    return result;
  } catch (error) {
    const failure = transfer.toError(error);
    transfer.events.failed(failure);
    throw failure;
  } finally {
    await source?.handle.close().catch(() => {});
  }
}

/**
 * One PutObject. The file is read once into memory: it is below the multipart threshold
 * (≤ 256 MiB) or fits in one part, the same memory a multipart upload would use for a part.
 */
async function putWhole(
  client: S3Client,
  source: SourceFile,
  params: PutObjectCommandInput,
  transfer: TransferContext,
): Promise<TransferResult> {
  const body = await readSourceBytes(source, 0, source.size);
  await assertSourceUnchanged(source);
  // A Buffer body (not a stream) lets the SDK resend it on retries; Content-MD5 makes S3 verify it.
  const contentMD5 = createHash('md5').update(body).digest('base64');
  const response = await client.send(new PutObjectCommand({ ...params, Body: body, ContentLength: source.size, ContentMD5: contentMD5 }), {
    abortSignal: transfer.signal,
  });
  transfer.events.progress(source.size);
  return transfer.result({ bytes: source.size, parts: 1, multipart: false, etag: response.ETag, versionId: response.VersionId });
}

/**
 * Bytes per read of a multipart upload's file; lib-storage copies reads into parts. 4 MiB reads
 * measured about 8% less CPU per GiB but 70 MiB more memory: not worth it.
 */
const READ_CHUNK_BYTES = 1024 * 1024;

/** A multipart upload through lib-storage, with parts raised to fit within 10,000. */
async function putInParts(
  client: S3Client,
  source: SourceFile,
  params: PutObjectCommandInput,
  transfer: TransferContext,
): Promise<TransferResult> {
  const partSize = uploadPartSize(source.size, transfer.config.partSize);
  const tracked = trackMultipart(client, transfer.signal);
  // Read exactly the size seen at open, and fail (so lib-storage aborts rather than completes)
  // when the file turns out shorter or was modified: never a truncated or mixed object.
  const stream = source.handle.createReadStream({
    start: 0,
    end: Math.max(source.size - 1, 0),
    autoClose: false,
    highWaterMark: READ_CHUNK_BYTES,
  });
  const body = Readable.from(exactly(stream, source), { objectMode: false });
  const upload = new Upload({
    client: tracked.client,
    params: { ...params, Body: body, ContentLength: source.size },
    partSize,
    queueSize: uploadQueueSize(partSize, transfer.config),
    leavePartsOnError: false,
  });
  let reported = 0;
  upload.on('httpUploadProgress', ({ loaded }) => {
    if (loaded !== undefined && loaded > reported) {
      transfer.events.progress(loaded - reported);
      reported = loaded;
    }
  });
  try {
    const output = await upload.done();
    const parts = Math.max(1, Math.ceil(source.size / partSize));
    const head = await client.send(
      new HeadObjectCommand({
        Bucket: params.Bucket,
        Key: params.Key,
        SSECustomerAlgorithm: params.SSECustomerAlgorithm,
        SSECustomerKey: params.SSECustomerKey,
        SSECustomerKeyMD5: params.SSECustomerKeyMD5,
        ...(output.VersionId ? { VersionId: output.VersionId } : {}),
      }),
    );
    if (head.ContentLength !== source.size) {
      throw new IntegrityError(
        `${transfer.info.destination}: the stored object has ${head.ContentLength} bytes, the file ${source.size}`,
        'SizeMismatch',
        { source: transfer.info.source, destination: transfer.info.destination },
      );
    }
    transfer.events.progress(source.size - reported);
    // Ceph answers CompleteMultipartUpload with an empty <ETag/>; HeadObject has the real one.
    return transfer.result({
      bytes: source.size,
      parts,
      multipart: parts > 1,
      etag: output.ETag || head.ETag,
      versionId: output.VersionId ?? head.VersionId,
    });
  } catch (error) {
    const cause = tracked.rootCause(error);
    const leftovers = await tracked.abortLeftovers(params.Bucket!, params.Key!);
    if (leftovers.length === 0) throw cause;
    const failure = transfer.toError(cause);
    throw new S3xferError(
      `${failure.message}; and the multipart upload ${leftovers.join(', ')} could not be aborted, so its parts remain on the server`,
      'AbortFailed',
      { operation: 'upload', source: transfer.info.source, destination: transfer.info.destination, cause: failure },
    );
  } finally {
    body.destroy();
    stream.destroy();
  }
}

/** Passes the file's bytes through, then checks that they were all there and unchanged. */
async function* exactly(stream: AsyncIterable<Buffer>, source: SourceFile): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += chunk.length;
    yield chunk;
  }
  if (bytes !== source.size) throw fileChanged(source);
  await assertSourceUnchanged(source);
}

/**
 * Wraps the client lib-storage sends through, so that cancellation and clean-up do not depend on
 * lib-storage's internals: part requests get the caller's AbortSignal (in-flight parts stop at
 * once), and every UploadId created is remembered until it is completed or aborted. lib-storage
 * aborts failed uploads itself; `abortLeftovers` makes sure, and reports when it could not.
 */
function trackMultipart(client: S3Client, signal: AbortSignal) {
  const open = new Set<string>();
  const abortErrors = new WeakSet<object>();
  let firstFailure: unknown;
  const send = async (command: unknown, options?: { abortSignal?: AbortSignal }) => {
    // Creating, completing and aborting are never cancelled: we must learn every UploadId and
    // must be able to clean up after a cancellation.
    const bookkeeping =
      command instanceof CreateMultipartUploadCommand ||
      command instanceof CompleteMultipartUploadCommand ||
      command instanceof AbortMultipartUploadCommand;
    if (!bookkeeping) signal.throwIfAborted();
    let output: { UploadId?: string };
    try {
      output = (await client.send(command as never, bookkeeping ? options : { ...options, abortSignal: signal })) as { UploadId?: string };
    } catch (error) {
      if (command instanceof AbortMultipartUploadCommand && typeof error === 'object' && error) abortErrors.add(error);
      else firstFailure ??= error;
      throw error;
    }
    if (command instanceof CreateMultipartUploadCommand && output.UploadId) open.add(output.UploadId);
    if (command instanceof CompleteMultipartUploadCommand || command instanceof AbortMultipartUploadCommand) {
      open.delete((command.input as { UploadId?: string }).UploadId ?? '');
    }
    return output;
  };
  const tracked = new Proxy(client, {
    get: (target, property, receiver) => (property === 'send' ? send : Reflect.get(target, property, receiver)),
  });
  return {
    client: tracked,
    /**
     * The error worth reporting: lib-storage rethrows a failed clean-up's error in place of the
     * failure that caused the clean-up.
     */
    rootCause(error: unknown): unknown {
      return typeof error === 'object' && error && abortErrors.has(error) && firstFailure !== undefined ? firstFailure : error;
    },
    /** Aborts every upload still open; returns the UploadIds that could not be aborted. */
    async abortLeftovers(bucket: string, key: string): Promise<string[]> {
      for (const uploadId of open) {
        try {
          await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
          open.delete(uploadId);
        } catch (error) {
          if ((error as { name?: string }).name === 'NoSuchUpload') open.delete(uploadId);
        }
      }
      return [...open];
    },
  };
}
