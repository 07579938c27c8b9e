import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  type AbortMultipartUploadCommandInput,
  CompleteMultipartUploadCommand,
  type CompleteMultipartUploadCommandOutput,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  type PutObjectCommandInput,
  type PutObjectCommandOutput,
  UploadPartCommand,
  type UploadPartCommandOutput,
} from '@aws-sdk/client-s3';
import mime from 'mime';
import pRetry from 'p-retry';
import { type PartPlan, planParts } from '../engine/part-plan.js';
import type { TransferContext } from '../engine/transfer-context.js';
import { IntegrityError, S3xferError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { assertSourceUnchanged, openSourceFile, readInto, type SourceFile } from '../sources/file-source.js';
import { statusOf } from './error-mapping.js';
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

/**
 * User metadata key under which s3xfer records an upload's part size, so that a later download
 * can check the multipart ETag part by part (the part size cannot be read back otherwise).
 */
export const PART_SIZE_METADATA = 's3xfer-part-size';

/** One uploaded part, kept for the completion and for checks and resumes built on it. */
export interface UploadedPart {
  partNumber: number;
  start: number;
  end: number;
  /** The part's ETag as the server returned it (its MD5 on most stores). */
  etag: string;
  /** SHA-256 of the part's bytes, hex: the signed payload hash the server checked. */
  sha256: string;
}

/**
 * One upload as tasks on its manager's pool: a file below the multipart threshold (or that fits
 * in one part) is one PutObject with Content-MD5; a bigger one is CreateMultipartUpload, then
 * UploadPart bodies read at file offsets into reused buffers, then CompleteMultipartUpload. A
 * failed or cancelled multipart upload is aborted on the server by the clean-up it registers.
 */
export async function runUpload(t: TransferContext, filename: string, extraArgs: UploadExtraArgs): Promise<TransferResult> {
  if (filename === '') throw new UsageError('no file name given for the upload', 'MissingFile');
  if (t.key === '') throw new UsageError(`no key given for the upload of ${filename} to s3://${t.bucket}/`, 'MissingKey');
  const source = await openSourceFile(filename);
  try {
    t.events.queued(source.size);
    t.throwIfAborted();
    const contentType = extraArgs.ContentType ?? mime.getType(filename) ?? undefined;
    const params: PutObjectCommandInput = {
      ...extraArgs,
      Bucket: t.bucket,
      Key: t.key,
      ...(contentType ? { ContentType: contentType } : {}),
    };
    const plan = planParts(source.size, t.config, 'upload');
    return plan.multipart ? await putInParts(t, source, params, plan) : await putWhole(t, source, params);
  } finally {
    await source.handle.close().catch(() => {});
  }
}

/**
 * One PutObject. The file is read once into a buffer from the manager's budget: it is below the
 * multipart threshold (at most 256 MiB) or fits in one part.
 */
async function putWhole(t: TransferContext, source: SourceFile, params: PutObjectCommandInput): Promise<TransferResult> {
  const response = await t.request(async (signal) => {
    const buffer = await t.budget.take(source.size, signal);
    let sent = false;
    try {
      const body = await readInto(source, buffer, 0, source.size);
      await assertSourceUnchanged(source);
      // A Buffer body (not a stream) lets the SDK resend it on retries; Content-MD5 makes S3 verify it.
      const contentMD5 = createHash('md5').update(body).digest('base64');
      const command = new PutObjectCommand({ ...params, Body: body, ContentLength: source.size, ContentMD5: contentMD5 });
      const output: PutObjectCommandOutput = await t.client.send(command, { abortSignal: signal });
      sent = true;
      return output;
    } finally {
      t.budget.give(buffer, sent);
    }
  });
  t.events.progress(source.size);
  return t.result({ bytes: source.size, parts: 1, multipart: false, etag: response.ETag, versionId: response.VersionId });
}

/** CreateMultipartUpload → UploadPart × N (through the pool) → CompleteMultipartUpload. */
async function putInParts(t: TransferContext, source: SourceFile, params: PutObjectCommandInput, plan: PartPlan): Promise<TransferResult> {
  const { Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5, RequestPayer, ExpectedBucketOwner } = params;
  // Requests about the upload (parts, completion, abort) repeat the SSE-C key and payer settings.
  const sameUpload = { Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5, RequestPayer, ExpectedBucketOwner };
  const metadata = { ...params.Metadata, [PART_SIZE_METADATA]: String(plan.partSize) };
  const created = await t.send<CreateMultipartUploadCommandOutput>(new CreateMultipartUploadCommand({ ...params, Metadata: metadata }));
  const uploadId = created.UploadId;
  if (!uploadId) throw new S3xferError(`${t.info.destination}: the server started a multipart upload without an UploadId`, 'NoUploadId');
  const forget = t.onFailure(() =>
    abortMultipartUpload(t, { Bucket: t.bucket, Key: t.key, UploadId: uploadId, RequestPayer, ExpectedBucketOwner }),
  );

  const parts = await t.all(plan.ranges.length, async (index, signal): Promise<UploadedPart> => {
    const { start, end } = plan.ranges[index]!;
    const length = end - start + 1;
    const buffer = await t.budget.take(plan.partSize, signal);
    let sent = false;
    try {
      const body = await readInto(source, buffer, start, length);
      // The signed payload hash is the server's check of the bytes (S3 and Ceph refuse a body
      // that does not match it). Computing it here, rather than in the SDK's signer, keeps it.
      const sha256 = createHash('sha256').update(body).digest('hex');
      const command = new UploadPartCommand({
        ...sameUpload,
        UploadId: uploadId,
        PartNumber: index + 1,
        Body: body,
        ContentLength: length,
      });
      signPayloadAs(command, sha256);
      const output: UploadPartCommandOutput = await t.client.send(command, { abortSignal: signal });
      sent = true;
      t.events.progress(length);
      return { partNumber: index + 1, start, end, etag: output.ETag ?? '', sha256 };
    } finally {
      // A part that failed mid-body may still be in a socket's write queue: never reuse its buffer.
      t.budget.give(buffer, sent);
    }
  });

  // Never complete an object from a file that changed under us: it would mix old and new bytes.
  await assertSourceUnchanged(source);
  const completed = await t.send<CompleteMultipartUploadCommandOutput>(
    new CompleteMultipartUploadCommand({
      ...sameUpload,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
    }),
  );
  forget();
  const warnings: string[] = [];
  let etag = completed.ETag;
  let versionId = completed.VersionId;
  if (!etag) {
    // Ceph answers CompleteMultipartUpload with an empty <ETag/>: only HeadObject has it.
    const head = await headStoredObject(t, sameUpload, versionId, warnings);
    if (head && head.ContentLength !== source.size) {
      throw new IntegrityError(
        `${t.info.destination}: the stored object has ${head.ContentLength} bytes, the file ${source.size}`,
        'SizeMismatch',
        { source: t.info.source, destination: t.info.destination },
      );
    }
    etag = head?.ETag;
    versionId ??= head?.VersionId;
  }
  return t.result({ bytes: source.size, parts: parts.length, multipart: true, etag, versionId, warnings });
}

/**
 * HeadObject of a just-completed upload. The object is stored whatever this answers, so a refusal
 * (write-only credentials get 403) or an outage only skips the check, with a warning.
 */
async function headStoredObject(
  t: TransferContext,
  request: { Bucket?: string; Key?: string; SSECustomerAlgorithm?: string; SSECustomerKey?: string; SSECustomerKeyMD5?: string },
  versionId: string | undefined,
  warnings: string[],
): Promise<HeadObjectCommandOutput | undefined> {
  const { Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5 } = request;
  try {
    return await t.send<HeadObjectCommandOutput>(
      new HeadObjectCommand({
        Bucket,
        Key,
        SSECustomerAlgorithm,
        SSECustomerKey,
        SSECustomerKeyMD5,
        ...(versionId ? { VersionId: versionId } : {}),
      }),
    );
  } catch (error) {
    t.throwIfAborted();
    const status = statusOf(error);
    const why = status === 403 ? 'HeadObject was refused (403)' : `HeadObject failed (${(error as Error).name || status})`;
    warnings.push(`${t.info.destination}: stored, but its size and ETag were not checked: ${why}`);
    return undefined;
  }
}

/**
 * The clean-up of a failed multipart upload. Sent through the pool but not cancelled: it must run
 * after a Ctrl-C. An upload the server no longer knows (NoSuchUpload) needs no abort.
 */
async function abortMultipartUpload(t: TransferContext, input: AbortMultipartUploadCommandInput): Promise<void> {
  const noSuchUpload = (error: unknown) => (error as { name?: string }).name === 'NoSuchUpload';
  try {
    // The client retries each request already; a second round rides out a longer outage.
    await pRetry(() => t.sendUncancelled(new AbortMultipartUploadCommand(input)), {
      retries: 2,
      minTimeout: 500,
      shouldRetry: ({ error }) => !noSuchUpload(error),
    });
  } catch (error) {
    if (noSuchUpload(error)) return;
    throw new Error(`the multipart upload ${input.UploadId} could not be aborted, so its parts remain on the server`, { cause: error });
  }
}

/**
 * Makes the SDK sign `command` with a payload hash computed by the caller, instead of hashing the
 * body again itself (the signer takes an `x-amz-content-sha256` header that is already set).
 */
function signPayloadAs(command: UploadPartCommand, sha256: string): void {
  command.middlewareStack.add(
    (next) => (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 's3xferPayloadHash' },
  );
}
