import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client, downloadFile, S3ServiceError } from '../../src/index.js';
import { rm, tempDir } from '../helpers/files.js';

// Error answers without an S3 error body: every HEAD error (HEAD has no body), and 5xx pages of
// proxies and load balancers. The SDK then names the error "Unknown"; the code s3xfer reports must
// still say something (the status), not "Unknown".
let server: Server;
let endpoint: string;
let dir: string;
let status = 503;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-length': 0 });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = await tempDir();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('an error status without an error body', () => {
  it.each([500, 502, 503, 504])('HEAD answered %d: S3ServiceError with the status as its code', async (answer) => {
    status = answer;
    const client = createS3Client({
      endpoint,
      region: 'us-east-1',
      maxAttempts: 1,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const failure = await downloadFile(client, 'bkt', 'k', join(dir, 'never.bin')).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(S3ServiceError);
    expect((failure as S3ServiceError).code).toBe(`Http${answer}`);
    expect((failure as S3ServiceError).status).toBe(answer);
    expect((failure as Error).message).toBe(`s3://bkt/k: the server answered (Http${answer}, HTTP ${answer})`);
  });
});
