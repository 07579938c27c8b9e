import { formatBytes, MiB, S3_LIMITS, type TransferConfig } from '../config.js';
import { UsageError } from '../errors.js';

/** A byte range of an object, both ends inclusive as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** How one object moves: whole, or in parts of `partSize` bytes. */
export interface PartPlan {
  multipart: boolean;
  partSize: number;
  /** The parts in order; one range covering the object when not multipart (none for 0 bytes). */
  ranges: ByteRange[];
}

/**
 * The one rule for single vs multipart, for uploads and downloads alike: an object moves in parts
 * when it reaches `multipartThreshold` and does not fit in one part. Uploads raise the part size so
 * that no object needs more than 10,000 parts.
 * @throws {UsageError} when even 5 GiB parts cannot hold the object (uploads).
 */
export function planParts(
  size: number,
  config: Pick<TransferConfig, 'multipartThreshold' | 'partSize'>,
  direction: 'upload' | 'download',
): PartPlan {
  const multipart = size >= config.multipartThreshold && size > config.partSize;
  if (!multipart) return { multipart, partSize: Math.max(size, 1), ranges: size === 0 ? [] : [{ start: 0, end: size - 1 }] };
  const partSize = direction === 'upload' ? uploadPartSize(size, config.partSize) : config.partSize;
  return { multipart, partSize, ranges: planRanges(size, partSize) };
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

/** Splits `size` bytes into consecutive ranges of `partSize` bytes (the last one shorter). */
export function planRanges(size: number, partSize: number): ByteRange[] {
  if (!Number.isInteger(partSize) || partSize < 1) throw new RangeError(`partSize must be a positive integer, got ${partSize}`);
  const ranges: ByteRange[] = [];
  for (let start = 0; start < size; start += partSize) {
    ranges.push({ start, end: Math.min(start + partSize, size) - 1 });
  }
  return ranges;
}
