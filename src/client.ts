import { AsyncLocalStorage } from 'node:async_hooks';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { loadConfig, NODE_REGION_CONFIG_FILE_OPTIONS, NODE_REGION_CONFIG_OPTIONS } from '@smithy/core/config';
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { checkMaxAttempts, DEFAULT_TRANSFER_CONFIG } from './config.js';
import { UsageError } from './errors.js';
import { GetRequestHandler } from './get-handler.js';
import { compileProxyRules, type ProxyOption, tlsOptions } from './network.js';
import { type ConnectionSettings, directHandler, ProxyRoutingHandler } from './proxy-handler.js';

/** How to reach S3 or an S3-compatible store. Everything is optional. */
export interface S3ClientOptions {
  /** Region to sign for. Default: the SDK's chain (AWS_REGION, profile), else `us-east-1`. */
  region?: string;
  /** Endpoint URL of an S3-compatible store, e.g. `http://127.0.0.1:7480`. Default: AWS. */
  endpoint?: string;
  /** Address buckets as `endpoint/bucket/key`. Default: true when `endpoint` is set, else false. */
  forcePathStyle?: boolean;
  /** Named profile from ~/.aws/config and ~/.aws/credentials. Default: the SDK's (AWS_PROFILE). */
  profile?: string;
  /** Fixed credentials. Default: the SDK's provider chain (env `AWS_*`, profiles, SSO, IMDS, …). */
  credentials?: S3ClientConfig['credentials'];
  /**
   * Send and verify the SDK's flexible checksums (CRC32 trailers, `aws-chunked` bodies).
   * Default: on for AWS, off when `endpoint` is set, because stores such as Ceph RGW answer
   * `411 MissingContentLength` to `aws-chunked` streams and others store the framing as data.
   */
  flexibleChecksums?: boolean;
  /** Attempts per request for throttling, 5xx and network errors. Default 5. */
  maxAttempts?: number;
  /**
   * Simultaneous connections per host of the SDK's handler (every request but direct GETs), and
   * the idle GET connections kept per host; set it at least to the transfer concurrency, which
   * is what bounds the connections in use. Default 50.
   */
  maxSockets?: number;
  /** Milliseconds to wait for a TCP connection; 0: no limit. Default 10,000. */
  connectionTimeoutMs?: number;
  /**
   * Milliseconds a connection may stay silent mid-request (nothing sent or received) before the
   * attempt fails and is retried; 0: no limit. Default 60,000, like botocore's read timeout.
   */
  socketTimeoutMs?: number;
  /**
   * Send every request unsigned, and look up no credentials: the aws CLI's `--no-sign-request`,
   * botocore's `signature_version=UNSIGNED`, for buckets that anyone may read (or write). The store
   * treats the requests as anonymous. Default false.
   */
  unsigned?: boolean;
  /**
   * HTTP(S) proxy, decided per request URL. `{ env: process.env }` honours `HTTPS_PROXY`,
   * `HTTP_PROXY` and `NO_PROXY` (and their lower-case forms) as the aws CLI does;
   * `{ url, noProxy }` names one proxy. See {@link ProxyOption}. Default: none (the library does
   * not read the environment; the CLI passes it).
   */
  proxy?: ProxyOption;
  /**
   * Path of a PEM file of CA certificates to trust for https endpoints instead of Node's built-in
   * roots (the aws CLI's `--ca-bundle`, `AWS_CA_BUNDLE`, a profile's `ca_bundle`: see
   * `resolveCaBundle`). Applies to direct and proxied connections alike. Read when the client is
   * built: a missing or unreadable file, or one without a PEM certificate, throws a UsageError
   * naming it. Default: Node's roots (plus `NODE_EXTRA_CA_CERTS`).
   */
  caBundle?: string;
  /**
   * Verify the TLS certificates of https endpoints and proxies. `false` is the aws CLI's
   * `--no-verify-ssl`: encrypted but unauthenticated, for test setups only. Default true.
   */
  verifySsl?: boolean;
}

/** Whether `text` is an http:// or https:// URL. */
function isHttpUrl(text: string): boolean {
  return URL.canParse(text) && /^https?:$/.test(new URL(text).protocol);
}

/** The signer of an unsigned client: the request goes as it is. */
const UNSIGNED: Extract<S3ClientConfig['signer'], { sign: unknown }> = { sign: async (request) => request };

/** What an unsigned client holds instead of credentials: its signer never reads them. */
const UNUSED_CREDENTIALS = { accessKeyId: '', secretAccessKey: '' };

/** Region used when neither the options nor the SDK's chain name one, as boto3 and the aws CLI do. */
export const FALLBACK_REGION = 'us-east-1';

/**
 * Builds the S3Client every transfer uses: the one place where endpoint, addressing style,
 * checksums, retries, connection pooling, proxies and TLS trust are decided.
 * @throws UsageError for a malformed endpoint or proxy URL, an unreadable or invalid CA bundle, or
 *   a number that is not a whole number in its range (`InvalidClientOption`).
 */
export function createS3Client(options: S3ClientOptions = {}): S3Client {
  const endpoint = options.endpoint || undefined;
  if (endpoint !== undefined && !isHttpUrl(endpoint)) {
    throw new UsageError(`invalid endpoint URL "${endpoint}": expected http://host[:port] or https://host[:port]`, 'InvalidEndpoint');
  }
  // Unset for AWS: the SDK's default (and AWS_REQUEST_CHECKSUM_CALCULATION) applies.
  const flexibleChecksums = options.flexibleChecksums ?? (endpoint === undefined ? undefined : false);
  const checksumMode = flexibleChecksums ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  const maxAttempts = checkMaxAttempts(options.maxAttempts ?? DEFAULT_TRANSFER_CONFIG.maxAttempts);
  // Node's timers take at most 2^31 − 1 ms (a longer one fires at once).
  // (0 is the SDK's "no limit" for both.)
  const connectionTimeoutMs = wholeNumber('connectionTimeoutMs', options.connectionTimeoutMs, 10_000, 0, 2 ** 31 - 1);
  const socketTimeoutMs = wholeNumber('socketTimeoutMs', options.socketTimeoutMs, 60_000, 0, 2 ** 31 - 1);
  const maxSockets = wholeNumber('maxSockets', options.maxSockets, 50, 1);
  const connections: ConnectionSettings = {
    handler: {
      connectionTimeout: connectionTimeoutMs,
      // An idle limit, not a total one: a 5 GiB part may take long, but a server that stops
      // answering must not hang a transfer. (The SDK's requestTimeout caps the whole request and,
      // in this version, only prints a warning unless told to throw.)
      socketTimeout: socketTimeoutMs,
    },
    agent: { keepAlive: true, maxSockets },
    tls: {},
  };
  // Without a proxy that could apply, no routing layer and no proxy code at all.
  const proxyRules = compileProxyRules(options.proxy);
  // A plain-http endpoint reached directly never makes a TLS connection: do not read and parse
  // a CA bundle (AWS_CA_BUNDLE is often the system's, ~150 certificates, ~50 ms per start).
  const tlsNeverUsed = endpoint?.toLowerCase().startsWith('http://') && proxyRules === undefined;
  if (!tlsNeverUsed) connections.tls = tlsOptions(options.caBundle, options.verifySsl);
  const client = new S3Client({
    region: options.region || regionOrFallback(options.profile),
    ...(endpoint ? { endpoint } : {}),
    ...(options.profile ? { profile: options.profile } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    // Unsigned: a signer that leaves the request as it is (the SDK's own calls and the direct
    // attempts both sign through it), and credentials that are never looked up nor used.
    ...(options.unsigned ? { signer: UNSIGNED, credentials: UNUSED_CREDENTIALS } : {}),
    forcePathStyle: options.forcePathStyle ?? endpoint !== undefined,
    ...(flexibleChecksums === undefined ? {} : { requestChecksumCalculation: checksumMode, responseChecksumValidation: checksumMode }),
    maxAttempts,
    retryStrategy: new PerRequestRetryStrategy(maxAttempts, retryDelayMs),
    // GETs (downloads, listings) over connections whose response bodies skip Node's HTTP client
    // (get-handler.ts); every other request, and any that a proxy serves, through the SDK's handler.
    requestHandler: new GetRequestHandler(proxyRules ? new ProxyRoutingHandler(proxyRules, connections) : directHandler(connections), {
      connectionTimeoutMs,
      socketTimeoutMs,
      tls: connections.tls,
      ...(proxyRules ? { proxyRules } : {}),
      maxIdle: maxSockets,
    }) as never,
    // With agents of our own the SDK sends a body at once instead of waiting for `100 Continue`,
    // so the header buys nothing; and http-proxy-agent sends the request line it buffered with
    // the header, relative, on a reused proxy connection (a forward proxy answers 400).
    expectContinueHeader: false,
  });
  ownClients.add(client);
  return client;
}

/**
 * Exponential backoff with jitter: about 0.4, 0.8, 1.5, 3 s between five attempts. The SDK's
 * default (100 ms × 2^n, full jitter) gives up within ~0.3 s of a connection refusal, less than
 * a gateway restart takes; this rides out a few seconds of outage.
 */
export function retryDelayMs(attempt: number): number {
  return Math.min(20_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

/**
 * The SDK's standard retries (transient and throttling errors, `maxAttempts`, the back-off of
 * {@link retryDelayMs}) without its client-wide retry quota. That quota (500 tokens, 14 per retry
 * of a 5xx or a broken connection) is shared by every request of the client: one gateway restart
 * under 10 requests in flight, or a flaky network under a few hundred transfers, drains it, and
 * from then on every request of every transfer fails at its first error whatever `maxAttempts`
 * says. Here each request retries up to `maxAttempts`; the engine's adaptive concurrency is what
 * eases the load on a store that throttles.
 */
class PerRequestRetryStrategy extends ConfiguredRetryStrategy {
  constructor(
    private readonly attempts: number,
    private readonly backoffMs: (attempt: number) => number,
  ) {
    super(attempts, backoffMs);
  }

  override async acquireInitialRetryToken(scope: string): ReturnType<ConfiguredRetryStrategy['acquireInitialRetryToken']> {
    const token = await super.acquireInitialRetryToken(scope);
    const prior = priorAttempt.getStore();
    if (prior === undefined) return token;
    // The request's first attempt went out directly and failed: this send is its retry, after
    // the same back-off and within the same attempts, or the first attempt's error stands.
    try {
      return await this.refreshRetryTokenForRetry(token, prior);
    } catch {
      throw prior.error;
    }
  }

  override refreshRetryTokenForRetry(
    ...args: Parameters<ConfiguredRetryStrategy['refreshRetryTokenForRetry']>
  ): ReturnType<ConfiguredRetryStrategy['refreshRetryTokenForRetry']> {
    // A fresh strategy for each retry has its whole quota: only the error's kind and the attempts decide.
    return new ConfiguredRetryStrategy(this.attempts, this.backoffMs).refreshRetryTokenForRetry(...args);
  }
}

/** The SDK's own region chain (AWS_REGION, the profile's region), else us-east-1 instead of failing. */
function regionOrFallback(profile: string | undefined): () => Promise<string> {
  const load = loadConfig(NODE_REGION_CONFIG_OPTIONS, { ...NODE_REGION_CONFIG_FILE_OPTIONS, ...(profile ? { profile } : {}) });
  return () =>
    load().then(
      (region) => region || FALLBACK_REGION,
      () => FALLBACK_REGION,
    );
}

/** Clients built by {@link createS3Client}: their retries know about a direct first attempt. */
const ownClients = new WeakSet<S3Client>();

/** Whether `client` was built by {@link createS3Client} (and so retries with {@link retryAfter}). */
export function isOwnClient(client: S3Client): boolean {
  return ownClients.has(client);
}

/** How a first attempt failed, as the SDK's retry strategy judges it. */
export type FailedAttempt = Parameters<ConfiguredRetryStrategy['refreshRetryTokenForRetry']>[1];

const priorAttempt = new AsyncLocalStorage<FailedAttempt>();

/**
 * Runs `send` (one `client.send` of a client from {@link createS3Client}) as the retry of a first
 * attempt that failed with `failed`: the SDK's strategy decides as if its own first attempt had
 * failed so (a client error is thrown at once, a transient one is retried after the back-off),
 * and the attempts of both together never exceed `maxAttempts`.
 */
export function retryAfter<T>(failed: FailedAttempt, send: () => Promise<T>): Promise<T> {
  return priorAttempt.run(failed, send);
}

/** `value` (else `fallback`) when it is a whole number from `min` to `max`. @throws {UsageError} */
function wholeNumber(name: string, value: number | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `from ${min} up` : `from ${min} to ${max}`;
    throw new UsageError(`invalid ${name} ${String(value)}: it must be a whole number ${range}`, 'InvalidClientOption');
  }
  return value;
}
