import {
  GetObjectCommand,
  type GetObjectCommandInput,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { DEFAULT_VERIFY_MODE } from '../config.js';
import { type ByteRange, planParts } from '../engine/part-plan.js';
import type { TransferContext } from '../engine/transfer-context.js';
import { S3xferError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { type PartHead, type PassDigests, planVerification } from '../integrity/checks.js';
import { FILE_HASHING_MIN_BYTES, hashWorkers, JOB_FILE_HASHING_MIN_BYTES } from '../integrity/hash-workers.js';
import { multipartEtagParts } from '../integrity/layout.js';
import { DownloadVerification, type VerificationOutcome } from '../integrity/verification.js';
import {
  type DownloadSink,
  makeParentDirectories,
  openDownloadSink,
  removeEmptyDirectories,
  resolveDownloadPath,
} from '../sinks/download-file.js';
import { statusOf } from './error-mapping.js';
import { checkExtraArgs, DOWNLOAD_EXTRA_ARGS, type DownloadExtraArgs } from './extra-args.js';
import { type Body, getEmpty, getRange, type RangeReceiver } from './ranged-get.js';
import { PART_SIZE_METADATA } from './upload.js';

export type { DownloadExtraArgs } from './extra-args.js';

/** What a listing already says about an object: enough to skip a download's HeadObject. */
export interface KnownObject {
  size: number;
  etag?: string;
}

/**
 * One download as tasks on its manager's pool: HeadObject for size, ETag, metadata and stored
 * checksums (a listing's size and ETag replace it for single-part objects), then one streamed GET
 * below the multipart threshold, or ranged GETs pinned to the ETag with If-Match and checked
 * against Content-Range. Bytes go to a temp file beside the destination, renamed over it only
 * when complete and verified (see {@link TransferConfig.verify}); the temp file's removal is the
 * clean-up the transfer registers, so a failure leaves the destination as it was.
 */
export async function runDownload(
  t: TransferContext,
  filename: string,
  extraArgs: DownloadExtraArgs,
  options: { known?: KnownObject; exactPath?: boolean; mtime?: Date; makeDirectories?: boolean } = {},
): Promise<TransferResult> {
  const { known, exactPath = false, mtime, makeDirectories: makeParents = false } = options;
  const source = t.info.source;
  if (t.key === '' || t.key.endsWith('/')) {
    throw new UsageError(`${source} names no object: give the key of a file, e.g. s3://${t.bucket}/path/file`, 'MissingKey');
  }
  if (typeof filename !== 'string' || filename === '') throw new UsageError(`no destination file name given for ${source}`, 'MissingFile');
  checkExtraArgs(extraArgs, DOWNLOAD_EXTRA_ARGS, 'download');
  const request: GetObjectCommandInput = { ...extraArgs, Bucket: t.bucket, Key: t.key };
  // A directory job names the file itself, in a directory it made: no checks to repeat.
  const target = exactPath ? filename : await resolveDownloadPath(filename, t.key, makeParents);
  t.info.destination = target;
  const mode = t.config.verify ?? DEFAULT_VERIFY_MODE;
  const verify = mode !== 'off';
  const head = await objectHead(t, request, known, verify);
  const size = head.ContentLength ?? 0;
  t.events.queued(size);
  const verification = verify ? await planDownloadVerification(t, request, head, size) : undefined;
  verification?.assertVerifiable();

  if (makeParents && !exactPath) {
    // The object exists: now its directories, removed again (those made here) if the download fails.
    const made = await makeParentDirectories(target);
    if (made.length > 0) t.onFailure(() => removeEmptyDirectories(made));
  }
  const file = await openDownloadSink(target, { size, mtime });
  const forget = t.onFailure(async () => {
    await verification?.release(); // the hashing thread closes the temp file first
    await file.discard();
  });
  // A device or pipe takes its bytes in order: one sequential GET.
  const plan = file.positional
    ? planParts(size, t.config, 'download')
    : planParts(size, { multipartThreshold: Infinity, partSize: size }, 'download');
  const ranges = verification ? verification.downloadRanges(plan.ranges, file.positional) : plan.ranges;
  const getter = new RangeGetter(t, { ...request, ...(head.ETag ? { IfMatch: head.ETag } : {}) }, size, file, verification);
  // A big object's MD5 or SHA-256 is hashed by worker threads, from the temp file as it is written;
  // in a directory job (four downloads or more at once) so is a medium one, and the files' MD5s go
  // four at a time.
  const tempPath = tempPathOf(file);
  const alongside = t.fileDownloadsRunning >= 4;
  const threaded = size >= FILE_HASHING_MIN_BYTES || (alongside && size >= JOB_FILE_HASHING_MIN_BYTES);
  const hashed = tempPath !== undefined && threaded ? { path: tempPath, workers: hashWorkers(), alongside } : undefined;
  await getter.fetch(ranges, verification?.startPass(ranges, hashed));
  let outcome: VerificationOutcome = { verified: false, warnings: [] };
  if (verification) {
    // A mismatch is fetched once more (everything: an ETag or CRC does not tell which part is
    // wrong), progress rewinding as s3transfer's does on a retry; a device or pipe cannot rewind.
    const refetch = async () => {
      t.events.progress(-size);
      await getter.fetch(ranges, verification.startPass(ranges, hashed));
    };
    outcome = await verification.conclude(file.positional ? refetch : undefined, tempPath);
  }
  await file.commit(size);
  forget();
  return t.result({
    bytes: size,
    parts: Math.max(1, ranges.length),
    multipart: ranges.length > 1,
    etag: head.ETag,
    versionId: head.VersionId,
    verified: outcome.verified,
    warnings: outcome.warnings,
  });
}

/** What a download needs of HeadObject's answer (or of a listing's record). */
export type ObjectHead = Pick<
  HeadObjectCommandOutput,
  | 'ContentLength'
  | 'ETag'
  | 'VersionId'
  | 'ServerSideEncryption'
  | 'SSECustomerAlgorithm'
  | 'Metadata'
  | 'ChecksumCRC32'
  | 'ChecksumCRC32C'
  | 'ChecksumCRC64NVME'
  | 'ChecksumSHA256'
  | 'ChecksumType'
>;

/**
 * Chooses how to verify the object. Its part layout, when a multipart ETag needs one and the
 * metadata does not give it, may cost one or two HeadObject requests with `PartNumber`.
 */
export async function planDownloadVerification(
  t: TransferContext,
  request: GetObjectCommandInput,
  head: ObjectHead,
  size: number,
  /** Whether the download is in ranges (a file's) or in one ordered pass (a stream's, `false`). Default: by the part plan. */
  rangedByDefault = planParts(size, t.config, 'download').multipart,
): Promise<DownloadVerification> {
  const headPart = async (partNumber: number): Promise<PartHead | undefined> => {
    try {
      const part = await t.send<HeadObjectCommandOutput>(new HeadObjectCommand({ ...request, PartNumber: partNumber }));
      return { contentLength: part.ContentLength, partsCount: part.PartsCount, etag: part.ETag };
    } catch (error) {
      t.throwIfAborted();
      if (error instanceof S3xferError) throw error;
      return undefined; // refused or not understood: the layout is looked for elsewhere
    }
  };
  const plan = await planVerification(
    {
      size,
      etag: head.ETag,
      serverSideEncryption: head.ServerSideEncryption,
      sseCustomerAlgorithm: head.SSECustomerAlgorithm,
      checksums: {
        crc32: head.ChecksumCRC32,
        crc32c: head.ChecksumCRC32C,
        crc64nvme: head.ChecksumCRC64NVME,
        sha256: head.ChecksumSHA256,
        type: head.ChecksumType,
      },
      recordedPartSize: head.Metadata?.[PART_SIZE_METADATA],
    },
    { rangedByDefault, partSize: t.config.partSize, headPart },
  );
  return new DownloadVerification(plan, {
    source: t.info.source,
    destination: t.info.destination,
    size,
    require: (t.config.verify ?? DEFAULT_VERIFY_MODE) === 'require',
  });
}

/** The temp file of an atomic download, to re-read for other guessed part layouts. */
function tempPathOf(file: DownloadSink): string | undefined {
  const path = (file as { tempPath?: unknown }).tempPath;
  return typeof path === 'string' ? path : undefined;
}

/**
 * What a download needs to know of the object before its GETs: a listing's size and ETag when
 * they do (no verification, or a single-part object, whose GET headers tell its encryption), else
 * HeadObject (with the stored checksums when verifying; a multipart one needs its metadata).
 */
export async function objectHead(
  t: TransferContext,
  request: GetObjectCommandInput,
  known: KnownObject | undefined,
  verify: boolean,
): Promise<ObjectHead> {
  const listed = known !== undefined && (!verify || (known.etag !== undefined && multipartEtagParts(known.etag) === undefined));
  return listed ? { ContentLength: known.size, ETag: known.etag } : headObject(t, request, verify);
}

/**
 * HeadObject. HEAD errors have no body, so a 403/404 only says 'Forbidden'/'NotFound'; one
 * one-byte GET then tells which (NoSuchBucket or NoSuchKey, InvalidAccessKeyId or AccessDenied).
 */
export async function headObject(t: TransferContext, request: GetObjectCommandInput, checksums = false): Promise<HeadObjectCommandOutput> {
  try {
    // ChecksumMode: the stored checksums come back too, where the store keeps them.
    return await t.send<HeadObjectCommandOutput>(new HeadObjectCommand({ ...request, ...(checksums ? { ChecksumMode: 'ENABLED' } : {}) }));
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

/** Bytes gathered from a response before one write to the file. */
const WRITE_BATCH_BYTES = 256 * 1024;

/** Batch buffers given back by finished range writers, for the next ones (never more than this many kept). */
const spareBatches: Buffer[] = [];
const MAX_SPARE_BATCHES = 32; // 8 MiB: the batches of 16 ranges in flight

/** Fetches byte ranges of one object version into a download sink, resuming broken streams. */
class RangeGetter {
  constructor(
    private readonly transfer: TransferContext,
    private readonly request: GetObjectCommandInput,
    private readonly size: number,
    private readonly file: DownloadSink,
    private readonly verification?: DownloadVerification,
  ) {}

  /**
   * Fetches `ranges` through the manager's pool (the first failure cancels the rest), feeding
   * their bytes to `digests` as they are written.
   */
  async fetch(ranges: ByteRange[], digests?: PassDigests): Promise<void> {
    const inspect = this.verification ? (response: GetObjectCommandOutput) => this.verification?.inspect(response) : undefined;
    if (this.size === 0) {
      await this.transfer.request((signal) => getEmpty(this.transfer, this.request, signal, inspect));
      return;
    }
    await this.transfer.all(ranges.length, async (index, signal) => {
      const range = ranges[index]!;
      const writer = new FileRangeWriter(this.file, range.start, this.transfer, digests);
      try {
        await getRange(this.transfer, this.request, this.size, range, signal, writer, inspect);
      } finally {
        writer.release();
      }
    });
  }
}

/**
 * Copies a range's bytes into a 256 KiB batch buffer and writes each full batch at its offset (one
 * write per batch, whatever pieces the response comes in), hashing and reporting progress as each
 * batch is written; a resumed stream goes on after the last batch written, with the same digests
 * and no progress rewound. A chunk is copied before `take` returns (it may be a view of a buffer
 * the connection reuses): what does not fit in a full batch goes to the next one, while the full
 * one is written.
 */
class FileRangeWriter implements RangeReceiver {
  private batch: Buffer | undefined;
  private fill = 0;

  constructor(
    private readonly file: DownloadSink,
    public position: number,
    private readonly transfer: TransferContext,
    private readonly digests?: PassDigests,
  ) {}

  take(chunk: Uint8Array): Promise<void> | undefined {
    this.batch ??= takeBatch();
    const room = WRITE_BATCH_BYTES - this.fill;
    if (chunk.length < room) {
      this.batch.set(chunk, this.fill);
      this.fill += chunk.length;
      return undefined;
    }
    if (chunk.length - room >= WRITE_BATCH_BYTES) return this.takeLarge(Buffer.from(chunk));
    // The batch fills: it is written while the rest of the chunk starts the next one.
    this.batch.set(chunk.subarray(0, room), this.fill);
    const full = this.batch;
    this.batch = takeBatch();
    this.fill = chunk.length - room;
    this.batch.set(chunk.subarray(room), 0);
    return this.write(full, WRITE_BATCH_BYTES).finally(() => giveBatch(full));
  }

  /** A chunk larger than a batch (a stream's, never a connection's view), copied first: batch by batch. */
  private async takeLarge(chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length; ) {
      const length = Math.min(chunk.length - offset, WRITE_BATCH_BYTES - this.fill);
      this.batch!.set(chunk.subarray(offset, offset + length), this.fill);
      this.fill += length;
      offset += length;
      if (this.fill === WRITE_BATCH_BYTES) await this.keep();
    }
  }

  async keep(): Promise<void> {
    if (this.fill === 0) return;
    const fill = this.fill;
    this.fill = 0;
    await this.write(this.batch!, fill);
  }

  /** Writes the first `length` bytes of `batch` at the range's position, then hashes and reports them. */
  private async write(batch: Buffer, length: number): Promise<void> {
    const bytes = batch.subarray(0, length);
    await this.file.write([bytes], this.position);
    this.digests?.feed(this.position, [bytes]);
    this.position += length;
    this.transfer.events.progress(length);
  }

  /** Gives the batch buffer back (the range is done, or failed). */
  release(): void {
    if (this.batch) giveBatch(this.batch);
    this.batch = undefined;
  }
}

function takeBatch(): Buffer {
  return spareBatches.pop() ?? Buffer.allocUnsafeSlow(WRITE_BATCH_BYTES);
}

function giveBatch(batch: Buffer): void {
  if (spareBatches.length < MAX_SPARE_BATCHES) spareBatches.push(batch);
}
