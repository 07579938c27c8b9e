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

/** The largest single PUT (and so the largest multipart threshold): its body is held in memory. */
export const MAX_SINGLE_PUT = 256 * MiB;

/**
 * How downloads are checked (see {@link TransferConfig.verify}): `auto` checks whatever can be
 * checked and warns about the rest, `require` refuses objects that cannot be checked, `off` skips it.
 */
export type VerifyMode = 'auto' | 'require' | 'off';

/** The values of {@link VerifyMode}. */
export const VERIFY_MODES: readonly VerifyMode[] = ['auto', 'require', 'off'];

/** The verify mode of a config that names none. */
export const DEFAULT_VERIFY_MODE: VerifyMode = 'auto';

/** How a transfer is split and how many requests run at once (boto3's `TransferConfig`). */
export interface TransferConfig {
  /**
   * Files (uploads) and objects (downloads) of at least this many bytes move in parts.
   * Default 16 MiB (the aws CLI's is 8 MiB): a file of 8–16 MiB is one request, not four or
   * five, which is what a tree of many such files spends its time on (BENCHMARKS.md, "Many
   * large files"). At most 256 MiB: a single PUT holds the file in memory.
   */
  multipartThreshold: number;
  /**
   * Bytes per part. Default 8 MiB; at least 5 MiB and at most 5 GiB. Uploads raise it
   * automatically so that no file needs more than 10,000 parts.
   */
  partSize: number;
  /**
   * Requests in flight at once, across every transfer a {@link TransferManager} runs (parts of big
   * files and whole small files alike). Default 10, like the aws CLI.
   */
  concurrency: number;
  /**
   * Bytes of upload part bodies held in memory at once, across all transfers. Default 256 MiB.
   * Memory stays within min(budget, concurrency × part size) whatever the files' sizes; one part
   * larger than the budget still proceeds, alone.
   */
  memoryBudget: number;
  /**
   * Attempts to read one download range, including the first, when its response stream breaks
   * mid-body (each attempt resumes at the first missing byte). Default 5, like s3transfer.
   * Request-level retries (throttling, 5xx, refused connections) are the client's: see
   * `createS3Client({ maxAttempts })`, which the CLI sets to the same value.
   */
  maxAttempts: number;
  /**
   * How downloads prove their bytes are the object's, hashing as the bytes arrive: the MD5 ETag of
   * single-part objects, the multipart ETag recomputed over the upload's parts (their size from
   * s3xfer's own metadata, the store's `PartNumber` answers, or the part sizes of common
   * uploaders), or a CRC32/CRC32C/CRC64NVME/SHA-256 checksum the store keeps. A mismatch is fetched
   * once more (it may be a transient corruption), then fails with an IntegrityError; the
   * destination is never written.
   * - `auto` (default): verify what can be verified; an object that cannot be (SSE-KMS ETag and no
   *   checksum, unknown part sizes) is downloaded with a warning in the result.
   * - `require`: such an object fails (IntegrityError, code `Unverifiable`), before any byte is
   *   written where that can be known up front.
   * - `off`: no check (the ETag still pins ranged GETs to one version).
   *
   * Left out, it is `auto` ({@link DEFAULT_VERIFY_MODE}).
   */
  verify?: VerifyMode;
}

/** The defaults of {@link TransferConfig}. */
export const DEFAULT_TRANSFER_CONFIG: Readonly<TransferConfig> = Object.freeze({
  multipartThreshold: 16 * MiB,
  partSize: 8 * MiB,
  concurrency: 10,
  memoryBudget: 256 * MiB,
  maxAttempts: 5,
});

/**
 * Parses a human size the way the aws CLI does: `8MiB`, `64MB`, `1GiB`, `1.5GB`, `5242880`.
 * Like the aws CLI, `MB` and `MiB` both mean 1024 × 1024 bytes.
 * @throws {UsageError} when the text is not a non-negative whole number of bytes.
 */
export function parseSize(text: string | number, what = 'size'): number {
  const trimmed = typeof text === 'number' ? String(text) : text.trim();
  // bytes-iec truncates fractions of a byte ('1.5' and '1.3B' → 1); a byte count must be whole.
  const fractionOfBytes = /^[\d.]+\s*b?$/i.test(trimmed) && !/^\d+\s*b?$/i.test(trimmed);
  const value = fractionOfBytes ? null : bytes.parse(trimmed, { mode: 'compatibility' });
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
  const { partSize, multipartThreshold, concurrency, maxAttempts, memoryBudget, verify } = config;
  if (!Number.isInteger(partSize) || partSize < S3_LIMITS.minPartSize || partSize > S3_LIMITS.maxPartSize) {
    throw new UsageError(
      `invalid part size ${describe(partSize)}: parts must be from 5 MiB to ${formatBytes(S3_LIMITS.maxPartSize).replace('.0 ', ' ')}` +
        (S3_LIMITS.maxPartSize < 5 * GiB ? " (S3 allows 5 GiB; this Node's largest Buffer is smaller)" : ''),
      'InvalidPartSize',
    );
  }
  if (!Number.isInteger(multipartThreshold) || multipartThreshold < 0 || multipartThreshold > MAX_SINGLE_PUT) {
    throw new UsageError(
      `invalid multipart threshold ${describe(multipartThreshold)}: it must be between 0 B and 256 MiB (a single PUT holds the file in memory)`,
      'InvalidMultipartThreshold',
    );
  }
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
    throw new UsageError(`invalid concurrency ${concurrency}: it must be a whole number from 1 to 1000`, 'InvalidConcurrency');
  }
  if (!Number.isInteger(memoryBudget) || memoryBudget < S3_LIMITS.minPartSize) {
    throw new UsageError(`invalid memory budget ${describe(memoryBudget)}: it must be at least 5 MiB`, 'InvalidMemoryBudget');
  }
  checkMaxAttempts(maxAttempts);
  if (verify !== undefined && !VERIFY_MODES.includes(verify)) {
    throw new UsageError(`invalid verify mode ${JSON.stringify(verify)}: it must be auto, require or off`, 'InvalidVerifyMode');
  }
  return config;
}

function describe(value: number): string {
  return Number.isInteger(value) && value >= 0 ? `${formatBytes(value)} (${value} bytes)` : String(value);
}

/**
 * Attempts per request, from 1 to 100: the one rule for `TransferConfig.maxAttempts` and
 * `createS3Client({ maxAttempts })`. @throws {UsageError} code `InvalidMaxAttempts`.
 */
export function checkMaxAttempts(maxAttempts: number): number {
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) {
    throw new UsageError(`invalid max attempts ${maxAttempts}: it must be a whole number from 1 to 100`, 'InvalidMaxAttempts');
  }
  return maxAttempts;
}
