import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { recursionDetectionMiddleware, userAgentMiddleware } from '@aws-sdk/core/client';
import { s3ExpiresMiddleware, throw200ExceptionsMiddleware } from '@aws-sdk/middleware-sdk-s3';
import { getEndpointFromInstructions, toEndpointV1 } from '@smithy/core/endpoints';
import { getRetryAfterHint, isClockSkewError, isServerError, isThrottlingError, isTransientError } from '@smithy/core/retry';
import { operation } from '@smithy/core/schema';
import type { HttpRequest, HttpResponse } from '@smithy/core/transport';
import { type FailedAttempt, isOwnClient, retryAfter } from '../client.js';
import { noteAttempt } from './throttle.js';

/*
 * How s3xfer sends the requests its transfers repeat (GetObject, PutObject, UploadPart,
 * HeadObject): one attempt straight through the SDK's own parts, and the SDK's full pipeline for
 * everything else.
 *
 * Why: the SDK's middleware pipeline costs about 1 ms of CPU per request here (resolving a
 * middleware stack for every call that passes an abort signal, endpoint rules, user agent,
 * retries, logging), as much as the rest of a small file's download together: 2,000 GETs of
 * 8 KiB cost 3.0 CPU s through `client.send` and 1.1 s through the same client's signer and
 * request handler (BENCHMARKS.md, "Many small files"). On a machine whose cores the store shares,
 * that CPU is wall time.
 *
 * What the direct attempt uses is the client's, never a copy: its endpoint rules (resolved once
 * per bucket), its protocol (the request's serialisation and the response's parsing, errors
 * included), its SigV4 signer and clock-skew offset, its credentials, its request handler
 * (connection pool, proxies, TLS, timeouts), the user-agent headers its own middleware writes
 * (worked out once per client, so an app id or a custom user agent reaches the store on every
 * request), and the operations' own checks of the raw answer (a 200 that is an S3 error, an
 * Expires that is not a date: {@link RESPONSE_MIDDLEWARE}). What it leaves out is what these
 * operations do not need on the happy path: retries, redirects, error handling.
 *
 * The rule: the direct attempt is taken only when it is the same request the SDK would send:
 * - the client has no middleware beyond the SDK's own and s3xfer's (see {@link KNOWN_MIDDLEWARE})
 *   and its `send` is not replaced (test mocks);
 * - flexible checksums are off (the SDK would add or check CRCs), the command has no input the
 *   SDK's command middleware rewrites (SSE-C keys, checksum members) and no middleware of its own;
 * - the bucket's endpoint is signed with plain SigV4 (not SigV4a, not S3 Express sessions).
 * A direct attempt that fails is the request's first attempt: the SDK's retry strategy judges
 * its error as if it were its own (`retryAfter` in client.ts), so a client error (403, 404) is
 * thrown at once, exactly as the SDK parsed it, and a transient one (5xx, a throttle, a broken
 * connection) is retried by `client.send` after the same back-off, within the same `maxAttempts`.
 * Answers only the SDK's middleware handles (a redirect, a clock-skew error) are sent again by
 * `client.send` as its own first attempt, and a bucket that redirected is sent through the SDK
 * from then on. A cancelled attempt takes the same way: the SDK's retry loop sees the signal and
 * sends nothing more. Only clients of `createS3Client` take the direct route (their retry strategy
 * knows about it); the throttle observer sees direct attempts as it sees the SDK's.
 */

/** Options of one {@link sendS3}. */
export interface SendOptions {
  abortSignal?: AbortSignal;
  /**
   * The body's SHA-256 (hex), computed by the caller: the signature carries it, and the server
   * refuses a body that does not match it. Without it, the signer hashes the body itself.
   */
  payloadSha256?: string;
  /**
   * Called with the bytes of the body as a direct attempt hands them to the connection (in
   * slices of {@link BODY_SLICE_BYTES}), and with their negative when that attempt fails and the
   * body goes again: a part's progress as it is sent, not only once it is answered. A retry through
   * the SDK reports nothing: the caller counts the rest once the request is answered.
   */
  onBodyProgress?: (bytes: number) => void;
}

/** The slices in which a direct attempt's body is written when its progress is watched. */
export const BODY_SLICE_BYTES = 2 * 1024 * 1024;

/** A command of the SDK, as far as sending it goes. */
interface SdkCommand {
  readonly input: object;
  readonly schema?: unknown;
  readonly middlewareStack: { identify(): string[]; add: (...args: never[]) => void };
  constructor: { getEndpointParameterInstructions?: () => unknown };
}

/** The operations sent directly, and the inputs that keep them plain (what the SDK would send as is). */
const DIRECT_INPUTS: Record<string, ReadonlySet<string>> = {
  GetObject: new Set(['Bucket', 'Key', 'Range', 'VersionId', 'IfMatch', 'RequestPayer', 'ExpectedBucketOwner']),
  PutObject: new Set([
    'Bucket',
    'Key',
    'Body',
    'ContentLength',
    'ContentType',
    'CacheControl',
    'ContentDisposition',
    'ContentEncoding',
    'ContentLanguage',
    'Metadata',
    'StorageClass',
    'ACL',
    'Tagging',
    'ServerSideEncryption',
    'SSEKMSKeyId',
    'BucketKeyEnabled',
    'RequestPayer',
    'ExpectedBucketOwner',
    'IfNoneMatch',
  ]),
  // ChecksumMode is a plain header for HeadObject (no flexible-checksum middleware on it).
  HeadObject: new Set(['Bucket', 'Key', 'VersionId', 'IfMatch', 'PartNumber', 'ChecksumMode', 'RequestPayer', 'ExpectedBucketOwner']),
  UploadPart: new Set(['Bucket', 'Key', 'Body', 'ContentLength', 'UploadId', 'PartNumber', 'RequestPayer', 'ExpectedBucketOwner']),
};

/**
 * The operations' own middleware that looks at the raw answer before it is parsed (S3Client's
 * command definitions), run on a direct attempt's answer too: a 2xx whose body is an S3 `<Error>`
 * becomes the 503 it is (throw200Exceptions: retried, never taken for a stored object), and an
 * `Expires` header that is not a date stays a string (`ExpiresString`) instead of failing the
 * request (s3Expires: users set any Expires they like).
 */
const RESPONSE_MIDDLEWARE: Record<string, readonly ((config: never) => unknown)[]> = {
  GetObject: [s3ExpiresMiddleware],
  HeadObject: [throw200ExceptionsMiddleware, s3ExpiresMiddleware],
  PutObject: [throw200ExceptionsMiddleware],
  UploadPart: [throw200ExceptionsMiddleware],
};

/** The client middleware a direct attempt may skip: the SDK's own (S3Client's constructor) and s3xfer's observer. */
const KNOWN_MIDDLEWARE = new Set([
  'loggerMiddleware',
  'validateBucketNameMiddleware',
  'regionRedirectMiddleware',
  'serializerMiddleware',
  'contentLengthMiddleware',
  'addExpectContinueMiddleware',
  's3ExpressMiddleware',
  'getUserAgentMiddleware',
  'hostHeaderMiddleware',
  'recursionDetectionMiddleware',
  'retryMiddleware',
  'httpSigningMiddleware',
  'deserializerMiddleware',
  's3xferThrottleObserver',
]);

/** The SDK's own `send`: a client whose `send` is another (a test's mock) is always called. */
const SDK_SEND = (Object.getPrototypeOf(S3Client.prototype) as { send: unknown }).send;

interface Signer {
  sign(request: HttpRequest, options: { signingDate: Date; signingRegion?: string; signingService?: string }): Promise<HttpRequest>;
}

/** What a direct attempt needs of one client, worked out at its first request. */
interface ClientRoute {
  signer: Promise<Signer>;
  /** The user-agent headers the client's middleware writes (`user-agent`, `x-amz-user-agent`). */
  userAgent?: Promise<Record<string, string>>;
  /** Per bucket: where and how its requests go, or `false` for buckets left to the SDK. */
  buckets: Map<string, Promise<BucketRoute | false>>;
}

interface BucketRoute {
  /** The client's route it belongs to. */
  client: ClientRoute;
  bucket: string;
  /** The context the client's protocol serialises and parses with (the client's config + endpoint). */
  context: Record<string, unknown>;
  signingRegion: string | undefined;
  signingService: string | undefined;
}

type ClientConfig = Record<string, unknown> & {
  requestHandler: { handle(request: HttpRequest, options: { abortSignal?: AbortSignal }): Promise<{ response: HttpResponse }> };
  protocol: {
    serializeRequest(schema: unknown, input: object, context: unknown): Promise<HttpRequest>;
    deserializeResponse(schema: unknown, context: unknown, response: HttpResponse): Promise<object>;
  };
  signer: (authScheme?: object) => Promise<Signer>;
  systemClockOffset?: number;
  requestChecksumCalculation?: () => Promise<string>;
  responseChecksumValidation?: () => Promise<string>;
};

/** Per client: its route, or false when it has middleware of its own. */
const routes = new WeakMap<S3Client, ClientRoute | false>();
/** Middleware stacks whose changes reset their client's route. */
const watched = new WeakSet<object>();
const operations = new WeakMap<object, unknown>();

/**
 * Sends `command` with `client`: its first attempt directly when that is the same request (see
 * above), the rest through `client.send`. Resolves to the command's output.
 */
export async function sendS3<Output>(client: S3Client, command: object, options: SendOptions = {}): Promise<Output> {
  const sdkCommand = command as SdkCommand;
  const route = await directRoute(client, sdkCommand);
  let sent = 0;
  const report = options.onBodyProgress;
  const attemptOptions = report
    ? {
        ...options,
        onBodyProgress: (bytes: number) => {
          sent += bytes;
          report(bytes);
        },
      }
    : options;
  const first = route ? await attempt(client, sdkCommand, route, attemptOptions) : undefined;
  if (first && 'output' in first) return first.output as Output;
  if (sent !== 0) report?.(-sent); // the body goes again (or not at all): its bytes count again
  if (options.payloadSha256) signPayloadAs(sdkCommand, options.payloadSha256);
  const send = () =>
    client.send(command as never, options.abortSignal ? { abortSignal: options.abortSignal } : undefined) as Promise<Output>;
  if (!first?.failed) return send();
  // The SDK's retry loop counts its own attempts from 1 after a first one made here: when it made
  // only one, its count (in `$metadata.attempts`, and the error messages built from it) is one short.
  const counted = (result: { $metadata?: { attempts?: number } } | undefined) => {
    if (result?.$metadata?.attempts === 1) result.$metadata.attempts = 2;
    return result;
  };
  return retryAfter(first.failed, send).then(
    (output) => counted(output as never) as Output,
    (error: unknown) => {
      throw counted(error as never);
    },
  );
}

/**
 * The outcome of a direct attempt: its output; or how it failed, for the SDK's retries to go on
 * from; or neither, when the SDK must send the request as its own first attempt (an answer only
 * the SDK's middleware handles: a redirect, a clock-skew error).
 */
type Attempt = { output: object } | { failed?: FailedAttempt };

/** The bucket's route when `command` may be sent directly, else undefined. */
async function directRoute(client: S3Client, command: SdkCommand): Promise<BucketRoute | undefined> {
  const schema = command.schema;
  if (!Array.isArray(schema) || schema[0] !== 9) return undefined;
  const allowed = DIRECT_INPUTS[schema[2] as string];
  if (!allowed || client.send !== SDK_SEND || !isOwnClient(client)) return undefined;
  const input = command.input as Record<string, unknown>;
  for (const name in input) if (input[name] !== undefined && !allowed.has(name)) return undefined;
  const bucket = input.Bucket;
  if (typeof bucket !== 'string' || bucket.includes('/')) return undefined;
  if (command.middlewareStack.identify().length > 0) return undefined;
  const route = clientRoute(client);
  if (!route) return undefined;
  let bucketRoute = route.buckets.get(bucket);
  if (!bucketRoute) {
    bucketRoute = routeOf(client, route, command, bucket).catch(() => false as const);
    route.buckets.set(bucket, bucketRoute);
  }
  return (await bucketRoute) || undefined;
}

/**
 * The client's route, or undefined when it has middleware of its own that a direct attempt would
 * skip. Worked out once, and again after any change to the client's middleware stack.
 */
function clientRoute(client: S3Client): ClientRoute | undefined {
  let route = routes.get(client);
  if (route === undefined) {
    const stack = client.middlewareStack;
    const plain = stack.identify().every((entry) => KNOWN_MIDDLEWARE.has(entry.slice(0, entry.indexOf(' '))));
    route = plain ? { signer: signerOf(client), buckets: new Map() } : false;
    routes.set(client, route);
    if (!watched.has(stack)) {
      watched.add(stack);
      for (const method of ['add', 'addRelativeTo', 'use', 'remove', 'removeByTag'] as const) {
        const original = stack[method] as (...args: unknown[]) => unknown;
        (stack as unknown as Record<string, unknown>)[method] = function (this: unknown, ...args: unknown[]) {
          routes.delete(client);
          return original.apply(this, args);
        };
      }
    }
  }
  return route || undefined;
}

/** The client's SigV4 signer (the one its `httpSigningMiddleware` uses). */
function signerOf(client: S3Client): Promise<Signer> {
  return (client.config as unknown as ClientConfig).signer();
}

/** Resolves a bucket's endpoint with the client's rules; false when it needs more than plain SigV4 or checksums are on. */
async function routeOf(client: S3Client, clientRoute: ClientRoute, command: SdkCommand, bucket: string): Promise<BucketRoute | false> {
  const config = client.config as unknown as ClientConfig;
  if ((await config.requestChecksumCalculation?.()) !== 'WHEN_REQUIRED') return false;
  if ((await config.responseChecksumValidation?.()) !== 'WHEN_REQUIRED') return false;
  // The endpoint rules read the bucket (and static client settings), not the key: one per bucket.
  const endpointV2 = await getEndpointFromInstructions({ Bucket: bucket }, command.constructor as never, { ...config } as never);
  const authSchemes = endpointV2.properties?.authSchemes as { name?: string; signingRegion?: string; signingName?: string }[] | undefined;
  const scheme = authSchemes?.[0];
  if (scheme && scheme.name !== 'sigv4') return false;
  const endpoint = toEndpointV1(endpointV2);
  const context = { ...config, endpointV2, endpoint: async () => endpoint };
  return { client: clientRoute, bucket, context, signingRegion: scheme?.signingRegion, signingService: scheme?.signingName };
}

/** One direct attempt; see {@link Attempt}. */
async function attempt(client: S3Client, command: SdkCommand, route: BucketRoute, options: SendOptions): Promise<Attempt> {
  const config = client.config as unknown as ClientConfig;
  const schema = operationOf(command);
  const signed = await signedRequest(config, schema, command, route, options);
  if (!signed) return {}; // a body of unknown length: the SDK's own first attempt
  if (options.onBodyProgress && signed.body instanceof Uint8Array && signed.body.length > BODY_SLICE_BYTES) {
    signed.body = slicedBody(signed.body, options.onBodyProgress);
  }
  let response: HttpResponse;
  try {
    ({ response } = await config.requestHandler.handle(signed, options.abortSignal ? { abortSignal: options.abortSignal } : {}));
  } catch (error) {
    noteAttempt(client, error);
    return { failed: failedAttempt(error) }; // no answer (refused, reset, timed out)
  }
  // The client's protocol parses the answer, an error too (into the SDK's typed exception).
  let output: object;
  try {
    await inspectAnswer(config, command, signed, response);
    output = await config.protocol.deserializeResponse(schema, route.context, response);
  } catch (error) {
    // A 2xx that could not be parsed leaves its body unread: free the connection now, not at its idle timeout.
    (response.body as { destroy?: () => void } | undefined)?.destroy?.();
    noteAttempt(client, error);
    const status = response.statusCode;
    if ((status >= 300 && status < 400) || response.headers['x-amz-bucket-region'] !== undefined) {
      // A redirect (another region, another endpoint): this bucket's requests go through the SDK.
      route.client.buckets.set(route.bucket, Promise.resolve(false));
      return {};
    }
    if (isClockSkewError(error as NonNullable<FailedAttempt['error']>)) return {}; // the SDK corrects its clock and signs again
    return { failed: failedAttempt(error, response) };
  }
  noteAttempt(client);
  return { output };
}

/**
 * `body` as a stream of slices (views, not copies) that the request handler pipes to the
 * connection, each reported as it is handed over: the connection's pace sets the reports'.
 */
function slicedBody(body: Uint8Array, onBytes: (bytes: number) => void): Readable {
  let offset = 0;
  return new Readable({
    highWaterMark: 1, // one slice ahead of the connection
    read() {
      if (offset >= body.length) return void this.push(null);
      const slice = body.subarray(offset, Math.min(offset + BODY_SLICE_BYTES, body.length));
      offset += slice.length;
      onBytes(slice.length);
      this.push(slice);
    },
  });
}

/** The request the SDK would send for `command`, signed; undefined when it is not a plain one after all. */
async function signedRequest(
  config: ClientConfig,
  schema: unknown,
  command: SdkCommand,
  route: BucketRoute,
  options: SendOptions,
): Promise<HttpRequest | undefined> {
  const request = await config.protocol.serializeRequest(schema, command.input, route.context);
  if (request.headers.host === undefined) request.headers.host = request.port ? `${request.hostname}:${request.port}` : request.hostname;
  if (request.body !== undefined && request.headers['content-length'] === undefined) {
    // As the SDK's contentLengthMiddleware: a body of known length says so (never chunked).
    const body: unknown = request.body;
    if (!(typeof body === 'string' || body instanceof Uint8Array)) return undefined;
    request.headers['content-length'] = String(Buffer.byteLength(body));
  }
  if (options.payloadSha256) request.headers['x-amz-content-sha256'] = options.payloadSha256;
  // Without one (a provider that failed), requests go without, as they would with no middleware.
  route.client.userAgent ??= userAgentOf(config, request).catch(() => ({}));
  Object.assign(request.headers, await route.client.userAgent);
  await traceHeaders({ input: {}, request } as never);
  const signer = await route.client.signer;
  return signer.sign(request, {
    signingDate: new Date(Date.now() + (config.systemClockOffset ?? 0)),
    signingRegion: route.signingRegion,
    signingService: route.signingService,
  });
}

/**
 * The SDK's recursion detection, run on every direct request as the SDK runs it on each of its own
 * (about 1 µs): in AWS Lambda, the invocation's `X-Amzn-Trace-Id` and trace context headers, which
 * change per invocation; elsewhere nothing.
 */
const traceHeaders = recursionDetectionMiddleware()(async (args) => ({ output: args.request, response: undefined }) as never, {} as never);

/**
 * The user-agent headers the client's requests carry: the SDK's own user-agent middleware, with
 * the client's config (its app id, a custom user agent), run once on a copy of `request`.
 */
async function userAgentOf(config: ClientConfig, request: HttpRequest): Promise<Record<string, string>> {
  const copy = Object.assign(Object.create(Object.getPrototypeOf(request)), request, { headers: {}, body: undefined });
  const capture = async (args: { request: unknown }) => ({ output: args.request as HttpRequest, response: undefined });
  const { output } = await userAgentMiddleware(config as never)(capture as never, {})({ input: {}, request: copy });
  const headers = (output as unknown as HttpRequest).headers;
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name === 'user-agent' || name === 'x-amz-user-agent'));
}

/** Runs the operation's {@link RESPONSE_MIDDLEWARE} on the raw `response`, which they may change. */
async function inspectAnswer(config: ClientConfig, command: SdkCommand, request: HttpRequest, response: HttpResponse): Promise<void> {
  const name = (command.schema as unknown[])[2] as string;
  type Handler = (args: object) => Promise<{ response: HttpResponse; output: object }>;
  let handler: Handler = async () => ({ response, output: {} });
  const context = { clientName: 'S3Client', commandName: `${name}Command`, logger: config.logger };
  for (const middleware of RESPONSE_MIDDLEWARE[name] ?? []) {
    handler = (middleware(config as never) as (next: Handler, context: object) => Handler)(handler, context);
  }
  await handler({ input: command.input, request });
}

/** An attempt's error as the SDK's retry middleware describes it to its retry strategy. */
function failedAttempt(error: unknown, response?: HttpResponse): FailedAttempt {
  const e = error as NonNullable<FailedAttempt['error']>;
  const errorType = isThrottlingError(e)
    ? 'THROTTLING'
    : isTransientError(e)
      ? 'TRANSIENT'
      : isServerError(e)
        ? 'SERVER_ERROR'
        : 'CLIENT_ERROR';
  const retryAfterHint = response ? getRetryAfterHint(response) : undefined;
  return { error: e, errorType, ...(retryAfterHint ? { retryAfterHint } : {}) };
}

/** The command's operation schema, as the SDK's serialisation middleware builds it. */
function operationOf(command: SdkCommand): unknown {
  const key = command.constructor;
  let op = operations.get(key);
  if (!op) {
    const [, ns, name, traits, input, output] = command.schema as [number, string, string, never, never, never];
    op = operation(ns, name, traits, input, output);
    operations.set(key, op);
  }
  return op;
}

/**
 * Makes the SDK sign `command` with a payload hash computed by the caller, instead of hashing the
 * body again itself (the signer takes an `x-amz-content-sha256` header that is already set).
 */
function signPayloadAs(command: SdkCommand, sha256: string): void {
  (command.middlewareStack.add as (mw: unknown, options: unknown) => void)(
    (next: (args: unknown) => unknown) => (args: { request: { headers: Record<string, string> } }) => {
      args.request.headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 's3xferPayloadHash' },
  );
}
