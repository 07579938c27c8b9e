import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createS3Client, downloadFile, NetworkError, S3ServiceError, uploadFile } from '../../src/index.js';
import { leftoverTempFiles, MiB, tempDir } from '../helpers/files.js';
import { type ReceivedRequest, type ScriptedEndpoint, type ScriptedHandler, startScriptedEndpoint } from '../helpers/scripted-endpoint.js';

// Throttling and broken connections, produced by a scripted HTTP endpoint on loopback: the real
// SDK stack (signing, retry strategy, body handling) runs; only the server's answers are scripted.
let handler: ScriptedHandler;
let scripted: ScriptedEndpoint;
let endpoint: string;
let requests: ReceivedRequest[];
let dir: string;

beforeAll(async () => {
  scripted = await startScriptedEndpoint((req, res, body) => handler(req, res, body));
  endpoint = scripted.url;
  requests = scripted.requests;
  dir = await tempDir();
});
afterAll(async () => {
  await scripted.close();
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  requests.length = 0;
});

const client = () => createS3Client({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });

function s3Error(res: ServerResponse, status: number, code: string) {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message></Message></Error>`);
}

describe('retries against a throttling or failing endpoint', () => {
  it('retries a PutObject answered 503 SlowDown, resending the same bytes', async () => {
    const file = join(dir, 'small.bin');
    const data = randomBytes(1000);
    await writeFile(file, data);
    let calls = 0;
    handler = (_req, res) => {
      if (++calls <= 2) return s3Error(res, 503, 'SlowDown');
      res.writeHead(200, { etag: `"${createHash('md5').update(data).digest('hex')}"` });
      res.end();
    };
    const result = await uploadFile(client(), file, 'bkt', 'small.bin');
    expect(result.bytes).toBe(1000);
    expect(requests).toHaveLength(3);
    expect(requests.every((r) => r.method === 'PUT' && r.body.equals(data))).toBe(true);
  });

  it('gives up after 5 attempts and says so', { timeout: 60_000 }, async () => {
    const file = join(dir, 'small2.bin');
    await writeFile(file, 'x');
    handler = (_req, res) => s3Error(res, 503, 'SlowDown');
    const failure = await uploadFile(client(), file, 'bkt', 'k').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as Error).message).toBe('s3://bkt/k: the server answered (SlowDown, HTTP 503) after 5 attempts');
    expect(requests).toHaveLength(5);
  });

  it('does not retry client errors such as 403 AccessDenied', async () => {
    const file = join(dir, 'small3.bin');
    await writeFile(file, 'x');
    handler = (_req, res) => s3Error(res, 403, 'AccessDenied');
    await expect(uploadFile(client(), file, 'bkt', 'k')).rejects.toThrow('access denied to s3://bkt/k (AccessDenied, HTTP 403)');
    expect(requests).toHaveLength(1);
  });

  it('resumes a ranged download whose connection drops mid-body', async () => {
    const data = randomBytes(6 * MiB);
    const etag = '"abc-2"';
    let gets = 0;
    handler = (req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': data.length, etag });
        return res.end();
      }
      const [, s, e] = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')!;
      const start = Number(s);
      const end = Number(e);
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${data.length}`, etag });
      if (++gets === 1) {
        // Half the first part, then the connection dies.
        res.write(data.subarray(start, start + 1000), () => res.socket?.destroy());
        return;
      }
      res.end(data.subarray(start, end + 1));
    };
    const target = join(dir, 'resumed.bin');
    await downloadFile(client(), 'bkt', 'obj', target, { config: { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 1 } });
    expect(Buffer.compare(await readFile(target), data)).toBe(0);
    expect(requests.map((r) => r.headers.range).filter(Boolean)).toEqual([
      `bytes=0-${5 * MiB - 1}`,
      `bytes=1000-${5 * MiB - 1}`,
      `bytes=${5 * MiB}-${6 * MiB - 1}`,
    ]);
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });

  it('retries a request the server stops answering, after the idle timeout, without warnings on stderr', async () => {
    const file = join(dir, 'stalled.bin');
    const data = randomBytes(2000);
    await writeFile(file, data);
    let calls = 0;
    handler = (_req, res) => {
      if (++calls === 1) return; // never answer the first attempt
      res.writeHead(200, { etag: '"x"' });
      res.end();
    };
    const stderr: string[] = [];
    const warn = vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void stderr.push(args.join(' ')));
    try {
      const quick = createS3Client({
        endpoint,
        region: 'us-east-1',
        socketTimeoutMs: 300,
        credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      });
      const result = await uploadFile(quick, file, 'bkt', 'stalled.bin');
      expect(result.bytes).toBe(2000);
      expect(requests).toHaveLength(2);
      expect(stderr).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  });

  it('resumes a download whose response stalls mid-body, after the idle timeout', async () => {
    const data = randomBytes(6 * MiB);
    const etag = '"stall-2"';
    let gets = 0;
    handler = (req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': data.length, etag });
        return res.end();
      }
      const [, s, e] = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')!;
      const start = Number(s);
      const end = Number(e);
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${data.length}`, etag });
      if (++gets === 1) return void res.write(data.subarray(start, start + 4096)); // then silence
      res.end(data.subarray(start, end + 1));
    };
    const quick = createS3Client({
      endpoint,
      region: 'us-east-1',
      socketTimeoutMs: 300,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const target = join(dir, 'stalled-download.bin');
    await downloadFile(quick, 'bkt', 'obj', target, { config: { partSize: 5 * MiB, multipartThreshold: 5 * MiB, concurrency: 1 } });
    expect(Buffer.compare(await readFile(target), data)).toBe(0);
    expect(requests.map((r) => r.headers.range).filter(Boolean)[1]).toBe(`bytes=4096-${5 * MiB - 1}`);
  });

  it('reports an unreachable endpoint as a NetworkError', async () => {
    const unreachable = createS3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      maxAttempts: 2,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const failure = await downloadFile(unreachable, 'bkt', 'k', join(dir, 'never.bin')).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(NetworkError);
    expect((failure as Error).message).toMatch(/^cannot reach the S3 endpoint: connection refused \(ECONNREFUSED\)/);
    expect(await leftoverTempFiles(dir)).toEqual([]);
  });
});
