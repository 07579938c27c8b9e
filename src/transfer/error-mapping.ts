import {
  CredentialsError,
  type ErrorContext,
  LocalFileError,
  NetworkError,
  S3ServiceError,
  S3xferError,
  TransferAbortedError,
} from '../errors.js';
import { formatS3Url } from '../location.js';

/** What a failed request was about, for the message. */
export interface RequestContext extends ErrorContext {
  bucket: string;
  key?: string;
}

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  syscall?: string;
  path?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $response?: { statusCode?: number };
}

/** Socket-level failures: nothing (or nothing usable) came back from the endpoint. */
const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNABORTED: 'connection aborted',
  ERR_STREAM_PREMATURE_CLOSE: 'connection closed mid-response',
};

/** Local file-system failures, worded for a person. */
const FILE_CODES: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files (Node already uses the hard limit, `ulimit -Hn`: raise it, or lower --concurrency)',
  ENFILE: 'too many open files in the system',
  EEXIST: 'file exists',
  ENAMETOOLONG: 'file name too long',
  EDQUOT: 'disk quota exceeded',
  // What open() says of a socket (and of a device file whose device is not there).
  ENXIO: 'not a regular file (a socket, or a device that is not there)',
};

/** The HTTP status of a failed request, when the server answered. */
export function statusOf(error: unknown): number | undefined {
  const e = error as SdkErrorShape | undefined;
  return e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
}

/** True for the errors an AbortSignal produces anywhere in Node and the SDK. */
export function isAbortError(error: unknown): boolean {
  return error instanceof TransferAbortedError || (error as SdkErrorShape | undefined)?.name === 'AbortError';
}

/** Describes a local file-system error, or returns undefined when it is not one. */
export function fileErrorReason(error: unknown): string | undefined {
  const e = error as SdkErrorShape | undefined;
  return e?.syscall !== undefined && e.code !== undefined ? (FILE_CODES[e.code] ?? e.code) : undefined;
}

/**
 * Turns whatever a request threw (SDK service error, socket error, credential error, file error)
 * into one of s3xfer's typed errors with a one-line message. S3xferErrors pass through unchanged.
 */
export function toS3xferError(error: unknown, context: RequestContext): S3xferError {
  if (error instanceof S3xferError) return error;
  const e = (error ?? {}) as SdkErrorShape;
  const { bucket, key, ...errorContext } = context;
  const ctx: ErrorContext = { ...errorContext, cause: error };
  const where = key === undefined ? `bucket "${bucket}"` : formatS3Url(bucket, key);

  if (isAbortError(error)) return new TransferAbortedError(ctx);
  if (e.name === 'CredentialsProviderError') {
    return new CredentialsError(
      'no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or choose a profile with --profile',
      'NoCredentials',
      ctx,
    );
  }
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  if (status !== undefined && status >= 300) return serviceError(e, status, where, bucket, ctx);
  if (e.code !== undefined && e.syscall !== undefined && FILE_CODES[e.code] && e.path !== undefined) {
    return new LocalFileError(`${e.path}: ${FILE_CODES[e.code]}`, e.code, ctx);
  }
  if ((e.code === 'EMFILE' || e.code === 'ENFILE') && e.syscall !== undefined) {
    // A socket the process could not open (`connect EMFILE`): a local limit, not the endpoint.
    return new LocalFileError(`cannot open a connection: ${FILE_CODES[e.code]}`, e.code, ctx);
  }
  const networkCode = e.code ?? (e.name === 'TimeoutError' ? 'ETIMEDOUT' : undefined);
  if (networkCode !== undefined && NETWORK_CODES[networkCode]) {
    const attempts = e.$metadata?.attempts;
    const tries = attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
    return new NetworkError(`cannot reach the S3 endpoint: ${NETWORK_CODES[networkCode]} (${networkCode})${tries}`, networkCode, ctx);
  }
  return new S3xferError(`${where}: ${e.message || e.name || String(error)}`, e.name ?? 'Unknown', ctx);
}

/** Names the SDK gives an error answer that carries no error code. */
const UNNAMED_ERRORS = new Set(['Unknown', 'UnknownError', 'Error']);

function serviceError(e: SdkErrorShape, status: number, where: string, bucket: string, ctx: ErrorContext): S3ServiceError {
  // HEAD responses carry no body, so the SDK names them after the status ('NotFound', 'Forbidden'),
  // or 'Unknown' (a 5xx, or any error answer without an S3 error body): then the status says more.
  const code = e.Code ?? (e.name && !UNNAMED_ERRORS.has(e.name) ? e.name : `Http${status}`);
  const tail = `(${code}, HTTP ${status})`;
  const known: Record<string, string> = {
    NoSuchBucket: `bucket "${bucket}" does not exist ${tail}`,
    NoSuchKey: `${where} does not exist ${tail}`,
    NotFound: `${where} does not exist ${tail}`,
    AccessDenied: `access denied to ${where} ${tail}`,
    Forbidden: `access denied to ${where} ${tail}`,
    InvalidAccessKeyId: `the access key ID is not known to the endpoint: check AWS_ACCESS_KEY_ID or --profile ${tail}`,
    SignatureDoesNotMatch: `the request signature does not match: check AWS_SECRET_ACCESS_KEY or --profile ${tail}`,
    ExpiredToken: `the session token has expired ${tail}`,
    PreconditionFailed: `${where} changed while it was being downloaded ${tail}`,
    InvalidRange: `${where}: the requested range is not satisfiable ${tail}`,
    BadDigest: `the server received different bytes than were sent ${tail}`,
  };
  const attempts = e.$metadata?.attempts;
  const retried = status >= 500 && attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
  // Ceph and others send empty <Message> elements: build the text from the code and status.
  const detail = e.message && e.message !== code && e.message !== 'UnknownError' ? `: ${e.message}` : '';
  const message = known[code] ?? `${where}: the server answered ${tail}${detail}`;
  return new S3ServiceError(message + retried, code, { ...ctx, status });
}

/**
 * A local file-system failure as a one-line LocalFileError: `path: [what: ]reason`. A write
 * failure (disk full, read-only) is the destination's problem and is never retried.
 */
export function fileError(path: string, error: unknown, context: ErrorContext & { isSource?: boolean }, what?: string): LocalFileError {
  const reason = fileErrorReason(error) ?? String(error);
  const code = (error as { code?: string } | undefined)?.code ?? 'EIO';
  return new LocalFileError(`${path}: ${what ? `${what}: ` : ''}${reason}`, code, { ...context, cause: error });
}
