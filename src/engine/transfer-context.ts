import { setMaxListeners } from 'node:events';
import type { S3Client } from '@aws-sdk/client-s3';
import type { TransferConfig } from '../config.js';
import { S3xferError, TransferAbortedError } from '../errors.js';
import { SubscriberSet, type TransferInfo, type TransferProgress, type TransferResult, type TransferSubscriber } from '../events.js';
import { isAbortError, toS3xferError } from '../transfer/error-mapping.js';
import { sendS3 } from './direct-send.js';
import type { EndpointWatch } from './endpoint-watch.js';
import type { MemoryBudget } from './memory-budget.js';
import type { Lane } from './request-pool.js';
import { EndpointUnreachable, SiblingFailed } from './stop-reasons.js';

/** Options of one transfer submitted to a {@link TransferManager}. */
export interface TransferOptions {
  /** Receive this transfer's queued/progress/done/failed events (besides the manager's subscribers). */
  subscribers?: TransferSubscriber[];
  /** Shorthand for a subscriber with only `onProgress` (boto3's `Callback`). */
  onProgress?: (progress: TransferProgress) => void;
  /** Cancels this transfer only; whatever it started is cleaned up before its promise rejects. */
  abortSignal?: AbortSignal;
}

/** What a transfer gets from the manager that runs it. */
export interface EngineParts {
  client: S3Client;
  config: TransferConfig;
  budget: MemoryBudget;
  signal: AbortSignal;
  subscribers: TransferSubscriber[];
  endpoint: EndpointWatch;
  /** How many downloads to files the manager is running (admitted, not finished), this one included: many in a directory job. */
  fileDownloads: () => number;
}

/** Any S3 command (the SDK's overloads do not accept a union of command types). */
export type Command = { readonly input: object };

/** A clean-up a transfer registers while it runs (abort this UploadId, remove this temp file). */
export type Cleanup = () => Promise<void>;

/**
 * One running transfer: its events, cancellation, requests (through its lane of the manager's
 * pool), the clean-ups to run if it fails, and its clock.
 */
export class TransferContext {
  readonly events: SubscriberSet;
  readonly signal: AbortSignal;
  readonly client: S3Client;
  readonly config: TransferConfig;
  readonly budget: MemoryBudget;
  private readonly cleanups = new Set<Cleanup>();
  private readonly started = performance.now();
  private readonly endpoint: EndpointWatch;
  private readonly fileDownloads: () => number;
  /** A request of this transfer could not connect, and no request of the manager got an answer meanwhile. */
  endpointUnreachable = false;

  constructor(
    engine: EngineParts,
    private readonly lane: Lane,
    readonly info: TransferInfo,
    readonly bucket: string,
    readonly key: string,
    options: TransferOptions,
  ) {
    this.client = engine.client;
    this.config = engine.config;
    this.budget = engine.budget;
    this.endpoint = engine.endpoint;
    this.fileDownloads = engine.fileDownloads;
    const progressOnly = options.onProgress ? { onProgress: options.onProgress } : undefined;
    this.events = new SubscriberSet([...engine.subscribers, ...(options.subscribers ?? []), progressOnly], info);
    this.signal = options.abortSignal ? AbortSignal.any([engine.signal, options.abortSignal]) : engine.signal;
  }

  /** How many downloads to files the manager is running, this one included (see {@link EngineParts.fileDownloads}). */
  get fileDownloadsRunning(): number {
    return this.fileDownloads();
  }

  /**
   * Runs `request` in one of the pool's slots, holding it until the request (body included)
   * is done. Work of a cancelled transfer never starts.
   */
  request<T>(request: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.run(request, this.signal);
  }

  /** One job in the transfer's lane, watched for an endpoint that cannot be reached. */
  private run<T>(request: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
    return this.lane.run(() => {
      signal.throwIfAborted();
      return this.endpoint.track(
        () => request(signal),
        () => {
          this.endpointUnreachable = true;
        },
      );
    }, signal);
  }

  /**
   * Runs `count` tasks through the pool (parts, ranges) and resolves to their results in order.
   * The first failure cancels the rest, queued and in flight; once all have settled it rejects
   * with that failure, not with the cancellations it caused.
   */
  async all<T>(count: number, task: (index: number, signal: AbortSignal) => Promise<T>): Promise<T[]> {
    // One task (a small file's single request) has no siblings to cancel: no group signal needed.
    if (count === 1) return [await this.request((signal) => task(0, signal))];
    const group = new AbortController();
    const signal = AbortSignal.any([this.signal, group.signal]);
    setMaxListeners(0, signal); // one listener per queued part
    // The failure that cancelled the rest. Parts cancelled in flight may fail with other errors
    // than an AbortError (a response stream destroyed under them: ECONNRESET), and an earlier
    // part's such error must not stand for it.
    let cause: { error: unknown } | undefined;
    const jobs = Array.from({ length: count }, (_, index) =>
      this.run((signal) => task(index, signal), signal).catch((error: unknown) => {
        if (!signal.aborted) cause ??= { error };
        group.abort(error);
        throw error;
      }),
    );
    const settled = await Promise.allSettled(jobs);
    const errors = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    if (cause) throw cause.error;
    if (errors.length > 0) throw errors.find((e) => !isAbortError(e)) ?? errors[0];
    return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  }

  /**
   * Sends a clean-up request (abort a multipart upload) through the pool, not cancelled by the
   * transfer's signal: it must run after a cancellation.
   */
  sendUncancelled<Output>(command: Command): Promise<Output> {
    return this.lane.run(() => sendS3<Output>(this.client, command));
  }

  /** Sends one command through the pool, cancelled with the transfer. */
  send<Output>(command: Command): Promise<Output> {
    return this.request((signal) => sendS3<Output>(this.client, command, { abortSignal: signal }));
  }

  /** Registers a clean-up to run if the transfer fails; the returned function unregisters it. */
  onFailure(cleanup: Cleanup): () => void {
    this.cleanups.add(cleanup);
    return () => this.cleanups.delete(cleanup);
  }

  /** Runs the registered clean-ups, newest first; returns the errors of those that failed. */
  async cleanUp(): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const cleanup of [...this.cleanups].reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    this.cleanups.clear();
    return errors;
  }

  /** The transfer's result, from what only the upload or download knows. */
  result(outcome: Omit<TransferResult, 'direction' | 'source' | 'destination' | 'bucket' | 'key' | 'seconds'>): TransferResult {
    const { etag, versionId, warnings, ...rest } = outcome;
    return {
      direction: this.info.direction,
      source: this.info.source,
      destination: this.info.destination,
      bucket: this.bucket,
      key: this.key,
      ...rest,
      etag: etag || undefined,
      seconds: this.elapsed(),
      ...(versionId ? { versionId } : {}),
      ...(warnings?.length ? { warnings } : {}),
    };
  }

  /** Seconds since the transfer started. */
  elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** Throws the typed abort error when the transfer has been cancelled. */
  throwIfAborted(): void {
    if (this.signal.aborted) throw new TransferAbortedError(this.errorContext(this.signal.reason));
  }

  /**
   * Maps any error to a typed one for this transfer. A cancellation wins over what it caused;
   * clean-ups that failed (parts left on the server) are always reported, cancelled or not.
   */
  toError(error: unknown, cleanupErrors: unknown[] = []): S3xferError {
    const failure =
      this.signal.aborted && (isAbortError(error) || !(error instanceof S3xferError))
        ? new TransferAbortedError(this.errorContext(this.signal.reason, error))
        : toS3xferError(error, { ...this.errorContext(), bucket: this.bucket, key: this.key });
    if (cleanupErrors.length === 0) return failure;
    const leftovers = cleanupErrors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
    return new S3xferError(`${failure.message}; and ${leftovers}`, 'AbortFailed', { ...this.errorContext(), cause: failure });
  }

  private errorContext(reason?: unknown, cause?: unknown) {
    const context = { operation: this.info.direction, source: this.info.source, destination: this.info.destination };
    // A manager stopped by another transfer's failure says so (failure policy "stop").
    const message =
      reason instanceof EndpointUnreachable
        ? 'cancelled: the S3 endpoint cannot be reached'
        : reason instanceof SiblingFailed
          ? 'cancelled: another transfer failed'
          : undefined;
    // A cancellation's cause is the signal's reason (what the caller passed to abort()), else what surfaced.
    const why = reason ?? cause;
    return { ...context, ...(why === undefined ? {} : { cause: why }), ...(message ? { message } : {}) };
  }
}
