import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client, S3ServiceError, TransferManager } from '../../src/index.js';
import { rm, tempDir } from '../helpers/files.js';
import { type ScriptedEndpoint, type ScriptedHandler, startScriptedEndpoint } from '../helpers/scripted-endpoint.js';

// The SDK's standard retry strategy keeps one retry quota per client (500 tokens, 14 per retry of
// a 5xx or broken connection, refilled by successes): a burst of failures — a gateway restart
// under 10 requests in flight, a flaky network under a few hundred transfers — drains it, and from
// then on every request of every transfer fails at its first error, whatever `maxAttempts` says.
// Here each request fails twice before it succeeds: all must succeed, each after three attempts.
let scripted: ScriptedEndpoint;
let endpoint: string;
let dir: string;
const attemptsByKey = new Map<string, number>();
let handler: ScriptedHandler;

beforeAll(async () => {
  scripted = await startScriptedEndpoint((req, res, body) => handler(req, res, body));
  endpoint = scripted.url;
  dir = await tempDir();
});
afterAll(async () => {
  await scripted.close();
  await rm(dir, { recursive: true, force: true });
});

/** Fails the first `failures` attempts at each path (500 InternalError, or a reset connection), then answers 200. */
function failingFirst(failures: number, how: 'status' | 'reset') {
  attemptsByKey.clear();
  handler = (req, res, body) => {
    const seen = (attemptsByKey.get(req.url!) ?? 0) + 1;
    attemptsByKey.set(req.url!, seen);
    if (seen <= failures) {
      if (how === 'reset') return void req.socket.resetAndDestroy();
      res.writeHead(500, { 'content-type': 'application/xml' });
      return void res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message></Message></Error>');
    }
    res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"`, 'content-length': 0 });
    res.end();
  };
}

const client = (maxAttempts?: number) =>
  createS3Client({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts });

describe('retries are bounded by maxAttempts, not by a client-wide quota', () => {
  it.each(['status', 'reset'] as const)(
    'a hundred requests through one client, each failing twice (%s), all succeed on their third attempt',
    { timeout: 60_000 },
    async (how) => {
      failingFirst(2, how);
      const s3 = client();
      const outputs = await Promise.allSettled(
        Array.from({ length: 100 }, (_, i) => s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: `k${i}`, Body: `body ${i}` }))),
      );
      const failed = outputs.filter((o) => o.status === 'rejected');
      expect(failed.length, String((failed[0] as PromiseRejectedResult | undefined)?.reason)).toBe(0);
      expect(outputs.map((o) => (o as PromiseFulfilledResult<{ $metadata: { attempts?: number } }>).value.$metadata.attempts)).toEqual(
        Array(100).fill(3),
      );
    },
  );

  it('many small uploads through one TransferManager all ride out two failures each', { timeout: 60_000 }, async () => {
    failingFirst(2, 'status');
    const manager = new TransferManager(client(), { config: { concurrency: 10 } });
    const files = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const file = join(dir, `f${i}.txt`);
        await writeFile(file, `file ${i}`);
        return file;
      }),
    );
    for (const [i, file] of files.entries()) void manager.upload(file, 'bkt', `up/${i}`).catch(() => {});
    const summary = await manager.drain();
    expect(summary.failed.map((f) => f.error.message)).toEqual([]);
    expect(summary.succeeded).toBe(60);
  });

  it('still gives up after maxAttempts', async () => {
    failingFirst(10, 'status');
    const failure = await client(3)
      .send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'never' }))
      .catch((e: unknown) => e);
    expect((failure as { $metadata?: { attempts?: number } }).$metadata?.attempts).toBe(3);
    expect(attemptsByKey.get('/bkt/never')).toBe(3);
    expect(failure).not.toBeInstanceOf(S3ServiceError); // the raw SDK error: the client alone maps nothing
  });
});
