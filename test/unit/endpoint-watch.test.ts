import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EndpointWatch } from '../../src/engine/endpoint-watch.js';
import { createS3Client, NetworkError, type S3xferError, TransferAbortedError, TransferManager } from '../../src/index.js';
import { rm, tempDir } from '../helpers/files.js';
import { type ScriptedEndpoint, type ScriptedHandler, startScriptedEndpoint } from '../helpers/scripted-endpoint.js';

// Every request retries on its own, so a job of many files whose endpoint died would fail file
// after file, each after all its attempts and their back-off (a 114-file download took 310 s to
// fail at --concurrency 2). A request that could not connect on any attempt, while no request of
// the manager got an answer, stops the manager: the rest are cancelled, and say why.

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', $metadata: { attempts: 5 } });
const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', $metadata: { attempts: 5 } });
const slowDown = () => Object.assign(new Error('Slow Down'), { name: 'SlowDown', $metadata: { httpStatusCode: 503, attempts: 5 } });

/** Runs `request` through the watch; resolves to whether it found the endpoint unreachable. */
async function watched(watch: EndpointWatch, request: () => Promise<unknown>): Promise<boolean> {
  let unreachable = false;
  await watch
    .track(request, () => {
      unreachable = true;
    })
    .catch(() => {});
  return unreachable;
}

describe('EndpointWatch: when a failure to connect means the endpoint is gone', () => {
  it('a request that could not connect, and no answer to any request since it began: unreachable', async () => {
    const watch = new EndpointWatch();
    expect(await watched(watch, () => Promise.reject(refused()))).toBe(true);
    await watched(watch, () => Promise.resolve('an object'));
    const failing = watched(watch, () => delay(20).then(() => Promise.reject(refused())));
    expect(await failing).toBe(true);
  });

  it('another request answered while it tried: the endpoint is there, this failure is its own', async () => {
    const watch = new EndpointWatch();
    const failing = watched(watch, () => delay(30).then(() => Promise.reject(refused())));
    await delay(5);
    await watched(watch, () => Promise.resolve('an object'));
    expect(await failing).toBe(false);
  });

  it('an error answer (503 SlowDown, a 404) is an answer too', async () => {
    const watch = new EndpointWatch();
    const failing = watched(watch, () => delay(30).then(() => Promise.reject(refused())));
    await delay(5);
    expect(await watched(watch, () => Promise.reject(slowDown()))).toBe(false);
    expect(await failing).toBe(false);
  });

  it('a broken connection (ECONNRESET) is never proof: the endpoint was there; nor a DNS lookup that timed out (EAI_AGAIN)', async () => {
    expect(await watched(new EndpointWatch(), () => Promise.reject(reset()))).toBe(false);
    const dnsTimeout = Object.assign(new Error('getaddrinfo EAI_AGAIN s3.example.com'), { code: 'EAI_AGAIN', $metadata: { attempts: 5 } });
    expect(await watched(new EndpointWatch(), () => Promise.reject(dnsTimeout))).toBe(false);
  });
});

describe('a TransferManager whose endpoint cannot be reached stops, whatever its failure policy', () => {
  let dir: string;
  let files: string[];
  let scripted: ScriptedEndpoint | undefined;
  beforeAll(async () => {
    dir = await tempDir();
    files = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const file = join(dir, `f${i}.txt`);
        await writeFile(file, `file ${i}`);
        return file;
      }),
    );
  });
  afterAll(async () => {
    await scripted?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const clientOf = (endpoint: string) =>
    createS3Client({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 2 });

  async function uploadAll(endpoint: string, count = files.length) {
    const manager = new TransferManager(clientOf(endpoint), { config: { concurrency: 2, maxAttempts: 2 } });
    for (const [i, file] of files.slice(0, count).entries()) void manager.upload(file, 'bkt', `up/${i}`).catch(() => {});
    const summary = await manager.drain();
    const errors = summary.failed.map((f) => f.error);
    return {
      summary,
      own: errors.filter((e) => !(e instanceof TransferAbortedError)),
      cancelled: errors.filter((e) => e instanceof TransferAbortedError),
    };
  }

  const expectCancelledForTheEndpoint = (cancelled: S3xferError[]) => {
    for (const error of cancelled)
      expect([error.code, error.message]).toEqual(['Cancelled', 'cancelled: the S3 endpoint cannot be reached']);
  };

  it('an endpoint that dies midway: the transfers in flight fail with their reason, every other is cancelled', async () => {
    let answered = 0;
    const handler: ScriptedHandler = (_req, res) => {
      res.writeHead(200, { etag: '"e"', 'content-length': 0 });
      res.end();
      // After five answers the server is gone: connections are refused from now on.
      if (++answered === 5) void scripted!.close();
    };
    scripted = await startScriptedEndpoint((req, res, body) => handler(req, res, body));
    const { summary, own, cancelled } = await uploadAll(scripted.url);
    scripted = undefined;

    expect(summary.succeeded).toBe(5);
    // The requests in flight when it died, and those that started before one of them gave up.
    expect(own.length).toBeGreaterThan(0);
    expect(own.length).toBeLessThanOrEqual(4);
    for (const error of own) expect(error).toBeInstanceOf(NetworkError);
    expect(cancelled.length).toBe(40 - 5 - own.length);
    expectCancelledForTheEndpoint(cancelled);
  });

  it('an endpoint that was never there: the first transfers fail with "connection refused", the rest are cancelled', async () => {
    const gone = await startScriptedEndpoint(() => {});
    await gone.close(); // a port nothing listens on
    const { summary, own, cancelled } = await uploadAll(gone.url);
    expect(summary.succeeded).toBe(0);
    expect(own.length).toBeLessThanOrEqual(2);
    for (const error of own)
      expect([error.code, error.message]).toEqual([
        'ECONNREFUSED',
        'cannot reach the S3 endpoint: connection refused (ECONNREFUSED) after 2 attempts',
      ]);
    expect(cancelled.length).toBe(40 - own.length);
    expectCancelledForTheEndpoint(cancelled);
  });

  it('an endpoint that breaks every connection is still there: each transfer fails on its own, none is cancelled', {
    timeout: 30_000,
  }, async () => {
    scripted = await startScriptedEndpoint((req) => void req.socket.resetAndDestroy());
    const { summary, own, cancelled } = await uploadAll(scripted.url, 10);
    expect(summary.succeeded).toBe(0);
    expect(cancelled).toEqual([]);
    expect(own.length).toBe(10);
    for (const error of own) expect(error.code).toBe('ECONNRESET');
  });
});
