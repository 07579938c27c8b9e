import { createHash } from 'node:crypto';
import { UsageError } from '../errors.js';

/** One of `count` slices of a directory job: `index` from 0 to count − 1. */
export interface Shard {
  index: number;
  count: number;
}

/**
 * Parses `K/N` (the K-th of N, counted from 1, as CI matrices count jobs).
 * @throws {UsageError} unless 1 ≤ K ≤ N.
 */
export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const k = Number(match?.[1]);
  const n = Number(match?.[2]);
  if (!match || n < 1 || k < 1 || k > n || n > 100_000) {
    throw new UsageError(`invalid --shard "${text}": expected K/N with 1 ≤ K ≤ N, e.g. 1/4`, 'InvalidShard');
  }
  return { index: k - 1, count: n };
}

/**
 * Splits a sorted listing into `count` contiguous slices of about equal bytes, the same in every
 * job that lists the same tree: a first pass sums the weights (size + 1, so empty files count
 * too), then each entry belongs to the slice where its middle falls. No entry is in two slices and
 * none is in no slice; nothing but two numbers is held in memory.
 */
export class ShardSlicer {
  private seen = 0;

  constructor(
    readonly shard: Shard,
    private readonly total: number,
  ) {}

  /** Builds the slicer from a first pass over the same listing the job will walk. */
  static async measure(shard: Shard, weights: AsyncIterable<number>): Promise<ShardSlicer> {
    let total = 0;
    for await (const weight of weights) total += weight;
    return new ShardSlicer(shard, total);
  }

  /** Whether the next entry of the listing (in order), of this weight, is this job's. */
  next(weight: number): boolean {
    const middle = this.seen + weight / 2;
    this.seen += weight;
    if (this.total === 0) return this.shard.index === 0;
    return Math.min(this.shard.count - 1, Math.floor((middle * this.shard.count) / this.total)) === this.shard.index;
  }

  /** For entries outside the walked listing (keys only at a sync's destination): by a hash of the path. */
  owns(relative: string): boolean {
    return createHash('md5').update(relative).digest().readUInt32BE(0) % this.shard.count === this.shard.index;
  }
}

/** The weight of one listing record: its bytes plus one. */
export function shardWeight(entry: { kind: string; size?: number }): number {
  return (entry.kind === 'file' ? (entry.size ?? 0) : 0) + 1;
}
