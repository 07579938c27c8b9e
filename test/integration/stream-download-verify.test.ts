/**
 * Downloads to a stream (downloadToStream, `cp s3://b/k -`) through the fault proxy: objects at or
 * above the multipart threshold are hashed as their ranges are written and checked at the end. A
 * byte flipped in transit fails the download with an IntegrityError saying the output is corrupt;
 * `verify: 'require'` refuses an object it cannot verify before any byte is written; a failure
 * after bytes went out says how many were written.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, S3ServiceError, TransferManager, uploadFile } from '../../src/index.js';
import { expectExitCode } from '../e2e/expect-cli.js';
import { assertCliBuilt, runCli } from '../e2e/run-cli.js';
import { type FaultProxy, type FaultRule, isGetObject, startFaultProxy } from '../helpers/fault-proxy.js';
import { hashingSink, MiB, randomFile, rm, tempDir } from '../helpers/files.js';
import { cliEnv, createTestBucket, removeTestBucket, s3Server, testClient, uploadInParts } from '../helpers/s3.js';

let direct: S3Client;
let bucket: string;
let dir: string;
let proxy: FaultProxy | undefined;
const digests: Record<string, string> = {};
const sizes: Record<string, number> = {};

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  direct = testClient();
  bucket = await createTestBucket(direct, 's3xfer-stream-verify');
  dir = await tempDir();
  const file = async (name: string, size: number) => {
    const path = await randomFile(dir, name, size);
    const data = await readFile(path);
    digests[name] = sha256(data);
    sizes[name] = size;
    return { path, data };
  };
  const plain = await file('plain.bin', 24 * MiB + 3);
  await direct.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain.bin', Body: plain.data })); // one PUT: a plain MD5 ETag
  const own = await file('own.bin', 24 * MiB + 5);
  await uploadFile(direct, own.path, bucket, 'own.bin'); // 8 MiB parts, recorded in its metadata
  const cli = await file('cli.bin', 20 * MiB + 5);
  await uploadInParts(direct, bucket, 'cli.bin', cli.data, [8 * MiB, 8 * MiB, 4 * MiB + 5]); // no metadata: the layout is guessed
  const odd = await file('odd.bin', 25 * MiB);
  await uploadInParts(direct, bucket, 'odd.bin', odd.data, [12 * MiB, 12 * MiB, MiB]); // no uploader cuts 25 MiB so
  const small = await file('small.bin', 3 * MiB + 11);
  await direct.send(new PutObjectCommand({ Bucket: bucket, Key: 'small.bin', Body: small.data }));
}, 120_000);
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});
afterAll(async () => {
  await removeTestBucket(direct, bucket);
  await rm(dir, { recursive: true, force: true });
});

/** A manager whose client goes through a fresh proxy with these rules. */
async function through(rules: FaultRule[], config: ConstructorParameters<typeof TransferManager>[1] = {}): Promise<TransferManager> {
  proxy = await startFaultProxy({ upstream: s3Server().endpoint, seed: 11, rules });
  return new TransferManager(testClient({ endpoint: proxy.url }), config);
}

const proxiedGets = () => proxy!.log.filter((e) => e.method === 'GET');

describe('stream downloads at or above the multipart threshold are verified', () => {
  it.each([
    ['plain.bin', 'md5-etag'],
    ['own.bin', 'multipart-etag'],
    ['cli.bin', 'multipart-etag'],
  ] as const)('a clean stream of %s is verified (%s), in order', async (key, method) => {
    const manager = await through([]);
    const out = hashingSink();
    const result = await manager.downloadToStream(bucket, key, out.writable);
    expect(result.multipart).toBe(true);
    expect(result.verified).toBe(method);
    expect(result.warnings).toBeUndefined();
    expect(out.bytes()).toBe(sizes[key]);
    expect(out.sha256()).toBe(digests[key]);
    expect(proxiedGets().length).toBeGreaterThan(1); // ranged GETs, not one held whole
  });

  it.each([
    ['plain.bin', /MD5 ETag: expected [0-9a-f]{32}, got [0-9a-f]{32}: the output is corrupt \(\d+ bytes were written/],
    [
      'own.bin',
      /multipart ETag \(8 MiB parts \(recorded by s3xfer\)\): expected [0-9a-f]{32}-4, got [0-9a-f]{32}-4: the output is corrupt/,
    ],
    ['cli.bin', /multipart ETag \(8 MiB parts .*\): expected [0-9a-f]{32}-3, got [0-9a-f]{32}-3: the output is corrupt/],
  ])('a byte flipped in one range of %s fails with an IntegrityError saying the output is corrupt', async (key, message) => {
    const manager = await through([{ match: isGetObject, fault: { type: 'flip-byte' }, times: 1, after: 1 }]);
    const out = hashingSink();
    const failure = await manager.downloadToStream(bucket, key, out.writable).catch((e: unknown) => e);
    expect(proxy!.stats.faults).toBe(1);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe('ChecksumMismatch');
    expect((failure as Error).message).toMatch(message);
    // The bytes went out before the check could fail: all of them, one of them wrong.
    expect(out.bytes()).toBe(sizes[key]);
    expect(out.sha256()).not.toBe(digests[key]);
    expect(out.writable.destroyed).toBe(true);
  });

  it('an object below the threshold with a flipped byte is refused before any byte is written', async () => {
    const manager = await through([{ match: isGetObject, fault: { type: 'flip-byte' } }]);
    const out = hashingSink();
    const failure = await manager.downloadToStream(bucket, 'small.bin', out.writable).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as Error).message).toMatch(/MD5 ETag: .*: nothing was written/);
    expect(out.bytes()).toBe(0);
  });
});

describe("verify: 'require' and unverifiable objects", () => {
  it("'require' refuses an object it cannot verify before any GET, writing nothing", async () => {
    const manager = await through([], { config: { verify: 'require' } });
    const out = hashingSink();
    const failure = await manager.downloadToStream(bucket, 'odd.bin', out.writable).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe('Unverifiable');
    expect((failure as Error).message).toMatch(/cannot be verified .*sizes of its 3 parts are unknown/);
    expect(proxiedGets()).toEqual([]);
    expect(out.bytes()).toBe(0);
  });

  it("'require' streams an object it can verify", async () => {
    const manager = await through([], { config: { verify: 'require' } });
    const out = hashingSink();
    const result = await manager.downloadToStream(bucket, 'own.bin', out.writable);
    expect(result.verified).toBe('multipart-etag');
    expect(out.sha256()).toBe(digests['own.bin']);
  });

  it("'auto' streams an unverifiable object with the file download's warning", async () => {
    const manager = await through([]);
    const out = hashingSink();
    const result = await manager.downloadToStream(bucket, 'odd.bin', out.writable);
    expect(result.verified).toBe(false);
    expect(result.warnings).toEqual([expect.stringMatching(/odd\.bin could not be verified: .*sizes of its 3 parts are unknown/)]);
    expect(out.sha256()).toBe(digests['odd.bin']);
  });
});

describe('a failure after bytes were written', () => {
  it('says the output is incomplete and how many bytes were written (the object changed: 412)', async () => {
    const manager = await through(
      [
        {
          match: isGetObject,
          fault: {
            type: 'status',
            status: 412,
            code: 'PreconditionFailed',
            message: 'At least one of the pre-conditions you specified did not hold',
          },
          after: 1,
        },
      ],
      { config: { concurrency: 1 } },
    );
    const out = hashingSink();
    const failure = await manager.downloadToStream(bucket, 'own.bin', out.writable).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect(out.bytes()).toBeGreaterThan(0);
    expect((failure as Error).message).toMatch(new RegExp(`\\(the output is incomplete: ${out.bytes()} bytes were written\\)$`));
  });
});

describe('the CLI (cp s3://… -)', () => {
  it('exits 1 when a byte was flipped in a stream to stdout, saying the output is corrupt', async () => {
    assertCliBuilt();
    await through([{ match: isGetObject, fault: { type: 'flip-byte' }, times: 1, after: 1 }]);
    const result = await runCli(['cp', `s3://${bucket}/own.bin`, '-'], { env: cliEnv({ AWS_ENDPOINT_URL: proxy!.url }) });
    // Not expectExitCode: its message would print the 24 MiB written to stdout.
    expect({ code: result.code, stdoutBytes: Buffer.byteLength(result.stdout, 'latin1') > 0, stderr: result.stderr }).toEqual({
      code: 1,
      stdoutBytes: true,
      stderr: expect.stringMatching(/multipart ETag .*: the output is corrupt \(\d+ bytes were written to - /),
    });
  });

  it('exits 1 with --verify require on an object it cannot verify, writing nothing to stdout', async () => {
    assertCliBuilt();
    await through([]);
    const result = await runCli(['cp', `s3://${bucket}/odd.bin`, '-', '--verify', 'require'], {
      env: cliEnv({ AWS_ENDPOINT_URL: proxy!.url }),
    });
    expectExitCode(result, 1);
    expect(result.stderr).toMatch(/cannot be verified \(verify: require\)/);
    expect(result.stdout).toBe('');
    expect(proxiedGets()).toEqual([]);
  });
});
