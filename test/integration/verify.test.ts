import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, IntegrityError, PART_SIZE_METADATA, uploadFile } from '../../src/index.js';
import { expectFailure } from '../e2e/expect-cli.js';
import { assertCliBuilt, runCli } from '../e2e/run-cli.js';
import { type FaultProxy, type FaultRule, isGetObject, startFaultProxy } from '../helpers/fault-proxy.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { cliEnv, createTestBucket, removeTestBucket, s3Server, testClient, uploadInParts } from '../helpers/s3.js';

// Downloads through a proxy that flips one byte in GET bodies: every corruption must fail cleanly
// (IntegrityError, nothing written, an existing destination untouched) or be healed by the one
// re-fetch, for s3xfer's own uploads and for an upload cut as the aws CLI cuts them.
let direct: S3Client;
let bucket: string;
let dir: string;
let proxy: FaultProxy | undefined;
const sources: Record<string, string> = {};

beforeAll(async () => {
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-verify');
  dir = await tempDir();
  sources.single = await randomFile(dir, 'single.src', 3 * MiB + 11);
  sources.own = await randomFile(dir, 'own.src', 20 * MiB + 5);
  sources.cli = await randomFile(dir, 'cli.src', 20 * MiB + 5);
  sources.odd = await randomFile(dir, 'odd.src', 25 * MiB);
  await uploadFile(direct, sources.single, bucket, 'single.bin');
  await uploadFile(direct, sources.own, bucket, 'own.bin'); // 8 MiB parts, recorded in its metadata
  await uploadInParts(direct, bucket, 'cli.bin', await readFile(sources.cli), [8 * MiB, 8 * MiB, 4 * MiB + 5]);
  await uploadInParts(direct, bucket, 'odd.bin', await readFile(sources.odd), [12 * MiB, 12 * MiB, MiB]); // no uploader cuts 25 MiB so
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});
afterAll(async () => {
  await removeTestBucket(direct, bucket);
  await rm(dir, { recursive: true, force: true });
});

/** A client through a fresh proxy with these rules. */
async function through(rules: FaultRule[], seed = 7): Promise<S3Client> {
  proxy = await startFaultProxy({ upstream: s3Server().endpoint, seed, rules });
  return testClient({ endpoint: proxy.url });
}

const proxiedGets = () => proxy!.log.filter((e) => e.method === 'GET');

describe('what the store tells', () => {
  it("keeps s3xfer's part size in the metadata, and ignores PartNumber on HEAD (Ceph answers with the whole object)", async () => {
    const own = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: 'own.bin' }));
    expect(own.Metadata?.[PART_SIZE_METADATA]).toBe(String(8 * MiB));
    const part = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cli.bin', PartNumber: 1 }));
    expect(part.ContentLength).toBe(20 * MiB + 5);
    expect(part.PartsCount).toBeUndefined();
  });
});

describe('downloads through the fault proxy', () => {
  it.each([
    ['single.bin', 'single', 'md5-etag'],
    ['own.bin', 'own', 'multipart-etag'],
    ['cli.bin', 'cli', 'multipart-etag'],
  ] as const)('a normal download of %s is verified (%s)', async (key, source, method) => {
    const client = await through([]);
    const target = join(dir, `ok-${key}`);
    const result = await downloadFile(client, bucket, key, target);
    expect(result.verified).toBe(method);
    expect(result.warnings).toBeUndefined();
    expect(await sha256File(target)).toBe(await sha256File(sources[source]!));
    if (key === 'cli.bin') {
      // No metadata: the store was asked for part 1, ignored it, and the aws CLI's 8 MiB parts fitted.
      expect(proxy!.log.some((e) => e.method === 'HEAD' && e.query.includes('partNumber=1'))).toBe(true);
      expect(proxiedGets().map((e) => e.query)).toHaveLength(3);
    }
  });

  it.each([
    ['single.bin', /MD5 ETag: expected [0-9a-f]{32}, got [0-9a-f]{32} \(fetched twice/],
    ['own.bin', /multipart ETag \(8 MiB parts \(recorded by s3xfer\)\): expected [0-9a-f]{32}-3, got [0-9a-f]{32}-3 \(fetched twice/],
    ['cli.bin', /multipart ETag \(8 MiB parts \(aws CLI \/ boto3.*\)\): expected [0-9a-f]{32}-3, got [0-9a-f]{32}-3 \(fetched twice/],
  ])('a byte flipped in every GET of %s fails with IntegrityError, writing nothing', async (key, message) => {
    const client = await through([{ match: isGetObject, fault: { type: 'flip-byte' } }]);
    const fresh = join(dir, `new-${key}`);
    const failure = await downloadFile(client, bucket, key, fresh).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe('ChecksumMismatch');
    expect((failure as Error).message).toMatch(message);
    await expect(readFile(fresh)).rejects.toThrow(/ENOENT/);

    const existing = join(dir, `old-${key}`);
    await writeFile(existing, 'the previous version');
    await expect(downloadFile(client, bucket, key, existing)).rejects.toBeInstanceOf(IntegrityError);
    expect(await readFile(existing, 'utf8')).toBe('the previous version');
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it.each([
    ['single.bin', 'single', 'md5-etag'],
    ['own.bin', 'own', 'multipart-etag'],
    ['cli.bin', 'cli', 'multipart-etag'],
  ] as const)('a byte flipped once in %s is healed by the re-fetch', async (key, source, method) => {
    const client = await through([{ match: isGetObject, fault: { type: 'flip-byte' }, times: 1 }]);
    const target = join(dir, `healed-${key}`);
    const result = await downloadFile(client, bucket, key, target);
    expect(proxy!.stats.faults).toBe(1);
    expect(result.verified).toBe(method);
    expect(result.warnings).toEqual([expect.stringMatching(/first download did not match .*fetched again and verified/)]);
    expect(await sha256File(target)).toBe(await sha256File(sources[source]!));
  });

  it("verify: 'require' refuses an object it cannot verify before any GET; 'auto' downloads it with a warning", async () => {
    const client = await through([]);
    const target = join(dir, 'odd.bin');
    await writeFile(target, 'keep me');
    const failure = await downloadFile(client, bucket, 'odd.bin', target, { config: { verify: 'require' } }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe('Unverifiable');
    expect((failure as Error).message).toMatch(/cannot be verified .*sizes of its 3 parts are unknown/);
    expect(proxiedGets()).toEqual([]);
    expect(await readFile(target, 'utf8')).toBe('keep me');
    expect(await leftoverTempFiles(dir)).toEqual([]);

    const result = await downloadFile(client, bucket, 'odd.bin', target);
    expect(result.verified).toBe(false);
    expect(result.warnings).toEqual([expect.stringMatching(/odd\.bin could not be verified: /)]);
    expect(await sha256File(target)).toBe(await sha256File(sources.odd!));
  });

  it('the CLI exits 1 on a corrupted download, leaving no file', async () => {
    assertCliBuilt();
    await through([{ match: isGetObject, fault: { type: 'flip-byte' } }]);
    const cwd = await tempDir();
    try {
      const result = await runCli(['cp', `s3://${bucket}/own.bin`, 'own.bin'], { env: cliEnv({ AWS_ENDPOINT_URL: proxy!.url }), cwd });
      expectFailure(result, 1, /multipart ETag.*expected [0-9a-f]{32}-3, got/);
      expect(await readdir(cwd)).toEqual([]);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
