import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { GetObjectCommand, type GetObjectCommandInput, HeadObjectCommand, type HeadObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  downloadFile,
  IntegrityError,
  PART_SIZE_METADATA,
  resolveTransferConfig,
  type TransferResult,
  UsageError,
} from '../../src/index.js';
import { planVerification } from '../../src/integrity/checks.js';
import { combineCrc, createDigest } from '../../src/integrity/digests.js';
import { guessLayouts, metadataLayout, multipartEtagParts, uploaderPartSizes } from '../../src/integrity/layout.js';
import { leftoverTempFiles, MiB, tempDir } from '../helpers/files.js';

const GiB = 1024 * MiB;
const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
let dir: string;

beforeEach(async () => {
  s3.reset();
  dir = await tempDir();
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const md5 = (data: Uint8Array) => createHash('md5').update(data).digest();
const plainEtag = (data: Buffer) => `"${md5(data).toString('hex')}"`;

/** The ETag S3 gives a multipart upload of `data` in parts of `partSize`. */
function multipartEtag(data: Buffer, partSize: number): string {
  const parts = cut(data, partSize);
  return `"${md5(Buffer.concat(parts.map(md5))).toString('hex')}-${parts.length}"`;
}

function cut(data: Buffer, partSize: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let start = 0; start < data.length; start += partSize) parts.push(data.subarray(start, start + partSize));
  return parts;
}

const crc32Of = (data: Uint8Array) => be32(zlibCrc32(data));
const crc32cOf = (data: Uint8Array) => be32(new Crc32c().update(data).digest());
async function crc64Of(data: Uint8Array): Promise<Buffer> {
  const crc = new Crc64Nvme();
  crc.update(data);
  return Buffer.from(await crc.digest());
}
function be32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes;
}

interface ServeOptions {
  etag?: string;
  /** Extra HeadObject answer fields (metadata, checksums, encryption). */
  head?: Record<string, unknown>;
  /** Extra GetObject answer fields (encryption). */
  get?: Record<string, unknown>;
  /** Answer HeadObject with PartNumber as S3 does (part size of part N); otherwise as Ceph does (ignore it). */
  partSizes?: number[];
  /** Whether the `call`-th GET (0-based) gets a flipped byte: true for its middle byte, or a number for that byte. */
  corrupt?: (call: number, input: GetObjectCommandInput) => boolean | number;
}

/** A fake store for one object: HEAD (with PartNumber, or ignoring it) and (ranged) GETs, corrupting chosen ones. */
function serve(data: Buffer, options: ServeOptions = {}) {
  const etag = options.etag ?? plainEtag(data);
  let calls = 0;
  s3.on(HeadObjectCommand).callsFake(async (input: HeadObjectCommandInput) => {
    if (input.PartNumber !== undefined && options.partSizes) {
      const sizes = options.partSizes;
      return { ContentLength: sizes[input.PartNumber - 1], PartsCount: sizes.length, ETag: etag, ...options.head };
    }
    return { ContentLength: data.length, ETag: etag, ...options.head };
  });
  s3.on(GetObjectCommand).callsFake((input: GetObjectCommandInput) => {
    if (input.IfMatch !== undefined && input.IfMatch !== etag) {
      throw Object.assign(new Error(''), { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });
    }
    const match = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? '');
    const start = match ? Number(match[1]) : 0;
    const end = match ? Math.min(Number(match[2]), data.length - 1) : data.length - 1;
    let slice = data.subarray(start, end + 1);
    const flip = options.corrupt?.(calls++, input) ?? false;
    if (flip !== false && slice.length > 0) {
      slice = Buffer.from(slice);
      slice[flip === true ? Math.floor(slice.length / 2) : flip]! ^= 0xff;
    }
    return {
      Body: Readable.from([slice]) as never,
      ContentLength: slice.length,
      ...(match ? { ContentRange: `bytes ${start}-${end}/${data.length}` } : {}),
      ETag: etag,
      ...options.get,
    };
  });
}

const gets = () => s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input);
const heads = () => s3.commandCalls(HeadObjectCommand).map((c) => c.args[0].input);
const rangesAsked = () => gets().map((i) => i.Range);

async function failureOf(promise: Promise<unknown>): Promise<IntegrityError> {
  const failure = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(failure).toBeInstanceOf(IntegrityError);
  return failure as IntegrityError;
}

describe('digests', () => {
  it.each([
    ['crc32', 'cbf43926'],
    ['crc32c', 'e3069283'],
    ['crc64nvme', 'ae8b14860a799888'],
  ] as const)('%s of "123456789" is the catalogue check value', async (algorithm, check) => {
    const digest = createDigest(algorithm);
    digest.update(Buffer.from('123456789'));
    expect((await digest.digest()).toString('hex')).toBe(check);
  });

  it.each(['crc32', 'crc32c', 'crc64nvme'] as const)(
    'combines %s of ranges into the CRC of the whole, in any length',
    async (algorithm) => {
      const data = randomBytes(3 * MiB + 77);
      const cuts = [0, 1, 1000, 1000, 2 * MiB + 5, data.length];
      const whole = createDigest(algorithm);
      whole.update(data);
      let combined: Buffer | undefined;
      for (let i = 1; i < cuts.length; i++) {
        const piece = createDigest(algorithm);
        const bytes = data.subarray(cuts[i - 1], cuts[i]);
        piece.update(bytes);
        const value = await piece.digest();
        combined = combined ? combineCrc(algorithm, combined, value, bytes.length) : value;
      }
      expect(combined!.toString('hex')).toBe((await whole.digest()).toString('hex'));
    },
  );
});

describe('part layouts', () => {
  it('reads the part count of a multipart ETag and nothing else', () => {
    expect(multipartEtagParts(`"${'a'.repeat(32)}-12"`)).toBe(12);
    expect(multipartEtagParts(`${'A'.repeat(32)}-1`)).toBe(1);
    expect(multipartEtagParts(`"${'a'.repeat(32)}"`)).toBeUndefined();
    expect(multipartEtagParts('"multi-3"')).toBeUndefined();
    expect(multipartEtagParts(`"${'a'.repeat(32)}-10001"`)).toBeUndefined();
  });

  it("knows each uploader's part size for ordinary files", () => {
    expect(uploaderPartSizes(100 * MiB)).toEqual([
      { uploader: 'aws CLI / boto3', partSize: 8 * MiB },
      { uploader: 'lib-storage', partSize: 5 * MiB },
      { uploader: 'rclone', partSize: 5 * MiB },
      { uploader: 'mc', partSize: 16 * MiB },
      { uploader: 's3cmd', partSize: 15 * MiB },
      { uploader: 's5cmd', partSize: 50 * MiB },
    ]);
  });

  it('raises the aws CLI part size the way s3transfer does: doubling 8 MiB until 10,000 parts suffice', () => {
    const awsCli = (size: number) => uploaderPartSizes(size)[0]!.partSize;
    expect(awsCli(10_000 * 8 * MiB)).toBe(8 * MiB); // exactly 10,000 parts
    expect(awsCli(10_000 * 8 * MiB + 1)).toBe(16 * MiB);
    expect(awsCli(200 * GiB)).toBe(32 * MiB);
    expect(awsCli(1024 * GiB)).toBe(128 * MiB);
  });

  it('raises the others the way each does', () => {
    const size = 500 * GiB;
    const bySource = Object.fromEntries(uploaderPartSizes(size).map((u) => [u.uploader, u.partSize]));
    expect(bySource['lib-storage']).toBe(Math.ceil(size / 10_000)); // 53,687,092
    expect(bySource['rclone']).toBe(52 * MiB); // ⌈53,687,091 B⌉ to a MiB
    expect(bySource['mc']).toBe(64 * MiB); // a multiple of 16 MiB
    expect(bySource['s5cmd']).toBe(Math.floor(size / 10_000) + 1);
    expect(bySource['s3cmd']).toBe(15 * MiB);
    for (const { partSize } of uploaderPartSizes(size)) {
      if (partSize !== 15 * MiB) expect(Math.ceil(size / partSize)).toBeLessThanOrEqual(10_000);
    }
  });

  it.each([
    ['lib-storage / rclone 5 MiB', 12 * MiB, 3, 5 * MiB],
    ['aws CLI 8 MiB', 20 * MiB + 5, 3, 8 * MiB],
    ['s3cmd 15 MiB', 31 * MiB, 3, 15 * MiB],
    ['mc 16 MiB', 47 * MiB, 3, 16 * MiB],
    ['s5cmd 50 MiB', 120 * MiB, 3, 50 * MiB],
    ['aws CLI raised to 16 MiB (mc too)', 80 * GiB, 5120, 16 * MiB],
  ])('guesses %s from the size and the part count', (_name, size, parts, partSize) => {
    expect(guessLayouts(size, parts).map((l) => l.partSize)).toEqual([partSize]);
  });

  it('offers every common part size that fits, most common first, and none for odd parts', () => {
    expect(guessLayouts(9 * MiB, 2).map((l) => l.partSize)).toEqual([8 * MiB, 5 * MiB]);
    expect(guessLayouts(25 * MiB, 3)).toEqual([]); // 12 + 12 + 1 MiB: no uploader's size
    expect(guessLayouts(123, 1)).toEqual([expect.objectContaining({ parts: 1 })]);
  });

  it("trusts s3xfer's metadata only when it fits the ETag's part count", () => {
    expect(metadataLayout(20 * MiB, 4, String(5 * MiB))).toMatchObject({ partSize: 5 * MiB, source: 'metadata' });
    expect(metadataLayout(20 * MiB, 3, String(5 * MiB))).toBeUndefined();
    expect(metadataLayout(20 * MiB, 4, 'five')).toBeUndefined();
  });
});

describe('choosing a check', () => {
  const etag = `"${'a'.repeat(32)}"`;
  const multi = (n: number) => `"${'b'.repeat(32)}-${n}"`;
  const noHead = () => Promise.reject(new Error('not expected'));
  const options = { rangedByDefault: false, partSize: 8 * MiB, headPart: noHead };

  it('uses a plain MD5 ETag, but not under SSE-KMS or SSE-C', async () => {
    expect((await planVerification({ size: 10, etag }, options)).check?.method).toBe('md5-etag');
    const kms = await planVerification({ size: 10, etag, serverSideEncryption: 'aws:kms' }, options);
    expect(kms.check).toBeUndefined();
    expect(kms.reason).toMatch(/not the MD5.*SSE-KMS/);
    const ssec = await planVerification({ size: 10, etag, sseCustomerAlgorithm: 'AES256' }, options);
    expect(ssec.reason).toMatch(/SSE-C/);
    expect((await planVerification({ size: 10, etag, serverSideEncryption: 'AES256' }, options)).check?.method).toBe('md5-etag');
  });

  it('prefers the cheapest certain check: CRC32 over MD5, MD5 over CRC32C', async () => {
    const both = await planVerification({ size: 10, etag, checksums: { crc32: 'AAAAAA==', crc32c: 'AAAAAA==' } }, options);
    expect(both.check?.method).toBe('crc32');
    const crc32c = await planVerification({ size: 10, etag, checksums: { crc32c: 'AAAAAA==' } }, options);
    expect(crc32c.check?.method).toBe('md5-etag');
    // A big single-part object would be fetched in parallel ranges: a combinable CRC beats one MD5 stream.
    const big = await planVerification(
      { size: 100 * MiB, etag, checksums: { crc64nvme: 'AAAAAAAAAAA=' } },
      { ...options, rangedByDefault: true },
    );
    expect(big.check).toMatchObject({ method: 'crc64nvme', shape: 'ranges' });
  });

  it("uses s3xfer's metadata for a multipart ETag without asking the store", async () => {
    const plan = await planVerification({ size: 20 * MiB, etag: multi(4), recordedPartSize: String(5 * MiB) }, options);
    expect(plan.check).toMatchObject({ method: 'multipart-etag', certain: true, layout: { partSize: 5 * MiB, source: 'metadata' } });
  });

  it('reads the layout with PartNumber=1 (and N) where the store answers it', async () => {
    const asked: number[] = [];
    const headPart = async (n: number) => {
      asked.push(n);
      return { contentLength: n === 3 ? 2 * MiB : 6 * MiB, partsCount: 3 };
    };
    const plan = await planVerification({ size: 14 * MiB, etag: multi(3) }, { ...options, headPart });
    expect(plan.check).toMatchObject({ certain: true, layout: { partSize: 6 * MiB, source: 'part-number' } });
    expect(asked).toEqual([1, 3]);
  });

  it('finds unequal parts through PartNumber and gives up on the ETag', async () => {
    const sizes = [6 * MiB, 5 * MiB, 7 * MiB];
    const plan = await planVerification(
      { size: 18 * MiB, etag: multi(3) },
      { ...options, headPart: async (n) => ({ contentLength: sizes[n - 1], partsCount: 3 }) },
    );
    expect(plan.check).toBeUndefined();
    expect(plan.reason).toMatch(/unequal sizes/);
  });

  it('guesses when the store ignores PartNumber (Ceph answers with the whole object)', async () => {
    const headPart = async () => ({ contentLength: 20 * MiB + 5 });
    const plan = await planVerification({ size: 20 * MiB + 5, etag: multi(3) }, { ...options, headPart });
    expect(plan.check).toMatchObject({ certain: false, layout: { partSize: 8 * MiB, source: 'guess' } });
  });

  it('needs no layout when the store keeps a full-object checksum, and uses a composite one with a layout', async () => {
    const full = await planVerification({ size: 20 * MiB, etag: multi(3), checksums: { crc64nvme: 'x', type: 'FULL_OBJECT' } }, options);
    expect(full.check).toMatchObject({ method: 'crc64nvme', shape: 'ranges' });
    const composite = await planVerification(
      { size: 20 * MiB, etag: multi(4), recordedPartSize: String(5 * MiB), checksums: { crc32: 'x-4', type: 'COMPOSITE' } },
      options,
    );
    expect(composite.check).toMatchObject({ method: 'crc32', shape: 'parts' });
  });
});

describe('verified downloads', () => {
  const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 4 };

  it("recomputes the multipart ETag of s3xfer's own upload over ranges aligned to its parts", async () => {
    const data = randomBytes(21 * MiB + 3);
    serve(data, { etag: multipartEtag(data, 8 * MiB), head: { Metadata: { [PART_SIZE_METADATA]: String(8 * MiB) } } });
    const target = join(dir, 'own.bin');
    const result = await downloadFile(client, 'bkt', 'own.bin', target, { config });

    expect(result).toMatchObject({ verified: 'multipart-etag', parts: 3, multipart: true });
    expect(result.warnings).toBeUndefined();
    expect(rangesAsked().sort()).toEqual(
      [`bytes=0-${8 * MiB - 1}`, `bytes=${8 * MiB}-${16 * MiB - 1}`, `bytes=${16 * MiB}-${data.length - 1}`].sort(),
    );
    expect(heads()[0]).toMatchObject({ ChecksumMode: 'ENABLED' });
    expect(heads()).toHaveLength(1); // the metadata gave the layout: no PartNumber question
    expect(Buffer.compare(await readFile(target), data)).toBe(0);
  });

  it('verifies an aws-CLI-style upload (8 MiB parts, no metadata) after asking PartNumber=1 of a store that ignores it', async () => {
    const data = randomBytes(20 * MiB + 5);
    serve(data, { etag: multipartEtag(data, 8 * MiB) });
    const result = await downloadFile(client, 'bkt', 'cli.bin', join(dir, 'cli.bin'), { config });
    expect(result.verified).toBe('multipart-etag');
    expect(heads().map((h) => h.PartNumber)).toEqual([undefined, 1]);
    expect(rangesAsked()).toContain(`bytes=${8 * MiB}-${16 * MiB - 1}`);
  });

  it('verifies parts of any equal size where the store answers PartNumber', async () => {
    const data = randomBytes(20 * MiB);
    const partSizes = [7 * MiB, 7 * MiB, 6 * MiB];
    serve(data, { etag: multipartEtag(data, 7 * MiB), partSizes });
    const result = await downloadFile(client, 'bkt', 'odd.bin', join(dir, 'odd.bin'), { config });
    expect(result.verified).toBe('multipart-etag');
    expect(heads().map((h) => h.PartNumber)).toEqual([undefined, 1, 3]);
  });

  it('keeps hashing across a broken stream: the resumed range goes on with the same digest', async () => {
    const data = randomBytes(12 * MiB + 7);
    let calls = 0;
    s3.on(HeadObjectCommand).resolves({
      ContentLength: data.length,
      ETag: multipartEtag(data, 5 * MiB),
      Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) },
    });
    s3.on(GetObjectCommand).callsFake((input: GetObjectCommandInput) => {
      const [, from, to] = /^bytes=(\d+)-(\d+)$/.exec(input.Range!)!.map(Number) as [number, number, number];
      const slice = data.subarray(from, to + 1);
      const body =
        calls++ === 0
          ? Readable.from(
              (async function* () {
                // 3 MiB written in the loop, 200 KiB still batched when the stream breaks.
                yield slice.subarray(0, 3 * MiB);
                yield slice.subarray(3 * MiB, 3 * MiB + 200 * 1024);
                throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
              })(),
            )
          : Readable.from([slice]);
      return { Body: body as never, ContentLength: slice.length, ContentRange: `bytes ${from}-${to}/${data.length}` };
    });
    const result = await downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config: { ...config, concurrency: 1 } });
    expect(result.verified).toBe('multipart-etag');
    expect(rangesAsked()).toContain(`bytes=${3 * MiB + 200 * 1024}-${5 * MiB - 1}`);
    expect(rangesAsked()).toHaveLength(4); // no re-fetch: the digest was right
  });

  it('heals a corruption that happens once by fetching every part again', async () => {
    const data = randomBytes(12 * MiB + 7);
    serve(data, {
      etag: multipartEtag(data, 5 * MiB),
      head: { Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) } },
      corrupt: (call) => call === 1,
    });
    const target = join(dir, 'healed.bin');
    const progress: number[] = [];
    const result = await downloadFile(client, 'bkt', 'k', target, { config, onProgress: (p) => progress.push(p.bytesDone) });
    expect(result.verified).toBe('multipart-etag');
    expect(result.warnings).toEqual([
      expect.stringMatching(/first download did not match the object's multipart ETag.*fetched again and verified/),
    ]);
    expect(gets()).toHaveLength(6);
    expect(Buffer.compare(await readFile(target), data)).toBe(0);
    expect(progress.at(-1)).toBe(data.length);
  });

  it('fails a lasting multipart mismatch with both digests, once re-fetched, leaving the old destination', async () => {
    const data = randomBytes(12 * MiB + 7);
    const etag = multipartEtag(data, 5 * MiB);
    serve(data, {
      etag,
      head: { Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) } },
      corrupt: (_call, input) => input.Range?.startsWith('bytes=0-') ?? false,
    });
    const target = join(dir, 'bad.bin');
    await writeFile(target, 'previous');
    const failure = await failureOf(downloadFile(client, 'bkt', 'k', target, { config }));

    expect(failure.code).toBe('ChecksumMismatch');
    expect(failure.message).toContain(`expected ${etag.replace(/"/g, '')}, got `);
    expect(failure.message).toMatch(/got [0-9a-f]{32}-3 \(the same bytes in two downloads\)/);
    expect(gets()).toHaveLength(6); // three ranges, fetched once more, then no more
    expect(await readFile(target, 'utf8')).toBe('previous');
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('names the parts that changed between the two downloads', async () => {
    const data = randomBytes(12 * MiB + 7);
    serve(data, {
      etag: multipartEtag(data, 5 * MiB),
      head: { Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) } },
      // Part 2 is corrupted every time, at another byte each time.
      corrupt: (call, input) => (input.Range === `bytes=${5 * MiB}-${10 * MiB - 1}` ? call : false),
    });
    const failure = await failureOf(downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config }));
    expect(failure.message).toMatch(/fetched twice, the first time [0-9a-f]{32}-3; parts that differed between the two: 2\)$/);
  });

  it('heals a single-part MD5 mismatch by fetching the object once more, and fails a lasting one', async () => {
    const data = randomBytes(3000);
    serve(data, { corrupt: (call) => call === 0 });
    const healed = await downloadFile(client, 'bkt', 'k', join(dir, 'a'));
    expect(healed.verified).toBe('md5-etag');
    expect(gets()).toHaveLength(2);

    s3.reset();
    serve(data, { corrupt: () => true });
    const failure = await failureOf(downloadFile(client, 'bkt', 'k', join(dir, 'b')));
    expect(failure.message).toMatch(new RegExp(`MD5 ETag: expected ${md5(data).toString('hex')}, got [0-9a-f]{32}`));
    expect(gets()).toHaveLength(2);
    await expect(readFile(join(dir, 'b'))).rejects.toThrow(/ENOENT/);
  });

  it('splits one GET into parts as the bytes pass, for a multipart object below the threshold', async () => {
    const data = randomBytes(6 * MiB + 1);
    serve(data, { etag: multipartEtag(data, 5 * MiB), head: { Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) } } });
    const result = await downloadFile(client, 'bkt', 'k', join(dir, 'k'));
    expect(result).toMatchObject({ verified: 'multipart-etag', parts: 1 });
    expect(rangesAsked()).toEqual([undefined]);
  });

  it('verifies what goes to a device in one stream, and fails a mismatch without fetching again', async () => {
    const data = randomBytes(12 * MiB + 7);
    const head = { Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) } };
    serve(data, { etag: multipartEtag(data, 5 * MiB), head });
    expect((await downloadFile(client, 'bkt', 'k', '/dev/null', { config })).verified).toBe('multipart-etag');
    expect(rangesAsked()).toEqual([undefined]);

    s3.reset();
    serve(data, { etag: multipartEtag(data, 5 * MiB), head, corrupt: () => 6 * MiB });
    const failure = await failureOf(downloadFile(client, 'bkt', 'k', '/dev/null', { config }));
    expect(failure.message).toMatch(/written in place to a device or pipe, so not fetched again\)$/);
    expect(gets()).toHaveLength(1);
  });

  it('fetches a single-part object above the threshold in one stream to hash its MD5', async () => {
    const data = randomBytes(12 * MiB);
    serve(data);
    const result = await downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config });
    expect(result).toMatchObject({ verified: 'md5-etag', parts: 1, multipart: false });
    expect(gets()).toEqual([{ Bucket: 'bkt', Key: 'k', IfMatch: plainEtag(data) }]);
  });
});

describe('verify modes', () => {
  const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB };
  /** 12 + 12 + 1 MiB parts, no metadata: no uploader's part size explains the ETag. */
  function serveOddUpload(corrupt?: ServeOptions['corrupt']) {
    const data = randomBytes(25 * MiB);
    const parts = [data.subarray(0, 12 * MiB), data.subarray(12 * MiB, 24 * MiB), data.subarray(24 * MiB)];
    serve(data, { etag: `"${md5(Buffer.concat(parts.map(md5))).toString('hex')}-3"`, corrupt });
    return data;
  }

  it('auto downloads an unverifiable object with a warning', async () => {
    serveOddUpload();
    const result = await downloadFile(client, 'bkt', 'odd', join(dir, 'odd'), { config });
    expect(result.verified).toBe(false);
    expect(result.warnings).toEqual([expect.stringMatching(/^s3:\/\/bkt\/odd could not be verified: .*sizes of its 3 parts are unknown/)]);
  });

  it('require refuses it before any GET, writing nothing', async () => {
    serveOddUpload();
    const target = join(dir, 'odd');
    await writeFile(target, 'keep');
    const failure = await failureOf(downloadFile(client, 'bkt', 'odd', target, { config: { ...config, verify: 'require' } }));
    expect(failure.code).toBe('Unverifiable');
    expect(failure.message).toMatch(/cannot be verified/);
    expect(gets()).toEqual([]);
    expect(await readFile(target, 'utf8')).toBe('keep');
    expect(await readdir(dir)).toEqual(['odd']);
  });

  it('off checks nothing: no checksum mode, no digest, no warning', async () => {
    const data = randomBytes(2000);
    serve(data, { corrupt: () => true });
    const result: TransferResult = await downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config: { verify: 'off' } });
    expect(result.verified).toBe(false);
    expect(result.warnings).toBeUndefined();
    expect(heads()[0]!.ChecksumMode).toBeUndefined();
    expect(gets()).toHaveLength(1);
  });

  it('refuses an unknown mode', () => {
    expect(() => resolveTransferConfig({ verify: 'sometimes' as never })).toThrow(UsageError);
    expect(() => resolveTransferConfig({ verify: 'sometimes' as never })).toThrow(/verify mode "sometimes".*auto, require or off/);
  });

  it('a wrong guess whose bytes come out the same twice is unverifiable, not corrupt', async () => {
    // 6 + 5 + 7 MiB: 8 MiB parts would also give 3 parts, so that is tried first.
    const data = randomBytes(18 * MiB);
    const parts = [data.subarray(0, 6 * MiB), data.subarray(6 * MiB, 11 * MiB), data.subarray(11 * MiB)];
    serve(data, { etag: `"${md5(Buffer.concat(parts.map(md5))).toString('hex')}-3"` });
    const auto = await downloadFile(client, 'bkt', 'k', join(dir, 'auto'), { config });
    expect(auto.verified).toBe(false);
    expect(auto.warnings).toEqual([expect.stringMatching(/could not be verified: .*none of the part layouts tried \(8 MiB parts/)]);

    const failure = await failureOf(downloadFile(client, 'bkt', 'k', join(dir, 'req'), { config: { ...config, verify: 'require' } }));
    expect(failure.code).toBe('Unverifiable');
    expect(await leftoverTempFiles(dir)).toEqual([]);
    await expect(readFile(join(dir, 'req'))).rejects.toThrow(/ENOENT/);
  });

  it('tries the other guessed layouts on the file before calling the object unverifiable', async () => {
    // 9 MiB in two parts: 8 MiB (aws CLI) is guessed first, but lib-storage cut it in 5 MiB parts.
    const data = randomBytes(9 * MiB);
    serve(data, { etag: multipartEtag(data, 5 * MiB) });
    const result = await downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config });
    expect(result.verified).toBe('multipart-etag');
    expect(result.warnings).toBeUndefined();
  });

  it('does not take an SSE-KMS ETag for an MD5 (HEAD says so)', async () => {
    const data = randomBytes(1000);
    serve(data, { etag: `"${'c'.repeat(32)}"`, head: { ServerSideEncryption: 'aws:kms' }, get: { ServerSideEncryption: 'aws:kms' } });
    const result = await downloadFile(client, 'bkt', 'kms', join(dir, 'kms'));
    expect(result.verified).toBe(false);
    expect(result.warnings).toEqual([expect.stringMatching(/could not be verified: its ETag is not the MD5 of its bytes \(SSE-KMS\)/)]);
  });

  it('does not take an SSE-KMS ETag for an MD5 when a listing skipped HEAD: the GET says so', async () => {
    const data = randomBytes(1000);
    const etag = `"${'c'.repeat(32)}"`;
    serve(data, { etag, get: { ServerSideEncryption: 'aws:kms' } });
    const known = { size: data.length, etag };
    const result = await downloadFile(client, 'bkt', 'kms', join(dir, 'kms'), { known });
    expect(heads()).toEqual([]);
    expect(result).toMatchObject({ verified: false, warnings: [expect.stringMatching(/SSE-KMS/)] });

    const failure = await failureOf(downloadFile(client, 'bkt', 'kms', join(dir, 'req'), { known, config: { verify: 'require' } }));
    expect(failure.code).toBe('Unverifiable');
    expect(await readdir(dir)).toEqual(['kms']);
  });

  it('asks HEAD for metadata when a listing gives a multipart ETag', async () => {
    const data = randomBytes(12 * MiB);
    const etag = multipartEtag(data, 5 * MiB);
    serve(data, { etag, head: { Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) } } });
    const result = await downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config, known: { size: data.length, etag } });
    expect(result.verified).toBe('multipart-etag');
    expect(heads()).toHaveLength(1);
  });
});

describe('stored checksums (ChecksumMode)', () => {
  const config = { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 3 };
  const someMultipartEtag = `"${'d'.repeat(32)}-2"`;

  it('verifies a full-object CRC64NVME over ranges of the configured size, without a layout', async () => {
    const data = randomBytes(12 * MiB + 1);
    serve(data, {
      etag: someMultipartEtag,
      head: { ChecksumCRC64NVME: (await crc64Of(data)).toString('base64'), ChecksumType: 'FULL_OBJECT' },
    });
    const result = await downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config });
    expect(result.verified).toBe('crc64nvme');
    expect(rangesAsked()).toHaveLength(3); // 5 MiB ranges, whatever the upload's parts were
    expect(heads()).toHaveLength(1);
  });

  it('fails a full-object CRC32 mismatch with both values', async () => {
    const data = randomBytes(12 * MiB + 1);
    const expected = be32(zlibCrc32(data)).toString('base64');
    serve(data, { etag: someMultipartEtag, head: { ChecksumCRC32: expected, ChecksumType: 'FULL_OBJECT' }, corrupt: () => true });
    const failure = await failureOf(downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config }));
    expect(failure.message).toContain(`CRC32 checksum: expected ${expected}, got `);
    expect(failure.message).toMatch(/got \S+ \(the same bytes in two downloads\)$/);
  });

  it('verifies a full-object CRC32C', async () => {
    const data = randomBytes(300_000);
    serve(data, {
      etag: `"${'e'.repeat(32)}"`,
      head: { ServerSideEncryption: 'aws:kms', ChecksumCRC32C: crc32cOf(data).toString('base64') },
    });
    expect((await downloadFile(client, 'bkt', 'k', join(dir, 'k'))).verified).toBe('crc32c');
  });

  it('verifies a composite CRC32C over the parts (ranges aligned to the layout)', async () => {
    const data = randomBytes(11 * MiB);
    const parts = cut(data, 5 * MiB);
    const composite = `${crc32cOf(Buffer.concat(parts.map(crc32cOf))).toString('base64')}-3`;
    serve(data, {
      etag: `"${'f'.repeat(32)}-3"`,
      head: {
        ServerSideEncryption: 'aws:kms',
        Metadata: { [PART_SIZE_METADATA]: String(5 * MiB) },
        ChecksumCRC32C: composite,
        ChecksumType: 'COMPOSITE',
      },
    });
    const result = await downloadFile(client, 'bkt', 'k', join(dir, 'k'), { config: { ...config, partSize: 8 * MiB } });
    expect(result.verified).toBe('crc32c');
    expect(rangesAsked().sort()).toEqual(
      [`bytes=0-${5 * MiB - 1}`, `bytes=${5 * MiB}-${10 * MiB - 1}`, `bytes=${10 * MiB}-${11 * MiB - 1}`].sort(),
    );
  });

  it('verifies a SHA-256 of a single-part object and prefers it to its MD5', async () => {
    const data = randomBytes(5000);
    serve(data, { head: { ChecksumSHA256: createHash('sha256').update(data).digest('base64') } });
    expect((await downloadFile(client, 'bkt', 'k', join(dir, 'k'))).verified).toBe('sha256');
  });

  it('prefers a full-object CRC32 to the MD5 ETag', async () => {
    const data = randomBytes(5000);
    serve(data, { head: { ChecksumCRC32: crc32Of(data).toString('base64') } });
    expect((await downloadFile(client, 'bkt', 'k', join(dir, 'k'))).verified).toBe('crc32');
  });
});
