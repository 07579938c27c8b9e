import { setMaxListeners } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import pLimit, { type LimitFunction } from 'p-limit';
import { resolveTransferConfig, type TransferConfig } from '../config.js';
import { NetworkError, type S3xferError, UsageError } from '../errors.js';
import type { Direction, TransferInfo, TransferResult, TransferSubscriber } from '../events.js';
import { formatS3Url } from '../location.js';
import { type DownloadExtraArgs, type KnownObject, runDownload } from '../transfer/download.js';
import { isAbortError } from '../transfer/error-mapping.js';
import { runStreamDownload, type StreamDownloadOptions } from '../transfer/stream-download.js';
import { runStreamUpload, type StreamUploadOptions } from '../transfer/stream-upload.js';
import { runUpload, type UploadExtraArgs } from '../transfer/upload.js';
import { EndpointWatch } from './endpoint-watch.js';
import { MemoryBudget } from './memory-budget.js';
import { RequestPool } from './request-pool.js';
import { EndpointUnreachable, SiblingFailed } from './stop-reasons.js';
import { AdaptiveConcurrency, observeThrottling } from './throttle.js';
import { type EngineParts, TransferContext, type TransferOptions } from './transfer-context.js';

/**
 * What a manager does when one of its transfers fails: `continue` lets the others finish and
 * collects the failures (the aws CLI's behaviour for directories); `stop` cancels the others at once.
 * Either way, a transfer that fails because the endpoint cannot be reached (no request of the
 * manager got an answer while its own tried to connect, every attempt) cancels the others, which
 * reject with `TransferAbortedError` code `Cancelled`: see `EndpointWatch`.
 */
export type FailurePolicy = 'continue' | 'stop';

/** Options of a {@link TransferManager}. */
export interface TransferManagerOptions {
  /** Part sizes, threshold, concurrency (requests in flight across all transfers) and memory budget. */
  config?: Partial<TransferConfig>;
  /** Receive every transfer's queued/progress/done/failed events. */
  subscribers?: TransferSubscriber[];
  /** Cancels every transfer; each cleans up (aborts its multipart upload, removes its temp file). */
  abortSignal?: AbortSignal;
  /** Default `continue`. */
  failurePolicy?: FailurePolicy;
  /**
   * Transfers under way at once (files open, temp files created); the others wait their turn
   * before they touch the disk. Default: twice the concurrency, at least 16.
   */
  maxActiveTransfers?: number;
}

/** Options of {@link TransferManager.upload}. */
export interface UploadTransferOptions extends TransferOptions {
  /** Object settings: Content-Type, Metadata, StorageClass, SSE, ACL, Tagging, … */
  extraArgs?: UploadExtraArgs;
  /**
   * Without a ContentType in `extraArgs`, set one from the file name's extension (`.html` →
   * `text/html`). Default true. With false (the aws CLI's `--no-guess-mime-type`), or for a name
   * of no known type: `application/octet-stream`, whatever the size.
   */
  guessContentType?: boolean;
}

/** Options of {@link TransferManager.download}. */
export interface DownloadTransferOptions extends TransferOptions {
  /** Version, SSE-C key, requester-pays, expected owner. */
  extraArgs?: DownloadExtraArgs;
  /**
   * Size and ETag of the object when a listing already gave them: the download then skips its
   * HeadObject (one request less per file).
   */
  known?: KnownObject;
  /**
   * `filename` is the file to write, in a directory that exists (as a directory job makes it):
   * skip resolving it (a directory receiving the key's name, a missing parent). Default false.
   */
  exactPath?: boolean;
  /** The modification time to give the file (a directory job gives the object's LastModified). */
  mtime?: Date;
  /**
   * Make the destination's missing parent directories, as `aws s3 cp` does (the CLI sets it), once
   * the object is known to exist; those it made are removed again if the download fails. Default
   * false, as boto3's `download_file`: a missing directory fails (LocalFileError `ENOENT`).
   */
  makeDirectories?: boolean;
}

/** What a manager has done so far. */
export interface TransferSummary {
  /** Transfers that succeeded. */
  succeeded: number;
  /** Bytes moved by them. */
  bytes: number;
  /** Transfers that failed or were cancelled, with their typed errors. */
  failed: Array<{ transfer: TransferInfo; error: S3xferError }>;
}

/**
 * Runs many transfers over one client with one request pool (`concurrency` requests in flight
 * across all of them), one memory budget for part buffers, one AbortSignal and a failure policy —
 * s3transfer's TransferManager. Submit with {@link upload} and {@link download}, which resolve
 * to each transfer's result; {@link drain} waits for all of them.
 *
 * ```ts
 * const manager = new TransferManager(s3, { config: { concurrency: 16 } });
 * for (const name of files) void manager.upload(name, 'bucket', `backup/${name}`).catch(() => {});
 * const { succeeded, failed } = await manager.drain();
 * ```
 * @throws {UsageError} from the constructor when the config is invalid (before any event).
 */
export class TransferManager {
  readonly config: TransferConfig;
  private readonly pool: RequestPool;
  private readonly budget: MemoryBudget;
  private readonly controller = new AbortController();
  private readonly engine: EngineParts;
  private readonly admission: LimitFunction;
  private readonly maxActive: number;
  private readonly adaptive: AdaptiveConcurrency;
  /** Watches the client for throttling while transfers run (so an idle manager holds no hook). */
  private stopObserving = () => {};
  private readonly failurePolicy: FailurePolicy;
  private readonly running = new Set<Promise<unknown>>();
  /** Downloads to files admitted and not finished (see {@link EngineParts.fileDownloads}). */
  private fileDownloads = 0;
  private readonly summary: TransferSummary = { succeeded: 0, bytes: 0, failed: [] };

  constructor(
    readonly client: S3Client,
    options: TransferManagerOptions = {},
  ) {
    this.config = resolveTransferConfig(options.config);
    this.pool = new RequestPool(this.config.concurrency);
    this.adaptive = new AdaptiveConcurrency(this.pool, this.config.concurrency);
    this.budget = new MemoryBudget(this.config.memoryBudget);
    this.failurePolicy = options.failurePolicy ?? 'continue';
    if (this.failurePolicy !== 'continue' && this.failurePolicy !== 'stop') {
      throw new UsageError(
        `invalid failurePolicy ${JSON.stringify(this.failurePolicy)}: it must be "continue" or "stop"`,
        'InvalidFailurePolicy',
      );
    }
    const maxActive = options.maxActiveTransfers;
    if (maxActive !== undefined && !(Number.isInteger(maxActive) && maxActive >= 1)) {
      throw new UsageError(
        `invalid maxActiveTransfers ${String(maxActive)}: it must be a whole number from 1 up`,
        'InvalidMaxActiveTransfers',
      );
    }
    this.maxActive = maxActive ?? Math.max(16, this.config.concurrency * 2);
    this.admission = pLimit(this.maxActive);
    const signal = options.abortSignal ? AbortSignal.any([options.abortSignal, this.controller.signal]) : this.controller.signal;
    // Every request in flight listens to it.
    setMaxListeners(0, signal);
    this.engine = {
      client,
      config: this.config,
      budget: this.budget,
      signal,
      subscribers: options.subscribers ?? [],
      endpoint: new EndpointWatch(),
      fileDownloads: () => this.fileDownloads,
    };
  }

  /** Uploads a local file to `s3://bucket/key` (see {@link uploadFile}). */
  upload(filename: string, bucket: string, key: string, options: UploadTransferOptions = {}): Promise<TransferResult> {
    const info = { direction: 'upload' as const, source: filename, destination: formatS3Url(bucket, key) };
    return this.submit(info, bucket, key, options, (t) =>
      runUpload(t, filename, options.extraArgs ?? {}, options.guessContentType ?? true),
    );
  }

  /** Downloads `s3://bucket/key` to a local file (see {@link downloadFile}). */
  download(bucket: string, key: string, filename: string, options: DownloadTransferOptions = {}): Promise<TransferResult> {
    const info = { direction: 'download' as const, source: formatS3Url(bucket, key), destination: filename };
    return this.submit(info, bucket, key, options, async (t) => {
      this.fileDownloads++;
      try {
        return await runDownload(t, filename, options.extraArgs ?? {}, options);
      } finally {
        this.fileDownloads--;
      }
    });
  }

  /**
   * Uploads a stream of unknown length (stdin) to `s3://bucket/key` through lib-storage's
   * `Upload`: parts of `partSize` (raised for `options.expectedSize`) are buffered from the stream,
   * at most one per request in flight plus the one being filled, and counted in the memory budget;
   * a stream that ends within the first part is one PutObject. A stream longer than 10,000 parts
   * fails (UsageError, code `StreamTooLarge`) and its multipart upload is aborted. Requests take
   * slots of this manager's pool. The stream is destroyed if the upload fails.
   */
  uploadStream(body: Readable, bucket: string, key: string, options: StreamUploadOptions = {}): Promise<TransferResult> {
    const info = { direction: 'upload' as const, source: options.sourceName ?? '-', destination: formatS3Url(bucket, key) };
    return this.submit(info, bucket, key, options, (t) => runStreamUpload(t, body, options));
  }

  /**
   * Downloads `s3://bucket/key` to a stream (stdout, a pipe): ranges fetched in parallel through
   * this manager's pool and written in order, at most `options.maxBufferedRanges` held in memory
   * (buffers from the memory budget). An output that closes early fails the download with
   * LocalFileError code `EPIPE` and cancels its requests. The stream is ended when done unless
   * `options.end` is false. A write counts once the stream's write callback says so: give a stream
   * whose callbacks mean it. `process.stdout` on a file or device does not (Node writes it with
   * `writeSync` and drops what a short write on a full disk left out), so when it is given there,
   * a write stream on its descriptor is written instead.
   */
  downloadToStream(bucket: string, key: string, writable: Writable, options: StreamDownloadOptions = {}): Promise<TransferResult> {
    const info = { direction: 'download' as const, source: formatS3Url(bucket, key), destination: options.destinationName ?? '-' };
    return this.submit(info, bucket, key, options, (t) => runStreamDownload(t, writable, options));
  }

  /** Cancels every transfer, queued or running; each cleans up before its promise rejects. */
  abort(reason: unknown = new Error('aborted')): void {
    this.controller.abort(reason);
  }

  /** The signal every transfer of this manager follows. */
  get signal(): AbortSignal {
    return this.engine.signal;
  }

  /**
   * Resolves once fewer than `limit` transfers are queued or running: a listing that submits
   * transfers as it goes awaits this, so a million keys never become a million pending promises.
   * Default: four times the transfers under way at once.
   */
  async ready(limit = this.maxActive * 4): Promise<void> {
    while (this.running.size >= limit) await Promise.race(this.running);
  }

  /** Waits for every transfer submitted so far (and any submitted meanwhile); never rejects. */
  async drain(): Promise<TransferSummary> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    this.budget.dropSpares();
    return this.summary;
  }

  /** Requests and memory, now and at their peaks: for tests and diagnostics. */
  get stats() {
    return {
      requestsInFlight: this.pool.inFlight,
      maxRequestsInFlight: this.pool.maxInFlight,
      bufferedBytes: this.budget.inUse,
      maxBufferedBytes: this.budget.maxInUse,
      /** Requests allowed in flight now: below `concurrency` while the store throttles. */
      concurrency: this.pool.concurrency,
      minConcurrency: this.adaptive.minimum,
    };
  }

  private submit(
    info: { direction: Direction; source: string; destination: string },
    bucket: string,
    key: string,
    options: TransferOptions,
    body: (t: TransferContext) => Promise<TransferResult>,
  ): Promise<TransferResult> {
    const t = new TransferContext(this.engine, this.pool.lane(), { ...info }, bucket, key, options);
    const run = this.admission(async () => {
      try {
        t.throwIfAborted();
        if (typeof bucket !== 'string' || bucket === '') {
          throw new UsageError(`no bucket given for ${info.direction === 'upload' ? info.source : info.destination}`, 'MissingBucket');
        }
        if (typeof key !== 'string') throw new UsageError(`no key given for ${info.source} → s3://${bucket}/`, 'MissingKey');
        const result = await body(t);
        this.summary.succeeded++;
        this.summary.bytes += result.bytes;
        t.events.done(result);
        return result;
      } catch (error) {
        const failure = t.toError(error, await t.cleanUp());
        this.summary.failed.push({ transfer: t.info, error: failure });
        t.events.failed(failure);
        if (!isAbortError(failure)) {
          // An endpoint that cannot be reached fails every transfer alike: stop, whatever the policy.
          // (A multipart upload whose abort could not connect either fails as AbortFailed around it.)
          const unreachable = failure instanceof NetworkError || failure.cause instanceof NetworkError;
          if (t.endpointUnreachable && unreachable) this.abort(new EndpointUnreachable(failure.message));
          else if (this.failurePolicy === 'stop') this.abort(new SiblingFailed(failure.message));
        }
        throw failure;
      }
    });
    const tracked = run.catch(() => {});
    if (this.running.size === 0) this.stopObserving = observeThrottling(this.client, this.adaptive);
    this.running.add(tracked);
    void tracked.finally(() => {
      this.running.delete(tracked);
      if (this.running.size === 0) this.stopObserving();
    });
    return run;
  }
}
