import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, type S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { type DownloadOptions, downloadFile, LocalFileError, S3ServiceError, uploadFile } from '../../src/index.js';
import { expectFailure } from '../e2e/expect-cli.js';
import { assertCliBuilt, describeResult, runCli, startCli } from '../e2e/run-cli.js';
import { type FaultProxy, isGetObject, type ProxyLogEntry, startFaultProxy } from '../helpers/fault-proxy.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { cliEnv, createTestBucket, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';

// The faults of issue 7 that happen on this side of the wire, or to the object itself: the disk
// filling up mid-download, the object replaced while its ranges are being fetched, and an object
// that cannot be verified under --verify=require. Each must fail with one clear error, exit 1
// from the CLI, and leave the destination as it was (no file, or the previous one untouched).
let direct: S3Client;
let bucket: string;
let dir: string;
let big: string;
let proxy: FaultProxy | undefined;
const PREVIOUS = 'the previous version\n';

beforeAll(async () => {
  assertCliBuilt();
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-faults-local');
  dir = await tempDir();
  big = await randomFile(dir, 'big.bin', 32 * MiB);
  await uploadFile(direct, big, bucket, 'big.bin');
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});
afterAll(async () => {
  await removeTestBucket(direct, bucket);
  await rm(dir, { recursive: true, force: true });
});

/** A fresh empty directory inside the suite's temp dir. */
async function freshDir(name: string): Promise<string> {
  const path = join(dir, name);
  await mkdir(path);
  return path;
}

describe('disk full while downloading (a tmpfs of 8 MiB, an object of 32 MiB)', () => {
  let mountPoint: string | undefined;

  /** Mounts a fresh 8 MiB tmpfs, or skips the test with the reason. */
  async function smallDisk(context: TestContext, name: string): Promise<string> {
    const path = await freshDir(name);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', path], { stdio: 'pipe' });
    } catch (error) {
      const why = (error as { stderr?: Buffer }).stderr?.toString().trim() || (error as Error).message;
      context.skip(`cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): ${why}`);
    }
    mountPoint = path;
    return path;
  }
  afterEach(async () => {
    if (!mountPoint) return;
    execFileSync('umount', [mountPoint]);
    await rmdir(mountPoint);
    mountPoint = undefined;
  });

  it('the library fails with LocalFileError ENOSPC and removes its temp file', async (context) => {
    const disk = await smallDisk(context, 'disk-lib');
    // The first range arrives slowly: it is still in flight when the others fill the disk, and its
    // cancellation (a response stream destroyed: ECONNRESET) must not be what the download reports.
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [
        {
          match: (r) => isGetObject(r) && /^bytes=0-/.test(r.headers.range ?? ''),
          fault: { type: 'stall', ms: 20_000, afterBytes: 64 * 1024 },
        },
      ],
    });
    const started = performance.now();
    const failure = await downloadFile(testClient({ endpoint: proxy.url }), bucket, 'big.bin', join(disk, 'big.bin')).catch(
      (e: unknown) => e,
    );
    expect(proxy.log.filter((e) => e.fault === 'stall')).toHaveLength(1);
    expect(failure).toBeInstanceOf(LocalFileError);
    expect((failure as LocalFileError).code).toBe('ENOSPC');
    expect((failure as Error).message).toMatch(/big\.bin: cannot write: no space left on device$/);
    expect((failure as Error).message).not.toContain('\n');
    // A full disk is not a network failure: it is not retried.
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(await readdir(disk)).toEqual([]);
  });

  it('the CLI exits 1 with one error line and leaves the existing file as it was', async (context) => {
    const disk = await smallDisk(context, 'disk-cli');
    const target = join(disk, 'big.bin');
    await writeFile(target, PREVIOUS);
    const result = await runCli(['cp', '--no-progress', `s3://${bucket}/big.bin`, target], { env: cliEnv() });
    expectFailure(result, 1, /no space left on device/);
    expect(await readdir(disk)).toEqual(['big.bin']);
    expect(await readFile(target, 'utf8')).toBe(PREVIOUS);
  });
});

describe('the object replaced mid-download (If-Match answered 412)', () => {
  const SIZE = 24 * MiB;
  /** How long the proxy holds the second range before forwarding it: the object is replaced meanwhile. */
  const STALL_MS = 6_000;
  let original: string;
  let replacement: string;

  beforeAll(async () => {
    original = await randomFile(dir, 'original.bin', SIZE);
    replacement = await randomFile(dir, 'replacement.bin', SIZE); // same size: only the ETag tells them apart
  });

  /**
   * Starts `download` (of `downloads` downloads) through a proxy that holds each GET of the second
   * 8 MiB range, replaces the object while they are held, and returns how `download` ended and the
   * held GETs' log entries.
   */
  async function replacedWhileHeld(key: string, downloads: number, download: (endpoint: string) => Promise<unknown>) {
    await uploadFile(direct, original, bucket, key);
    const secondRange = `bytes=${8 * MiB}-${16 * MiB - 1}`;
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [
        { match: (r) => isGetObject(r) && r.headers.range === secondRange, fault: { type: 'stall', ms: STALL_MS }, times: downloads },
      ],
    });
    const held = proxy;
    const ended = download(held.url).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    let entries: ProxyLogEntry[] = [];
    for (const deadline = Date.now() + 30_000; entries.length < downloads && Date.now() < deadline; await delay(20)) {
      entries = held.log.filter((e) => e.fault === 'stall');
    }
    expect(entries, 'the downloads never asked for their second range').toHaveLength(downloads);
    const heldAt = performance.now();
    await uploadFile(direct, replacement, bucket, key);
    // Otherwise the held GET may have left before the object changed and the test proves nothing.
    expect(performance.now() - heldAt, 'replacing the object took longer than the stall').toBeLessThan(STALL_MS - 1_000);
    return { ...(await ended), entries };
  }

  it.each([
    ['off', 'If-Match alone'],
    ['auto', 'If-Match before any check'],
  ] as const)('the library fails with PreconditionFailed, writing no mixed bytes (verify %s: %s)', async (verify, _guard) => {
    const key = `replaced-${verify}.bin`;
    const fresh = join(await freshDir(`replaced-${verify}`), 'fresh.bin');
    const existing = join(dir, `replaced-${verify}`, 'existing.bin');
    await writeFile(existing, PREVIOUS);
    const options: DownloadOptions = { config: { verify, concurrency: 3 } };
    const outcome = await replacedWhileHeld(key, 2, async (endpoint) => {
      const client = testClient({ endpoint });
      const results = await Promise.allSettled([
        downloadFile(client, bucket, key, fresh, options),
        downloadFile(client, bucket, key, existing, options),
      ]);
      const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      if (rejected.length < 2) throw new Error(`expected both downloads to fail, ${2 - rejected.length} succeeded`);
      throw rejected;
    });
    expect(outcome.entries.map((e) => e.upstreamStatus)).toEqual([412, 412]);
    expect('error' in outcome, 'the downloads succeeded').toBe(true);
    for (const failure of (outcome as { error: unknown[] }).error) {
      expect(failure).toBeInstanceOf(S3ServiceError);
      expect((failure as S3ServiceError).code).toBe('PreconditionFailed');
      expect((failure as S3ServiceError).status).toBe(412);
      expect((failure as Error).message).toBe(`s3://${bucket}/${key} changed while it was being downloaded (PreconditionFailed, HTTP 412)`);
    }
    await expect(readFile(fresh)).rejects.toThrow(/ENOENT/);
    expect(await readFile(existing, 'utf8')).toBe(PREVIOUS);
    expect(await readdir(join(dir, `replaced-${verify}`))).toEqual(['existing.bin']);
    // And the store does hold the new content, which a download now gets whole.
    const after = join(dir, `replaced-${verify}`, 'after.bin');
    await downloadFile(direct, bucket, key, after);
    expect(await sha256File(after)).toBe(await sha256File(replacement));
  });

  it('the CLI exits 1 with one error line and leaves the existing file as it was', async () => {
    const cwd = await freshDir('replaced-cli');
    await writeFile(join(cwd, 'replaced.bin'), PREVIOUS);
    const outcome = await replacedWhileHeld('replaced-cli.bin', 1, async (endpoint) => {
      const cli = startCli(['cp', `s3://${bucket}/replaced-cli.bin`, 'replaced.bin', '--concurrency', '3', '--no-progress'], {
        env: cliEnv({ AWS_ENDPOINT_URL: endpoint }),
        cwd,
      });
      return cli.result;
    });
    const result = (outcome as { value: Awaited<ReturnType<typeof runCli>> }).value;
    expect(outcome.entries[0]?.upstreamStatus, describeResult(result)).toBe(412);
    expectFailure(result, 1, `s3://${bucket}/replaced-cli.bin changed while it was being downloaded (PreconditionFailed, HTTP 412)`);
    expect(await readdir(cwd)).toEqual(['replaced.bin']);
    expect(await readFile(join(cwd, 'replaced.bin'), 'utf8')).toBe(PREVIOUS);
  });
});

describe('--verify=require on an object that cannot be verified', () => {
  let odd: string;

  beforeAll(async () => {
    // Parts of 12 + 12 + 1 MiB, no s3xfer metadata: no uploader's part size gives a 3-part 25 MiB
    // object, and Ceph does not answer PartNumber on HEAD, so the multipart ETag cannot be recomputed.
    odd = await randomFile(dir, 'odd.bin', 25 * MiB);
    const data = await readFile(odd);
    const { UploadId } = await direct.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'odd.bin' }));
    const parts = [];
    for (const [i, [start, end]] of [
      [0, 12 * MiB],
      [12 * MiB, 24 * MiB],
      [24 * MiB, 25 * MiB],
    ].entries()) {
      const { ETag } = await direct.send(
        new UploadPartCommand({ Bucket: bucket, Key: 'odd.bin', UploadId, PartNumber: i + 1, Body: data.subarray(start, end) }),
      );
      parts.push({ PartNumber: i + 1, ETag });
    }
    await direct.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'odd.bin', UploadId, MultipartUpload: { Parts: parts } }));
  });

  it('the CLI exits 1 with one clear error line and writes nothing', async () => {
    const cwd = await freshDir('require-new');
    const result = await runCli(['cp', '--verify=require', `s3://${bucket}/odd.bin`, 'odd.bin'], { env: cliEnv(), cwd });
    expectFailure(result, 1, `s3://${bucket}/odd.bin cannot be verified (verify: require): `, /sizes of its 3 parts are unknown/);
    expect(await readdir(cwd)).toEqual([]);
  });

  it('the CLI leaves an existing destination as it was', async () => {
    const cwd = await freshDir('require-existing');
    await writeFile(join(cwd, 'odd.bin'), PREVIOUS);
    const result = await runCli(['cp', '--verify', 'require', `s3://${bucket}/odd.bin`, 'odd.bin'], { env: cliEnv(), cwd });
    expectFailure(result, 1, /cannot be verified \(verify: require\)/);
    expect(await readdir(cwd)).toEqual(['odd.bin']);
    expect(await readFile(join(cwd, 'odd.bin'), 'utf8')).toBe(PREVIOUS);
    expect(await leftoverTempFiles(cwd)).toEqual([]);
  });

  it('without --verify=require the same object downloads, with a warning that it was not verified', async () => {
    const cwd = await freshDir('require-auto');
    const result = await runCli(['cp', `s3://${bucket}/odd.bin`, 'odd.bin'], { env: cliEnv(), cwd });
    expect(result.code, describeResult(result)).toBe(0);
    expect(result.stderr).toMatch(/^s3xfer: warning: s3:\/\/\S+\/odd\.bin could not be verified: /m);
    expect(await sha256File(join(cwd, 'odd.bin'))).toBe(await sha256File(odd));
  });
});
