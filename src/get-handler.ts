import { validateHeaderName, validateHeaderValue } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { buildQueryString } from '@smithy/core/protocols';
import { type HttpRequest, HttpResponse } from '@smithy/core/transport';
import type { NodeHttpHandler } from '@smithy/node-http-handler';
import { HTTPParser } from 'http-parser-js';
import type { ProxyRules, TlsOptions } from './network.js';

/*
 * GET requests over connections of s3xfer's own, whose response bodies go from the socket's read
 * buffer straight to the consumer.
 *
 * Why: a download is mostly response body, and Node's HTTP client spends about 1 CPU s of user
 * time per GiB on it here before a byte is written or hashed: every 64 KiB read is a fresh buffer,
 * which the HTTP parser copies into another fresh buffer, which goes through two streams (the
 * socket's and the response's). Read into one reused 256 KiB buffer per connection and handed on
 * as views, the same GETs cost a third less user time and 30 MiB less memory (BENCHMARKS.md,
 * "Download: the response bodies").
 *
 * What is s3xfer's here is only the connection handling: a keep-alive pool per origin, the
 * request's head written as Node writes it, timeouts and cancellation. The response is parsed by
 * http-parser-js (status line, headers, Content-Length, chunked bodies, keep-alive), whose body
 * callbacks get views of the buffer it parses, no copies.
 *
 * Which requests: GETs without a body to an http:// or https:// endpoint that no proxy serves.
 * Everything else (other methods, proxied requests) goes to the SDK's handler, unchanged.
 */

/** What a GET's connections use: the client's timeouts, TLS trust and proxy rules. */
export interface GetConnectionSettings {
  /** Milliseconds to wait for a connection (and its TLS handshake); 0: no limit. */
  connectionTimeoutMs: number;
  /** Milliseconds a connection may stay silent mid-request; 0: no limit. */
  socketTimeoutMs: number;
  tls: TlsOptions;
  /** Requests that these rules send through a proxy go to the SDK's handler. */
  proxyRules?: ProxyRules;
  /** Idle connections kept per origin. */
  maxIdle: number;
}

/**
 * Consumer of a body drained with {@link ResponseBody.drain}: it gets each piece of the body as a
 * view of a buffer that is reused as soon as it returns (over TLS even before a promise it returns
 * settles), so it copies what it keeps before returning. When it returns a promise, no more bytes
 * come until that settles (a rejection fails the drain).
 */
export type BodyTaker = (view: Uint8Array) => void | Promise<void>;

/** The SDK's handler, for every other request. */
type InnerHandler = Pick<NodeHttpHandler, 'handle' | 'updateHttpClientConfig' | 'httpHandlerConfigs' | 'destroy'>;

/** Bytes of each connection's read buffer: one read of the socket. */
const READ_BUFFER_BYTES = 256 * 1024;

/** Error codes under which a failed connection counts as a transient failure (as the SDK's handler names them). */
const TIMEOUT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/**
 * The client's request handler: GETs (see above) over connections of its own, every other request
 * through `inner`, the SDK's handler.
 */
export class GetRequestHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  readonly #inner: InnerHandler;
  readonly #settings: GetConnectionSettings;
  /** Idle connections per origin, the most recently used last. */
  readonly #idle = new Map<string, Connection[]>();
  #destroyed = false;

  constructor(inner: InnerHandler, settings: GetConnectionSettings) {
    this.#inner = inner;
    this.#settings = settings;
  }

  /** The handler of every other request (the SDK's, or the proxy routing over it). */
  get inner(): InnerHandler {
    return this.#inner;
  }

  handle(request: HttpRequest, options: { abortSignal?: AbortSignal } = {}): Promise<{ response: HttpResponse }> {
    if (!this.#takes(request)) return this.#inner.handle(request as never, options as never) as Promise<{ response: HttpResponse }>;
    return this.#get(request, options.abortSignal);
  }

  updateHttpClientConfig(...args: Parameters<NodeHttpHandler['updateHttpClientConfig']>): void {
    this.#inner.updateHttpClientConfig(...args);
  }

  httpHandlerConfigs(): ReturnType<NodeHttpHandler['httpHandlerConfigs']> {
    return this.#inner.httpHandlerConfigs();
  }

  destroy(): void {
    this.#destroyed = true;
    for (const connections of this.#idle.values()) for (const connection of connections) connection.socket.destroy();
    this.#idle.clear();
    this.#inner.destroy();
  }

  /** Whether `request` goes over this handler's own connections. */
  #takes(request: HttpRequest): boolean {
    if (request.method !== 'GET' || request.body !== undefined || this.#destroyed) return false;
    if (request.protocol !== 'http:' && request.protocol !== 'https:') return false;
    if (request.username != null || request.password != null || request.fragment) return false;
    return this.#settings.proxyRules?.proxyFor(request) === undefined;
  }

  async #get(request: HttpRequest, signal: AbortSignal | undefined, fresh = false): Promise<{ response: HttpResponse }> {
    if (signal?.aborted) throw abortError(signal);
    const head = requestHead(request);
    const origin = originOf(request);
    const reused = fresh ? undefined : this.#idle.get(origin)?.pop();
    const connection = reused ?? (await this.#connect(request, signal));
    try {
      return await connection.exchange(head, signal, this.#settings.socketTimeoutMs, (done) => this.#release(origin, done));
    } catch (error) {
      // A kept-alive connection the server closed just before it got the request (a reset or
      // close before any byte of an answer, not a timeout): once more, on a new connection.
      if (reused && (error as ConnectionError).beforeResponse && !signal?.aborted) return this.#get(request, signal, true);
      throw error;
    }
  }

  #connect(request: HttpRequest, signal: AbortSignal | undefined): Promise<Connection> {
    const { connectionTimeoutMs, tls } = this.#settings;
    const secure = request.protocol === 'https:';
    const host = request.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = request.port ?? (secure ? 443 : 80);
    const connection = new Connection();
    const onread = {
      buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES),
      callback: (n: number, buffer: Buffer) => connection.read(n, buffer),
    };
    const socket = secure
      ? tlsConnect({ host, port, onread, ...tls, ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }) } as never)
      : netConnect({ host, port, onread });
    connection.attach(socket);
    const ready = secure ? 'secureConnect' : 'connect';
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        cleanUp();
        socket.destroy();
        reject(transient(error));
      };
      const onAbort = () => fail(abortError(signal!));
      const onError = (error: Error) => fail(error);
      const timer =
        connectionTimeoutMs > 0
          ? setTimeout(
              () =>
                fail(
                  Object.assign(
                    new Error(
                      `the request socket did not establish a connection with the server within the configured timeout of ${connectionTimeoutMs} ms.`,
                    ),
                    { name: 'TimeoutError' },
                  ),
                ),
              connectionTimeoutMs,
            )
          : undefined;
      const cleanUp = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        socket.off(ready, onReady);
      };
      const onReady = () => {
        cleanUp();
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 1_000); // as the SDK's keep-alive agents: a dead peer is found even without a socket timeout
        resolve(connection);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.on('error', onError);
      socket.once(ready, onReady);
    });
  }

  /** Keeps a connection whose exchange ended cleanly for the next GET to its origin. */
  #release(origin: string, connection: Connection): void {
    if (this.#destroyed) return void connection.socket.destroy();
    let idle = this.#idle.get(origin);
    if (!idle) this.#idle.set(origin, (idle = []));
    if (idle.length >= this.#settings.maxIdle) return void connection.socket.destroy();
    idle.push(connection);
    connection.onClose = () => {
      const at = idle.indexOf(connection);
      if (at >= 0) idle.splice(at, 1);
    };
  }
}

/** An error of a connection, and whether it came before any byte of the response. */
type ConnectionError = Error & { beforeResponse?: boolean; code?: string };

/** One keep-alive connection: at most one exchange (request and response) at a time. */
class Connection {
  socket!: Socket;
  readonly parser = new HTTPParser(HTTPParser.RESPONSE);
  /** Called when the socket closes while idle. */
  onClose?: () => void;
  #current: Exchange | undefined;

  attach(socket: Socket): void {
    this.socket = socket;
    // http-parser-js reads a chunk size that is not hex ("zz") as the last chunk: a truncated body
    // taken for a whole one. As llhttp, refuse it.
    const chunked = this.parser as unknown as { BODY_CHUNKHEAD: () => unknown; body_bytes: number };
    const chunkHead = chunked.BODY_CHUNKHEAD;
    chunked.BODY_CHUNKHEAD = function (this: typeof chunked) {
      const result = chunkHead.call(this);
      if (Number.isNaN(this.body_bytes)) throw Object.assign(new Error('invalid chunk size'), { code: 'HPE_INVALID_CHUNK_SIZE' });
      return result;
    };
    const parser = this.parser as unknown as Record<number, unknown>;
    parser[HTTPParser.kOnHeadersComplete] = (...args: unknown[]) => this.#current?.headers(args);
    parser[HTTPParser.kOnBody] = (chunk: Buffer, offset: number, length: number) =>
      this.#current?.body(offset === 0 && length === chunk.length ? chunk : chunk.subarray(offset, offset + length));
    parser[HTTPParser.kOnMessageComplete] = () => this.#current?.complete();
    socket.on('end', () => {
      const error = this.parser.finish();
      if (error instanceof Error) this.#current?.fail(connectionError('the connection closed mid-response', 'ECONNRESET'));
    });
    socket.on('error', (error) => this.#current?.fail(transient(error)));
    socket.on('close', () => {
      this.#current?.fail(connectionError('socket hang up', 'ECONNRESET'));
      this.onClose?.();
    });
    // Flowing, so that the end of the stream is seen (its bytes go to `read`, never to the stream).
    socket.resume();
    socket.on('timeout', () => {
      this.#current?.fail(Object.assign(new Error(`Connection timed out after ${socket.timeout} ms`), { name: 'TimeoutError' }));
    });
  }

  /** The socket's read callback; false pauses the socket. */
  read(n: number, buffer: Buffer): boolean {
    const current = this.#current;
    if (!current) {
      this.socket.destroy(); // bytes nobody asked for: the connection cannot be trusted
      return false;
    }
    current.received = true;
    const result = this.parser.execute(buffer, 0, n);
    // (After a response ends mid-buffer, http-parser-js counts the whole buffer against its header
    // limit and says so: that is no error of this response, and the next one starts afresh.)
    if (result instanceof Error && !current.settled) {
      current.fail(Object.assign(new Error(`malformed HTTP response: ${result.message}`), { code: (result as ConnectionError).code }));
      this.socket.destroy();
      return false;
    }
    // An exchange that ended in this read left the connection idle (or closed it): idle, it reads
    // on, so that a close or stray bytes from the server are seen at once.
    return this.#current === current ? !current.paused : true;
  }

  /** Sends `head` and resolves with the response once its headers arrive. */
  exchange(
    head: string,
    signal: AbortSignal | undefined,
    timeoutMs: number,
    release: (connection: Connection) => void,
  ): Promise<{ response: HttpResponse }> {
    this.onClose = undefined;
    this.parser.initialize(HTTPParser.RESPONSE);
    this.socket.ref();
    this.socket.setTimeout(timeoutMs);
    return new Promise((resolve, reject) => {
      const exchange = new Exchange(this, resolve, reject, signal, () => {
        this.#current = undefined;
        this.socket.setTimeout(0);
        this.socket.unref();
        if (exchange.reusable) release(this);
        else this.socket.destroy();
      });
      this.#current = exchange;
      if (exchange.cancelled()) return;
      if (this.socket.destroyed) return exchange.fail(connectionError('socket hang up', 'ECONNRESET'));
      this.socket.write(head, 'latin1');
      this.socket.resume(); // a socket with a read buffer of its own reads again on resume()
    });
  }

  /** Where the parser stands in the bytes it is executing (to tell whether any follow a response). */
  get unparsed(): number {
    const parser = this.parser as unknown as { offset?: number; end?: number };
    return (parser.end ?? 0) - (parser.offset ?? 0);
  }
}

/** One request on a {@link Connection} and its response. */
class Exchange {
  /** Whether any byte of the response arrived. */
  received = false;
  /** Whether the socket is to stop reading (the body's consumer is behind). */
  paused = false;
  reusable = false;
  #body: ResponseBody | undefined;
  #done = false;
  /** An interim (1xx) answer is being read. */
  #interim = false;

  /** Whether the exchange ended (completed or failed). */
  get settled(): boolean {
    return this.#done;
  }
  readonly #onAbort: () => void;

  constructor(
    private readonly connection: Connection,
    private readonly resolve: (value: { response: HttpResponse }) => void,
    private readonly reject: (error: Error) => void,
    private readonly signal: AbortSignal | undefined,
    private readonly finish: () => void,
  ) {
    this.#onAbort = () => this.fail(abortError(signal!));
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Whether the request was cancelled before it was sent (between the connection and the exchange). */
  cancelled(): boolean {
    if (this.signal?.aborted) this.#onAbort();
    return this.#done;
  }

  headers(args: unknown[]): number | undefined {
    // http-parser-js passes one info object (or, in its Node 0.12+ mode, the fields one by one).
    const info = (
      args.length === 1 ? args[0] : { headers: args[2], statusCode: args[5], statusMessage: args[6], shouldKeepAlive: args[8] }
    ) as {
      headers: string[];
      statusCode: number;
      statusMessage: string;
      shouldKeepAlive: boolean;
    };
    const status = info.statusCode;
    if (status < 200) {
      if (status === 101) {
        this.fail(connectionError('the server switched protocols (101)', 'ECONNRESET'));
        return 1;
      }
      // An interim answer (100 Continue, 103 Early Hints): the real one follows, as Node's client reads it.
      this.#interim = true;
      return 1;
    }
    this.reusable = info.shouldKeepAlive;
    const headers: Record<string, string> = {};
    for (let i = 0; i < info.headers.length; i += 2) {
      const name = info.headers[i]!.toLowerCase();
      const value = info.headers[i + 1]!;
      if (name === 'content-length') {
        // http-parser-js reads "abc" as an empty body and joins equal duplicates: as llhttp, refuse the one, keep one of the others.
        if (!/^\d+$/.test(value.trim())) {
          this.fail(
            Object.assign(new Error(`malformed HTTP response: Content-Length "${value}"`), { code: 'HPE_UNEXPECTED_CONTENT_LENGTH' }),
          );
          return 1;
        }
        if (headers[name] !== undefined) continue;
      }
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    this.#body = new ResponseBody(this);
    this.resolve({ response: new HttpResponse({ statusCode: status, reason: info.statusMessage, headers, body: this.#body }) });
    // No body follows a 204 or 304 whatever the headers say.
    return status === 204 || status === 304 ? 1 : undefined;
  }

  body(view: Uint8Array): void {
    if (!this.#body!.deliver(view)) this.paused = true;
  }

  complete(): void {
    if (this.#interim) {
      this.#interim = false; // the end of an interim answer: the real one is next
      return;
    }
    if (this.#done) return;
    this.#done = true;
    this.signal?.removeEventListener('abort', this.#onAbort);
    // Bytes after the response (none in HTTP/1.1 without pipelining): do not reuse the connection.
    if (this.connection.unparsed > 0) this.reusable = false;
    this.#body?.end();
    this.finish();
  }

  /** Reads on: the body's consumer is ready for more. */
  resume(): void {
    if (this.#done) return;
    this.paused = false;
    this.connection.socket.resume();
  }

  /** The body was given up before its end: the connection goes with it. */
  abandon(): void {
    if (this.#done) return;
    this.fail(connectionError('the response body was not read to its end', 'ECONNRESET'));
  }

  fail(error: ConnectionError): void {
    if (this.#done) return;
    this.#done = true;
    this.signal?.removeEventListener('abort', this.#onAbort);
    this.reusable = false;
    if (!this.#body && !this.received && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) error.beforeResponse = true;
    this.finish();
    if (this.#body) this.#body.fail(error);
    else this.reject(error);
  }
}

/**
 * A response's body: a Node Readable (copies of the bytes, for the SDK's parsers and any other
 * reader), or {@link drain}ed into a consumer that takes views of the connection's buffer.
 */
export class ResponseBody extends Readable {
  readonly #exchange: Exchange;
  /** Copies of bytes that came before anyone read (with the headers, or while a consumer was busy). */
  #pending: Buffer[] = [];
  #mode: 'unread' | 'stream' | 'drain' = 'unread';
  #take: BodyTaker | undefined;
  /** Whether a promise of the consumer is pending: the drain settles only after it. */
  #busy = false;
  #ended = false;
  /** How the drain ends, once known. */
  #outcome: { error?: Error } | undefined;
  #drained: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(exchange: Exchange) {
    super({ highWaterMark: READ_BUFFER_BYTES });
    this.#exchange = exchange;
    // A broken body's error reaches its reader (drain's promise, an iterator, a pipeline), and
    // no one at all when the body is never read: never an uncaught 'error' event.
    this.on('error', () => {});
  }

  /**
   * Hands every byte of the body to `take`, in order, as views (see {@link BodyTaker}). Resolves
   * at the body's end; rejects when the connection fails or `take` does, and in either case only
   * once no promise of `take` is pending (no write of the consumer's is left running).
   */
  drain(take: BodyTaker): Promise<void> {
    if (this.#mode !== 'unread') throw new Error('the body is already being read');
    this.#mode = 'drain';
    this.#take = take;
    return new Promise((resolve, reject) => {
      this.#drained = { resolve, reject };
      if (this.#outcome) this.#settle();
      else void this.#catchUp();
    });
  }

  /** From the connection: the next piece of the body. False: stop reading for now. */
  deliver(view: Uint8Array): boolean {
    if (this.#outcome) return false;
    if (this.#mode === 'stream') return this.push(Buffer.from(view));
    if (this.#mode === 'unread' || this.#busy || this.#pending.length > 0) {
      this.#pending.push(Buffer.from(view));
      return false;
    }
    let taking: void | Promise<void>;
    try {
      taking = this.#take!(view);
    } catch (error) {
      this.#giveUp(error as Error);
      return false;
    }
    if (!taking) return true;
    this.#busy = true;
    taking.then(
      () => {
        this.#busy = false;
        if (this.#outcome) this.#settle();
        else void this.#catchUp();
      },
      (error: Error) => {
        this.#busy = false;
        this.#giveUp(error);
      },
    );
    return false;
  }

  /** From the connection: the body is complete. */
  end(): void {
    this.#ended = true;
    if (this.#mode === 'stream') this.push(null);
    else if (this.#mode === 'drain' && !this.#busy && this.#pending.length === 0) this.#finish();
  }

  /** From the connection: it broke (or was cancelled) before the body's end. */
  fail(error: Error): void {
    this.#pending = [];
    this.#finish(error);
    this.destroy(error);
  }

  override _read(): void {
    if (this.#mode === 'unread') {
      this.#mode = 'stream';
      for (const piece of this.#pending) this.push(piece);
      this.#pending = [];
      if (this.#ended) return void this.push(null);
    }
    this.#exchange.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#ended) this.#exchange.abandon();
    this.#finish(error ?? new Error('the response body was destroyed before its end'));
    callback(error);
  }

  /** Takes what waited (one piece at a time), then reads on. */
  async #catchUp(): Promise<void> {
    try {
      while (this.#pending.length > 0 && !this.#outcome) {
        this.#busy = true;
        await this.#take!(this.#pending.shift()!);
        this.#busy = false;
      }
    } catch (error) {
      this.#busy = false;
      return this.#giveUp(error as Error);
    }
    if (this.#outcome) this.#settle();
    else if (this.#ended) this.#finish();
    else this.#exchange.resume();
  }

  /** The consumer failed: that is the outcome, whatever else happened. */
  #giveUp(error: Error): void {
    this.#outcome = { error };
    this.#settle();
    this.destroy();
  }

  /** Records how the drain ends (the first outcome stands), and settles it when it may. */
  #finish(error?: Error): void {
    this.#outcome ??= error ? { error } : {};
    this.#settle();
  }

  /** Settles the drain with its outcome, unless a promise of the consumer is still pending. */
  #settle(): void {
    const drained = this.#drained;
    if (!drained || this.#busy || !this.#outcome) return;
    this.#drained = undefined;
    if (this.#outcome.error) drained.reject(this.#outcome.error);
    else drained.resolve();
  }
}

/** The request line and headers of a GET, as Node's HTTP client writes them. */
function requestHead(request: HttpRequest): string {
  const query = request.query ? buildQueryString(request.query) : '';
  const path = query ? `${request.path}?${query}` : request.path;
  // Node refuses these in a path (ERR_UNESCAPED_CHARACTERS): so does this.
  if (/[^\u0021-\u00ff]/.test(path)) throw new TypeError('Request path contains unescaped characters');
  let head = `GET ${path} HTTP/1.1\r\n`;
  let host = false;
  let connection = false;
  for (const [name, value] of Object.entries(request.headers)) {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    const lower = name.toLowerCase();
    if (lower === 'host') host = true;
    if (lower === 'connection') connection = true;
    head += `${name}: ${value}\r\n`;
  }
  if (!host) head += `host: ${hostHeader(request)}\r\n`;
  if (!connection) head += 'connection: keep-alive\r\n';
  return `${head}\r\n`;
}

function hostHeader(request: HttpRequest): string {
  const defaultPort = request.protocol === 'https:' ? 443 : 80;
  return request.port && request.port !== defaultPort ? `${request.hostname}:${request.port}` : request.hostname;
}

function originOf(request: HttpRequest): string {
  return `${request.protocol}//${request.hostname}:${request.port ?? ''}`;
}

function connectionError(message: string, code: string): ConnectionError {
  return Object.assign(new Error(message), { code, name: 'TimeoutError' });
}

/** A connection's error, named as the SDK's handler names it: a timeout or reset is a transient failure. */
function transient(error: Error): ConnectionError {
  const code = (error as ConnectionError).code;
  return code !== undefined && TIMEOUT_CODES.has(code) ? Object.assign(error, { name: 'TimeoutError' }) : error;
}

/** The error a cancelled request fails with, as the SDK's handler builds it. */
function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  const error = new Error(reason === undefined || reason instanceof Error ? 'Request aborted' : String(reason));
  error.name = 'AbortError';
  if (reason instanceof Error) error.cause = reason;
  return error;
}
