import { describe, expect, it } from 'vitest';
import { planParts, planRanges, uploadPartSize } from '../../src/engine/part-plan.js';
import { DEFAULT_TRANSFER_CONFIG } from '../../src/index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('planParts: the one single-or-multipart rule for uploads and downloads', () => {
  const config = DEFAULT_TRANSFER_CONFIG;

  it('moves an object below the threshold (16 MiB) whole, even one bigger than a part (8 MiB)', () => {
    for (const direction of ['upload', 'download'] as const) {
      expect(planParts(16 * MiB - 1, config, direction)).toMatchObject({ multipart: false, ranges: [{ start: 0, end: 16 * MiB - 2 }] });
      expect(planParts(8 * MiB + 1, config, direction).multipart).toBe(false);
    }
  });

  it('moves an object that fits in one part whole even at the threshold', () => {
    expect(planParts(8 * MiB, { multipartThreshold: 8 * MiB, partSize: 8 * MiB }, 'upload').multipart).toBe(false);
    expect(planParts(8 * MiB, { multipartThreshold: 5 * MiB, partSize: 16 * MiB }, 'download').multipart).toBe(false);
  });

  it('splits an object at or above the threshold that needs more than one part', () => {
    const plan = planParts(16 * MiB, config, 'download');
    expect(plan).toMatchObject({ multipart: true, partSize: 8 * MiB });
    expect(plan.ranges).toEqual([
      { start: 0, end: 8 * MiB - 1 },
      { start: 8 * MiB, end: 16 * MiB - 1 },
    ]);
  });

  it('plans no range for an empty object', () => {
    expect(planParts(0, config, 'download')).toMatchObject({ multipart: false, ranges: [] });
  });

  it('raises upload parts for huge files but never download ranges', () => {
    const size = 10_000 * 8 * MiB + 1;
    expect(planParts(size, config, 'upload').partSize).toBe(9 * MiB);
    expect(planParts(size, config, 'download').partSize).toBe(8 * MiB);
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
