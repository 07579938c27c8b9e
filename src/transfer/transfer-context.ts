import { setMaxListeners } from 'node:events';
import type { TransferConfig } from '../config.js';
import { resolveTransferConfig } from '../config.js';
import { S3xferError, TransferAbortedError } from '../errors.js';
import { SubscriberSet, type TransferInfo, type TransferProgress, type TransferResult, type TransferSubscriber } from '../events.js';
import { toS3xferError } from './error-mapping.js';

/** Options every transfer takes. */
export interface CommonTransferOptions {
  /** Part sizes, threshold and concurrency; see {@link TransferConfig} for the defaults. */
  config?: Partial<TransferConfig>;
  /** Receive queued/progress/done/failed events. */
  subscribers?: TransferSubscriber[];
  /** Shorthand for a subscriber with only `onProgress` (boto3's `Callback`). */
  onProgress?: (progress: TransferProgress) => void;
  /** Cancels the transfer; whatever was started is cleaned up before the promise rejects. */
  abortSignal?: AbortSignal;
}

/** What one running transfer shares between its steps: config, events, cancellation, clock. */
export class TransferContext {
  readonly config: TransferConfig;
  readonly events: SubscriberSet;
  readonly signal: AbortSignal;
  private readonly started = performance.now();

  constructor(
    readonly info: TransferInfo,
    readonly bucket: string,
    readonly key: string,
    options: CommonTransferOptions,
  ) {
    this.config = resolveTransferConfig(options.config);
    const progressOnly = options.onProgress ? { onProgress: options.onProgress } : undefined;
    this.events = new SubscriberSet([...(options.subscribers ?? []), progressOnly], info);
    // One signal per transfer, followed by every request: a signal shared by many transfers (the
    // CLI's Ctrl-C) then carries one listener per transfer, not one per request in flight.
    this.signal = AbortSignal.any(options.abortSignal ? [options.abortSignal] : []);
    setMaxListeners(0, this.signal);
  }

  /** The transfer's result, from what only the upload or download knows. */
  result(outcome: { bytes: number; parts: number; multipart: boolean; etag?: string; versionId?: string }): TransferResult {
    const { etag, versionId, ...rest } = outcome;
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
    };
  }

  /** Seconds since the transfer started. */
  elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** Throws the typed abort error when the caller has cancelled. */
  throwIfAborted(): void {
    if (this.signal.aborted) throw new TransferAbortedError(this.errorContext());
  }

  /** Maps any error to a typed one for this transfer (an abort wins over whatever it caused). */
  toError(error: unknown): S3xferError {
    // Parts left on the server after all must be reported, even when the user cancelled.
    if (error instanceof S3xferError && error.code === 'AbortFailed') return error;
    if (this.signal.aborted) return new TransferAbortedError({ ...this.errorContext(), cause: error });
    return toS3xferError(error, { ...this.errorContext(), bucket: this.bucket, key: this.key });
  }

  private errorContext() {
    return { operation: this.info.direction, source: this.info.source, destination: this.info.destination };
  }
}
