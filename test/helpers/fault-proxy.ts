/**
 * A seeded fault-injecting HTTP proxy for the test suite: the real SDK talks to the real store
 * through it, and chosen requests are throttled, cut, stalled, corrupted or answered into the void.
 *
 * ```ts
 * const proxy = await startFaultProxy({
 *   upstream: s3Server().endpoint,
 *   seed: 7,
 *   rules: [{ match: isUploadPart, fault: { type: 'status', status: 503 }, probability: 0.2 }],
 * });
 * await uploadFile(testClient({ endpoint: proxy.url }), file, bucket, key, { config: { concurrency: 4 } });
 * expect(proxy.stats.maxInFlight).toBeLessThanOrEqual(4);
 * await proxy.close();
 * ```
 */
import { createHash } from 'node:crypto';
import {
  Agent,
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { finished } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/** What a rule's `match` sees of a request. */
export interface ProxiedRequest {
  /** `GET`, `PUT`, … */
  method: string;
  /** The path as sent, still percent-encoded, without the query: `/bucket/some%20key`. */
  path: string;
  /** The query parameters. */
  query: URLSearchParams;
  /** The request headers (lower-case names). */
  headers: IncomingHttpHeaders;
}

/** A test on a request. */
export type RequestPredicate = (request: ProxiedRequest) => boolean;

/** A declarative test on a request; every field given must hold. */
export interface RequestPattern {
  /** The method, e.g. `'PUT'`. */
  method?: string;
  /** The exact path (a string) or a pattern it must match (a RegExp). */
  path?: string | RegExp;
  /** Query parameters that must be present (`true`) or have this exact value (a string). */
  query?: Record<string, string | true>;
}

/**
 * What happens to a matched request. Byte positions count response *body* bytes; where one is
 * left out it is drawn from the seeded generator, inside the body when its length is known
 * (Content-Length), else 0. A position at or past the end of a body of known length (an empty
 * body included) moves the cut before the headers, so the fault still bites.
 */
export type Fault =
  /**
   * Answer at once with an S3 XML error, without forwarding (the request body is read first so the
   * connection stays usable). `code` defaults by status: 500 InternalError, 502 BadGateway,
   * 503 SlowDown, 504 GatewayTimeout, else ServiceUnavailable.
   */
  | { type: 'status'; status: number; code?: string; message?: string }
  /** Reset (TCP RST) the client's connection as soon as the request's headers arrive; nothing is forwarded. */
  | { type: 'reset-request' }
  /** Forward, send the headers and `afterBytes` body bytes, then reset (TCP RST) the client's connection. */
  | { type: 'reset-response'; afterBytes?: number }
  /** Forward, send the headers (original Content-Length) and `afterBytes` body bytes, then close cleanly (FIN). */
  | { type: 'truncate'; afterBytes?: number }
  /**
   * Hold for `ms` milliseconds: before forwarding the request, or, with `afterBytes`, after that many
   * response body bytes (the client has the headers and sees the body go silent).
   */
  | { type: 'stall'; ms: number; afterBytes?: number }
  /**
   * Forward the whole request, read the store's whole answer, then reset the client's connection:
   * the store did the work, the client never heard (a lost CreateMultipartUpload/Complete answer).
   */
  | { type: 'lose-answer' }
  /** Forward, but invert one response body byte (at `atByte`); Content-Length and ETag are unchanged. */
  | { type: 'flip-byte'; atByte?: number };

/** The kinds of {@link Fault}. */
export type FaultType = Fault['type'];

/**
 * One rule. Rules are tried in order and the first that fires injects its fault; later rules
 * do not see that request (and do not count it as a match).
 */
export interface FaultRule {
  /** Which requests the rule considers. Default: all of them. */
  match?: RequestPredicate | RequestPattern;
  /** What to do to the requests it picks. */
  fault: Fault;
  /** Chance that a considered request is picked, drawn from the seeded generator. Default 1. */
  probability?: number;
  /** Inject at most this many faults. Default: no limit. */
  times?: number;
  /** Let this many matches through untouched before the rule may fire. Default 0. */
  after?: number;
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Where requests go, e.g. `http://127.0.0.1:7480` (plain HTTP). */
  upstream: string;
  /** Seed of every random choice (which request, which byte). Default 0. */
  seed?: number;
  /** The rules; replace them later with `setRules`. Default: none (a transparent proxy). */
  rules?: FaultRule[];
}

/** Live counters; read them at any time. */
export interface FaultProxyStats {
  /** Requests received. */
  requests: number;
  /** Faults injected, all rules together. */
  faults: number;
  /** Faults injected per rule, in the order of the current rules (reset by `setRules`). */
  faultsByRule: number[];
  /**
   * Requests being handled now: from the arrival of their headers until their response is ended
   * or their connection closes. The interval lies inside the client's own view of the request,
   * so a client that keeps at most N requests outstanding is never seen above N — except around
   * cancellations: a client stops counting a request it cancels at once, the proxy only when the
   * connection's close arrives, so requests started right after (clean-ups) may overlap it here.
   */
  inFlight: number;
  /** The most requests ever in flight at once (since start or the last `reset`). */
  maxInFlight: number;
  /** Zeroes the counters (`maxInFlight` restarts from `inFlight`) and empties the log. */
  reset(): void;
}

/** One request as the proxy handled it, in order of arrival. */
export interface ProxyLogEntry {
  method: string;
  /** Path as sent (percent-encoded). */
  path: string;
  /** Raw query string without the `?` (`''` when none). */
  query: string;
  /** Status the client received headers for; missing when it got no answer. */
  status?: number;
  /** Status the store answered; missing when the request was not forwarded or the store failed. */
  upstreamStatus?: number;
  /** The injected fault, if any. */
  fault?: FaultType;
  /** Index of the rule that injected it. */
  rule?: number;
  /** Why forwarding failed (e.g. `ECONNREFUSED`), if it did. */
  upstreamError?: string;
}

/** A running proxy. */
export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: give it to the client as its endpoint. */
  url: string;
  /** Live counters. */
  stats: FaultProxyStats;
  /** Every request so far (emptied by `stats.reset()`). Entries fill in as responses complete. */
  log: ProxyLogEntry[];
  /** Replaces the rules; their match and fault counters start from zero. */
  setRules(rules: FaultRule[]): void;
  /** Closes every connection (in flight or idle, both sides) and stops every stall timer. */
  close(): Promise<void>;
}

// --- S3 request shapes (path-style addressing: /bucket/key; the suite's clients use it) ---

/** Query parameters naming an object sub-resource: a request carrying one is not plain object data. */
const OBJECT_SUBRESOURCES = ['acl', 'attributes', 'legal-hold', 'restore', 'retention', 'select', 'tagging', 'torrent'];

const hasObjectKey = (r: ProxiedRequest) => /^\/[^/]+\/./.test(r.path);
const isPlainObject = (r: ProxiedRequest) =>
  hasObjectKey(r) && !r.query.has('uploads') && !r.query.has('uploadId') && !OBJECT_SUBRESOURCES.some((name) => r.query.has(name));

/** `POST /bucket/key?uploads`: CreateMultipartUpload. */
export const isCreateMultipartUpload: RequestPredicate = (r) => r.method === 'POST' && hasObjectKey(r) && r.query.has('uploads');
/** `POST /bucket/key?uploadId=…`: CompleteMultipartUpload. */
export const isCompleteMultipartUpload: RequestPredicate = (r) => r.method === 'POST' && hasObjectKey(r) && r.query.has('uploadId');
/** `DELETE /bucket/key?uploadId=…`: AbortMultipartUpload. */
export const isAbortMultipartUpload: RequestPredicate = (r) => r.method === 'DELETE' && hasObjectKey(r) && r.query.has('uploadId');
/** `PUT /bucket/key?partNumber=N&uploadId=…` with a body (not UploadPartCopy). */
export const isUploadPart: RequestPredicate = (r) =>
  r.method === 'PUT' && hasObjectKey(r) && r.query.has('partNumber') && r.query.has('uploadId') && !r.headers['x-amz-copy-source'];
/** `PUT /bucket/key` with a body: PutObject (not CopyObject, not a part, not ?tagging & co.). */
export const isPutObject: RequestPredicate = (r) =>
  r.method === 'PUT' && isPlainObject(r) && !r.query.has('partNumber') && !r.headers['x-amz-copy-source'];
/** `GET /bucket/key`, whole, ranged or `?partNumber=N`: GetObject (not ListParts, not ?tagging & co.). */
export const isGetObject: RequestPredicate = (r) => r.method === 'GET' && isPlainObject(r);
/** `HEAD /bucket/key`: HeadObject. */
export const isHeadObject: RequestPredicate = (r) => r.method === 'HEAD' && isPlainObject(r);

/**
 * Starts a proxy on 127.0.0.1 (a free port) forwarding to `upstream`. Requests and responses pass
 * byte for byte — headers unchanged, Host included, so SigV4 signatures stay valid — except where
 * a rule injects a fault.
 *
 * Reproducibility: each random choice comes from a pure-rand generator seeded with the proxy's
 * seed, the rule's index, and the request's identity (method, path without the bucket, query
 * without store-assigned ids such as uploadId, Range header) and how many times that identity was
 * seen before. So with the same seed the same requests meet the same faults even when concurrent
 * requests arrive in another order, and a retry gets a fresh draw. `times` and `after` count
 * matches in arrival order, so under concurrency they are exact only for rules that match one
 * request at a time.
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(options.upstream);
  if (upstream.protocol !== 'http:') throw new TypeError(`fault proxy: upstream must be http://, got ${options.upstream}`);
  const seed = options.seed ?? 0;
  // Our own pool to the store: keep-alive like a real client, unbounded so the proxy never queues
  // requests itself (that would hide the client's own concurrency).
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  // One controller per request being handled: close() aborts them all, which ends every stall timer.
  const handling = new Set<AbortController>();
  const seenIdentities = new Map<string, number>();

  let rules: FaultRule[] = [];
  let ruleCounters: Array<{ matches: number; injected: number }> = [];
  const log: ProxyLogEntry[] = [];
  const stats: FaultProxyStats = {
    requests: 0,
    faults: 0,
    faultsByRule: [],
    inFlight: 0,
    maxInFlight: 0,
    reset() {
      stats.requests = 0;
      stats.faults = 0;
      stats.faultsByRule.fill(0);
      stats.maxInFlight = stats.inFlight;
      log.length = 0;
    },
  };
  const setRules = (next: FaultRule[]) => {
    next.forEach(validateRule);
    rules = [...next];
    ruleCounters = rules.map(() => ({ matches: 0, injected: 0 }));
    stats.faultsByRule = rules.map(() => 0);
  };
  setRules(options.rules ?? []);

  /** The first rule that fires for this request, with the generator for its later choices. */
  const pick = (request: ProxiedRequest): { index: number; fault: Fault; rng: RandomGenerator } | undefined => {
    const identity = requestIdentity(request);
    const occurrence = seenIdentities.get(identity) ?? 0;
    seenIdentities.set(identity, occurrence + 1);
    for (const [index, rule] of rules.entries()) {
      if (!matches(rule.match, request)) continue;
      const counter = ruleCounters[index]!;
      const ordinal = counter.matches++;
      if (ordinal < (rule.after ?? 0) || counter.injected >= (rule.times ?? Number.POSITIVE_INFINITY)) continue;
      const rng = xoroshiro128plus(derivedSeed(seed, index, identity, occurrence));
      if (rule.probability !== undefined && uniformFloat64(rng) >= rule.probability) continue;
      counter.injected++;
      return { index, fault: rule.fault, rng };
    }
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const url = new URL(req.url ?? '/', 'http://proxy');
    const request: ProxiedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers };
    const entry: ProxyLogEntry = { method: request.method, path: url.pathname, query: url.search.slice(1) };
    log.push(entry);
    stats.requests++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);

    // Counted out when we end the response (before the client can have seen its end, so a
    // keep-alive client's next request never overlaps it here) or when the connection closes.
    let counted = true;
    const countOut = () => {
      if (counted) stats.inFlight--;
      counted = false;
    };
    const aborter = new AbortController();
    handling.add(aborter);
    let upstreamRequest: ClientRequest | undefined;
    let complete = false;
    res.on('close', () => {
      countOut();
      handling.delete(aborter);
      aborter.abort();
      if (!complete) upstreamRequest?.destroy();
    });
    // Errors surface through the awaited steps below; these only keep stray 'error' events quiet.
    req.on('error', noop);
    res.on('error', noop);
    const resetClient = () => {
      countOut();
      if (!socket.destroyed) socket.resetAndDestroy();
    };

    const picked = pick(request);
    if (picked) {
      entry.fault = picked.fault.type;
      entry.rule = picked.index;
      stats.faults++;
      stats.faultsByRule[picked.index]!++;
    }
    const fault = picked?.fault;

    /** Sends the request on to the store; resolves with its response (headers). */
    const forward = () =>
      new Promise<IncomingMessage>((resolve, reject) => {
        aborter.signal.throwIfAborted();
        aborter.signal.addEventListener('abort', () => reject(new Error('request abandoned')), { once: true });
        // The store's failures are logged; failures we cause (client gone, closing) are not.
        const storeFailed = (error: NodeJS.ErrnoException) => {
          if (!aborter.signal.aborted) entry.upstreamError ??= error.code ?? error.message;
          reject(error);
        };
        // rawHeaders as an array are written as-is: same names, case, order and Host.
        upstreamRequest = httpRequest({
          host: upstream.hostname,
          port: upstream.port || 80,
          method: req.method,
          path: req.url,
          headers: req.rawHeaders,
          agent,
          setHost: false,
        });
        upstreamRequest.on('error', storeFailed);
        upstreamRequest.on('response', (response) => {
          response.on('error', storeFailed);
          entry.upstreamStatus = response.statusCode;
          resolve(response);
        });
        req.pipe(upstreamRequest);
      });

    try {
      if (fault?.type === 'reset-request') return resetClient();
      if (fault?.type === 'status') {
        // Read the body first, as a store does before it answers: the client has finished sending
        // when the error arrives, so the fault is the status alone, not also an early answer.
        req.resume();
        await finished(req);
        complete = true;
        entry.status = fault.status;
        return answerWithError(res, fault, url.pathname, stats.requests, countOut);
      }
      if (fault?.type === 'stall' && fault.afterBytes === undefined) await delay(fault.ms, undefined, { signal: aborter.signal });

      const response = await forward();
      if (fault?.type === 'lose-answer') {
        for await (const _chunk of response) {
          // The answer is read to its end and dropped.
        }
        complete = true;
        return resetClient();
      }

      const plan = planBody(fault, bodyLength(req.method, response), picked?.rng);
      const cut = async () => {
        if (plan.kind === 'truncate') {
          countOut();
          socket.destroy();
          return;
        }
        // Linux reports a reset that arrives before the client has read the bytes ahead of it as a
        // plain end of stream; two loop turns let a client in this process (the usual case in
        // tests) read them first, so it sees ECONNRESET as it would across a network.
        await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
        resetClient();
      };
      if ((plan.kind === 'reset-response' || plan.kind === 'truncate') && plan.at === 'before-headers') {
        response.destroy();
        return await cut();
      }
      res.writeHead(response.statusCode ?? 502, response.statusMessage, endToEndHeaders(response.rawHeaders));
      entry.status = response.statusCode;
      if ((await relayBody(response, res, plan, aborter.signal)) === 'cut') return await cut();
      complete = true;
      countOut();
      res.end();
    } catch {
      // The store failed or vanished, the client left, or the proxy is closing: the client sees
      // its connection fail, as it would without the proxy.
      aborter.abort();
      upstreamRequest?.destroy();
      resetClient();
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  // Longer than any test's pause between requests: Node's 5 s default would now and then close a
  // pooled connection just as the client reuses it, and the retry that follows would shift the draws.
  server.keepAliveTimeout = 60_000;
  // A client that resets its connection is part of the game: close quietly instead of Node's 400.
  server.on('clientError', (_error, socket: Socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    log,
    setRules,
    close: async () => {
      for (const aborter of handling) aborter.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}

/** What happens to a forwarded response's body: at most one event, at a byte position. */
type BodyPlan =
  | { kind: 'none' }
  | { kind: 'reset-response' | 'truncate'; at: number | 'before-headers' }
  | { kind: 'flip-byte'; at: number }
  | { kind: 'stall'; at: number; ms: number };

/** Turns a fault into a body plan, drawing positions left unset from the decision's generator. */
function planBody(fault: Fault | undefined, length: number | undefined, rng: RandomGenerator | undefined): BodyPlan {
  const at = (given: number | undefined) => given ?? (length && rng ? uniformInt(rng, 0, length - 1) : 0);
  switch (fault?.type) {
    case 'reset-response':
    case 'truncate': {
      const position = at(fault.afterBytes);
      // Cutting at or after the last byte would deliver a complete response: cut before it all.
      if (length !== undefined && position >= length) return { kind: fault.type, at: 'before-headers' };
      return { kind: fault.type, at: position };
    }
    case 'flip-byte':
      return { kind: 'flip-byte', at: at(fault.atByte) };
    case 'stall':
      return fault.afterBytes === undefined ? { kind: 'none' } : { kind: 'stall', at: fault.afterBytes, ms: fault.ms };
    default:
      return { kind: 'none' };
  }
}

/**
 * Copies the store's response body to the client, applying the plan. Resolves 'cut' when the plan
 * stops the body at its position (the caller then cuts the connection), 'ended' otherwise.
 */
async function relayBody(response: IncomingMessage, res: ServerResponse, plan: BodyPlan, signal: AbortSignal): Promise<'cut' | 'ended'> {
  let offset = 0;
  let pending =
    (plan.kind === 'reset-response' || plan.kind === 'truncate' || plan.kind === 'stall') && typeof plan.at === 'number'
      ? plan.at
      : undefined;
  for await (const data of response) {
    let chunk = data as Buffer;
    const chunkStart = offset;
    offset += chunk.length;
    if (plan.kind === 'flip-byte' && plan.at >= chunkStart && plan.at < offset) {
      chunk = Buffer.from(chunk);
      chunk[plan.at - chunkStart]! ^= 0xff;
    }
    if (pending !== undefined && pending < offset) {
      // Flushed to the kernel before the cut or pause, so the client gets exactly these bytes.
      await flush(res, chunk.subarray(0, pending - chunkStart));
      if (plan.kind !== 'stall') return 'cut';
      await delay(plan.ms, undefined, { signal });
      chunk = chunk.subarray(pending - chunkStart);
      pending = undefined;
    }
    await write(res, chunk);
  }
  // The body ended before the position (its length was unknown, or a stall lies past it): cut or
  // pause before its end.
  if (pending !== undefined) {
    await flush(res, Buffer.alloc(0));
    if (plan.kind !== 'stall') return 'cut';
    await delay(plan.ms, undefined, { signal });
  }
  return 'ended';
}

const noop = () => {};

/** Default S3 error codes by status, for `status` faults. */
const STATUS_CODES: Record<number, [code: string, message: string]> = {
  500: ['InternalError', 'We encountered an internal error. Please try again.'],
  502: ['BadGateway', 'The gateway received an invalid response.'],
  503: ['SlowDown', 'Please reduce your request rate.'],
  504: ['GatewayTimeout', 'The gateway timed out.'],
};

/** Answers with an S3-style XML error body (no body for HEAD, as S3 does). */
function answerWithError(
  res: ServerResponse,
  fault: Extract<Fault, { type: 'status' }>,
  resource: string,
  requestNumber: number,
  countOut: () => void,
) {
  const [defaultCode, defaultMessage] = STATUS_CODES[fault.status] ?? ['ServiceUnavailable', 'Service unavailable.'];
  const requestId = `fault-proxy-${requestNumber}`;
  const body = Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Error><Code>${escapeXml(fault.code ?? defaultCode)}</Code><Message>${escapeXml(fault.message ?? defaultMessage)}</Message>` +
      `<Resource>${escapeXml(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`,
  );
  res.writeHead(fault.status, {
    'content-type': 'application/xml',
    'content-length': body.length,
    'x-amz-request-id': requestId,
  });
  countOut();
  res.end(body);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Body bytes the response announces, or undefined when it is chunked / unknown. */
function bodyLength(method: string | undefined, response: IncomingMessage): number | undefined {
  const status = response.statusCode ?? 0;
  if (method === 'HEAD' || status === 204 || status === 304 || status < 200) return 0;
  const header = response.headers['content-length'];
  return header === undefined ? undefined : Number(header);
}

/**
 * The store's headers minus the hop-by-hop ones about *its* connection to us: our server states
 * its own keep-alive terms to the client, so the client's pool expires sockets on our timeout.
 */
function endToEndHeaders(raw: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name !== 'connection' && name !== 'keep-alive') kept.push(raw[i]!, raw[i + 1]!);
  }
  return kept;
}

/** Writes with backpressure; also settles if the client goes away meanwhile. */
function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.destroyed) return Promise.reject(new Error('client gone'));
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const settle = () => {
      res.off('drain', settle);
      res.off('close', settle);
      resolve();
    };
    res.on('drain', settle);
    res.on('close', settle);
  });
}

/** Writes (headers too, if still unsent) and waits until the bytes are handed to the kernel. */
function flush(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (!res.headersSent) res.flushHeaders();
  return new Promise((resolve) => {
    if (chunk.length === 0) res.socket?.write('', () => resolve());
    else res.write(chunk, () => resolve());
  });
}

function matches(match: RequestPredicate | RequestPattern | undefined, request: ProxiedRequest): boolean {
  if (match === undefined) return true;
  if (typeof match === 'function') return match(request);
  if (match.method !== undefined && match.method.toUpperCase() !== request.method) return false;
  if (typeof match.path === 'string' && match.path !== request.path) return false;
  if (match.path instanceof RegExp && !match.path.test(request.path)) return false;
  for (const [name, value] of Object.entries(match.query ?? {})) {
    if (value === true ? !request.query.has(name) : request.query.get(name) !== value) return false;
  }
  return true;
}

/** Query parameters whose values the store assigns (or the clock does), so they differ between runs. */
const RUN_SPECIFIC_PARAMS = new Set(['uploadId', 'versionId', 'continuation-token', 'upload-id-marker', 'version-id-marker']);

/**
 * What a request is, across runs: tests name their buckets randomly and the store picks upload
 * ids, so both are left out; the Range header is kept, since concurrent ranged GETs of one object
 * differ only by it.
 */
function requestIdentity(request: ProxiedRequest): string {
  const withoutBucket = request.path.replace(/^\/[^/]*/, '');
  const query = [...request.query]
    .filter(([name]) => !RUN_SPECIFIC_PARAMS.has(name) && !name.toLowerCase().startsWith('x-amz-'))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${request.method} ${withoutBucket}?${new URLSearchParams(query)} ${request.headers.range ?? ''}`;
}

/** A 32-bit seed for one decision: a hash, so nearby inputs give unrelated generators. */
function derivedSeed(seed: number, ruleIndex: number, identity: string, occurrence: number): number {
  return createHash('sha256')
    .update(JSON.stringify([seed, ruleIndex, occurrence, identity]))
    .digest()
    .readInt32LE(0);
}

function validateRule(rule: FaultRule, index: number): void {
  const fail = (why: string) => {
    throw new TypeError(`fault proxy rule ${index}: ${why}`);
  };
  const { probability, times, after, fault } = rule;
  if (probability !== undefined && !(probability >= 0 && probability <= 1)) fail(`probability must be within 0..1, got ${probability}`);
  for (const [name, value] of [
    ['times', times],
    ['after', after],
  ] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) fail(`${name} must be a whole number ≥ 0, got ${value}`);
  }
  if (fault.type === 'status' && !(Number.isInteger(fault.status) && fault.status >= 400 && fault.status <= 599)) {
    fail(`status must be an HTTP error status, got ${fault.status}`);
  }
  if (fault.type === 'stall' && !(fault.ms >= 0)) fail(`stall ms must be ≥ 0, got ${fault.ms}`);
}
