import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { HttpRequest } from '@smithy/core/transport';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { GetRequestHandler, type ResponseBody } from '../../src/get-handler.js';
import { rm, tempDir } from '../helpers/files.js';
import { makeTestCertificates } from '../helpers/network.js';

/*
 * The GET handler's contract: a GET's response body reaches its consumer byte for byte (as views
 * of the connection's buffer, or as a stream), connections are kept alive and reused only when the
 * last exchange on them ended cleanly, and every failure (reset, stall, cancel) fails the request
 * or its body, never leaving it hanging. Servers here are scripted on 127.0.0.1.
 */

const servers: Server[] = [];
const handlers: GetRequestHandler[] = [];

afterEach(async () => {
  for (const handler of handlers.splice(0)) handler.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** An http server on 127.0.0.1, counting the connections it accepted. */
async function httpServer(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createHttpServer(handle);
  const stats = { connections: 0 };
  server.on('connection', () => stats.connections++);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, stats, server };
}

/** A server that answers each request with the raw bytes `answer` gives it (for answers Node's server would not send). */
async function rawServer(answer: (socket: Socket, request: string, index: number) => void) {
  const stats = { connections: 0, requests: 0 };
  const server = createNetServer((socket) => {
    stats.connections++;
    let text = '';
    socket.on('data', (data) => {
      text += data.toString('latin1');
      while (text.includes('\r\n\r\n')) {
        const end = text.indexOf('\r\n\r\n') + 4;
        answer(socket, text.slice(0, end), stats.requests++);
        text = text.slice(end);
      }
    });
    socket.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, stats };
}

function inner() {
  return {
    handle: vi.fn(async () => ({ response: 'inner' })),
    updateHttpClientConfig: vi.fn(),
    httpHandlerConfigs: () => ({}),
    destroy: vi.fn(),
  };
}

function handlerFor(options: { socketTimeoutMs?: number; proxied?: boolean } = {}) {
  const other = inner();
  const handler = new GetRequestHandler(other as never, {
    connectionTimeoutMs: 2_000,
    socketTimeoutMs: options.socketTimeoutMs ?? 5_000,
    tls: {},
    maxIdle: 4,
    ...(options.proxied ? { proxyRules: { proxyFor: () => new URL('http://127.0.0.1:9') } } : {}),
  });
  handlers.push(handler);
  return { handler, other };
}

function get(port: number, path = '/bucket/key', headers: Record<string, string> = {}, more: Partial<HttpRequest> = {}): HttpRequest {
  return new HttpRequest({
    protocol: 'http:',
    hostname: '127.0.0.1',
    port,
    method: 'GET',
    path,
    query: {},
    headers: { host: `127.0.0.1:${port}`, ...headers },
    ...more,
  });
}

/** Drains a body into one buffer, copying each view as the contract asks. */
async function drained(body: ResponseBody, take?: (view: Uint8Array) => void | Promise<void>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  await body.drain((view) => {
    pieces.push(Buffer.from(view));
    return take?.(view);
  });
  return Buffer.concat(pieces);
}

const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + (i >> 9)) & 0xff));

describe('GET requests over kept-alive connections', () => {
  it('drains a body byte for byte and reuses the connection for the next GETs', async () => {
    const payload = bytes(3 * 1024 * 1024 + 17);
    const { port, stats } = await httpServer((_req, res) => res.end(payload));
    const { handler } = handlerFor();
    for (let i = 0; i < 3; i++) {
      const { response } = await handler.handle(get(port));
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-length']).toBe(String(payload.length));
      expect((await drained(response.body as ResponseBody)).equals(payload)).toBe(true);
    }
    expect(stats.connections).toBe(1);
  });

  it('reads a body as a stream too (the SDK parsers), chunked or not, and sends the query string', async () => {
    const seen: string[] = [];
    const { port } = await httpServer((req, res) => {
      seen.push(req.url ?? '');
      res.write('<List>');
      setTimeout(() => res.end('</List>'), 5);
    });
    const { handler } = handlerFor();
    const request = get(port, '/bucket', {}, { query: { 'list-type': '2', prefix: 'a b/' } });
    const { response } = await handler.handle(request);
    expect(response.headers['transfer-encoding']).toBe('chunked');
    const chunks: Buffer[] = [];
    for await (const chunk of response.body as ResponseBody) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('<List></List>');
    expect(seen).toEqual(['/bucket?list-type=2&prefix=a%20b%2F']);
  });

  it('keeps the bytes that came with the headers until the body is read, however late', async () => {
    const { port } = await rawServer((socket) => socket.write('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n<Error/>\n'));
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(response.statusCode).toBe(404);
    expect(await drained(response.body as ResponseBody).then(String)).toBe('<Error/>\n');
  });

  it('waits for a consumer that returns a promise: no byte lost or reordered', async () => {
    const payload = bytes(2 * 1024 * 1024);
    const { port } = await httpServer((_req, res) => res.end(payload));
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    const pieces: Buffer[] = [];
    let calls = 0;
    let pending = 0;
    await (response.body as ResponseBody).drain((view) => {
      expect(pending).toBe(0); // nothing comes while a promise is pending
      pieces.push(Buffer.from(view));
      if (calls++ % 3 !== 0) return;
      pending++;
      return new Promise((resolve) => setTimeout(resolve, 2)).then(() => void pending--);
    });
    expect(calls).toBeGreaterThan(3);
    expect(Buffer.concat(pieces).equals(payload)).toBe(true);
  });

  it('a whole response in one read, then the next on the same connection, its headers in two reads', async () => {
    const payload = bytes(200 * 1024);
    const { port, stats } = await rawServer((socket, _request, index) => {
      const head = `HTTP/1.1 200 OK\r\nContent-Length: ${payload.length}\r\n\r\n`;
      if (index === 0) return void socket.write(Buffer.concat([Buffer.from(head), payload]));
      socket.write(head.slice(0, 20));
      setTimeout(() => socket.write(Buffer.concat([Buffer.from(head.slice(20)), payload])), 20);
    });
    const { handler } = handlerFor();
    for (let i = 0; i < 3; i++) {
      const { response } = await handler.handle(get(port));
      expect((await drained(response.body as ResponseBody)).equals(payload)).toBe(true);
    }
    expect(stats.connections).toBe(1);
  });

  it('answers 204 without waiting for a body', async () => {
    const { port } = await rawServer((socket) => socket.write('HTTP/1.1 204 No Content\r\n\r\n'));
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    expect(response.statusCode).toBe(204);
    expect((await drained(response.body as ResponseBody)).length).toBe(0);
  });

  it('sends other requests, and proxied GETs, to the SDK handler', async () => {
    const { handler, other } = handlerFor();
    await handler.handle(get(1, undefined, undefined, { method: 'PUT', body: 'x' }));
    await handler.handle(get(1, undefined, undefined, { method: 'HEAD' }));
    const proxied = handlerFor({ proxied: true });
    await proxied.handler.handle(get(1));
    expect(other.handle).toHaveBeenCalledTimes(2);
    expect(proxied.other.handle).toHaveBeenCalledTimes(1);
  });

  it('refuses a header value with a line break before anything is sent', async () => {
    const { port, stats } = await rawServer(() => {});
    const { handler } = handlerFor();
    await expect(handler.handle(get(port, '/bucket/key', { 'x-amz-meta-a': 'b\r\nx-evil: 1' }))).rejects.toThrow(/Invalid character/);
    expect(stats.requests).toBe(0);
  });
});

describe('https', () => {
  it('a body over TLS reaches a consumer that is often busy byte for byte, on one connection, with the CA trusted', async () => {
    const dir = await tempDir();
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const certificates = makeTestCertificates(dir);
    const payload = bytes(6 * 1024 * 1024 + 5);
    const server = createHttpsServer({ cert: certificates.cert, key: certificates.key }, (_req, res) => res.end(payload));
    let connections = 0;
    server.on('secureConnection', () => connections++);
    server.on('tlsClientError', () => {});
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const trusted = new GetRequestHandler(inner() as never, {
      connectionTimeoutMs: 2_000,
      socketTimeoutMs: 5_000,
      tls: { ca: readFileSync(certificates.caFile, 'utf8') },
      maxIdle: 4,
    });
    handlers.push(trusted);
    for (let i = 0; i < 2; i++) {
      const { response } = await trusted.handle(get(port, undefined, undefined, { protocol: 'https:' }));
      let calls = 0;
      const body = await drained(response.body as ResponseBody, () =>
        calls++ % 2 === 0 ? new Promise((r) => setTimeout(r, 1)) : undefined,
      );
      expect(body.equals(payload)).toBe(true);
    }
    expect(connections).toBe(1);
    // Without the CA: refused, as the SDK's handler refuses it.
    const { handler } = handlerFor();
    await expect(handler.handle(get(port, undefined, undefined, { protocol: 'https:' }))).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });
});

describe('answers as servers send them', () => {
  it('an interim 100 Continue before the answer is skipped, as Node reads it', async () => {
    const { port } = await rawServer((socket) =>
      socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
    );
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    expect(response.statusCode).toBe(200);
    expect(String(await drained(response.body as ResponseBody))).toBe('ok');
  });

  it('a Content-Length that is not a number fails the request; equal duplicates count once', async () => {
    const { port } = await rawServer((socket, request) => {
      if (request.includes('/bad')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello');
    });
    const { handler } = handlerFor();
    await expect(handler.handle(get(port, '/bad'))).rejects.toMatchObject({ code: 'HPE_UNEXPECTED_CONTENT_LENGTH' });
    const { response } = await handler.handle(get(port));
    expect(response.headers['content-length']).toBe('5');
    expect(String(await drained(response.body as ResponseBody))).toBe('hello');
  });

  it('a chunk size that is not hex fails the body instead of ending it', async () => {
    const { port } = await rawServer((socket) =>
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nmore\r\n0\r\n\r\n'),
    );
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    await expect(drained(response.body as ResponseBody)).rejects.toMatchObject({ code: 'HPE_INVALID_CHUNK_SIZE' });
  });
});

describe('connections that go wrong', () => {
  it('an idle connection the server closes is closed and forgotten at once (no half-closed socket left)', async () => {
    let clientClosed = false;
    const server = createNetServer({ allowHalfOpen: true }, (socket) => {
      socket.once('data', () => {
        // The body comes with the headers (the case where the client paused reading), then the server closes.
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        setTimeout(() => socket.end(), 20);
      });
      socket.on('end', () => {
        clientClosed = true;
        socket.destroy();
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    expect(String(await drained(response.body as ResponseBody))).toBe('ok');
    await vi.waitFor(() => expect(clientClosed).toBe(true), { timeout: 2_000 });
  });

  it('every kept-alive connection stale: the GET goes again once, on a new connection, not on the next stale one', async () => {
    const { port, stats } = await rawServer((socket, _request, index) => {
      const served = (socket as Socket & { served?: number }).served ?? 0;
      (socket as Socket & { served?: number }).served = served + 1;
      if (served > 0) return void socket.destroy(); // closed "just before" the next request
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${index < 2 ? 'ok' : 'OK'}`);
    });
    const { handler } = handlerFor();
    // Two connections in the pool, both answering one request only.
    const first = await Promise.all([handler.handle(get(port)), handler.handle(get(port))]);
    for (const { response } of first) await drained(response.body as ResponseBody);
    const { response } = await handler.handle(get(port));
    expect(String(await drained(response.body as ResponseBody))).toBe('OK');
    expect(stats.connections).toBe(3);
  });

  it('a kept-alive connection that stays silent is a timeout, not retried on another connection', async () => {
    const { port, stats } = await rawServer((socket, _request, index) => {
      if (index === 0) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const { handler } = handlerFor({ socketTimeoutMs: 200 });
    const { response } = await handler.handle(get(port));
    await drained(response.body as ResponseBody);
    await expect(handler.handle(get(port))).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(stats.requests).toBe(2);
  });

  it('a connection that drops mid-body fails the drain (a reset, retried by the caller) and is not reused', async () => {
    const { port, stats } = await rawServer((socket, _request, index) => {
      if (index === 0) {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
        socket.write(bytes(1000), () => socket.destroy());
      } else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    const failure = await drained(response.body as ResponseBody).catch((e: unknown) => e as Error & { code?: string });
    expect(failure).toBeInstanceOf(Error);
    expect((failure as { code?: string }).code).toBe('ECONNRESET');
    expect((failure as Error).name).toBe('TimeoutError'); // the SDK's name for a transient connection failure
    const next = await handler.handle(get(port));
    expect(String(await drained(next.response.body as ResponseBody))).toBe('ok');
    expect(stats.connections).toBe(2);
  });

  it('a kept-alive connection the server closed while idle: the GET goes again on a new one', async () => {
    const { port, stats } = await rawServer((socket, _request) => {
      // Answers as if keeping the connection, then drops it after a moment (an idle timeout).
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      setTimeout(() => socket.destroy(), 10);
    });
    const { handler } = handlerFor();
    for (let i = 0; i < 3; i++) {
      const { response } = await handler.handle(get(port));
      expect(String(await drained(response.body as ResponseBody))).toBe('ok');
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    expect(stats.connections).toBe(3);
  });

  it('Connection: close, or bytes after the response: the connection is not reused', async () => {
    const { port, stats } = await rawServer((socket, _request, index) => {
      if (index === 0) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA');
    });
    const { handler } = handlerFor();
    for (let i = 0; i < 3; i++) {
      const { response } = await handler.handle(get(port));
      expect(String(await drained(response.body as ResponseBody))).toBe('ok');
    }
    expect(stats.connections).toBe(3);
  });

  it('a server that stops mid-body: the body fails after the idle timeout', async () => {
    const { port } = await rawServer((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const { handler } = handlerFor({ socketTimeoutMs: 200 });
    const started = Date.now();
    const { response } = await handler.handle(get(port));
    await expect(drained(response.body as ResponseBody)).rejects.toMatchObject({ name: 'TimeoutError', message: /timed out after 200 ms/ });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('a server that never answers: the request fails after the idle timeout', async () => {
    const { port } = await rawServer(() => {});
    const { handler } = handlerFor({ socketTimeoutMs: 200 });
    await expect(handler.handle(get(port))).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('cancelled before the answer, or mid-body: AbortError, and the connection is closed', async () => {
    const { port, stats } = await rawServer((socket, request) => {
      if (request.includes('/late')) return;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    });
    const { handler } = handlerFor();
    const before = new AbortController();
    const pending = handler.handle(get(port, '/late'), { abortSignal: before.signal });
    setTimeout(() => before.abort(), 20);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });

    const midway = new AbortController();
    const { response } = await handler.handle(get(port), { abortSignal: midway.signal });
    const draining = drained(response.body as ResponseBody);
    midway.abort();
    await expect(draining).rejects.toMatchObject({ name: 'AbortError' });
    expect(stats.connections).toBe(2);
  });

  it('a request cancelled while the consumer is busy: the drain fails only once the consumer is done', async () => {
    const { port } = await rawServer((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc'));
    const { handler } = handlerFor();
    const cancel = new AbortController();
    const { response } = await handler.handle(get(port), { abortSignal: cancel.signal });
    let done = false;
    const failure = (response.body as ResponseBody)
      .drain(() => {
        setTimeout(() => cancel.abort(), 10);
        return new Promise<void>((resolve) => setTimeout(resolve, 100)).then(() => void (done = true));
      })
      .catch((e: unknown) => e);
    expect(await failure).toMatchObject({ name: 'AbortError' });
    expect(done).toBe(true);
  });

  it('a consumer that fails stops the body and closes the connection', async () => {
    const { port, stats } = await httpServer((_req, res) => res.end(bytes(1024 * 1024)));
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    await expect(
      (response.body as ResponseBody).drain(() => {
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    const next = await handler.handle(get(port));
    expect((await drained(next.response.body as ResponseBody)).length).toBe(1024 * 1024);
    expect(stats.connections).toBe(2);
  });

  it('a body given up before its end closes its connection', async () => {
    let closed = false;
    const { port } = await rawServer((socket) => {
      socket.on('close', () => (closed = true));
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
      socket.write(bytes(64 * 1024));
    });
    const { handler } = handlerFor();
    const { response } = await handler.handle(get(port));
    for await (const _chunk of response.body as ResponseBody) break;
    await vi.waitFor(() => expect(closed).toBe(true), { timeout: 2_000 });
  });

  it('a refused connection fails the request with its code', async () => {
    const { port } = await httpServer(() => {});
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const { handler } = handlerFor();
    await expect(handler.handle(get(port))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
