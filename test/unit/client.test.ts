import { writeFile } from 'node:fs/promises';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { retryDelayMs } from '../../src/client.js';
import { createS3Client, uploadFile } from '../../src/index.js';
import { tempDir } from '../helpers/files.js';
import { startScriptedEndpoint } from '../helpers/scripted-endpoint.js';

describe('createS3Client', () => {
  it('refuses an endpoint that is not an http(s) URL, at once', () => {
    for (const endpoint of ['not a url', 'ftp://host', '127.0.0.1:7480']) {
      expect(() => createS3Client({ endpoint })).toThrow(expect.objectContaining({ name: 'UsageError', code: 'InvalidEndpoint' }));
    }
    expect(() => createS3Client({ endpoint: 'https://s3.example.com' })).not.toThrow();
  });

  it('refuses numbers that are not whole numbers in range (maxAttempts, maxSockets, timeouts), at once', () => {
    const bad: Array<Parameters<typeof createS3Client>[0]> = [
      { maxAttempts: -1 },
      { maxAttempts: Number.NaN },
      { maxAttempts: 0 },
      { maxAttempts: 101 },
      { maxSockets: 0 },
      { maxSockets: 2.5 },
      { connectionTimeoutMs: -5 },
      { socketTimeoutMs: Number.NaN },
      { socketTimeoutMs: Number.POSITIVE_INFINITY },
      { connectionTimeoutMs: 2 ** 31 }, // Node's timers fire at once beyond 2^31 − 1 ms
    ];
    for (const options of bad) {
      // maxAttempts has one rule, the TransferConfig's: the same code and message either way.
      const code = options?.maxAttempts === undefined ? 'InvalidClientOption' : 'InvalidMaxAttempts';
      expect(() => createS3Client(options), JSON.stringify(options)).toThrow(expect.objectContaining({ name: 'UsageError', code }));
    }
    expect(() => createS3Client({ maxAttempts: 0 })).toThrow('invalid max attempts 0: it must be a whole number from 1 to 100');
    expect(() => createS3Client({ maxSockets: -1 })).toThrow('invalid maxSockets -1: it must be a whole number from 1 up');
    expect(() => createS3Client({ maxAttempts: 1, maxSockets: 1, connectionTimeoutMs: 1, socketTimeoutMs: 1 })).not.toThrow();
    // 0 is "no limit" (the aws CLI's --cli-read-timeout 0).
    expect(() => createS3Client({ connectionTimeoutMs: 0, socketTimeoutMs: 0 })).not.toThrow();
  });

  it('unsigned: neither the SDK calls nor the direct attempts sign, and no credentials are looked up', async () => {
    const endpoint = await startScriptedEndpoint((_req, res) => {
      res.writeHead(200, { etag: '"0cc175b9c0f1b6a831c399e269772661"', 'content-length': '0' });
      res.end();
    });
    const file = `${await tempDir('s3xfer-unsigned-')}/a.txt`;
    await writeFile(file, 'a');
    // Credentials nowhere: a signing client would fail before sending anything.
    const env = { ...process.env };
    for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_PROFILE']) delete process.env[name];
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
    process.env.AWS_CONFIG_FILE = '/nonexistent/config';
    try {
      const client = createS3Client({ endpoint: endpoint.url, region: 'us-east-1', unsigned: true, maxAttempts: 1 });
      await client.send(new HeadObjectCommand({ Bucket: 'b', Key: 'a.txt' }));
      await uploadFile(client, file, 'b', 'a.txt');
      expect(endpoint.requests.map((r) => r.method)).toEqual(['HEAD', 'PUT']);
      for (const request of endpoint.requests) {
        expect(request.headers.authorization).toBeUndefined();
        expect(request.headers['x-amz-security-token']).toBeUndefined();
      }
    } finally {
      process.env = env;
      await endpoint.close();
    }
  });

  it('for an S3-compatible endpoint: path-style and checksums only when required (Ceph rejects aws-chunked)', async () => {
    const client = createS3Client({ endpoint: 'http://127.0.0.1:7480', region: 'us-east-1' });
    expect(client.config.forcePathStyle).toBe(true);
    expect(await client.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
    expect(await client.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
    const endpoint = await client.config.endpoint!();
    expect(`${endpoint.protocol}//${endpoint.hostname}:${endpoint.port}`).toBe('http://127.0.0.1:7480');
  });

  it('turns flexible checksums on for an endpoint when asked', async () => {
    const client = createS3Client({ endpoint: 'http://127.0.0.1:7480', flexibleChecksums: true });
    expect(await client.config.requestChecksumCalculation()).toBe('WHEN_SUPPORTED');
  });

  it('for AWS: virtual-hosted style and the SDK default checksums', async () => {
    const client = createS3Client({ region: 'eu-west-1' });
    expect(client.config.forcePathStyle).toBe(false);
    expect(await client.config.requestChecksumCalculation()).toBe('WHEN_SUPPORTED');
    expect(await client.config.region()).toBe('eu-west-1');
  });

  it('falls back to us-east-1 when no region is configured anywhere', async () => {
    const saved = { ...process.env };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    process.env.AWS_CONFIG_FILE = '/nonexistent/config';
    try {
      expect(await createS3Client({ endpoint: 'http://127.0.0.1:7480' }).config.region()).toBe('us-east-1');
    } finally {
      process.env = saved;
    }
  });

  it('uses the retry attempts given, 5 by default', async () => {
    expect(await createS3Client({}).config.maxAttempts()).toBe(5);
    expect(await createS3Client({ maxAttempts: 2 }).config.maxAttempts()).toBe(2);
  });

  it('backs off exponentially with jitter, long enough to ride out a gateway restart', () => {
    for (let i = 0; i < 50; i++) {
      expect(retryDelayMs(1)).toBeGreaterThanOrEqual(250);
      expect(retryDelayMs(1)).toBeLessThanOrEqual(500);
      expect(retryDelayMs(4)).toBeGreaterThanOrEqual(2000);
      expect(retryDelayMs(20)).toBeLessThanOrEqual(20_000);
    }
    const total = [1, 2, 3, 4].reduce((sum, attempt) => sum + retryDelayMs(attempt), 0);
    expect(total).toBeGreaterThan(3000);
  });
});
