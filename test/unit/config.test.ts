import { describe, expect, it } from 'vitest';
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
    ['1024B', 1024],
    ['7 b', 7],
  ])('reads %s as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['abc', '12XB', '-5MB', '', 'MiB', '5 MiB extra', '1.5', '1.3B', '0.5 b'])(
    'refuses %j with a UsageError naming the value',
    (text) => {
      expect(() => parseSize(text, '--part-size')).toThrow(UsageError);
      expect(() => parseSize(text, '--part-size')).toThrow(/invalid --part-size/);
    },
  );
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
  it('defaults to 8 MiB parts and 10 at once, as the aws CLI, and a 16 MiB multipart threshold', () => {
    expect(resolveTransferConfig()).toEqual({
      multipartThreshold: 16 * MiB,
      partSize: 8 * MiB,
      concurrency: 10,
      memoryBudget: 256 * MiB,
      maxAttempts: 5,
    });
    expect(DEFAULT_TRANSFER_CONFIG.partSize).toBe(8 * MiB);
  });

  it('refuses a memory budget below one minimum part', () => {
    expect(() => resolveTransferConfig({ memoryBudget: 5 * MiB - 1 })).toThrow(/invalid memory budget.*at least 5 MiB/);
    expect(resolveTransferConfig({ memoryBudget: 5 * MiB }).memoryBudget).toBe(5 * MiB);
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
