import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createS3Client, downloadFile, type S3ClientOptions, uploadFile } from '../../src/index.js';
import { MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { makeTestCertificates, startForwardProxy, startTlsTerminator, type TestCertificates, type TestServer } from '../helpers/network.js';
import { createTestBucket, removeTestBucket, s3Server, testClient } from '../helpers/s3.js';

// Every server here listens on 127.0.0.1 and forwards to the test Ceph on 127.0.0.1 only.
let admin: S3Client;
let bucket: string;
let dir: string;
let small: string;
let twelve: string;
let certificates: TestCertificates;
let proxy: TestServer;
let tls: TestServer;

beforeAll(async () => {
  admin = testClient();
  bucket = await createTestBucket(admin, 's3xfer-network');
  dir = await tempDir();
  small = await randomFile(dir, 'small.bin', 1024);
  // Two parts, each 2 MiB or more: the size from which the SDK would add `Expect: 100-continue`.
  twelve = await randomFile(dir, 'twelve.bin', 12 * MiB);
  certificates = makeTestCertificates(dir);
  proxy = await startForwardProxy();
  tls = await startTlsTerminator(s3Server().endpoint, certificates);
});
afterAll(async () => {
  await proxy?.close();
  await tls?.close();
  if (bucket) await removeTestBucket(admin, bucket);
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  proxy.seen.length = 0;
  tls.seen.length = 0;
});

/** A client for the test server as users build theirs, with network options. */
function client(options: S3ClientOptions): S3Client {
  const s3 = s3Server();
  return createS3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 2,
    ...options,
  });
}

/** Uploads and downloads `source` under `key` and checks the bytes (from 8 MiB on in 8 MiB parts). */
async function roundTrip(s3: S3Client, source: string, key: string): Promise<void> {
  await uploadFile(s3, source, bucket, key, { config: { partSize: 8 * MiB, multipartThreshold: 8 * MiB } });
  const target = join(dir, `${key.replace(/\//g, '_')}.down`);
  await downloadFile(s3, bucket, key, target);
  expect(await sha256File(target)).toBe(await sha256File(source));
}

const tlsPort = () => new URL(tls.url).port;

describe('through an HTTP forward proxy', () => {
  it('an http endpoint: every request goes to the proxy as an absolute URI, on kept-alive connections', async () => {
    const s3 = client({ proxy: { env: { HTTP_PROXY: proxy.url } } });
    for (const n of [1, 2, 3]) await roundTrip(s3, small, `via-proxy/small-${n}.bin`);
    await roundTrip(s3, twelve, 'via-proxy/twelve.bin');

    const endpoint = s3Server().endpoint;
    for (const n of [1, 2, 3]) {
      expect(proxy.seen).toContainEqual(expect.stringMatching(`^PUT ${endpoint}/${bucket}/via-proxy/small-${n}.bin`));
      expect(proxy.seen).toContainEqual(expect.stringMatching(`^GET ${endpoint}/${bucket}/via-proxy/small-${n}.bin`));
    }
    expect(proxy.seen.filter((line) => /^PUT .*twelve\.bin\?.*partNumber=/.test(line))).toHaveLength(2);
    // Every request, on new and reused connections alike, with the absolute URI a proxy needs.
    expect(proxy.seen.filter((line) => !line.includes(` ${endpoint}/`))).toEqual([]);
    // Pooled: far fewer connections than requests.
    expect(proxy.connections).toBeLessThan(proxy.seen.length / 2);
    s3.destroy();
  });

  it('lower-case http_proxy works the same', async () => {
    const s3 = client({ proxy: { env: { http_proxy: proxy.url } } });
    await roundTrip(s3, small, 'via-proxy/lower-case.bin');
    expect(proxy.seen.filter((line) => line.includes('lower-case.bin')).length).toBeGreaterThanOrEqual(2);
    s3.destroy();
  });

  it('NO_PROXY naming the endpoint bypasses it: the proxy sees nothing', async () => {
    const s3 = client({ proxy: { env: { HTTP_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' } } });
    await roundTrip(s3, small, 'bypass/small.bin');
    await roundTrip(s3, twelve, 'bypass/twelve.bin');
    expect(proxy.seen).toEqual([]);
    s3.destroy();
  });

  it('HTTPS_PROXY alone does not apply to an http endpoint', async () => {
    const s3 = client({ proxy: { env: { HTTPS_PROXY: proxy.url } } });
    await roundTrip(s3, small, 'bypass/https-proxy-only.bin');
    expect(proxy.seen).toEqual([]);
    s3.destroy();
  });
});

describe('an https endpoint with a private CA', () => {
  it('is refused without the CA, with a message that says why, and without retrying', async () => {
    const s3 = client({ endpoint: tls.url });
    const started = Date.now();
    const failure = await uploadFile(s3, small, bucket, 'tls/refused.bin').catch((e: unknown) => e);
    expect((failure as Error).message).toMatch(/unable to verify the first certificate/);
    expect((failure as Error & { cause?: { code?: string } }).cause?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(tls.seen).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5_000);
    s3.destroy();
  });

  it('is refused with another CA as the bundle (the bundle replaces the default roots)', async () => {
    const s3 = client({ endpoint: tls.url, caBundle: certificates.otherCaFile });
    await expect(uploadFile(s3, small, bucket, 'tls/other-ca.bin')).rejects.toThrow(/unable to|self[- ]signed|certificate/i);
    expect(tls.seen).toEqual([]);
    s3.destroy();
  });

  it('works with caBundle, single PUT and multipart', async () => {
    const s3 = client({ endpoint: tls.url, caBundle: certificates.caFile });
    await roundTrip(s3, small, 'tls/small.bin');
    await roundTrip(s3, twelve, 'tls/twelve.bin');
    expect(tls.seen.filter((line) => /^PUT .*twelve\.bin\?.*partNumber=/.test(line))).toHaveLength(2);
    s3.destroy();
  });

  it('works with verifySsl: false', async () => {
    const s3 = client({ endpoint: tls.url, verifySsl: false });
    await roundTrip(s3, small, 'tls/no-verify.bin');
    expect(tls.seen.length).toBeGreaterThanOrEqual(2);
    s3.destroy();
  });

  it('works through the proxy: a CONNECT tunnel, TLS to the endpoint inside it verified with the CA', async () => {
    const s3 = client({ endpoint: tls.url, caBundle: certificates.caFile, proxy: { env: { HTTPS_PROXY: proxy.url } } });
    await roundTrip(s3, small, 'tls-proxy/small.bin');
    await roundTrip(s3, twelve, 'tls-proxy/twelve.bin');
    const tunnels = proxy.seen.filter((line) => line === `CONNECT 127.0.0.1:${tlsPort()}`);
    expect(tunnels.length).toBeGreaterThanOrEqual(1);
    expect(proxy.seen).toEqual(tunnels); // nothing but tunnels: the proxy never sees a request in clear
    // The requests arrived through the tunnels, on kept-alive connections.
    expect(tls.seen.filter((line) => /^PUT .*twelve\.bin\?.*partNumber=/.test(line))).toHaveLength(2);
    expect(tunnels.length).toBeLessThan(tls.seen.length / 2);
    s3.destroy();
  });

  it('through the proxy without the CA: refused at the endpoint, though the tunnel opened', async () => {
    const s3 = client({ endpoint: tls.url, proxy: { env: { HTTPS_PROXY: proxy.url } } });
    await expect(uploadFile(s3, small, bucket, 'tls-proxy/refused.bin')).rejects.toThrow(
      /unable to (verify|get local issuer)|self[- ]signed/i,
    );
    expect(proxy.seen[0]).toBe(`CONNECT 127.0.0.1:${tlsPort()}`);
    expect(tls.seen).toEqual([]);
    s3.destroy();
  });

  it('NO_PROXY with the port bypasses the proxy for that endpoint only', async () => {
    const s3 = client({
      endpoint: tls.url,
      caBundle: certificates.caFile,
      proxy: { env: { HTTPS_PROXY: proxy.url, NO_PROXY: `127.0.0.1:${tlsPort()}` } },
    });
    await roundTrip(s3, small, 'tls-proxy/bypass.bin');
    expect(proxy.seen).toEqual([]);
    expect(tls.seen.length).toBeGreaterThanOrEqual(2);
    s3.destroy();
  });
});
