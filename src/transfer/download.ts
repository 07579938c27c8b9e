import { createHash, type Hash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import {
  GetObjectCommand,
  type GetObjectCommandInput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import { type ByteRange, planRanges } from '../config.js';
import { IntegrityError, S3xferError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { formatS3Url } from '../location.js';
import { isAbortError } from './error-mapping.js';
import { type DownloadSink, openDownloadSink, resolveDownloadPath } from './local-files.js';
import { type CommonTransferOptions, TransferContext } from './transfer-context.js';

/** Request settings a download may need (boto3's `ExtraArgs` for `download_file`). */
export type DownloadExtraArgs = Partial<
  Pick<
    GetObjectCommandInput,
    'VersionId' | 'SSECustomerAlgorithm' | 'SSECustomerKey' | 'SSECustomerKeyMD5' | 'RequestPayer' | 'ExpectedBucketOwner'
  >
>;

/** Options of {@link downloadFile}. */
export interface DownloadOptions extends CommonTransferOptions {
  /** Version, SSE-C key, requester-pays, expected owner. */
  extraArgs?: DownloadExtraArgs;
}

/**
 * Downloads `s3://bucket/key` to a local file — the port of boto3's
 * `s3.download_file(bucket, key, filename)`. HeadObject gives size and ETag; below
 * `multipartThreshold` one streamed GET, at or above it ranged GETs (`partSize`, `concurrency` in
 * flight) pinned to the ETag with If-Match and checked against Content-Range. Bytes go to a temp
 * file beside the destination, renamed over it only when complete; on failure the temp file is
 * removed and an existing destination is left as it was. Memory stays bounded by the number of
 * requests in flight, whatever the object's size.
 * @param filename a file path, or an existing directory to receive the key's base name.
 * @throws {S3xferError} a typed error: UsageError, LocalFileError, S3ServiceError, NetworkError,
 *   CredentialsError, IntegrityError or TransferAbortedError.
 */
export async function downloadFile(
  client: S3Client,
  bucket: string,
  key: string,
  filename: string,
  options: DownloadOptions = {},
): Promise<TransferResult> {
  const source = formatS3Url(bucket, key);
  const transfer = new TransferContext({ direction: 'download', source, destination: filename }, bucket, key, options);
  const request = { ...options.extraArgs, Bucket: bucket, Key: key };
  let file: DownloadSink | undefined;
  try {
    if (key === '' || key.endsWith('/')) {
      throw new UsageError(`${source} names no object: give the key of a file, e.g. s3://${bucket}/path/file`, 'MissingKey');
    }
    if (filename === '') throw new UsageError(`no destination file name given for ${source}`, 'MissingFile');
    const target = await resolveDownloadPath(filename, key);
    transfer.info.destination = target;
    const head = await headObject(client, request, transfer.signal);
    const size = head.ContentLength ?? 0;
    transfer.events.queued(size);
    file = await openDownloadSink(target);
    const getter = new RangeGetter(client, { ...request, IfMatch: head.ETag }, size, file, transfer);
    // A device or pipe takes its bytes in order: one sequential GET.
    const multipart = file.positional && size >= transfer.config.multipartThreshold && size > transfer.config.partSize;
    const ranges = multipart ? planRanges(size, transfer.config.partSize) : [{ start: 0, end: size - 1 }];
    if (multipart) await getter.getAll(ranges);
    else await getter.getWhole(head);
    await file.commit(size);
    const result = transfer.result({ bytes: size, parts: ranges.length, multipart, etag: head.ETag, versionId: head.VersionId });
    transfer.events.done(result);
    return result;
  } catch (error) {
    await file?.discard();
    const failure = transfer.toError(error);
    transfer.events.failed(failure);
    throw failure;
  }
}

/**
 * HeadObject. HEAD errors have no body, so a 403/404 only says 'Forbidden'/'NotFound'; one
 * one-byte GET then tells which (NoSuchBucket or NoSuchKey, InvalidAccessKeyId or AccessDenied).
 */
async function headObject(client: S3Client, request: GetObjectCommandInput, signal: AbortSignal): Promise<HeadObjectCommandOutput> {
  try {
    return await client.send(new HeadObjectCommand(request), { abortSignal: signal });
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== 403 && status !== 404) throw error;
    // If the probe fails, its error (with a code) is the better one to report.
    const probe = await client.send(new GetObjectCommand({ ...request, Range: 'bytes=0-0' }), { abortSignal: signal });
    (probe.Body as Body | undefined)?.destroy?.();
    throw error;
  }
}

/** Bytes gathered from a response stream before one write to the file. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** Body of a GetObject response: a Node stream, iterable in chunks. */
type Body = AsyncIterable<Uint8Array> & { destroy?: (error?: Error) => void };

/** Marks a failure of the response body (after the headers arrived): worth resuming. */
class BrokenStreamError extends Error {
  override name = 'BrokenStreamError';
}

/** Fetches byte ranges of one object version into a download sink, resuming broken streams. */
class RangeGetter {
  constructor(
    private readonly client: S3Client,
    private readonly request: GetObjectCommandInput,
    private readonly size: number,
    private readonly file: DownloadSink,
    private readonly transfer: TransferContext,
  ) {}

  /** One GET for the whole object; verifies the MD5 when the ETag is a plain one. */
  async getWhole(head: HeadObjectCommandOutput): Promise<void> {
    if (this.size === 0) {
      // A Range on an empty object is unsatisfiable (416): ask for it whole.
      const response = await this.client.send(new GetObjectCommand(this.request), { abortSignal: this.transfer.signal });
      for await (const chunk of (response.Body ?? []) as Body) if (chunk.length > 0) this.unexpected(chunk.length, 0);
      return;
    }
    const expected = plainMd5(head);
    const hash = expected ? createHash('md5') : undefined;
    await this.getRange({ start: 0, end: this.size - 1 }, hash);
    const actual = hash?.digest('hex');
    if (expected && actual !== expected) {
      throw new IntegrityError(
        `${this.transfer.info.source}: downloaded bytes have MD5 ${actual}, the object's ETag says ${expected}`,
        'ChecksumMismatch',
        { source: this.transfer.info.source, destination: this.transfer.info.destination },
      );
    }
  }

  /** Ranged GETs, `concurrency` at a time; the first failure cancels the rest. */
  async getAll(ranges: ByteRange[]): Promise<void> {
    const limit = pLimit(this.transfer.config.concurrency);
    const failed = new AbortController();
    const signal = AbortSignal.any([this.transfer.signal, failed.signal]);
    setMaxListeners(0, signal); // one listener per request in flight
    const jobs = ranges.map((range) =>
      limit(() => {
        signal.throwIfAborted(); // queued parts of a failed or cancelled download never start
        return this.getRange(range, undefined, signal);
      }).catch((error: unknown) => {
        failed.abort(error);
        throw error;
      }),
    );
    const errors = (await Promise.allSettled(jobs)).flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    // Report the failure that started it, not the cancellations it caused.
    if (errors.length > 0) throw errors.find((e) => !isAbortError(e)) ?? errors[0];
  }

  /**
   * Writes one range at its offset. A stream that breaks mid-body is resumed from the first
   * missing byte (no progress rewinds), up to `maxAttempts` times with backoff.
   */
  private async getRange(range: ByteRange, hash?: Hash, signal: AbortSignal = this.transfer.signal): Promise<void> {
    let position = range.start;
    await pRetry(
      async () => {
        const whole = position === 0 && range.end === this.size - 1;
        const response = await this.client.send(
          new GetObjectCommand({ ...this.request, ...(whole ? {} : { Range: `bytes=${position}-${range.end}` }) }),
          { abortSignal: signal },
        );
        this.checkHeaders(response.ContentRange, response.ContentLength, position, range.end, whole);
        const body = response.Body as Body | undefined;
        // Chunks arrive in 16–64 KiB pieces: write them in batches of ~1 MiB (one writev each).
        let batch: Uint8Array[] = [];
        let batchBytes = 0;
        const flush = async () => {
          if (batchBytes === 0) return;
          await this.file.write(batch, position);
          for (const chunk of batch) hash?.update(chunk);
          position += batchBytes;
          this.transfer.events.progress(batchBytes);
          batch = [];
          batchBytes = 0;
        };
        try {
          for await (const chunk of body ?? []) {
            const end = position + batchBytes + chunk.length;
            if (end > range.end + 1) this.unexpected(end - range.start, range.end - range.start + 1);
            batch.push(chunk);
            batchBytes += chunk.length;
            if (batchBytes >= WRITE_BATCH_BYTES) await flush();
          }
        } catch (error) {
          body?.destroy?.();
          if (error instanceof S3xferError || signal.aborted) throw error;
          // Keep the bytes that did arrive: the next attempt resumes after them.
          await flush();
          throw new BrokenStreamError(`the response stream broke at byte ${position}`, { cause: error });
        }
        await flush();
        if (position !== range.end + 1) {
          throw new BrokenStreamError(`the response ended at byte ${position} of ${range.start}-${range.end}`);
        }
      },
      {
        retries: this.transfer.config.maxAttempts - 1,
        minTimeout: 200,
        maxTimeout: 5_000,
        randomize: true,
        signal,
        shouldRetry: ({ error }) => error instanceof BrokenStreamError && !signal.aborted,
      },
    );
  }

  /** Checks that the server sent exactly the bytes asked for. */
  private checkHeaders(
    contentRange: string | undefined,
    contentLength: number | undefined,
    start: number,
    end: number,
    whole: boolean,
  ): void {
    const expected = end - start + 1;
    if (!whole) {
      const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
      if (!match || Number(match[1]) !== start || Number(match[2]) !== end || (match[3] !== '*' && Number(match[3]) !== this.size)) {
        throw new IntegrityError(
          `${this.transfer.info.source}: asked for bytes ${start}-${end}/${this.size}, the server sent Content-Range "${contentRange ?? ''}"`,
          'RangeMismatch',
          { source: this.transfer.info.source },
        );
      }
    }
    if (contentLength !== undefined && contentLength !== expected) this.unexpected(contentLength, expected);
  }

  private unexpected(got: number, expected: number): never {
    throw new IntegrityError(`${this.transfer.info.source}: the server sent ${got} bytes where ${expected} were expected`, 'SizeMismatch', {
      source: this.transfer.info.source,
    });
  }
}

/** The MD5 an ETag stands for, when it is a plain one (not multipart, not SSE-KMS or SSE-C). */
function plainMd5(head: HeadObjectCommandOutput): string | undefined {
  const etag = head.ETag?.replace(/"/g, '');
  if (!etag || !/^[0-9a-f]{32}$/i.test(etag)) return undefined;
  if (head.ServerSideEncryption === 'aws:kms' || head.ServerSideEncryption === 'aws:kms:dsse' || head.SSECustomerAlgorithm)
    return undefined;
  return etag.toLowerCase();
}
