import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompleteMultipartUploadCommandOutput,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandOutput,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { formatBytes, MiB, S3_LIMITS, type TransferConfig } from '../config.js';
import type { Command, TransferContext, TransferOptions } from '../engine/transfer-context.js';
import { describeValue, IntegrityError, LocalFileError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { abortMultipartUpload, storedObject } from './completed-upload.js';
import { fileErrorReason, isAbortError } from './error-mapping.js';
import { checkExtraArgs, UPLOAD_EXTRA_ARGS } from './extra-args.js';
import { contentTypeFor, createMultipartUpload, PART_SIZE_METADATA, type UploadExtraArgs } from './upload.js';

/** Options of {@link TransferManager.uploadStream}. */
export interface StreamUploadOptions extends TransferOptions {
  /** Object settings: Content-Type (none is guessed for a stream), Metadata, StorageClass, SSE, ACL, … */
  extraArgs?: UploadExtraArgs;
  /**
   * The stream's size in bytes, or an upper bound: the aws CLI's `--expected-size`. The part size
   * is raised (to a whole MiB) so that this many bytes fit in 10,000 parts. Default: unknown, so
   * the configured part size is used and a stream longer than 10,000 parts of it fails
   * (UsageError, code `StreamTooLarge`) with its multipart upload aborted.
   */
  expectedSize?: number;
  /** How the source is named in events, results and errors. Default `-` (stdin, as the CLI writes it). */
  sourceName?: string;
  /**
   * The most parts the upload may have. Default 10,000, S3's limit. Only tests lower it: a stream
   * then outgrows its upload after a few parts instead of after 10,000.
   */
  maxParts?: number;
}

/** How a stream is cut and how much of it is held in memory. */
export interface StreamUploadPlan {
  /** Bytes per part: the configured part size, raised for `expectedSize`. */
  partSize: number;
  /** Parts uploading at once (lib-storage's `queueSize`). */
  queueSize: number;
  /**
   * Bytes counted against the manager's memory budget while the stream uploads: one part per
   * upload in flight, plus the one lib-storage is filling from the stream.
   */
  reservedBytes: number;
  /** The longest stream that fits: `maxParts × partSize`. */
  maxBytes: number;
}

/**
 * The part size, parallelism and memory of a stream upload. Parts in flight are limited by the
 * concurrency and by the memory budget (less one part, the one being filled): when a large
 * `expectedSize` forces big parts, fewer run at once, as for files.
 * @throws {UsageError} when `expectedSize` is not a byte count, or too large for one S3 object.
 */
export function planStreamUpload(
  config: Pick<TransferConfig, 'partSize' | 'concurrency' | 'memoryBudget'>,
  expectedSize?: number,
  maxParts: number = S3_LIMITS.maxParts,
): StreamUploadPlan {
  let partSize = config.partSize;
  if (expectedSize !== undefined) {
    if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) {
      throw new UsageError(`invalid expected size ${expectedSize}: it must be a whole number of bytes`, 'InvalidSize');
    }
    const needed = Math.ceil(expectedSize / maxParts);
    if (needed > partSize) partSize = Math.ceil(needed / MiB) * MiB;
    if (partSize > S3_LIMITS.maxPartSize) {
      throw new UsageError(
        `expected size ${formatBytes(expectedSize)} is too large for one S3 object (${maxParts.toLocaleString('en-US')} parts of at most ${formatBytes(S3_LIMITS.maxPartSize)})`,
        'StreamTooLarge',
      );
    }
  }
  const queueSize = Math.max(1, Math.min(config.concurrency, Math.floor(config.memoryBudget / partSize) - 1));
  return { partSize, queueSize, reservedBytes: (queueSize + 1) * partSize, maxBytes: maxParts * partSize };
}

/**
 * One upload from a stream of unknown length (stdin), through lib-storage's `Upload`: it reads
 * parts of `partSize` into memory (a stream cannot be re-read or read at offsets, unlike a file)
 * and uploads `queueSize` of them at once; a stream that ends within the first part goes up as
 * one PutObject. Around it, s3xfer keeps its guarantees:
 * - every request lib-storage sends takes a slot of the manager's pool and follows the transfer's
 *   AbortSignal (lib-storage passes none to its requests);
 * - its buffers are counted in the manager's memory budget for as long as the upload runs;
 * - the first failure stops the rest at once: parts in flight are cancelled (lib-storage would
 *   wait for them, and cannot cancel them), and a failed or cancelled multipart upload is
 *   aborted on the server by the transfer's clean-up, whether or not lib-storage managed to;
 * - a stream that outgrows `maxParts × partSize` fails before the part that S3 would refuse.
 * The stream is destroyed when the upload fails.
 */
export async function runStreamUpload(t: TransferContext, body: Readable, options: StreamUploadOptions): Promise<TransferResult> {
  // From JavaScript a string or Buffer can arrive here: lib-storage would take it, this reader not.
  const candidate = body as Partial<Readable> | null;
  if (typeof candidate?.pipe !== 'function' || typeof candidate.destroy !== 'function' || !(Symbol.asyncIterator in candidate)) {
    throw new UsageError(
      `uploadStream needs a Readable stream, not ${describeValue(body)} (for data in memory: Readable.from([data]))`,
      'InvalidStream',
    );
  }
  // Whatever fails, the stream is not read any further (its producer sees a closed pipe).
  t.onFailure(async () => {
    body.destroy();
  });
  if (t.key === '') throw new UsageError(`no key given for the upload of ${t.info.source} to s3://${t.bucket}/`, 'MissingKey');
  checkExtraArgs(options.extraArgs ?? {}, UPLOAD_EXTRA_ARGS, 'upload');
  const plan = planStreamUpload(t.config, options.expectedSize, options.maxParts);
  const maxParts = options.maxParts ?? S3_LIMITS.maxParts;
  // The size is unknown until the stream ends: progress displays show "?".
  t.events.queued(undefined as unknown as number);
  const unreserve = await t.budget.reserve(plan.reservedBytes, t.signal);
  const libStorageAbort = new AbortController();
  // The first failure, whoever saw it: lib-storage then only says "Upload aborted.".
  let failure: unknown;
  const fail = (error: unknown) => {
    failure ??= error;
    libStorageAbort.abort();
  };
  const sender = new PooledSender(t, fail);
  t.onFailure(async () => {
    libStorageAbort.abort();
    try {
      await sender.shutdown();
    } finally {
      unreserve();
    }
  });
  const stopOnAbort = () => libStorageAbort.abort();
  t.signal.addEventListener('abort', stopOnAbort, { once: true });

  const counter = { bytes: 0 };
  const source = Readable.from(
    countBytes(body, counter, plan.maxBytes, fail, () => streamTooLarge(t, plan, maxParts)),
    { objectMode: false },
  );
  const extraArgs = options.extraArgs ?? {};
  const upload = new Upload({
    client: sender.client,
    params: {
      ...extraArgs,
      ContentType: contentTypeFor(extraArgs.ContentType),
      Bucket: t.bucket,
      Key: t.key,
      Body: source,
      // As for files: the part size lets a download check the multipart ETag part by part.
      Metadata: { ...extraArgs.Metadata, [PART_SIZE_METADATA]: String(plan.partSize) },
    },
    partSize: plan.partSize,
    queueSize: plan.queueSize,
    leavePartsOnError: false,
    abortController: libStorageAbort,
  });
  let output: CompleteMultipartUploadCommandOutput;
  try {
    output = await upload.done();
  } catch (error) {
    // done() rejects with lib-storage's "Upload aborted." when s3xfer stopped it: report the cause.
    throw failure ?? error;
  } finally {
    t.signal.removeEventListener('abort', stopOnAbort);
  }
  if (failure !== undefined) throw failure;
  unreserve();

  if (sender.bytesSent !== counter.bytes) {
    throw new IntegrityError(
      `${t.info.destination}: read ${counter.bytes} bytes from ${t.info.source} but uploaded ${sender.bytesSent}`,
      'SizeMismatch',
      { source: t.info.source, destination: t.info.destination },
    );
  }
  const warnings = [...sender.warnings];
  const { etag, versionId } = await storedObject(
    t,
    { Bucket: t.bucket, Key: t.key, ...extraArgs },
    output,
    counter.bytes,
    warnings,
    'the stream',
  );
  const multipart = sender.uploadId !== undefined;
  return t.result({ bytes: counter.bytes, parts: multipart ? sender.parts : 1, multipart, etag, versionId, warnings });
}

/**
 * Passes the stream's chunks on, counting them, and fails once they no longer fit in the upload:
 * before lib-storage would cut part `maxParts + 1`, which S3 refuses only after every earlier part
 * has been uploaded.
 */
async function* countBytes(
  body: Readable,
  counter: { bytes: number },
  maxBytes: number,
  fail: (error: unknown) => void,
  tooLarge: () => Error,
): AsyncGenerator<Buffer> {
  const iterator = body[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<unknown>;
    try {
      next = await iterator.next();
    } catch (error) {
      const failure = readError(error);
      fail(failure);
      throw failure;
    }
    if (next.done) return;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : (next.value as Buffer);
    counter.bytes += chunk.length;
    if (counter.bytes > maxBytes) {
      const failure = tooLarge();
      fail(failure);
      throw failure;
    }
    yield chunk;
  }
}

function readError(error: unknown): unknown {
  if (isAbortError(error)) return error;
  const reason = fileErrorReason(error) ?? (error as Error)?.message ?? String(error);
  const code = (error as { code?: string })?.code ?? 'EIO';
  return new LocalFileError(`the input stream failed: ${reason}`, code, { operation: 'upload', isSource: true, cause: error });
}

function streamTooLarge(t: TransferContext, plan: StreamUploadPlan, maxParts: number): UsageError {
  return new UsageError(
    `${t.info.source}: the stream is longer than ${maxParts.toLocaleString('en-US')} parts of ${formatBytes(plan.partSize)} ` +
      `(${formatBytes(plan.maxBytes)}), the most one multipart upload can hold; nothing was stored. Give its size or an upper ` +
      'bound with --expected-size (library: expectedSize) so that the part size can be raised, or a larger --part-size',
    'StreamTooLarge',
    { operation: 'upload', source: t.info.source, destination: t.info.destination },
  );
}

/**
 * The S3 client lib-storage sees: the transfer's client whose `send` takes a slot of the manager's
 * pool and carries the transfer's AbortSignal, and which keeps what a clean-up needs (the
 * UploadId, whether it was aborted or completed) and counts the bytes sent.
 */
class PooledSender {
  readonly client: S3Client;
  uploadId: string | undefined;
  parts = 0;
  bytesSent = 0;
  /** Warnings of the CreateMultipartUpload (unused uploads its lost answers may have left). */
  readonly warnings: string[] = [];
  private completed = false;
  private readonly aborted = new Set<string>();
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly t: TransferContext,
    private readonly onFailure: (error: unknown) => void,
  ) {
    this.signal = AbortSignal.any([t.signal, this.stop.signal]);
    const send = (command: Command) => this.send(command);
    this.client = new Proxy(t.client, { get: (target, property) => (property === 'send' ? send : Reflect.get(target, property)) });
  }

  /**
   * Stops lib-storage for good (its later requests fail at once), waits for its requests in flight,
   * then aborts the multipart upload unless it was completed or already aborted.
   */
  async shutdown(): Promise<void> {
    this.closed = true;
    this.stop.abort();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    const uploadId = this.uploadId;
    if (uploadId === undefined || this.completed || this.aborted.has(uploadId)) return;
    await abortMultipartUpload(this.t, { Bucket: this.t.bucket, Key: this.t.key, UploadId: uploadId });
  }

  private send(command: Command): Promise<unknown> {
    if (this.closed) return Promise.reject(abortError());
    const sent = this.dispatch(command);
    this.inFlight.add(sent);
    void sent.catch(() => {}).finally(() => this.inFlight.delete(sent));
    return sent;
  }

  private async dispatch(command: Command): Promise<unknown> {
    const { t } = this;
    if (command instanceof AbortMultipartUploadCommand) {
      const output = await t.sendUncancelled(command);
      if (command.input.UploadId) this.aborted.add(command.input.UploadId);
      return output;
    }
    try {
      if (command instanceof CreateMultipartUploadCommand) {
        // Not cancelled once sent: an upload the server creates while we are being cancelled must
        // still reach us, so that the clean-up can abort it. (A cancelled transfer never sends it.)
        // As for files, uploads created by attempts whose answers were lost are swept (aborted).
        const input = command.input as PutObjectCommandInput;
        const { uploadId } = await createMultipartUpload(t, input, this.warnings, { uncancelled: true });
        this.uploadId = uploadId;
        // lib-storage reads only the UploadId of the answer.
        return { UploadId: uploadId, $metadata: {} } satisfies CreateMultipartUploadCommandOutput;
      }
      const output = await t.request(async () => {
        this.signal.throwIfAborted();
        return (await t.client.send(command as never, { abortSignal: this.signal })) as unknown;
      });
      if (command instanceof CompleteMultipartUploadCommand) this.completed = true;
      if (command instanceof UploadPartCommand || command instanceof PutObjectCommand) {
        const bytes = (command.input.Body as Buffer | undefined)?.length ?? 0;
        if (command instanceof UploadPartCommand) this.parts++;
        this.bytesSent += bytes;
        t.events.progress(bytes);
      }
      return output;
    } catch (error) {
      // The first real failure stops the rest: lib-storage alone would wait for the parts in flight.
      if (!this.signal.aborted || !isAbortError(error)) this.onFailure(error);
      throw error;
    }
  }
}

function abortError(): Error {
  return Object.assign(new Error('the upload was stopped'), { name: 'AbortError' });
}
