import { createHash } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  type CompleteMultipartUploadCommandOutput,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  type MultipartUpload,
  PutObjectCommand,
  type PutObjectCommandInput,
  type PutObjectCommandOutput,
  UploadPartCommand,
  type UploadPartCommandOutput,
} from '@aws-sdk/client-s3';
import mime from 'mime';
import { sendS3 } from '../engine/direct-send.js';
import { type PartPlan, planParts } from '../engine/part-plan.js';
import type { Command, TransferContext } from '../engine/transfer-context.js';
import { IntegrityError, S3xferError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { assertSourceUnchanged, openSourceFile, probeReadable, readInto, type SourceFile } from '../sources/file-source.js';
import { abortMultipartUpload, storedObject } from './completed-upload.js';
import { statusOf } from './error-mapping.js';
import { checkExtraArgs, UPLOAD_EXTRA_ARGS, type UploadExtraArgs } from './extra-args.js';

export type { UploadExtraArgs } from './extra-args.js';

/**
 * User metadata key under which s3xfer records an upload's part size, so that a later download
 * can check the multipart ETag part by part (the part size cannot be read back otherwise).
 */
export const PART_SIZE_METADATA = 's3xfer-part-size';

/**
 * The Content-Type an upload sends: the one given, else the one of `name`'s extension, else
 * application/octet-stream. Without one, the SDK would send application/octet-stream with a
 * PutObject and nothing with a CreateMultipartUpload (the store's default then, binary/octet-stream
 * on S3): this gives every object one type whatever its size, and a file and a stream the same.
 */
export function contentTypeFor(given: string | undefined, name?: string): string {
  return given || (name === undefined ? undefined : mime.getType(name)) || 'application/octet-stream';
}

/** One uploaded part, kept for the completion and for checks and resumes built on it. */
export interface UploadedPart {
  partNumber: number;
  start: number;
  end: number;
  /** The part's ETag as the server returned it (its MD5 on most stores). */
  etag: string;
  /** SHA-256 of the part's bytes, hex: the signed payload hash the server checked. */
  sha256: string;
  /** The part's flexible checksum as the store returned it (`ChecksumCRC32`, …), with --checksum-algorithm. */
  checksums?: Partial<Record<'ChecksumCRC32' | 'ChecksumCRC32C' | 'ChecksumSHA1' | 'ChecksumSHA256' | 'ChecksumCRC64NVME', string>>;
}

/**
 * One upload as tasks on its manager's pool: a file below the multipart threshold (or that fits
 * in one part) is one PutObject signed with its SHA-256; a bigger one is CreateMultipartUpload, then
 * UploadPart bodies read at file offsets into reused buffers, then CompleteMultipartUpload. A
 * failed or cancelled multipart upload is aborted on the server by the clean-up it registers.
 */
export async function runUpload(
  t: TransferContext,
  filename: string,
  extraArgs: UploadExtraArgs,
  guessContentType: boolean,
): Promise<TransferResult> {
  if (typeof filename !== 'string' || filename === '') throw new UsageError('no file name given for the upload', 'MissingFile');
  checkExtraArgs(extraArgs, UPLOAD_EXTRA_ARGS, 'upload');
  if (t.key === '') throw new UsageError(`no key given for the upload of ${filename} to s3://${t.bucket}/`, 'MissingKey');
  const source = await openSourceFile(filename);
  try {
    t.events.queued(source.size);
    t.throwIfAborted();
    const params: PutObjectCommandInput = {
      ...extraArgs,
      Bucket: t.bucket,
      Key: t.key,
      ContentType: contentTypeFor(extraArgs.ContentType, guessContentType ? filename : undefined),
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
    const buffer = await t.budget.takeAtLeast(source.size, signal);
    let sent = false;
    try {
      const body = await readInto(source, buffer, 0, source.size);
      await assertSourceUnchanged(source);
      // A Buffer body (not a stream) lets the SDK resend it on retries; the signed payload hash
      // makes the server verify it, as for the parts of a multipart upload.
      const command = new PutObjectCommand({ ...params, Body: body, ContentLength: source.size });
      const payloadSha256 = createHash('sha256').update(body).digest('hex');
      const progress = bodyProgress(t);
      const output = await sendS3<PutObjectCommandOutput>(t.client, command, { abortSignal: signal, payloadSha256, ...progress.options });
      sent = true;
      progress.answered(source.size);
      return output;
    } finally {
      t.budget.give(buffer, sent);
    }
  });
  return t.result({ bytes: source.size, parts: 1, multipart: false, etag: response.ETag, versionId: response.VersionId });
}

/**
 * A body's progress as it is sent (reported by the request as the connection takes it, taken back
 * if it fails), and the rest once the request is answered: a progress bar moves while the first
 * parts are on their way, not only as each is answered.
 */
function bodyProgress(t: TransferContext): { options: { onBodyProgress: (bytes: number) => void }; answered: (length: number) => void } {
  let reported = 0;
  return {
    options: {
      onBodyProgress: (bytes) => {
        reported += bytes;
        t.events.progress(bytes);
      },
    },
    answered: (length) => {
      if (length !== reported) t.events.progress(length - reported);
      reported = length;
    },
  };
}

/**
 * CreateMultipartUpload → UploadPart × N (through the pool) → CompleteMultipartUpload, riding out
 * lost answers to the first and last: see {@link createMultipartUpload} and {@link completeMultipartUpload}.
 */
async function putInParts(t: TransferContext, source: SourceFile, params: PutObjectCommandInput, plan: PartPlan): Promise<TransferResult> {
  const { Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5, RequestPayer, ExpectedBucketOwner } = params;
  // Requests about the upload (parts, completion, abort) repeat the SSE-C key and payer settings.
  const sameUpload = { Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5, RequestPayer, ExpectedBucketOwner };
  // A flexible checksum (--checksum-algorithm) is computed by the SDK for every part and kept by
  // stores that support it, so later downloads can check it; Complete lists the parts' values.
  const checksumAlgorithm = params.ChecksumAlgorithm;
  const metadata = { ...params.Metadata, [PART_SIZE_METADATA]: String(plan.partSize) };
  const warnings: string[] = [];
  await probeReadable(source);
  const created = await createMultipartUpload(t, { ...params, Metadata: metadata }, warnings);
  const uploadId = created.uploadId;
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
        ...(checksumAlgorithm ? { ChecksumAlgorithm: checksumAlgorithm } : {}),
      });
      const progress = bodyProgress(t);
      const output = await sendS3<UploadPartCommandOutput>(t.client, command, {
        abortSignal: signal,
        payloadSha256: sha256,
        ...progress.options,
      });
      sent = true;
      progress.answered(length);
      return { partNumber: index + 1, start, end, etag: output.ETag ?? '', sha256, ...partChecksums(output) };
    } finally {
      // A part that failed mid-body may still be in a socket's write queue: never reuse its buffer.
      t.budget.give(buffer, sent);
    }
  });

  // Never complete an object from a file that changed under us: it would mix old and new bytes.
  await assertSourceUnchanged(source);
  const completed = await completeMultipartUpload(t, sameUpload, params, created, parts, source.size);
  forget();
  const { etag, versionId } = await storedObject(t, sameUpload, completed, source.size, warnings, 'the file');
  // The store assembled the object from the parts we sent, in order: its ETag says so.
  const expected = expectedMultipartEtag(parts, params);
  if (etag && expected && /^[0-9a-f]{32}-\d+$/.test(normalizeEtag(etag)) && normalizeEtag(etag) !== expected) {
    throw new IntegrityError(
      `${t.info.destination}: the stored object's ETag ${etag} is not the one its parts make ("${expected}")`,
      'EtagMismatch',
      { source: t.info.source, destination: t.info.destination },
    );
  }
  return t.result({ bytes: source.size, parts: parts.length, multipart: true, etag, versionId, warnings });
}

/** The request settings every request about one multipart upload repeats. */
interface UploadScope {
  Bucket: string | undefined;
  Key: string | undefined;
  SSECustomerAlgorithm?: string;
  SSECustomerKey?: string;
  SSECustomerKeyMD5?: string;
  RequestPayer?: PutObjectCommandInput['RequestPayer'];
  ExpectedBucketOwner?: string;
}

/** Our multipart upload, and when its CreateMultipartUpload first left (`performance.now()`). */
interface CreatedUpload {
  uploadId: string;
  sentAt: number;
}

/**
 * Slack for store timestamps: Last-Modified and the Date header count whole seconds, and some
 * stores round Initiated the same way.
 */
const TIMESTAMP_SLACK_MS = 2_000;

/** Pages of one key's uploads we read at most (1,000 uploads a page): a guard against a looping listing. */
const MAX_UPLOAD_PAGES = 100;

/**
 * CreateMultipartUpload, and the clean-up of the uploads its lost answers left. When the store
 * creates an upload but its answer never arrives (a reset, a timeout), the SDK retries and the
 * store creates a second one: the first is ours too, but no one knows its UploadId, so it would
 * stay open (and listed) forever. So a Create that took more than one attempt is followed by a
 * sweep of the key's uploads started since it first left ({@link abortStrayUploads}); a failed
 * Create that may have reached the store leaves the same sweep as the transfer's clean-up.
 * With `uncancelled`, the Create, once sent, is not cancelled with the transfer (stream uploads:
 * an upload the server creates during a cancellation still reaches the caller, whose clean-up
 * aborts it); the sweeps are the same.
 * @throws the Create's error, or NoUploadId.
 */
export async function createMultipartUpload(
  t: TransferContext,
  input: PutObjectCommandInput,
  warnings: string[],
  options: { uncancelled?: boolean } = {},
): Promise<CreatedUpload> {
  const scope: UploadScope = input;
  let sentAt: number | undefined;
  /** Whether the clean-up must sweep: set once an answer may have been lost. */
  let mayHaveLeftStrays = false;
  const forgetSweep = t.onFailure(async () => {
    if (!mayHaveLeftStrays || sentAt === undefined) return;
    // Runs after a failure or a cancellation: the sweep must not be cancelled itself.
    const uploads = await listUploadsOfKey(t, scope, (command) => t.sendUncancelled(command)).catch(() => undefined);
    // Unable to list (refused, unreachable): there is nothing we could report for sure.
    if (!uploads) return;
    const window = createWindow(uploads.serverNow, sentAt);
    await abortStrayUploads(t, scope, selectStrayUploads(uploads.uploads, { key: t.key, ...window }));
  });

  let created: CreateMultipartUploadCommandOutput;
  try {
    created = await t.request((signal) => {
      sentAt = performance.now();
      const command = new CreateMultipartUploadCommand(input);
      return options.uncancelled ? t.client.send(command) : t.client.send(command, { abortSignal: signal });
    });
  } catch (error) {
    // A refusal created nothing; anything else (lost answers before a failure, a Create cancelled
    // in flight, a 5xx) may have left uploads that only a listing can find.
    mayHaveLeftStrays = sentAt !== undefined && mayHaveReachedStore(error);
    throw error;
  }
  const uploadId = created.UploadId;
  if (!uploadId) throw new S3xferError(`${t.info.destination}: the server started a multipart upload without an UploadId`, 'NoUploadId');
  if ((created.$metadata?.attempts ?? 1) <= 1) {
    forgetSweep();
    return { uploadId, sentAt: sentAt! };
  }
  // Retried: every attempt before the last may have created an upload. If this sweep is
  // cancelled, the clean-up above sweeps again.
  mayHaveLeftStrays = true;
  try {
    const uploads = await listUploadsOfKey(t, scope, (command) => t.send(command));
    const ours = uploads.uploads.find((u) => u.UploadId === uploadId);
    const strays = selectStrayUploads(uploads.uploads, {
      key: t.key,
      ...createWindow(uploads.serverNow, sentAt!, ours),
      ownUploadId: uploadId,
      initiatorId: ours?.Initiator?.ID,
    });
    await abortStrayUploads(t, scope, strays);
  } catch (error) {
    t.throwIfAborted();
    // The object will be stored all the same; the strays hold no parts, only a listing entry.
    const why = error instanceof Error ? error.message : String(error);
    warnings.push(`${t.info.destination}: CreateMultipartUpload was retried and unused uploads may remain on the server: ${why}`);
  }
  forgetSweep();
  return { uploadId, sentAt: sentAt! };
}

/**
 * The server-clock interval in which uploads started by our Create attempts were initiated: from
 * the first attempt (the server's "now" minus the time since it left, so the local clock's offset
 * does not matter) to our own upload's Initiated when we have it (strays come before it), else
 * the server's "now".
 */
function createWindow(serverNow: number, sentAt: number, ours?: MultipartUpload): { earliest: number; latest: number } {
  const earliest = serverNow - (performance.now() - sentAt) - TIMESTAMP_SLACK_MS;
  const latest = ours?.Initiated ? ours.Initiated.getTime() : serverNow + TIMESTAMP_SLACK_MS;
  return { earliest, latest };
}

/**
 * The uploads to abort after lost Create answers: those of exactly `key` (the listing's prefix
 * also yields longer keys), initiated within `earliest..latest` (epoch ms, server clock), other
 * than ours, and, when ours is known, started by the same principal. Uploads without an Initiated
 * time are left alone: nothing says they are ours.
 * @internal exported for unit tests.
 */
export function selectStrayUploads(
  uploads: MultipartUpload[],
  filter: { key: string; earliest: number; latest: number; ownUploadId?: string; initiatorId?: string },
): MultipartUpload[] {
  return uploads.filter((u) => {
    if (u.Key !== filter.key || !u.UploadId || u.UploadId === filter.ownUploadId || !u.Initiated) return false;
    if (filter.initiatorId !== undefined && u.Initiator?.ID !== filter.initiatorId) return false;
    const initiated = u.Initiated.getTime();
    return initiated >= filter.earliest && initiated <= filter.latest;
  });
}

/** Aborts uploads left by lost answers, one after the other; an abort that fails stops with its error. */
async function abortStrayUploads(t: TransferContext, scope: UploadScope, strays: MultipartUpload[]): Promise<void> {
  for (const stray of strays) {
    const { RequestPayer, ExpectedBucketOwner } = scope;
    await abortMultipartUpload(t, { Bucket: t.bucket, Key: t.key, UploadId: stray.UploadId, RequestPayer, ExpectedBucketOwner });
  }
}

/**
 * The open multipart uploads of exactly our key (ListMultipartUploads with the key as prefix,
 * page after page), and the server's clock when it answered (its Date header; the local clock
 * corrected by the client's known offset when there is none).
 */
async function listUploadsOfKey(
  t: TransferContext,
  scope: UploadScope,
  send: (command: Command) => Promise<ListMultipartUploadsCommandOutput | undefined>,
): Promise<{ uploads: MultipartUpload[]; serverNow: number }> {
  const { Bucket, Key, RequestPayer, ExpectedBucketOwner } = scope;
  const uploads: MultipartUpload[] = [];
  let serverDate: number | undefined;
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (let page = 0; page < MAX_UPLOAD_PAGES; page++) {
    const command = new ListMultipartUploadsCommand({ Bucket, Prefix: Key, KeyMarker, UploadIdMarker, RequestPayer, ExpectedBucketOwner });
    command.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        const date = Date.parse((out.response as { headers?: Record<string, string> }).headers?.date ?? '');
        if (!Number.isNaN(date)) serverDate = date;
        return out;
      },
      { step: 'deserialize', name: 's3xferServerDate' },
    );
    const output = await send(command);
    uploads.push(...(output?.Uploads ?? []).filter((u) => u.Key === Key));
    // Our key sorts first among the keys it prefixes: once the listing moves past it, we are done.
    if (!output?.IsTruncated || output.NextKeyMarker !== Key || output.NextUploadIdMarker === UploadIdMarker) break;
    KeyMarker = output.NextKeyMarker;
    UploadIdMarker = output.NextUploadIdMarker;
  }
  const offset = (t.client.config as { systemClockOffset?: number }).systemClockOffset ?? 0;
  return { uploads, serverNow: serverDate ?? Date.now() + offset };
}

/**
 * CompleteMultipartUpload, riding out a lost answer: the store completed the object, the client
 * never heard, and the SDK's retry finds the upload gone (S3 answers NoSuchUpload; Ceph happens
 * to answer 200 again). Before failing, the object at the key is checked: accepted when it is
 * provably ours ({@link findCompletedObject}), in which case its HeadObject stands for the answer.
 */
async function completeMultipartUpload(
  t: TransferContext,
  scope: UploadScope,
  params: PutObjectCommandInput,
  created: CreatedUpload,
  parts: UploadedPart[],
  size: number,
): Promise<{ ETag?: string; VersionId?: string }> {
  try {
    return await t.send<CompleteMultipartUploadCommandOutput>(
      new CompleteMultipartUploadCommand({
        ...scope,
        UploadId: created.uploadId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, ...p.checksums })) },
      }),
    );
  } catch (error) {
    if (t.signal.aborted || !mayHaveCompleted(error)) throw error;
    const stored = await findCompletedObject(t, scope, params, created, parts, size);
    if (!stored) throw error;
    return { ETag: stored.ETag, VersionId: stored.VersionId };
  }
}

/**
 * Whether a failed Complete may nevertheless have completed the object: its answer was lost
 * (network errors, 5xx), or a retry met an upload that was gone. A first-attempt refusal
 * (InvalidPart, EntityTooSmall, AccessDenied) completed nothing.
 */
function mayHaveCompleted(error: unknown): boolean {
  const status = statusOf(error);
  const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
  if (status !== undefined && status < 500) return (error as { name?: string }).name === 'NoSuchUpload' || attempts > 1;
  return mayHaveReachedStore(error);
}

/**
 * Whether a failed request may have been carried out by the store. A first-attempt 4xx was a
 * refusal; a connection that could not even be opened sent nothing now (and a listing to check
 * would fail just the same: earlier attempts' lost answers, if any, then stay unchecked).
 */
function mayHaveReachedStore(error: unknown): boolean {
  const status = statusOf(error);
  const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
  if (status !== undefined && status < 500) return attempts > 1;
  const code = (error as { code?: string }).code;
  return !(code !== undefined && UNREACHABLE_CODES.has(code));
}

/** Socket errors raised before a request could be sent: the endpoint is not reachable at all. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * The object a lost Complete answer may have stored, if it is provably ours: the same size, and
 * the multipart ETag of our parts (the MD5 of their binary MD5s, then `-N`) when the part ETags
 * are MD5s. Where they are not (SSE-KMS, SSE-C), the weaker proof is the same size, modified
 * since our Create, and our upload no longer open. Any failure to check means "not proven".
 */
async function findCompletedObject(
  t: TransferContext,
  scope: UploadScope,
  params: PutObjectCommandInput,
  created: CreatedUpload,
  parts: UploadedPart[],
  size: number,
): Promise<HeadObjectCommandOutput | undefined> {
  const { Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5, RequestPayer, ExpectedBucketOwner } = scope;
  try {
    const head = await t.send<HeadObjectCommandOutput>(
      new HeadObjectCommand({ Bucket, Key, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5, RequestPayer, ExpectedBucketOwner }),
    );
    if (head.ContentLength !== size) return undefined;
    const expected = expectedMultipartEtag(parts, params);
    if (expected !== undefined) return normalizeEtag(head.ETag) === expected ? head : undefined;
    const uploads = await listUploadsOfKey(t, scope, (command) => t.send(command));
    if (uploads.uploads.some((u) => u.UploadId === created.uploadId)) return undefined;
    const createdAt = createWindow(uploads.serverNow, created.sentAt).earliest;
    if (!head.LastModified || head.LastModified.getTime() < createdAt) return undefined;
    return head;
  } catch {
    t.throwIfAborted();
    return undefined;
  }
}

/**
 * The ETag S3 gives an object completed from `parts`: the MD5 of their binary MD5s, then `-N`.
 * Undefined when the part ETags are not MD5s (SSE-KMS and SSE-C parts have other ETags).
 * @internal exported for unit tests.
 */
export function expectedMultipartEtag(
  parts: Pick<UploadedPart, 'etag'>[],
  params: Pick<PutObjectCommandInput, 'ServerSideEncryption' | 'SSECustomerAlgorithm'> = {},
): string | undefined {
  if (params.SSECustomerAlgorithm || params.ServerSideEncryption === 'aws:kms' || params.ServerSideEncryption === 'aws:kms:dsse') {
    return undefined;
  }
  const md5s = parts.map((p) => normalizeEtag(p.etag));
  if (md5s.length === 0 || !md5s.every((m) => /^[0-9a-f]{32}$/.test(m))) return undefined;
  const digest = createHash('md5');
  for (const m of md5s) digest.update(Buffer.from(m, 'hex'));
  return `${digest.digest('hex')}-${parts.length}`;
}

/** An ETag without its quotes, in lower case. */
function normalizeEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/"/g, '').toLowerCase();
}

/** The flexible checksums an UploadPart answer carries (none from stores that ignore them). */
function partChecksums(output: UploadPartCommandOutput): Pick<UploadedPart, 'checksums'> {
  const names = ['ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumSHA1', 'ChecksumSHA256', 'ChecksumCRC64NVME'] as const;
  const checksums = Object.fromEntries(names.filter((name) => output[name]).map((name) => [name, output[name]]));
  return Object.keys(checksums).length > 0 ? { checksums } : {};
}
