import { constants as bufferConstants } from 'node:buffer';
import bytes from 'bytes-iec';
import { UsageError } from './errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Limits of the S3 API that shape every multipart plan. */
export const S3_LIMITS = {
  /** Smallest part of a multipart upload (all but the last part). */
  minPartSize: 5 * MiB,
  /** Largest part of a multipart upload: S3's 5 GiB, or less where Node cannot hold such a Buffer. */
  maxPartSize: Math.min(5 * GiB, bufferConstants.MAX_LENGTH),
  /** Most parts in one multipart upload. */
  maxParts: 10_000,
} as const;

/** Buffered upload parts may always use this much memory (more when the caller configures more). */
export const UPLOAD_MEMORY_BUDGET = 256 * MiB;

/** How a transfer is split and how many requests run at once (boto3's `TransferConfig`). */
export interface TransferConfig {
  /**
   * Files (uploads) and objects (downloads) of at least this many bytes move in parts.
   * Default 8 MiB, like the aws CLI. At most 256 MiB: a single PUT holds the file in memory.
   */
  multipartThreshold: number;
  /**
   * Bytes per part. Default 8 MiB; at least 5 MiB and at most 5 GiB. Uploads raise it
   * automatically so that no file needs more than 10,000 parts.
   */
  partSize: number;
  /** Parts in flight at once. Default 10, like the aws CLI. */
  concurrency: number;
  /**
   * Attempts to read one download range, including the first, when its response stream breaks
   * mid-body (each attempt resumes at the first missing byte). Default 5, like s3transfer.
   * Request-level retries (throttling, 5xx, refused connections) are the client's: see
   * `createS3Client({ maxAttempts })`, which the CLI sets to the same value.
   */
  maxAttempts: number;
}

/** The defaults of {@link TransferConfig}. */
export const DEFAULT_TRANSFER_CONFIG: Readonly<TransferConfig> = Object.freeze({
  multipartThreshold: 8 * MiB,
  partSize: 8 * MiB,
  concurrency: 10,
  maxAttempts: 5,
});

/**
 * Parses a human size the way the aws CLI does: `8MiB`, `64MB`, `1GiB`, `1.5GB`, `5242880`.
 * Like the aws CLI, `MB` and `MiB` both mean 1024 × 1024 bytes.
 * @throws {UsageError} when the text is not a non-negative whole number of bytes.
 */
export function parseSize(text: string | number, what = 'size'): number {
  const trimmed = typeof text === 'number' ? String(text) : text.trim();
  // bytes-iec truncates unitless fractions ('1.5' → 1); a byte count must be whole.
  const value = /^[\d.]+$/.test(trimmed) && !/^\d+$/.test(trimmed) ? null : bytes.parse(trimmed, { mode: 'compatibility' });
  if (value === null || !Number.isFinite(value) || value < 0 || !Number.isInteger(value)) {
    throw new UsageError(`invalid ${what} "${text}": expected a byte count such as 8MiB, 64MB, 1GiB or 5242880`, 'InvalidSize');
  }
  return value;
}

/** Formats bytes for people: `0 B`, `1.5 KiB`, `256.0 MiB`. */
export function formatBytes(value: number): string {
  const fixedDecimals = value >= KiB;
  return bytes.format(value, { mode: 'binary', decimalPlaces: 1, fixedDecimals, unitSeparator: ' ' }) ?? `${value} B`;
}

/**
 * Merges overrides into the defaults and checks every value.
 * @throws {UsageError} naming the first bad value.
 */
export function resolveTransferConfig(overrides: Partial<TransferConfig> = {}): TransferConfig {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const config: TransferConfig = { ...DEFAULT_TRANSFER_CONFIG, ...defined };
  const { partSize, multipartThreshold, concurrency, maxAttempts } = config;
  if (!Number.isInteger(partSize) || partSize < S3_LIMITS.minPartSize || partSize > S3_LIMITS.maxPartSize) {
    throw new UsageError(
      `invalid part size ${describe(partSize)}: parts must be from 5 MiB to ${formatBytes(S3_LIMITS.maxPartSize).replace('.0 ', ' ')}` +
        (S3_LIMITS.maxPartSize < 5 * GiB ? " (S3 allows 5 GiB; this Node's largest Buffer is smaller)" : ''),
      'InvalidPartSize',
    );
  }
  if (!Number.isInteger(multipartThreshold) || multipartThreshold < 0 || multipartThreshold > UPLOAD_MEMORY_BUDGET) {
    throw new UsageError(
      `invalid multipart threshold ${describe(multipartThreshold)}: it must be between 0 B and 256 MiB (a single PUT holds the file in memory)`,
      'InvalidMultipartThreshold',
    );
  }
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
    throw new UsageError(`invalid concurrency ${concurrency}: it must be a whole number from 1 to 1000`, 'InvalidConcurrency');
  }
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) {
    throw new UsageError(`invalid max attempts ${maxAttempts}: it must be a whole number from 1 to 100`, 'InvalidMaxAttempts');
  }
  return config;
}

function describe(value: number): string {
  return Number.isInteger(value) && value >= 0 ? `${formatBytes(value)} (${value} bytes)` : String(value);
}

/**
 * The part size an upload of `fileSize` bytes really uses: the configured one, raised (to a whole
 * MiB) when the file would otherwise need more than 10,000 parts.
 * @throws {UsageError} when even 5 GiB parts cannot hold the file.
 */
export function uploadPartSize(fileSize: number, partSize: number): number {
  const needed = Math.ceil(fileSize / S3_LIMITS.maxParts);
  if (needed <= partSize) return partSize;
  const raised = Math.ceil(needed / MiB) * MiB;
  if (raised > S3_LIMITS.maxPartSize) {
    throw new UsageError(`file of ${formatBytes(fileSize)} is too large for one S3 object (10,000 parts of at most 5 GiB)`, 'FileTooLarge');
  }
  return raised;
}

/**
 * Parts an upload keeps in flight. Each is a buffer of `partSize` bytes, so when parts were raised
 * for a huge file (a 1 TiB file needs 105 MiB parts) fewer run at once: memory stays within
 * max(256 MiB, concurrency × configured part size), whatever the file's size.
 */
export function uploadQueueSize(partSize: number, config: Pick<TransferConfig, 'concurrency' | 'partSize'>): number {
  const budget = Math.max(UPLOAD_MEMORY_BUDGET, config.concurrency * config.partSize);
  return Math.max(1, Math.min(config.concurrency, Math.floor(budget / partSize)));
}

/** A byte range of an object, both ends inclusive as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Splits `size` bytes into consecutive ranges of `partSize` bytes (the last one shorter). */
export function planRanges(size: number, partSize: number): ByteRange[] {
  if (!Number.isInteger(partSize) || partSize < 1) throw new RangeError(`partSize must be a positive integer, got ${partSize}`);
  const ranges: ByteRange[] = [];
  for (let start = 0; start < size; start += partSize) {
    ranges.push({ start, end: Math.min(start + partSize, size) - 1 });
  }
  return ranges;
}
