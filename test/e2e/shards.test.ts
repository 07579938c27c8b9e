/**
 * End-to-end: `--shard K/N` splits one `cp --recursive` or `sync` between N CI jobs: together the
 * N runs transfer every file exactly once (no overlap, no gap), each a slice of about equal bytes.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv } from '../helpers/s3.js';
import { keysUnder, writeTree } from '../helpers/trees.js';
import { expectExitCode, expectFailure } from './expect-cli.js';
import { type CliResult, closeCliWorkspace, openCliWorkspace, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
const tree: Record<string, Uint8Array> = {};

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('shards'));
  // 90 files of very different sizes (1 B to ~300 KiB) in a few directories.
  for (let i = 0; i < 90; i++) tree[`d${i % 4}/f${String(i).padStart(2, '0')}.bin`] = randomBytes(1 + ((i * 7919) % 97) * 3000);
  await writeTree(join(work, 'tree'), tree);
});
afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

const s3xfer = (args: string[]): Promise<CliResult> => runCli(args, { env: cliEnv(), cwd: work });

/** The files a run reports it transferred: `upload: SOURCE → DESTINATION  …` lines. */
function transferred(result: CliResult): string[] {
  return result.stdout
    .split('\n')
    .map((line) => /^(?:upload|download): .* → (\S.*?) {2}\d/.exec(line)?.[1])
    .filter((path): path is string => path !== undefined);
}

describe('--shard K/N', () => {
  it('cp --recursive: three shards upload every file exactly once, in slices of similar bytes', async () => {
    const seen: string[] = [];
    const bytes: number[] = [];
    for (const k of [1, 2, 3]) {
      const result = await s3xfer(['cp', '--recursive', join(work, 'tree'), `s3://${bucket}/cp/`, '--shard', `${k}/3`]);
      expectExitCode(result, 0);
      const mine = transferred(result);
      expect(mine.length).toBeGreaterThan(0);
      seen.push(...mine);
      bytes.push(mine.reduce((sum, url) => sum + tree[url.slice(`s3://${bucket}/cp/`.length)]!.length, 0));
    }
    expect([...seen].sort()).toEqual(
      Object.keys(tree)
        .map((k) => `s3://${bucket}/cp/${k}`)
        .sort(),
    ); // no gap, no overlap
    expect(await keysUnder(client, bucket, 'cp/')).toHaveLength(90);
    const total = bytes.reduce((a, b) => a + b, 0);
    for (const b of bytes) expect(b).toBeGreaterThan(total / 6);
  });

  it('sync: three shards download every object exactly once, and a second round transfers nothing', async () => {
    const target = join(work, 'back');
    const seen: string[] = [];
    for (const k of [1, 2, 3]) {
      const result = await s3xfer(['sync', `s3://${bucket}/cp/`, target, '--shard', `${k}/3`]);
      expectExitCode(result, 0);
      seen.push(...transferred(result));
    }
    expect(seen).toHaveLength(90);
    expect(new Set(seen).size).toBe(90);
    for (const k of [1, 2, 3]) {
      const again = await s3xfer(['sync', `s3://${bucket}/cp/`, target, '--shard', `${k}/3`]);
      expectExitCode(again, 0);
      expect(transferred(again)).toEqual([]);
    }
  });

  it('refuses a malformed shard and a shard on a single-file cp', async () => {
    expectFailure(
      await s3xfer(['cp', '--recursive', join(work, 'tree'), `s3://${bucket}/x/`, '--shard', '4/3']),
      2,
      /invalid --shard "4\/3"/,
    );
    expectFailure(
      await s3xfer(['cp', join(work, 'tree', 'd0', 'f00.bin'), `s3://${bucket}/x`, '--shard', '1/2']),
      2,
      /--include, --exclude and --shard go with --recursive/,
    );
    expect(await keysUnder(client, bucket, 'x')).toEqual([]);
  });
});
