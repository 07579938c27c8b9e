/**
 * The digests a download can be checked with, behind one interface, and the arithmetic that joins
 * CRCs of byte ranges fetched out of order into the CRC of the whole object without reading any
 * byte twice.
 *
 * What each costs here (CPU seconds per GiB hashed, 64 KiB chunks, Node 20, one core of this
 * project's 2-core Xeon test machine):
 * - CRC32: `zlib.crc32`, native and vectorised: ~0.25 s/GiB.
 * - SHA-256: `crypto`, native (SHA extensions): ~0.75 s/GiB.
 * - MD5: `crypto`, native: ~1.7 s/GiB (MD5 cannot be vectorised within one stream); the parts of
 *   a download fetched side by side, and the files and parts of a directory job, four streams at a
 *   time in a hashing thread (md5x4.c): ~0.55.
 * - CRC64NVME: `@aws-sdk/crc64-nvme`, JavaScript: ~2.6 s/GiB.
 * - CRC32C: `@aws-crypto/crc32c`, JavaScript one byte at a time: ~12.5 s/GiB (~80 MiB/s, slower
 *   than many links); chosen only when nothing cheaper can verify an object.
 * Combining two range CRCs costs one multiplication modulo the polynomial (the power of x for a
 * range length is computed once per length and cached): nothing next to the hashing.
 */
import { createHash, type Hash } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';

/** The algorithms of {@link createDigest}. */
export type DigestAlgorithm = 'md5' | 'sha256' | 'crc32' | 'crc32c' | 'crc64nvme';

/** CRC algorithms: their digests of two ranges combine into the digest of both (see {@link combineCrc}). */
export type CrcAlgorithm = 'crc32' | 'crc32c' | 'crc64nvme';

/** An incremental digest. */
export interface Digest {
  update(data: Uint8Array): void;
  /** The digest bytes, big-endian for CRCs as S3 encodes them. Call once. */
  digest(): Promise<Buffer>;
}

/** Measured CPU seconds per GiB (see the top of this file): the cheaper check wins. */
export const DIGEST_COST: Readonly<Record<DigestAlgorithm, number>> = {
  crc32: 0.25,
  sha256: 0.75,
  md5: 1.7,
  crc64nvme: 2.6,
  crc32c: 12.5,
};

/** A fresh digest of `algorithm`. */
export function createDigest(algorithm: DigestAlgorithm): Digest {
  switch (algorithm) {
    case 'md5':
    case 'sha256':
      return new CryptoDigest(createHash(algorithm));
    case 'crc32':
      return new Crc32Digest();
    case 'crc32c':
      return new Crc32cDigest();
    case 'crc64nvme':
      return new Crc64NvmeDigest();
  }
}

class CryptoDigest implements Digest {
  constructor(private readonly hash: Hash) {}
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Buffer> {
    return this.hash.digest();
  }
}

class Crc32Digest implements Digest {
  private value = 0;
  update(data: Uint8Array): void {
    this.value = zlibCrc32(data, this.value);
  }
  async digest(): Promise<Buffer> {
    return uint32(this.value);
  }
}

class Crc32cDigest implements Digest {
  private readonly crc = new Crc32c();
  update(data: Uint8Array): void {
    this.crc.update(data);
  }
  async digest(): Promise<Buffer> {
    return uint32(this.crc.digest());
  }
}

class Crc64NvmeDigest implements Digest {
  private readonly crc = new Crc64Nvme();
  update(data: Uint8Array): void {
    this.crc.update(data);
  }
  async digest(): Promise<Buffer> {
    return Buffer.from(await this.crc.digest());
  }
}

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes;
}

/** Reflected polynomials and widths of the CRCs S3 stores (all with all-ones init and final XOR). */
const CRC_PARAMETERS: Readonly<Record<CrcAlgorithm, { width: number; polynomial: bigint }>> = {
  crc32: { width: 32, polynomial: 0xedb88320n },
  crc32c: { width: 32, polynomial: 0x82f63b78n },
  crc64nvme: { width: 64, polynomial: 0x9a6c9329ac4bc9b5n },
};

/**
 * Polynomial arithmetic modulo one CRC's polynomial, in the reflected bit order the CRC uses —
 * zlib's `crc32_combine` generalised to any width: crc(A‖B) = crc(A)·x^(8·|B|) + crc(B).
 */
class CrcCombiner {
  private readonly top: bigint;
  private readonly polynomial: bigint;
  /** x^(2^k) modulo the polynomial, k = 0…63. */
  private readonly powers: bigint[] = [];
  /** x^(8·n) modulo the polynomial, by n: ranges mostly have the same length. */
  private readonly cache = new Map<number, bigint>();

  constructor(width: number, polynomial: bigint) {
    this.top = 1n << BigInt(width - 1);
    this.polynomial = polynomial;
    let power = this.top >> 1n; // x^1
    for (let k = 0; k < 64; k++) {
      this.powers.push(power);
      power = this.multiply(power, power);
    }
  }

  combine(first: bigint, second: bigint, secondLength: number): bigint {
    if (secondLength === 0) return first;
    return this.multiply(this.shiftBytes(secondLength), first) ^ second;
  }

  /** a·b modulo the polynomial. */
  private multiply(a: bigint, b: bigint): bigint {
    let product = 0n;
    for (let mask = this.top; mask > 0n && a !== 0n; mask >>= 1n) {
      if (a & mask) {
        product ^= b;
        a ^= mask;
      }
      b = b & 1n ? (b >> 1n) ^ this.polynomial : b >> 1n;
    }
    return product;
  }

  /** x^(8·bytes) modulo the polynomial. */
  private shiftBytes(bytes: number): bigint {
    const cached = this.cache.get(bytes);
    if (cached !== undefined) return cached;
    let result = this.top; // x^0
    // 8·bytes = bytes·2^3: walk the bits of `bytes` from power 3 up (numbers, not bit operators: sizes pass 2^32).
    for (let n = bytes, k = 3; n > 0; n = Math.floor(n / 2), k++) {
      if (n % 2 === 1) result = this.multiply(this.powers[k]!, result);
    }
    if (this.cache.size > 64) this.cache.clear();
    this.cache.set(bytes, result);
    return result;
  }
}

const combiners = new Map<CrcAlgorithm, CrcCombiner>();

/**
 * The CRC of two consecutive byte ranges from the CRCs of each (big-endian digests as
 * {@link createDigest} gives them) and the length of the second.
 */
export function combineCrc(algorithm: CrcAlgorithm, first: Buffer, second: Buffer, secondLength: number): Buffer {
  let combiner = combiners.get(algorithm);
  if (!combiner) {
    const { width, polynomial } = CRC_PARAMETERS[algorithm];
    combiner = new CrcCombiner(width, polynomial);
    combiners.set(algorithm, combiner);
  }
  const width = CRC_PARAMETERS[algorithm].width / 8;
  const value = combiner.combine(toBigInt(first), toBigInt(second), secondLength);
  const bytes = Buffer.alloc(width);
  for (let i = width - 1, v = value; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  return bytes;
}

function toBigInt(bytes: Buffer): bigint {
  return BigInt(`0x${bytes.toString('hex') || '0'}`);
}
