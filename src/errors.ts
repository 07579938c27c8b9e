/**
 * Typed errors. Every failure s3xfer reports is one of these classes, carrying what failed
 * (operation, source, destination) and the original error as `cause`. Only the CLI turns them into
 * exit codes and one-line messages.
 */

/** What a failure is about; stable strings for scripts (also in `--json` output). */
export interface ErrorContext {
  /** The transfer or request that failed, e.g. `upload`, `download`, `HeadObject`. */
  operation?: string;
  /** Where bytes came from: a local path or an `s3://bucket/key` URL. */
  source?: string;
  /** Where bytes were going. */
  destination?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** Base class of every error s3xfer throws on purpose. */
export class S3xferError extends Error {
  /** A stable machine-readable code, e.g. `NoSuchBucket`, `ENOENT`, `InvalidPartSize`. */
  readonly code: string;
  readonly operation?: string;
  readonly source?: string;
  readonly destination?: string;

  constructor(message: string, code: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.code = code;
    this.operation = context.operation;
    this.source = context.source;
    this.destination = context.destination;
  }
}

/** The caller asked for something invalid: a malformed URL, a bad size, a part size below 5 MiB. */
export class UsageError extends S3xferError {}

/** A local file or directory is missing, unreadable, a directory where a file was expected, … */
export class LocalFileError extends S3xferError {
  /** True when the problem is with the transfer's source (it could not be read at all). */
  readonly isSource: boolean;
  constructor(message: string, code: string, context: ErrorContext & { isSource?: boolean } = {}) {
    super(message, code, context);
    this.isSource = context.isSource ?? false;
  }
}

/** The S3 service answered with an error (404, 403, 5xx after retries, …). */
export class S3ServiceError extends S3xferError {
  /** HTTP status of the failed response, when there was one. */
  readonly status?: number;
  constructor(message: string, code: string, context: ErrorContext & { status?: number } = {}) {
    super(message, code, context);
    this.status = context.status;
  }
}

/** No usable answer from the endpoint: connection refused, DNS failure, timeout, reset. */
export class NetworkError extends S3xferError {}

/** Missing or unusable credentials (before any request was answered). */
export class CredentialsError extends S3xferError {}

/** The bytes received do not match what S3 promised (Content-Range, size, ETag, digest). */
export class IntegrityError extends S3xferError {}

/**
 * The transfer was cancelled through its AbortSignal (Ctrl-C in the CLI), or, code `Cancelled`,
 * because another transfer of the same manager failed under the failure policy `stop`.
 */
export class TransferAbortedError extends S3xferError {
  /**
   * What the cancellation could not take back, when something: e.g. DeleteObjects requests already
   * sent, which the store carries out whether or not anyone waits for the answer.
   */
  readonly unfinished?: string;

  constructor(context: ErrorContext & { message?: string; unfinished?: string } = {}) {
    const { unfinished, ...rest } = context;
    super(context.message ?? 'transfer aborted', context.message ? 'Cancelled' : 'Aborted', rest);
    if (unfinished !== undefined) this.unfinished = unfinished;
  }
}

/** What a bad argument is, for a UsageError's message: `a string`, `a Buffer`, `null`, `an object`. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Buffer.isBuffer(value)) return 'a Buffer';
  if (value instanceof Uint8Array) return 'a Uint8Array';
  if (Array.isArray(value)) return 'an array';
  const type = typeof value;
  return type === 'object' ? `an object (${value.constructor?.name ?? 'no prototype'})` : `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}
