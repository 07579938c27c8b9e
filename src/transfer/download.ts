import { createHash, type Hash } from 'node:crypto';
import { GetObjectCommand, type GetObjectCommandInput, HeadObjectCommand, type HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import pRetry from 'p-retry';
import { type ByteRange, planParts } from '../engine/part-plan.js';
import type { TransferContext } from '../engine/transfer-context.js';
import { IntegrityError, S3xferError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { type DownloadSink, openDownloadSink, resolveDownloadPath } from '../sinks/download-file.js';
import { statusOf } from './error-mapping.js';

/** Request settings a download may need (boto3's `ExtraArgs` for `download_file`). */
export type DownloadExtraArgs = Partial<
  Pick<
    GetObjectCommandInput,
    'VersionId' | 'SSECustomerAlgorithm' | 'SSECustomerKey' | 'SSECustomerKeyMD5' | 'RequestPayer' | 'ExpectedBucketOwner'
  >
>;

/** What a listing already says about an object: enough to skip a download's HeadObject. */
export interface KnownObject {
  size: number;
  etag?: string;
}

/**
 * One download as tasks on its manager's pool: HeadObject for size and ETag (unless a listing
 * gave them), then one streamed GET below the multipart threshold, or ranged GETs of `partSize`
 * pinned to the ETag with If-Match and checked against Content-Range. Bytes go to a temp file
 * beside the destination, renamed over it only when complete; the temp file's removal is the
 * clean-up the transfer registers, so a failure leaves the destination as it was.
 */
export async function runDownload(
  t: TransferContext,
  filename: string,
  extraArgs: DownloadExtraArgs,
  known?: KnownObject,
): Promise<TransferResult> {
  const source = t.info.source;
  if (t.key === '' || t.key.endsWith('/')) {
    throw new UsageError(`${source} names no object: give the key of a file, e.g. s3://${t.bucket}/path/file`, 'MissingKey');
  }
  if (filename === '') throw new UsageError(`no destination file name given for ${source}`, 'MissingFile');
  const request: GetObjectCommandInput = { ...extraArgs, Bucket: t.bucket, Key: t.key };
  const target = await resolveDownloadPath(filename, t.key);
  t.info.destination = target;
  const head: ObjectHead = known ? { ContentLength: known.size, ETag: known.etag } : await headObject(t, request);
  const size = head.ContentLength ?? 0;
  t.events.queued(size);
  const file = await openDownloadSink(target);
  const forget = t.onFailure(() => file.discard());
  // A device or pipe takes its bytes in order: one sequential GET.
  const plan = file.positional
    ? planParts(size, t.config, 'download')
    : planParts(size, { multipartThreshold: Infinity, partSize: size }, 'download');
  const getter = new RangeGetter(t, { ...request, ...(head.ETag ? { IfMatch: head.ETag } : {}) }, size, file);
  if (plan.multipart) await getter.getAll(plan.ranges);
  else await getter.getWhole(head);
  await file.commit(size);
  forget();
  return t.result({
    bytes: size,
    parts: Math.max(1, plan.ranges.length),
    multipart: plan.multipart,
    etag: head.ETag,
    versionId: head.VersionId,
  });
}

type ObjectHead = Pick<HeadObjectCommandOutput, 'ContentLength' | 'ETag' | 'VersionId' | 'ServerSideEncryption' | 'SSECustomerAlgorithm'>;

/**
 * HeadObject. HEAD errors have no body, so a 403/404 only says 'Forbidden'/'NotFound'; one
 * one-byte GET then tells which (NoSuchBucket or NoSuchKey, InvalidAccessKeyId or AccessDenied).
 */
async function headObject(t: TransferContext, request: GetObjectCommandInput): Promise<HeadObjectCommandOutput> {
  try {
    return await t.send<HeadObjectCommandOutput>(new HeadObjectCommand(request));
  } catch (error) {
    const status = statusOf(error);
    if (status !== 403 && status !== 404) throw error;
    // If the probe fails, its error (with a code) is the better one to report.
    await t.request(async (signal) => {
      const probe = await t.client.send(new GetObjectCommand({ ...request, Range: 'bytes=0-0' }), { abortSignal: signal });
      (probe.Body as Body | undefined)?.destroy?.();
    });
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
    private readonly transfer: TransferContext,
    private readonly request: GetObjectCommandInput,
    private readonly size: number,
    private readonly file: DownloadSink,
  ) {}

  /** One GET for the whole object; verifies the MD5 when the ETag is a plain one. */
  async getWhole(head: ObjectHead): Promise<void> {
    if (this.size === 0) {
      // A Range on an empty object is unsatisfiable (416): ask for it whole.
      await this.transfer.request(async (signal) => {
        const response = await this.transfer.client.send(new GetObjectCommand(this.request), { abortSignal: signal });
        for await (const chunk of (response.Body ?? []) as Body) if (chunk.length > 0) this.unexpected(chunk.length, 0);
      });
      return;
    }
    const expected = plainMd5(head);
    const hash = expected ? createHash('md5') : undefined;
    await this.transfer.request((signal) => this.getRange({ start: 0, end: this.size - 1 }, signal, hash));
    const actual = hash?.digest('hex');
    if (expected && actual !== expected) {
      throw new IntegrityError(
        `${this.transfer.info.source}: downloaded bytes have MD5 ${actual}, the object's ETag says ${expected}`,
        'ChecksumMismatch',
        { source: this.transfer.info.source, destination: this.transfer.info.destination },
      );
    }
  }

  /** Ranged GETs through the manager's pool; the first failure cancels the rest. */
  async getAll(ranges: ByteRange[]): Promise<void> {
    await this.transfer.all(ranges.length, (index, signal) => this.getRange(ranges[index]!, signal));
  }

  /**
   * Writes one range at its offset. A stream that breaks mid-body is resumed from the first
   * missing byte (no progress rewinds), up to `maxAttempts` times with backoff.
   */
  private async getRange(range: ByteRange, signal: AbortSignal, hash?: Hash): Promise<void> {
    let position = range.start;
    await pRetry(
      async () => {
        const whole = position === 0 && range.end === this.size - 1;
        const response = await this.transfer.client.send(
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
function plainMd5(head: ObjectHead): string | undefined {
  const etag = head.ETag?.replace(/"/g, '');
  if (!etag || !/^[0-9a-f]{32}$/i.test(etag)) return undefined;
  if (head.ServerSideEncryption === 'aws:kms' || head.ServerSideEncryption === 'aws:kms:dsse' || head.SSECustomerAlgorithm)
    return undefined;
  return etag.toLowerCase();
}
