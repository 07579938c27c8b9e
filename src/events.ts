/**
 * Progress as events. The library emits them; the CLI (or any caller) renders them. Shaped after
 * s3transfer's subscribers (`on_queued`, `on_progress`, `on_done`).
 */

/** Which way bytes move. */
export type Direction = 'upload' | 'download';

/** One transfer as subscribers see it. */
export interface TransferInfo {
  direction: Direction;
  /** Local path (upload) or `s3://bucket/key` (download). */
  source: string;
  /** `s3://bucket/key` (upload) or the final local path (download). */
  destination: string;
  /** Size in bytes, once known (uploads: at start; downloads: after HeadObject). */
  totalBytes?: number;
}

/**
 * How a download's bytes were proven to be the object's: the plain MD5 ETag of a single-part
 * object, the multipart ETag recomputed from the upload's part layout, or a checksum the store
 * keeps (full-object or composite).
 */
export type VerificationMethod = 'md5-etag' | 'multipart-etag' | 'crc64nvme' | 'crc32' | 'crc32c' | 'sha256';

/** What a finished transfer reports. */
export interface TransferResult {
  direction: Direction;
  source: string;
  destination: string;
  bucket: string;
  key: string;
  /** Bytes moved. */
  bytes: number;
  /** The object's ETag, quotes included, as S3 reports it. */
  etag?: string;
  /** Parts used: 1 for a single PUT/GET. */
  parts: number;
  /** Whether the transfer went in parts (multipart upload or ranged GETs). */
  multipart: boolean;
  /** Wall-clock seconds from start to finish. */
  seconds: number;
  /** The object's version, on versioned buckets. */
  versionId?: string;
  /**
   * Downloads: how the bytes were checked against the object, or `false` when they were not
   * (`verify: 'off'`, or `'auto'` with nothing to check against: `warnings` then says why).
   */
  verified?: VerificationMethod | false;
  /** Things a person should know although the transfer succeeded (e.g. a check that was skipped). */
  warnings?: string[];
}

/** A progress tick. `bytesDelta` can be negative when a retry rewinds, as in s3transfer. */
export interface TransferProgress {
  transfer: TransferInfo;
  bytesDelta: number;
  bytesDone: number;
  totalBytes?: number;
}

/** Receives a transfer's life cycle. Every method is optional. */
export interface TransferSubscriber {
  /** The transfer is set up and its size is known. */
  onQueued?(transfer: TransferInfo): void;
  /** Bytes moved since the last call. */
  onProgress?(progress: TransferProgress): void;
  /** The transfer finished; the destination is complete. */
  onDone?(result: TransferResult): void;
  /** The transfer failed or was aborted; nothing was left behind. */
  onFailed?(transfer: TransferInfo, error: Error): void;
}

/** Fans one event out to every subscriber; a throwing subscriber never breaks a transfer. */
export class SubscriberSet {
  private readonly subscribers: TransferSubscriber[];
  private bytesDone = 0;

  constructor(
    subscribers: Array<TransferSubscriber | undefined>,
    readonly transfer: TransferInfo,
  ) {
    this.subscribers = subscribers.filter((s): s is TransferSubscriber => s !== undefined);
  }

  queued(totalBytes: number): void {
    this.transfer.totalBytes = totalBytes;
    this.each((s) => s.onQueued?.(this.transfer));
  }

  progress(bytesDelta: number): void {
    if (bytesDelta === 0) return;
    this.bytesDone += bytesDelta;
    const event: TransferProgress = {
      transfer: this.transfer,
      bytesDelta,
      bytesDone: this.bytesDone,
      totalBytes: this.transfer.totalBytes,
    };
    this.each((s) => s.onProgress?.(event));
  }

  done(result: TransferResult): void {
    this.each((s) => s.onDone?.(result));
  }

  failed(error: Error): void {
    this.each((s) => s.onFailed?.(this.transfer, error));
  }

  private each(call: (s: TransferSubscriber) => unknown): void {
    for (const s of this.subscribers) {
      try {
        const returned = call(s);
        // An async subscriber that rejects must not become an unhandled rejection (a crash).
        if (returned instanceof Promise) returned.catch(() => {});
      } catch {
        // A rendering bug must not corrupt or abort a transfer.
      }
    }
  }
}
