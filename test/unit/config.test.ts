import { describe, expect, it } from 'vitest';
import { planRanges, uploadPartSize, uploadQueueSize } from '../../src/config.js';
import { DEFAULT_TRANSFER_CONFIG, formatBytes, parseSize, resolveTransferConfig, S3_LIMITS, UsageError } from '../../src/index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('parseSize', () => {
  it.each([
    ['8MiB', 8 * MiB],
    ['64MB', 64 * MiB], // like the aws CLI, MB means MiB
    ['1GiB', GiB],
    ['1.5GB', 1.5 * GiB],
    ['5 MiB', 5 * MiB],
    ['5242880', 5 * MiB],
    ['0', 0],
  ])('reads %s as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['abc', '12XB', '-5MB', '', 'MiB', '5 MiB extra', '1.5'])('refuses %j with a UsageError naming the value', (text) => {
    expect(() => parseSize(text, '--part-size')).toThrow(UsageError);
    expect(() => parseSize(text, '--part-size')).toThrow(/invalid --part-size/);
  });
});

describe('formatBytes', () => {
  it('prints binary units with one decimal', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(GiB)).toBe('1.0 GiB');
    expect(formatBytes(256 * MiB)).toBe('256.0 MiB');
  });
});

describe('resolveTransferConfig', () => {
  it('defaults to the aws CLI settings: 8 MiB threshold and parts, 10 at once', () => {
    expect(resolveTransferConfig()).toEqual({ multipartThreshold: 8 * MiB, partSize: 8 * MiB, concurrency: 10, maxAttempts: 5 });
    expect(DEFAULT_TRANSFER_CONFIG.partSize).toBe(8 * MiB);
  });

  it('keeps defaults for overrides that are undefined', () => {
    expect(resolveTransferConfig({ partSize: undefined, concurrency: 3 })).toMatchObject({ partSize: 8 * MiB, concurrency: 3 });
  });

  it.each([
    [{ partSize: 5 * MiB - 1 }, /part size .* from 5 MiB to [45] GiB/],
    [{ partSize: 5 * GiB + 1 }, /part size/],
    [{ multipartThreshold: 256 * MiB + 1 }, /between 0 B and 256 MiB \(a single PUT holds the file in memory\)/],
    [{ multipartThreshold: 5 * GiB + 1 }, /multipart threshold/],
    [{ multipartThreshold: -1 }, /multipart threshold/],
    [{ concurrency: 0 }, /concurrency/],
    [{ concurrency: 2.5 }, /concurrency/],
    [{ maxAttempts: 0 }, /max attempts/],
  ])('refuses %j', (overrides, message) => {
    expect(() => resolveTransferConfig(overrides)).toThrow(UsageError);
    expect(() => resolveTransferConfig(overrides)).toThrow(message);
  });

  it('accepts the limits themselves', () => {
    expect(resolveTransferConfig({ partSize: 5 * MiB }).partSize).toBe(5 * MiB);
    expect(resolveTransferConfig({ partSize: S3_LIMITS.maxPartSize, multipartThreshold: 256 * MiB }).partSize).toBe(S3_LIMITS.maxPartSize);
    expect(S3_LIMITS.maxPartSize).toBeGreaterThanOrEqual(4 * GiB); // S3's 5 GiB, or Node's largest Buffer
  });
});

describe('uploadPartSize', () => {
  it('keeps the configured size while 10,000 parts suffice', () => {
    expect(uploadPartSize(100 * MiB, 8 * MiB)).toBe(8 * MiB);
    expect(uploadPartSize(10_000 * 8 * MiB, 8 * MiB)).toBe(8 * MiB);
  });

  it('raises it to a whole MiB so that no file needs more than 10,000 parts', () => {
    const size = 10_000 * 8 * MiB + 1;
    const part = uploadPartSize(size, 8 * MiB);
    expect(part).toBe(9 * MiB);
    expect(Math.ceil(size / part)).toBeLessThanOrEqual(10_000);
    const huge = 5 * 1024 * GiB; // 5 TiB
    expect(Math.ceil(huge / uploadPartSize(huge, 8 * MiB))).toBeLessThanOrEqual(10_000);
    expect(uploadPartSize(huge, 8 * MiB) % MiB).toBe(0);
  });

  it('refuses a file that even 5 GiB parts cannot hold', () => {
    expect(() => uploadPartSize(10_000 * 5 * GiB + 1, 8 * MiB)).toThrow(/too large/);
  });
});

describe('uploadQueueSize', () => {
  const defaults = { concurrency: 10, partSize: 8 * MiB };

  it('keeps the configured concurrency for ordinary part sizes', () => {
    expect(uploadQueueSize(8 * MiB, defaults)).toBe(10);
    expect(uploadQueueSize(25 * MiB, defaults)).toBe(10); // 250 MiB fits the 256 MiB budget
  });

  it('runs fewer parts at once when parts were raised for a huge file, bounding memory', () => {
    const tebibyte = 1024 * GiB;
    const part = uploadPartSize(tebibyte, 8 * MiB);
    const queue = uploadQueueSize(part, defaults);
    expect(queue).toBe(2);
    expect(queue * part).toBeLessThanOrEqual(256 * MiB);
    expect(uploadQueueSize(5 * GiB, defaults)).toBe(1);
  });

  it('respects a larger budget the caller configured', () => {
    expect(uploadQueueSize(64 * MiB, { concurrency: 16, partSize: 64 * MiB })).toBe(16);
  });
});

describe('planRanges', () => {
  it('plans nothing for an empty object', () => {
    expect(planRanges(0, 8 * MiB)).toEqual([]);
  });

  it('covers every byte once, in order, with inclusive ends', () => {
    expect(planRanges(10, 4)).toEqual([
      { start: 0, end: 3 },
      { start: 4, end: 7 },
      { start: 8, end: 9 },
    ]);
    expect(planRanges(8, 4)).toEqual([
      { start: 0, end: 3 },
      { start: 4, end: 7 },
    ]);
    for (const size of [1, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1, 100 * MiB]) {
      const ranges = planRanges(size, 8 * MiB);
      expect(ranges[0]!.start).toBe(0);
      expect(ranges.at(-1)!.end).toBe(size - 1);
      for (const [i, r] of ranges.slice(1).entries()) expect(r.start).toBe(ranges[i]!.end + 1);
      expect(ranges).toHaveLength(Math.ceil(size / (8 * MiB)));
    }
  });
});
