/**
 * Which check can prove a download right, chosen from what the store says about the object (HEAD,
 * or a listing and the GET's own headers), and the digests that check computes as the bytes arrive.
 */
import { createReadStream } from 'node:fs';
import type { ByteRange } from '../engine/part-plan.js';
import type { VerificationMethod } from '../events.js';
import { type CrcAlgorithm, combineCrc, createDigest, DIGEST_COST, type Digest, type DigestAlgorithm } from './digests.js';
import type { FileDigest, HashWorkers } from './hash-workers.js';
import {
  describeLayout,
  fitsLayout,
  guessLayouts,
  layoutRanges,
  metadataLayout,
  multipartEtagParts,
  type PartLayout,
  uploaderPartSizes,
} from './layout.js';

/** What the store says about an object, as far as checking its bytes goes. */
export interface ObjectFacts {
  size: number;
  etag?: string;
  /** `AES256`, `aws:kms`, `aws:kms:dsse`. */
  serverSideEncryption?: string;
  /** Set for SSE-C objects. */
  sseCustomerAlgorithm?: string;
  /** Stored checksums (HeadObject with `ChecksumMode: ENABLED`), base64, `-N` when composite. */
  checksums?: { crc32?: string; crc32c?: string; crc64nvme?: string; sha256?: string; type?: string };
  /** The object's `x-amz-meta-s3xfer-part-size`. */
  recordedPartSize?: string;
}

/** What `HeadObject` with `PartNumber` answered (undefined: refused or failed). */
export interface PartHead {
  contentLength?: number;
  partsCount?: number;
  etag?: string;
}

/**
 * One way to check a download.
 * - `whole`: one digest over the object, so one sequential stream (MD5 ETag, SHA-256 of a
 *   single-part object).
 * - `parts`: one digest per part of `layout`, each part within one download range, combined into a
 *   multipart ETag or composite checksum.
 * - `ranges`: one CRC per download range, combined in order (a full-object CRC): any ranges.
 */
export interface Check {
  method: VerificationMethod;
  algorithm: DigestAlgorithm;
  shape: 'whole' | 'parts' | 'ranges';
  /** The value the store gave, normalised as {@link digestValue} prints it. */
  expected: string;
  /** The layout of a `parts` check. */
  layout?: PartLayout;
  /** False when the layout is a guess: a stable mismatch then means "unverifiable", not "corrupt". */
  certain: boolean;
  /** For messages: `MD5 ETag`, `multipart ETag (8 MiB parts (aws CLI / boto3))`, `CRC64NVME checksum`. */
  label: string;
}

/** The check chosen for an object, the other guessed layouts worth trying, or why none exists. */
export interface VerificationPlan {
  check?: Check;
  /** Other guessed layouts of a `parts` check with a guessed layout, tried (from the file) after a stable mismatch. */
  alternatives: PartLayout[];
  /** Why the object cannot be verified, when `check` is undefined. */
  reason?: string;
}

/** Why an ETag does not stand for the MD5 of the bytes, or undefined when it may. */
export function etagEncryption(facts: Pick<ObjectFacts, 'serverSideEncryption' | 'sseCustomerAlgorithm'>): string | undefined {
  if (facts.sseCustomerAlgorithm) return 'SSE-C';
  const sse = facts.serverSideEncryption;
  if (sse === 'aws:kms' || sse === 'aws:kms:dsse') return sse === 'aws:kms' ? 'SSE-KMS' : 'DSSE-KMS';
  return undefined;
}

const CHECKSUM_NAMES: Readonly<Record<'crc32' | 'crc32c' | 'crc64nvme' | 'sha256', string>> = {
  crc32: 'CRC32',
  crc32c: 'CRC32C',
  crc64nvme: 'CRC64NVME',
  sha256: 'SHA-256',
};

/**
 * Chooses the check for a download. Certain checks beat guessed layouts; then checks that let
 * the download run in parallel ranges (when it would) beat one sequential stream; then the
 * cheaper digest wins ({@link DIGEST_COST}). `headPart` asks the store for one part's size
 * (`HeadObject` with `PartNumber`); it is called only when a multipart layout is needed and
 * nothing better is known.
 */
export async function planVerification(
  facts: ObjectFacts,
  options: { rangedByDefault: boolean; partSize: number; headPart?: (partNumber: number) => Promise<PartHead | undefined> },
): Promise<VerificationPlan> {
  const { size } = facts;
  const etag = facts.etag?.replace(/"/g, '');
  const encryption = etagEncryption(facts);
  const parts = multipartEtagParts(etag);
  const checks: Check[] = [];

  // Full-object checksums: no layout needed.
  const sums = facts.checksums ?? {};
  for (const algorithm of ['crc32', 'crc32c', 'crc64nvme'] as const) {
    const value = sums[algorithm];
    if (!value || isComposite(value, sums.type)) continue;
    checks.push({
      method: algorithm,
      algorithm,
      shape: 'ranges',
      expected: value,
      certain: true,
      label: `${CHECKSUM_NAMES[algorithm]} checksum`,
    });
  }
  if (sums.sha256 && !isComposite(sums.sha256, sums.type)) {
    checks.push({ method: 'sha256', algorithm: 'sha256', shape: 'whole', expected: sums.sha256, certain: true, label: 'SHA-256 checksum' });
  }
  if (etag && /^[0-9a-fA-F]{32}$/.test(etag) && !encryption) {
    checks.push({ method: 'md5-etag', algorithm: 'md5', shape: 'whole', expected: etag.toLowerCase(), certain: true, label: 'MD5 ETag' });
  }

  // Checks over the parts of a multipart upload: its ETag, composite checksums.
  const partChecks = (layout: PartLayout): Check[] => {
    const found: Check[] = [];
    const certain = layout.source !== 'guess';
    const where = describeLayout(layout);
    if (parts === layout.parts && !encryption && etag) {
      found.push({
        method: 'multipart-etag',
        algorithm: 'md5',
        shape: 'parts',
        expected: etag.toLowerCase(),
        layout,
        certain,
        label: `multipart ETag (${where})`,
      });
    }
    for (const algorithm of ['crc32', 'crc32c', 'sha256'] as const) {
      const value = sums[algorithm];
      if (!value || !isComposite(value, sums.type) || compositeParts(value) !== layout.parts) continue;
      found.push({
        method: algorithm,
        algorithm,
        shape: 'parts',
        expected: value,
        layout,
        certain,
        label: `composite ${CHECKSUM_NAMES[algorithm]} checksum (${where})`,
      });
    }
    return found;
  };
  const partCount = (parts !== undefined && !encryption ? parts : undefined) ?? compositePartCount(sums);
  let alternatives: PartLayout[] = [];
  let layoutProblem: string | undefined;
  if (partCount !== undefined) {
    const recorded = metadataLayout(size, partCount, facts.recordedPartSize);
    if (recorded) checks.push(...partChecks(recorded));
    else if (!checks.some((c) => c.certain) && options.headPart) {
      const read = await partNumberLayout(size, partCount, options.headPart, facts.etag);
      if (read && 'problem' in read) layoutProblem = read.problem;
      else if (read) checks.push(...partChecks(read));
    }
    if (!checks.some((c) => c.certain) && !layoutProblem) {
      const guesses = guessLayouts(size, partCount, [options.partSize]);
      checks.push(...guesses.flatMap(partChecks));
      alternatives = guesses;
      if (guesses.length === 0) layoutProblem = noLayoutReason(size, partCount, options.headPart !== undefined);
    }
  }

  const rank = (c: Check) => [c.certain ? 0 : 1, options.rangedByDefault && c.shape === 'whole' ? 1 : 0, DIGEST_COST[c.algorithm]];
  checks.sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    return x[0]! - y[0]! || x[1]! - y[1]! || x[2]! - y[2]!;
  });
  const check = checks[0];
  if (check)
    return { check, alternatives: check.shape === 'parts' && !check.certain ? alternatives.filter((l) => l !== check.layout) : [] };
  return { alternatives: [], reason: unverifiableReason(facts, etag, encryption, parts, layoutProblem) };
}

function isComposite(value: string, type: string | undefined): boolean {
  return type === 'COMPOSITE' || /-\d+$/.test(value);
}

function compositeParts(value: string): number | undefined {
  const match = /-(\d+)$/.exec(value);
  return match ? Number(match[1]) : undefined;
}

function compositePartCount(sums: NonNullable<ObjectFacts['checksums']>): number | undefined {
  for (const value of [sums.crc32, sums.crc32c, sums.sha256]) {
    const n = value ? compositeParts(value) : undefined;
    if (n !== undefined) return n;
  }
  return undefined;
}

/**
 * The layout from the store's answer to `HeadObject` with `PartNumber=1` (and, with three or more
 * parts, `PartNumber=N` to confirm the parts are equal); undefined where the store ignores
 * `PartNumber` (Ceph RGW answers with the whole object) or refuses it.
 */
async function partNumberLayout(
  size: number,
  parts: number,
  headPart: (partNumber: number) => Promise<PartHead | undefined>,
  etag: string | undefined,
): Promise<PartLayout | { problem: string } | undefined> {
  if (parts === 1) return undefined;
  const first = await headPart(1);
  const length = first?.contentLength;
  // A store that ignores PartNumber answers with the whole object and no parts count.
  if (!first || length === undefined || (first.partsCount === undefined && length >= size)) return undefined;
  if ((first.etag && etag && first.etag !== etag) || (first.partsCount !== undefined && first.partsCount !== parts)) return undefined;
  const unequal = (lastLength?: number) => ({
    problem: `its ${parts} parts have unequal sizes (part 1: ${length} bytes${lastLength === undefined ? '' : `, part ${parts}: ${lastLength} bytes`}, object: ${size} bytes)`,
  });
  if (!fitsLayout(size, parts, length)) return unequal();
  if (parts >= 3) {
    const last = await headPart(parts);
    const expected = size - (parts - 1) * length;
    if (last?.contentLength !== undefined && last.contentLength !== expected) return unequal(last.contentLength);
  }
  return { partSize: length, parts, source: 'part-number', uploaders: [] };
}

function noLayoutReason(size: number, parts: number, askedStore: boolean): string {
  const sizes = [...new Set(uploaderPartSizes(size).map((u) => u.partSize))]
    .sort((a, b) => a - b)
    .map((s) => `${+(s / 1048576).toFixed(2)}`)
    .join(', ');
  return (
    `the sizes of its ${parts} parts are unknown: no s3xfer part-size metadata${askedStore ? ', the store does not tell part sizes (PartNumber)' : ''}, ` +
    `and no common uploader's part size (${sizes} MiB) cuts ${size} bytes into ${parts} parts`
  );
}

function unverifiableReason(
  facts: ObjectFacts,
  etag: string | undefined,
  encryption: string | undefined,
  parts: number | undefined,
  layoutProblem: string | undefined,
): string {
  if (layoutProblem) return `its multipart ETag cannot be recomputed: ${layoutProblem}`;
  if (encryption) return `its ETag is not the MD5 of its bytes (${encryption}) and the store keeps no checksum of it`;
  if (!etag) return 'the store gave no ETag and no checksum for it';
  if (parts === undefined) return `its ETag "${etag}" is neither an MD5 nor a multipart ETag, and the store keeps no checksum of it`;
  return `its multipart ETag cannot be recomputed (${facts.size} bytes in ${parts} parts)`;
}

/** The units a check hashes separately for a given set of download ranges. */
export function digestUnits(check: Check, size: number, downloadRanges: ByteRange[]): ByteRange[] {
  if (size === 0) return [];
  if (check.shape === 'whole') return [{ start: 0, end: size - 1 }];
  if (check.shape === 'parts') return layoutRanges(size, check.layout!);
  return downloadRanges;
}

/**
 * The ranges a download must fetch for a check: one stream for `whole`, the parts for `parts`
 * (each part must lie within one range: one range per part, or one for all when the object is
 * below the threshold or written in order), anything for `ranges`.
 */
export function downloadRangesFor(check: Check, size: number, planned: ByteRange[], positional: boolean): ByteRange[] {
  if (size === 0) return [];
  const whole = [{ start: 0, end: size - 1 }];
  if (check.shape === 'whole' || !positional) return whole;
  // Below the multipart threshold one GET still does: its bytes are split into parts as they pass.
  if (check.shape === 'parts') return planned.length > 1 ? layoutRanges(size, check.layout!) : whole;
  return planned;
}

/** Where a pass reads bytes from besides the chunks it is fed: the file they were just written to. */
export interface HashedFile {
  path: string;
  workers: HashWorkers;
  /** Other files are downloaded and hashed alongside (a directory job): their digests can go in step. */
  alongside?: boolean;
}

/**
 * The digests of one pass over an object: bytes are fed with their offsets and routed to the unit
 * (part or range) they belong to; a unit's bytes must arrive in order, which they do as each unit
 * lies within one download range and a resumed range goes on from its first missing byte. Given a
 * {@link HashedFile}, MD5 and SHA-256 units are hashed by worker threads reading the bytes back
 * from that file (fed bytes must then be written there already); other digests are computed inline.
 */
export class PassDigests {
  private readonly inline: Digest[] | undefined;
  private readonly inFile: FileDigest[] | undefined;
  private readonly starts: number[];
  private stopped = false;
  private stopping: Promise<void> | undefined;

  /** `sideBySide`: the units are fetched at once (their bytes arrive interleaved), not one after another. */
  constructor(
    readonly check: Check,
    readonly units: ByteRange[],
    file?: HashedFile,
    sideBySide = false,
  ) {
    const algorithm = check.algorithm;
    if (file && (algorithm === 'md5' || algorithm === 'sha256')) {
      // Parts fetched side by side are hashed in step, and so are the files of a directory job
      // (their parts too when one GET fetches them one after another: other files are partners).
      const streams = (sideBySide && units.length > 1) || file.alongside === true;
      this.inFile = units.map((unit) =>
        file.workers.fileDigest(file.path, algorithm, streams ? { streams: { start: unit.start, end: unit.end + 1 } } : {}),
      );
    } else {
      this.inline = units.map(() => createDigest(algorithm));
    }
    this.starts = units.map((u) => u.start);
  }

  /** Hashes `chunks`, the bytes from `position` on. */
  feed(position: number, chunks: Uint8Array[]): void {
    if (this.stopped) return;
    if (this.inFile) {
      let end = position;
      for (const chunk of chunks) end += chunk.length;
      for (let index = this.unitAt(position), at = position; at < end; index++) {
        const unitEnd = Math.min(end, this.units[index]!.end + 1);
        this.inFile[index]!.written(at, unitEnd);
        at = unitEnd;
      }
      return;
    }
    for (const chunk of chunks) {
      let offset = 0;
      while (offset < chunk.length) {
        const at = position + offset;
        const index = this.unitAt(at);
        const unit = this.units[index]!;
        const take = Math.min(chunk.length - offset, unit.end + 1 - at);
        this.inline![index]!.update(offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take));
        offset += take;
      }
      position += chunk.length;
    }
  }

  /**
   * Stops hashing (the check no longer applies, or the download failed); resolves once no thread
   * holds the file, however many times it is called.
   */
  stop(): Promise<void> {
    this.stopped = true;
    this.stopping ??= Promise.all((this.inFile ?? []).map((digest) => digest.drop())).then(() => undefined);
    return this.stopping;
  }

  /** Every unit's digest (call once, after the pass). */
  async unitDigests(): Promise<Buffer[]> {
    return Promise.all((this.inFile ?? this.inline!).map((d) => d.digest()));
  }

  private unitAt(position: number): number {
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.starts[mid]! <= position) low = mid;
      else high = mid - 1;
    }
    return low;
  }
}

/** The value a check compares with what the store gave, from its units' digests. */
export async function digestValue(check: Check, units: ByteRange[], digests: Buffer[]): Promise<string> {
  if (digests.length === 0) {
    // An empty object: the digest of no bytes.
    const empty = await oneShot(check.algorithm, Buffer.alloc(0));
    return check.method === 'md5-etag' ? empty.toString('hex') : empty.toString('base64');
  }
  switch (check.shape) {
    case 'whole':
      return check.method === 'md5-etag' ? digests[0]!.toString('hex') : digests[0]!.toString('base64');
    case 'ranges': {
      const algorithm = check.algorithm as CrcAlgorithm;
      let value = digests[0]!;
      for (let i = 1; i < digests.length; i++) value = combineCrc(algorithm, value, digests[i]!, units[i]!.end - units[i]!.start + 1);
      return value.toString('base64');
    }
    case 'parts': {
      // The digest of the parts' binary digests, then `-N`.
      const joined = await oneShot(check.algorithm, Buffer.concat(digests));
      return `${check.method === 'multipart-etag' ? joined.toString('hex') : joined.toString('base64')}-${check.layout!.parts}`;
    }
  }
}

/** A digest of bytes at hand. */
async function oneShot(algorithm: DigestAlgorithm, data: Buffer): Promise<Buffer> {
  const digest = createDigest(algorithm);
  digest.update(data);
  return digest.digest();
}

/**
 * Re-hashes a downloaded file for other guessed layouts (after a stable mismatch of the first
 * guess): one sequential read, every layout's part digests at once. Returns the first layout whose
 * value matches `expected`.
 */
export async function matchLayoutInFile(path: string, check: Check, layouts: PartLayout[], size: number): Promise<PartLayout | undefined> {
  if (layouts.length === 0) return undefined;
  const passes = layouts.map((layout) => {
    const alternative: Check = { ...check, layout };
    return new PassDigests(alternative, layoutRanges(size, layout));
  });
  let position = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    const bytes = chunk as Buffer;
    for (const pass of passes) pass.feed(position, [bytes]);
    position += bytes.length;
  }
  for (const pass of passes) {
    if ((await digestValue(pass.check, pass.units, await pass.unitDigests())) === check.expected) return pass.check.layout;
  }
  return undefined;
}
