/**
 * The part layout of a multipart upload: needed to recompute its ETag (MD5 of the parts' MD5s)
 * or a composite checksum, since S3 gives no way to read the part sizes back. Where it comes from,
 * most trusted first: the part size s3xfer records in the object's metadata, the size of part 1
 * from `HeadObject` with `PartNumber=1` (where the store supports it), or the part sizes common
 * uploaders use, raised for big files the way each raises them.
 */
import { MiB, S3_LIMITS } from '../config.js';
import type { ByteRange } from '../engine/part-plan.js';

/** How the parts of a multipart object were cut: equal parts of `partSize`, the last one shorter. */
export interface PartLayout {
  partSize: number;
  /** Parts in the upload (the `-N` of its ETag). */
  parts: number;
  /**
   * `metadata`: s3xfer's own record; `part-number`: part sizes read from the store;
   * `guess`: a common uploader's part size that gives the right part count.
   */
  source: 'metadata' | 'part-number' | 'guess';
  /** Who cuts parts this way, for messages (`aws CLI / boto3`, …). */
  uploaders: string[];
}

/** The part count in a multipart ETag (`"<32 hex>-N"`), or undefined for any other ETag. */
export function multipartEtagParts(etag: string | undefined): number | undefined {
  const match = /^"?[0-9a-fA-F]{32}-(\d+)"?$/.exec(etag ?? '');
  const parts = match ? Number(match[1]) : Number.NaN;
  return Number.isInteger(parts) && parts >= 1 && parts <= S3_LIMITS.maxParts ? parts : undefined;
}

/** Whether `partSize` cuts `size` bytes into exactly `parts` parts. */
export function fitsLayout(size: number, parts: number, partSize: number): boolean {
  if (!Number.isSafeInteger(partSize) || partSize < 1) return false;
  if (parts === 1) return partSize >= size;
  return Math.ceil(size / partSize) === parts;
}

/** The byte ranges of the parts of a layout. */
export function layoutRanges(size: number, layout: Pick<PartLayout, 'partSize' | 'parts'>): ByteRange[] {
  if (layout.parts === 1) return size === 0 ? [] : [{ start: 0, end: size - 1 }];
  return Array.from({ length: layout.parts }, (_, i) => ({
    start: i * layout.partSize,
    end: Math.min((i + 1) * layout.partSize, size) - 1,
  }));
}

/**
 * The part sizes common uploaders choose for a file of `size` bytes, each computed as its source
 * does (when a file would need more than 10,000 parts):
 * - aws CLI and boto3 (s3transfer's ChunksizeAdjuster): 8 MiB, doubled until ≤ 10,000 parts,
 *   then kept within 5 MiB–5 GiB.
 * - lib-storage (`@aws-sdk/lib-storage` Upload): max(5 MiB, ⌈size / 10,000⌉).
 * - rclone (fs/chunksize.Calculator): 5 MiB, else ⌈size / 10,000⌉ rounded up to a MiB, one MiB more
 *   right on the boundary.
 * - mc (minio-go optimalPartInfo): ⌊size / 10,000⌋ rounded up to a multiple of 16 MiB (16 MiB at least).
 * - s3cmd: 15 MiB (it refuses files that would need more than 10,000 parts).
 * - s5cmd (aws-sdk-go s3manager): 50 MiB, else ⌊size / 10,000⌋ + 1.
 * - s3xfer itself (uploads without metadata are not its own, but its default is the aws CLI's).
 */
export function uploaderPartSizes(size: number): Array<{ uploader: string; partSize: number }> {
  const maxParts = S3_LIMITS.maxParts;
  let s3transfer = 8 * MiB;
  while (Math.ceil(size / s3transfer) > maxParts) s3transfer *= 2;
  s3transfer = Math.min(Math.max(s3transfer, S3_LIMITS.minPartSize), 5 * 1024 * MiB);

  let rclone = 5 * MiB;
  const required = Math.floor(size / rclone);
  if (!(required < maxParts || (required === maxParts && size % rclone === 0))) {
    rclone = Math.ceil(Math.floor(size / maxParts) / MiB) * MiB;
    if (Math.floor(size / rclone) === maxParts && size % maxParts !== 0) rclone += MiB;
  }

  const minio = Math.max(16 * MiB, Math.ceil(Math.floor(size / maxParts) / (16 * MiB)) * 16 * MiB);
  const s5cmd = Math.floor(size / (50 * MiB)) >= maxParts ? Math.floor(size / maxParts) + 1 : 50 * MiB;

  return [
    { uploader: 'aws CLI / boto3', partSize: s3transfer },
    { uploader: 'lib-storage', partSize: Math.max(5 * MiB, Math.ceil(size / maxParts)) },
    { uploader: 'rclone', partSize: rclone },
    { uploader: 'mc', partSize: minio },
    { uploader: 's3cmd', partSize: 15 * MiB },
    { uploader: 's5cmd', partSize: s5cmd },
  ];
}

/**
 * The common uploaders' layouts that cut `size` bytes into `parts` parts, most common first, one
 * per part size (listing every uploader that uses it).
 */
export function guessLayouts(size: number, parts: number, extraPartSizes: number[] = []): PartLayout[] {
  if (parts === 1) return [{ partSize: Math.max(size, 1), parts: 1, source: 'guess', uploaders: ['any uploader'] }];
  const layouts: PartLayout[] = [];
  const candidates = [...uploaderPartSizes(size), ...extraPartSizes.map((partSize) => ({ uploader: 'this configuration', partSize }))];
  for (const { uploader, partSize } of candidates) {
    if (!fitsLayout(size, parts, partSize)) continue;
    const same = layouts.find((l) => l.partSize === partSize);
    if (same) {
      if (!same.uploaders.includes(uploader)) same.uploaders.push(uploader);
    } else {
      layouts.push({ partSize, parts, source: 'guess', uploaders: [uploader] });
    }
  }
  return layouts;
}

/** The part size s3xfer recorded at CreateMultipartUpload, when it fits the object. */
export function metadataLayout(size: number, parts: number, recorded: string | undefined): PartLayout | undefined {
  if (recorded === undefined || !/^\d+$/.test(recorded.trim())) return undefined;
  const partSize = Number(recorded.trim());
  return fitsLayout(size, parts, partSize) ? { partSize, parts, source: 'metadata', uploaders: ['s3xfer'] } : undefined;
}

/** Describes a layout for messages: `8 MiB parts (aws CLI / boto3)`. */
export function describeLayout(layout: PartLayout): string {
  const size = layout.partSize % MiB === 0 ? `${layout.partSize / MiB} MiB` : `${layout.partSize}-byte`;
  const who =
    layout.source === 'metadata'
      ? 'recorded by s3xfer'
      : layout.source === 'part-number'
        ? 'read with PartNumber'
        : layout.uploaders.join(', ');
  return layout.parts === 1 ? 'one part' : `${size} parts (${who})`;
}
