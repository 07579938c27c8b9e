import { describe, expect, it } from 'vitest';
import { parseShard, ShardSlicer } from '../../src/directory/shard.js';
import { UsageError } from '../../src/index.js';

async function* from(values: number[]) {
  yield* values;
}

/** Which shard each weight lands in, for every shard of `count`. */
async function assign(weights: number[], count: number): Promise<number[][]> {
  const owners: number[][] = weights.map(() => []);
  for (let index = 0; index < count; index++) {
    const slicer = await ShardSlicer.measure({ index, count }, from(weights));
    weights.forEach((w, i) => {
      if (slicer.next(w)) owners[i]!.push(index);
    });
  }
  return owners;
}

describe('--shard K/N', () => {
  it('parses K/N counted from 1 and refuses anything else', () => {
    expect(parseShard('1/4')).toEqual({ index: 0, count: 4 });
    expect(parseShard('4/4')).toEqual({ index: 3, count: 4 });
    for (const bad of ['0/4', '5/4', '1/0', 'a/b', '2', '-1/3', '1/2/3']) expect(() => parseShard(bad)).toThrow(UsageError);
  });

  it('gives every entry to exactly one shard: no overlap, no gap', async () => {
    const weights = Array.from({ length: 500 }, (_, i) => ((i * 7919) % 1000) + 1);
    for (const count of [1, 2, 3, 7, 64]) {
      const owners = await assign(weights, count);
      expect(owners.every((o) => o.length === 1)).toBe(true);
    }
  });

  it('balances the shards by bytes, not by number of files', async () => {
    // One big file and many small ones: the big one fills a shard on its own.
    const weights = [...Array.from({ length: 100 }, () => 10), 1000, ...Array.from({ length: 100 }, () => 10)];
    const owners = await assign(weights, 3);
    const bytes = [0, 0, 0];
    for (const [i, [owner]] of owners.entries()) bytes[owner!] = bytes[owner!]! + weights[i]!;
    for (const b of bytes) expect(b).toBeGreaterThan(800);
    expect(Math.max(...bytes) - Math.min(...bytes)).toBeLessThanOrEqual(1000);
  });

  it('puts everything in the first shard when the listing is empty of weight', async () => {
    const owners = await assign([], 3);
    expect(owners).toEqual([]);
  });
});
