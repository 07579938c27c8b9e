import { CredentialsError, LocalFileError, S3ServiceError, TransferAbortedError, UsageError } from '../errors.js';

/**
 * Exit codes, following the aws CLI's where they fit.
 * - 0: every transfer succeeded.
 * - 1: a transfer failed (S3 error, network, credentials, local I/O, integrity check).
 * - 2: the command cannot run as given: bad flags or URL, invalid size, or a source file that is
 *      missing, unreadable or a directory (the aws CLI's "skipped" files).
 * - 130: interrupted by Ctrl-C (SIGINT); 143: terminated (SIGTERM). Nothing is left behind.
 * - 253: the configuration or credentials kept the command from running: no credentials found,
 *        or the store refused them (unknown access key, wrong secret, expired token) — the aws
 *        CLI's 253.
 * - 254: the store answered a request that is not a transfer with an error (ls, rm, the listing or
 *        bucket check of a directory job: a missing bucket, access denied) — the aws CLI's 254.
 * - 141: the reader of stdout went away (`cp s3://… - | head -c 100`): what a process killed by
 *        SIGPIPE reports (128 + 13), printed quietly; Node ignores SIGPIPE, so it is an exit code.
 */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  interrupted: 130,
  terminated: 143,
  brokenPipe: 141,
  config: 253,
  service: 254,
} as const;

/**
 * How bad each exit code is, for a batch (`run`) whose exit code is its worst line's: credentials
 * (253) over a store error outside a transfer (254) over a failed transfer (1) over a bad line or
 * skipped file (2) over success. A code not listed (a stdout that went away) ranks above them all.
 */
const SEVERITY: readonly number[] = [EXIT.ok, EXIT.usage, EXIT.failed, EXIT.service, EXIT.config];

/** The worse of two exit codes (see SEVERITY): the same whichever order the lines end in. */
export function worseExit(a: number, b: number): number {
  const rank = (code: number) => (SEVERITY.includes(code) ? SEVERITY.indexOf(code) : SEVERITY.length + code);
  return rank(b) > rank(a) ? b : a;
}

/** Codes by which a store says the credentials themselves are wrong. */
const CREDENTIAL_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired']);

/** The exit code for an error that ended the command. */
export function exitCodeFor(error: unknown, signal?: NodeJS.Signals): number {
  if (error instanceof TransferAbortedError) {
    // Cancelled by the engine (the endpoint cannot be reached, another transfer failed): a failure, not an interrupt.
    if (error.code === 'Cancelled') return EXIT.failed;
    return signal === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
  }
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof LocalFileError && error.isSource) return EXIT.usage;
  if (error instanceof CredentialsError) return EXIT.config;
  if (error instanceof S3ServiceError) {
    if (CREDENTIAL_CODES.has(error.code)) return EXIT.config;
    if (error.operation !== 'upload' && error.operation !== 'download') return EXIT.service;
  }
  return EXIT.failed;
}
