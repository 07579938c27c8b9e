import { createHash } from 'node:crypto';
import { Agent, createServer, type IncomingHttpHeaders, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type FaultProxy,
  type FaultRule,
  isAbortMultipartUpload,
  isCompleteMultipartUpload,
  isCreateMultipartUpload,
  isGetObject,
  isHeadObject,
  isPutObject,
  isUploadPart,
  type ProxiedRequest,
  startFaultProxy,
} from '../helpers/fault-proxy.js';

// The "store" is a tiny HTTP server each test scripts; it records what reached it, so the tests can
// tell what the proxy forwarded from what it made up.
type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
interface Received {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
  at: number;
}
let upstream: Server;
let upstreamUrl: string;
let handler: Handler;
const received: Received[] = [];

/** The one object the store holds, at /bkt/object: 256 KiB of a fixed pattern. */
const OBJECT = Buffer.from(Array.from({ length: 256 * 1024 }, (_, i) => (i * 31 + 7) & 0xff));
const md5 = (data: Buffer) => `"${createHash('md5').update(data).digest('hex')}"`;

/** S3-ish answers: GET/HEAD /bkt/object serve OBJECT, PUT /bkt/echo echoes, anything else is 200 with an ETag of the body. */
const storeHandler: Handler = (req, res, body) => {
  if (req.url?.startsWith('/bkt/object')) {
    res.writeHead(200, { 'content-length': OBJECT.length, etag: md5(OBJECT), 'content-type': 'application/octet-stream' });
    return res.end(req.method === 'HEAD' ? undefined : OBJECT);
  }
  if (req.url?.startsWith('/bkt/echo')) {
    res.writeHead(200, { 'content-length': body.length });
    return res.end(body);
  }
  res.writeHead(200, { etag: md5(body), 'content-length': 0 });
  res.end();
};

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body, at: performance.now() });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

let agent: Agent;
const proxies: FaultProxy[] = [];
beforeEach(() => {
  handler = storeHandler;
  received.length = 0;
  agent = new Agent({ keepAlive: true });
});
afterEach(async () => {
  agent.destroy();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

async function startProxy(rules: FaultRule[] = [], seed = 1, target = upstreamUrl): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ upstream: target, seed, rules });
  proxies.push(proxy);
  return proxy;
}

interface Reply {
  status?: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The error the client saw (a code such as ECONNRESET), if any. */
  error?: string;
  reusedSocket: boolean;
}

/** One request through Node's HTTP client; never rejects: failures are in `error`. */
function send(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: Buffer; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const reply: Reply = { headers: {}, body: Buffer.alloc(0), reusedSocket: false };
    let settled = false;
    const settle = (error?: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      reply.body = Buffer.concat(chunks);
      if (error) reply.error = error.code ?? error.message;
      resolve(reply);
    };
    const req = request(base + path, { method, headers: options.headers, agent: options.agent ?? agent });
    req.on('error', settle);
    req.on('response', (res) => {
      reply.status = res.statusCode;
      reply.headers = res.headers;
      reply.reusedSocket = req.reusedSocket;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', settle);
      res.on('end', () => settle());
      res.on('close', () => settle(res.complete ? undefined : Object.assign(new Error('incomplete'), { code: 'INCOMPLETE' })));
    });
    req.end(options.body);
  });
}

/**
 * One request on a raw TCP connection, to see exactly which bytes arrive and how the connection
 * ends: 'closed' (FIN) or 'reset' (RST).
 */
function rawExchange(base: string, method: string, path: string): Promise<{ head: string; body: Buffer; ending: 'closed' | 'reset' }> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(base).port), '127.0.0.1');
    const chunks: Buffer[] = [];
    let ending: 'closed' | 'reset' = 'closed';
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => socket.end());
    socket.on('error', (e: NodeJS.ErrnoException) => void (ending = e.code === 'ECONNRESET' ? 'reset' : ending));
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      resolve({
        head: split < 0 ? all.toString('latin1') : all.subarray(0, split).toString('latin1'),
        body: split < 0 ? Buffer.alloc(0) : all.subarray(split + 4),
        ending,
      });
    });
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: store.test\r\n\r\n`);
  });
}

const get = (proxy: FaultProxy, path = '/bkt/object') => send(proxy.url, 'GET', path);
const statuses = (replies: Reply[]) => replies.map((r) => r.status ?? r.error);
async function inSequence<T>(count: number, step: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < count; i++) results.push(await step(i));
  return results;
}
const slowDown: FaultRule['fault'] = { type: 'status', status: 503 };

describe('forwarding: without rules the proxy is transparent', () => {
  it('passes method, path, query, every header (Host included, as written) and the body to the store', async () => {
    const proxy = await startProxy();
    const body = Buffer.from('part bytes');
    const headers = {
      Host: 'bkt.s3.example:7480',
      'X-Amz-Date': '20250101T000000Z',
      Authorization: 'AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00',
      'X-Mixed-Case': 'Value',
    };
    const reply = await send(proxy.url, 'PUT', '/bkt/some%20key?partNumber=2&uploadId=u-1', { headers, body });
    expect(reply.status).toBe(200);
    expect(received).toHaveLength(1);
    const [seen] = received;
    expect(seen!.method).toBe('PUT');
    expect(seen!.url).toBe('/bkt/some%20key?partNumber=2&uploadId=u-1');
    expect(seen!.body).toEqual(body);
    for (const [name, value] of Object.entries(headers)) {
      const at = seen!.rawHeaders.indexOf(name);
      expect(at, name).toBeGreaterThanOrEqual(0);
      expect(seen!.rawHeaders[at + 1]).toBe(value);
    }
  });

  it("passes the store's status, headers and body back", async () => {
    const proxy = await startProxy();
    const reply = await get(proxy);
    expect(reply.status).toBe(200);
    expect(reply.headers.etag).toBe(md5(OBJECT));
    expect(reply.headers['content-length']).toBe(String(OBJECT.length));
    expect(reply.body.equals(OBJECT)).toBe(true);

    handler = (_req, res) => {
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end('<Error><Code>NoSuchKey</Code></Error>');
    };
    const missing = await get(proxy, '/bkt/missing');
    expect(missing.status).toBe(404);
    expect(missing.body.toString()).toBe('<Error><Code>NoSuchKey</Code></Error>');
  });

  it('streams large bodies both ways', async () => {
    const proxy = await startProxy();
    const big = Buffer.alloc(8 * 1024 * 1024, 'abcdefgh');
    const reply = await send(proxy.url, 'PUT', '/bkt/echo', { body: big });
    expect(reply.status).toBe(200);
    expect(reply.body.equals(big)).toBe(true);
  });

  it("keeps the client's connection alive between requests", async () => {
    const proxy = await startProxy();
    const single = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await send(proxy.url, 'GET', '/bkt/object', { agent: single });
      const second = await send(proxy.url, 'GET', '/bkt/object', { agent: single });
      expect([first.reusedSocket, second.reusedSocket]).toEqual([false, true]);
    } finally {
      single.destroy();
    }
  });

  it('resets the client connection when the store cannot be reached, and logs why', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const proxy = await startProxy([], 1, `http://127.0.0.1:${deadPort}`);
    const reply = await get(proxy);
    expect(reply.status).toBeUndefined();
    expect(reply.error).toBe('ECONNRESET');
    expect(proxy.log).toEqual([{ method: 'GET', path: '/bkt/object', query: '', upstreamError: 'ECONNREFUSED' }]);
  });
});

describe('rules: which requests are hit', () => {
  it('a rule with no match, probability, times or after hits every request', async () => {
    const proxy = await startProxy([{ fault: slowDown }]);
    expect(statuses(await inSequence(3, () => get(proxy)))).toEqual([503, 503, 503]);
  });

  it('`after` lets the first N matches through, `times` stops after N faults', async () => {
    const proxy = await startProxy([{ match: { method: 'GET' }, fault: slowDown, after: 1, times: 2 }]);
    expect(statuses(await inSequence(5, () => get(proxy)))).toEqual([200, 503, 503, 200, 200]);
  });

  it('rules are tried in order; the first that fires wins and later ones never see the request', async () => {
    const proxy = await startProxy([
      { fault: { type: 'status', status: 500 }, times: 1 },
      { fault: slowDown, after: 1 },
    ]);
    // Request 1 is rule 0's; rule 1 first sees request 2 (its match #0, let through by `after`).
    expect(statuses(await inSequence(4, () => get(proxy)))).toEqual([500, 200, 503, 503]);
    expect(proxy.stats.faultsByRule).toEqual([1, 2]);
  });

  it('a pattern tests the method, the path (string or RegExp) and query parameters (present or equal)', async () => {
    const proxy = await startProxy([
      { match: { method: 'PUT', path: /\/part$/, query: { partNumber: '2', uploadId: true } }, fault: slowDown },
    ]);
    const tries: Array<[string, string]> = [
      ['PUT', '/bkt/part?partNumber=2&uploadId=u'],
      ['PUT', '/bkt/part?partNumber=3&uploadId=u'],
      ['PUT', '/bkt/part?partNumber=2'],
      ['PUT', '/bkt/parts?partNumber=2&uploadId=u'],
      ['POST', '/bkt/part?partNumber=2&uploadId=u'],
    ];
    expect(statuses(await inSequence(tries.length, (i) => send(proxy.url, ...tries[i]!)))).toEqual([503, 200, 200, 200, 200]);
    const exact = await startProxy([{ match: { path: '/bkt/object' }, fault: slowDown }]);
    expect(statuses([await get(exact), await get(exact, '/bkt/object2')])).toEqual([503, 200]);
  });

  it('a predicate sees method, path, parsed query and headers', async () => {
    const seen: ProxiedRequest[] = [];
    const proxy = await startProxy([{ match: (r) => seen.push(r) > 0 && r.headers['x-flag'] === 'on', fault: slowDown }]);
    const replies = [
      await send(proxy.url, 'GET', '/bkt/object?versionId=v1', { headers: { 'x-flag': 'on' } }),
      await send(proxy.url, 'GET', '/bkt/object'),
    ];
    expect(statuses(replies)).toEqual([503, 200]);
    expect(seen[0]).toMatchObject({ method: 'GET', path: '/bkt/object' });
    expect(seen[0]!.query.get('versionId')).toBe('v1');
  });

  it.each([
    ['POST', '/bkt/dir/key?uploads', {}, 'isCreateMultipartUpload'],
    ['POST', '/bkt/key?uploads=&x-id=CreateMultipartUpload', {}, 'isCreateMultipartUpload'],
    ['POST', '/bkt/key?uploadId=u1', {}, 'isCompleteMultipartUpload'],
    ['DELETE', '/bkt/key?uploadId=u1&x-id=AbortMultipartUpload', {}, 'isAbortMultipartUpload'],
    ['PUT', '/bkt/key?partNumber=3&uploadId=u1&x-id=UploadPart', {}, 'isUploadPart'],
    ['PUT', '/bkt/key?partNumber=3&uploadId=u1', { 'x-amz-copy-source': '/bkt/other' }, 'none (UploadPartCopy)'],
    ['PUT', '/bkt/key?x-id=PutObject', {}, 'isPutObject'],
    ['PUT', '/bkt/key?tagging', {}, 'none (PutObjectTagging)'],
    ['PUT', '/bkt/key', { 'x-amz-copy-source': '/bkt/other' }, 'none (CopyObject)'],
    ['PUT', '/bkt', {}, 'none (CreateBucket)'],
    ['GET', '/bkt/key?x-id=GetObject', {}, 'isGetObject'],
    ['GET', '/bkt/key?partNumber=2', {}, 'isGetObject'],
    ['GET', '/bkt/key?uploadId=u1', {}, 'none (ListParts)'],
    ['GET', '/bkt?list-type=2', {}, 'none (ListObjectsV2)'],
    ['GET', '/bkt/', {}, 'none (ListObjects)'],
    ['HEAD', '/bkt/key', {}, 'isHeadObject'],
    ['HEAD', '/bkt', {}, 'none (HeadBucket)'],
  ])('%s %s is %s', (method, target, headers, expected) => {
    const url = new URL(target, 'http://x');
    const r: ProxiedRequest = { method, path: url.pathname, query: url.searchParams, headers };
    const helpers = {
      isCreateMultipartUpload,
      isCompleteMultipartUpload,
      isAbortMultipartUpload,
      isUploadPart,
      isPutObject,
      isGetObject,
      isHeadObject,
    };
    const hits = Object.entries(helpers)
      .filter(([, helper]) => helper(r))
      .map(([name]) => name);
    expect(hits).toEqual(expected.startsWith('none') ? [] : [expected]);
  });

  it('setRules replaces the rules and starts their counters afresh', async () => {
    const proxy = await startProxy([{ fault: slowDown, times: 1 }]);
    expect(statuses([await get(proxy), await get(proxy)])).toEqual([503, 200]);
    proxy.setRules([{ fault: { type: 'status', status: 500 }, times: 1 }]);
    expect(statuses([await get(proxy), await get(proxy)])).toEqual([500, 200]);
    expect(proxy.stats.faultsByRule).toEqual([1]);
    proxy.setRules([]);
    expect(statuses([await get(proxy)])).toEqual([200]);
  });

  it('rejects rules that cannot mean anything', async () => {
    await expect(startProxy([{ fault: slowDown, probability: 1.5 }])).rejects.toThrow('probability must be within 0..1');
    await expect(startProxy([{ fault: slowDown, times: -1 }])).rejects.toThrow('times must be a whole number');
    await expect(startProxy([{ fault: { type: 'status', status: 200 } }])).rejects.toThrow('status must be an HTTP error status');
  });
});

describe('seeded draws: reproducible faults', () => {
  /** Which of `paths` (sent in this order) a proxy with `seed` and a 30% SlowDown rule hits. */
  async function hitPaths(seed: number, paths: string[]): Promise<string[]> {
    const proxy = await startProxy([{ fault: slowDown, probability: 0.3 }], seed);
    const replies = await inSequence(paths.length, (i) => get(proxy, paths[i]));
    return paths.filter((_, i) => replies[i]!.status === 503).sort();
  }
  const distinctPaths = Array.from({ length: 60 }, (_, i) => `/bkt/object?partNumber=${i + 1}`);

  it('a probability hits about that share of requests', async () => {
    const proxy = await startProxy([{ fault: slowDown, probability: 0.25 }], 7);
    const replies = await inSequence(400, (i) => get(proxy, `/bkt/k${i}`));
    const hits = replies.filter((r) => r.status === 503).length;
    expect(hits).toBeGreaterThan(60);
    expect(hits).toBeLessThan(140);
    expect(proxy.stats.faults).toBe(hits);
  });

  it('the same seed and the same requests meet the same faults; another seed, others', async () => {
    const first = await hitPaths(42, distinctPaths);
    expect(await hitPaths(42, distinctPaths)).toEqual(first);
    expect(await hitPaths(43, distinctPaths)).not.toEqual(first);
    expect(first.length).toBeGreaterThan(0);
  });

  it('the draws do not depend on the order in which different requests arrive (concurrent parts)', async () => {
    expect(await hitPaths(42, [...distinctPaths].reverse())).toEqual(await hitPaths(42, distinctPaths));
  });

  it('a repeated request — a retry — gets a fresh draw', async () => {
    const proxy = await startProxy([{ fault: slowDown, probability: 0.5 }], 3);
    const replies = await inSequence(40, () => get(proxy));
    expect(new Set(statuses(replies))).toEqual(new Set([200, 503]));
  });

  it('random bucket names and store-assigned upload ids do not change the draws', async () => {
    const parts = (bucket: string, uploadId: string) =>
      Array.from({ length: 40 }, (_, i) => `/${bucket}/big.bin?partNumber=${i + 1}&uploadId=${uploadId}`);
    const run = async (bucket: string, uploadId: string) => {
      const proxy = await startProxy([{ fault: slowDown, probability: 0.3 }], 9);
      const replies = await inSequence(40, (i) => send(proxy.url, 'PUT', parts(bucket, uploadId)[i]!, { body: Buffer.from('x') }));
      return statuses(replies);
    };
    expect(await run('test-aaaa', '2~first')).toEqual(await run('test-bbbb', '2~second'));
  });

  it('seeded byte positions (flip-byte, truncate) repeat with the seed', async () => {
    const flipped = async (seed: number) => {
      const proxy = await startProxy([{ fault: { type: 'flip-byte' } }], seed);
      const { body } = await get(proxy);
      return body.findIndex((byte, i) => byte !== OBJECT[i]);
    };
    const at = await flipped(11);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(await flipped(11)).toBe(at);
    expect(await flipped(12)).not.toBe(at);
  });
});

describe('faults', () => {
  it.each([
    [503, 'SlowDown'],
    [500, 'InternalError'],
    [502, 'BadGateway'],
    [504, 'GatewayTimeout'],
  ])('status %i answers %s as an S3 XML error with its Content-Length, without forwarding', async (status, code) => {
    const proxy = await startProxy([{ fault: { type: 'status', status }, times: 1 }]);
    const reply = await send(proxy.url, 'PUT', '/bkt/key', { body: Buffer.alloc(100_000, 1) });
    expect(reply.status).toBe(status);
    expect(reply.headers['content-type']).toBe('application/xml');
    expect(Number(reply.headers['content-length'])).toBe(reply.body.length);
    expect(reply.body.toString()).toMatch(new RegExp(`^<\\?xml [^>]+>\\s*<Error><Code>${code}</Code><Message>[^<]+</Message>`));
    expect(received).toEqual([]);
    // The request body was read, so the same connection carries the next request.
    const next = await send(proxy.url, 'PUT', '/bkt/key', { body: Buffer.from('x') });
    expect(next).toMatchObject({ status: 200, reusedSocket: true });
  });

  it('status answers only once the whole request body is in, as a store would', async () => {
    const proxy = await startProxy([{ fault: slowDown }]);
    let lastByteSent = 0;
    const answered = await new Promise<number>((resolve, reject) => {
      const req = request(`${proxy.url}/bkt/key`, { method: 'PUT', agent, headers: { 'content-length': '2000' } }, (res) => {
        res.resume();
        resolve(performance.now());
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1000));
      setTimeout(() => {
        lastByteSent = performance.now();
        req.end(Buffer.alloc(1000));
      }, 200);
    });
    expect(answered).toBeGreaterThanOrEqual(lastByteSent);
    expect(lastByteSent).toBeGreaterThan(0);
  });

  it('status takes a custom code and message, and answers HEAD without a body', async () => {
    const proxy = await startProxy([{ fault: { type: 'status', status: 503, code: 'ServiceUnavailable', message: 'a & b' } }]);
    expect((await get(proxy)).body.toString()).toContain('<Code>ServiceUnavailable</Code><Message>a &#38; b</Message>');
    const head = await send(proxy.url, 'HEAD', '/bkt/object');
    expect(head.status).toBe(503);
    expect(head.body.length).toBe(0);
  });

  it('reset-request resets the connection before anything is forwarded', async () => {
    const proxy = await startProxy([{ fault: { type: 'reset-request' } }]);
    const exchange = await rawExchange(proxy.url, 'GET', '/bkt/object');
    expect(exchange).toMatchObject({ head: '', ending: 'reset' });
    expect(received).toEqual([]);
    expect((await get(proxy)).error).toBe('ECONNRESET');
  });

  it('reset-response sends the headers and the first K body bytes, then resets the connection', async () => {
    const proxy = await startProxy([{ fault: { type: 'reset-response', afterBytes: 1000 } }]);
    const exchange = await rawExchange(proxy.url, 'GET', '/bkt/object');
    expect(exchange.head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(exchange.head).toContain(`content-length: ${OBJECT.length}`);
    expect(exchange.body.equals(OBJECT.subarray(0, 1000))).toBe(true);
    expect(exchange.ending).toBe('reset');
    expect(received).toHaveLength(1);
  });

  it('truncate sends the headers (original Content-Length) and the first K body bytes, then closes cleanly', async () => {
    const proxy = await startProxy([{ fault: { type: 'truncate', afterBytes: 70_000 } }]);
    const exchange = await rawExchange(proxy.url, 'GET', '/bkt/object');
    expect(exchange.head).toContain(`content-length: ${OBJECT.length}`);
    expect(exchange.body.equals(OBJECT.subarray(0, 70_000))).toBe(true);
    expect(exchange.ending).toBe('closed');
    // Node's HTTP client, like the SDK on top of it, calls a short body an error.
    const reply = await get(proxy);
    expect(reply.body.length).toBe(70_000);
    expect(reply.error).toBeDefined();
  });

  it('truncate without a position cuts at a seeded byte inside the body', async () => {
    const proxy = await startProxy([{ fault: { type: 'truncate' } }], 5);
    const lengths = await inSequence(5, async () => (await rawExchange(proxy.url, 'GET', '/bkt/object')).body.length);
    for (const length of lengths) expect(length).toBeLessThan(OBJECT.length);
    expect(new Set(lengths).size).toBeGreaterThan(1);
  });

  it('a cut at or past the end of the body (an empty body included) comes before the headers', async () => {
    const proxy = await startProxy([{ fault: { type: 'truncate', afterBytes: OBJECT.length } }]);
    expect(await rawExchange(proxy.url, 'GET', '/bkt/object')).toMatchObject({ head: '', ending: 'closed' });
    proxy.setRules([{ fault: { type: 'reset-response' } }]);
    expect(await rawExchange(proxy.url, 'PUT', '/bkt/key')).toMatchObject({ head: '', ending: 'reset' });
    expect(received).toHaveLength(2);
  });

  it('stall holds the request for N ms before forwarding it', async () => {
    const proxy = await startProxy([{ fault: { type: 'stall', ms: 300 } }]);
    const sent = performance.now();
    const reply = await get(proxy);
    expect(reply.status).toBe(200);
    expect(received[0]!.at - sent).toBeGreaterThanOrEqual(290);
  });

  it('stall with afterBytes sends K body bytes, goes silent for N ms, then sends the rest', async () => {
    const proxy = await startProxy([{ fault: { type: 'stall', ms: 300, afterBytes: 1000 } }]);
    const arrivals: Array<[bytes: number, ms: number]> = [];
    const sent = performance.now();
    const body = await new Promise<Buffer>((resolve, reject) => {
      request(`${proxy.url}/bkt/object`, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          arrivals.push([Buffer.concat(chunks).length, performance.now() - sent]);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
      })
        .on('error', reject)
        .end();
    });
    expect(body.equals(OBJECT)).toBe(true);
    expect(arrivals[0]![0]).toBe(1000);
    expect(arrivals[0]![1]).toBeLessThan(150);
    expect(arrivals[1]![1] - arrivals[0]![1]).toBeGreaterThanOrEqual(290);
  });

  it('lose-answer lets the store do the work, then resets the connection without a word', async () => {
    const proxy = await startProxy([{ match: isCompleteMultipartUpload, fault: { type: 'lose-answer' } }]);
    const body = Buffer.from('<CompleteMultipartUpload>…</CompleteMultipartUpload>');
    const reply = await send(proxy.url, 'POST', '/bkt/key?uploadId=u1', { body });
    expect(reply.status).toBeUndefined();
    expect(reply.error).toBe('ECONNRESET');
    expect(received).toHaveLength(1);
    expect(received[0]!.body.equals(body)).toBe(true);
    expect(proxy.log).toEqual([
      { method: 'POST', path: '/bkt/key', query: 'uploadId=u1', upstreamStatus: 200, fault: 'lose-answer', rule: 0 },
    ]);
  });

  it('flip-byte inverts exactly one body byte and leaves the headers alone', async () => {
    const proxy = await startProxy([{ fault: { type: 'flip-byte', atByte: 100_000 } }]);
    const reply = await get(proxy);
    expect(reply.status).toBe(200);
    expect(reply.headers.etag).toBe(md5(OBJECT));
    expect(reply.body.length).toBe(OBJECT.length);
    const differing = [...reply.body.keys()].filter((i) => reply.body[i] !== OBJECT[i]);
    expect(differing).toEqual([100_000]);
    expect(reply.body[100_000]).toBe(OBJECT[100_000]! ^ 0xff);
  });
});

describe('stats and log', () => {
  it('counts requests and faults per rule, and logs every request with its outcome', async () => {
    const proxy = await startProxy([
      { match: isHeadObject, fault: slowDown },
      { match: isGetObject, fault: { type: 'reset-request' }, times: 1 },
    ]);
    await send(proxy.url, 'HEAD', '/bkt/object');
    await get(proxy, '/bkt/object?partNumber=1');
    await get(proxy, '/bkt/object?partNumber=1');
    expect(proxy.stats).toMatchObject({ requests: 3, faults: 2, faultsByRule: [1, 1], inFlight: 0 });
    expect(proxy.log).toEqual([
      { method: 'HEAD', path: '/bkt/object', query: '', status: 503, fault: 'status', rule: 0 },
      { method: 'GET', path: '/bkt/object', query: 'partNumber=1', fault: 'reset-request', rule: 1 },
      { method: 'GET', path: '/bkt/object', query: 'partNumber=1', status: 200, upstreamStatus: 200 },
    ]);
  });

  it('counts a request in flight from its arrival until its response ends, and keeps the maximum', async () => {
    const proxy = await startProxy();
    const held: ServerResponse[] = [];
    handler = (_req, res) => held.push(res);
    const replies = Promise.all(Array.from({ length: 5 }, () => get(proxy, '/bkt/held')));
    await expect.poll(() => held.length).toBe(5);
    expect(proxy.stats).toMatchObject({ inFlight: 5, maxInFlight: 5 });
    for (const res of held.splice(0, 2)) res.end();
    await expect.poll(() => proxy.stats.inFlight).toBe(3);
    for (const res of held.splice(0)) res.end();
    await replies;
    expect(proxy.stats).toMatchObject({ inFlight: 0, maxInFlight: 5 });
  });

  it('never counts more in flight than a keep-alive client keeps outstanding', async () => {
    const proxy = await startProxy();
    const pool = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const worker = () => inSequence(50, () => send(proxy.url, 'PUT', '/bkt/key', { body: Buffer.from('x'), agent: pool }));
      await Promise.all([worker(), worker(), worker(), worker()]);
    } finally {
      pool.destroy();
    }
    expect(proxy.stats.requests).toBe(200);
    expect(proxy.stats.maxInFlight).toBeLessThanOrEqual(4);
  });

  it('counts out a request whose client gives up', async () => {
    const proxy = await startProxy([{ fault: { type: 'stall', ms: 60_000 } }]);
    const req = request(`${proxy.url}/bkt/object`, { agent });
    req.on('error', () => {});
    req.end();
    await expect.poll(() => proxy.stats.inFlight).toBe(1);
    req.destroy();
    await expect.poll(() => proxy.stats.inFlight).toBe(0);
  });

  it('reset() zeroes the counters and empties the log', async () => {
    const proxy = await startProxy([{ fault: slowDown, times: 1 }]);
    await get(proxy);
    await get(proxy);
    proxy.stats.reset();
    expect(proxy.stats).toMatchObject({ requests: 0, faults: 0, faultsByRule: [0], inFlight: 0, maxInFlight: 0 });
    expect(proxy.log).toEqual([]);
    // The rule's own count survives: its one fault is spent.
    expect((await get(proxy)).status).toBe(200);
  });
});

describe('close', () => {
  it('ends requests in flight, closes every connection and leaves no timer running', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const before = timers();
    const proxy = await startFaultProxy({ upstream: upstreamUrl, rules: [{ fault: { type: 'stall', ms: 60_000 } }] });
    const stalled = get(proxy);
    await expect.poll(() => proxy.stats.inFlight).toBe(1);
    // The stall's timer starts a moment after the request is counted in: wait for it (a loaded
    // machine can take longer than one poll between the two).
    await expect.poll(timers).toBeGreaterThan(before);
    const started = performance.now();
    await proxy.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect((await stalled).error).toBe('ECONNRESET');
    expect(timers()).toBe(before);
    expect((await get(proxy)).error).toBe('ECONNREFUSED');
  });
});
