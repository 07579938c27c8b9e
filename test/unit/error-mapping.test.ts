import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeFor, worseExit } from '../../src/cli/exit-codes.js';
import { CredentialsError, LocalFileError, NetworkError, S3ServiceError, TransferAbortedError, UsageError } from '../../src/index.js';
import { toS3xferError } from '../../src/transfer/error-mapping.js';

const ctx = { operation: 'download', bucket: 'b', key: 'k' };

function sdkError(name: string, status: number, message = '', attempts = 1) {
  return Object.assign(new Error(message), {
    name,
    $metadata: { httpStatusCode: status, attempts },
    $fault: status >= 500 ? 'server' : 'client',
  });
}

describe('toS3xferError', () => {
  it.each([
    ['NoSuchBucket', 404, /bucket "b" does not exist \(NoSuchBucket, HTTP 404\)/],
    ['NoSuchKey', 404, /s3:\/\/b\/k does not exist/],
    ['NotFound', 404, /s3:\/\/b\/k does not exist/],
    ['AccessDenied', 403, /access denied to s3:\/\/b\/k/],
    ['Forbidden', 403, /access denied/],
    ['InvalidAccessKeyId', 403, /access key ID .* AWS_ACCESS_KEY_ID/],
    ['SignatureDoesNotMatch', 403, /signature .* AWS_SECRET_ACCESS_KEY/],
    ['PreconditionFailed', 412, /changed while it was being downloaded/],
  ])('maps %s (%d) to an S3ServiceError with a clear message', (name, status, message) => {
    const error = toS3xferError(sdkError(name, status), ctx);
    expect(error).toBeInstanceOf(S3ServiceError);
    expect(error.code).toBe(name);
    expect((error as S3ServiceError).status).toBe(status);
    expect(error.message).toMatch(message);
    expect(error.operation).toBe('download');
  });

  it('builds a message from code and status when the store sends an empty one (Ceph)', () => {
    const error = toS3xferError(sdkError('UnknownError', 411, 'UnknownError'), ctx);
    expect(error.message).toBe('s3://b/k: the server answered (Http411, HTTP 411)');
  });

  it('says how many attempts a server error survived', () => {
    expect(toS3xferError(sdkError('SlowDown', 503, '', 5), ctx).message).toMatch(/\(SlowDown, HTTP 503\) after 5 attempts/);
  });

  it('maps socket errors to NetworkError', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', $metadata: { attempts: 5 } });
    const error = toS3xferError(refused, ctx);
    expect(error).toBeInstanceOf(NetworkError);
    expect(error.message).toBe('cannot reach the S3 endpoint: connection refused (ECONNREFUSED) after 5 attempts');
    expect(toS3xferError(Object.assign(new Error('x'), { name: 'TimeoutError' }), ctx)).toBeInstanceOf(NetworkError);
  });

  it('maps missing credentials, aborts and file errors', () => {
    expect(toS3xferError(Object.assign(new Error('x'), { name: 'CredentialsProviderError' }), ctx)).toBeInstanceOf(CredentialsError);
    expect(toS3xferError(Object.assign(new Error('x'), { name: 'AbortError' }), ctx)).toBeInstanceOf(TransferAbortedError);
    const enospc = Object.assign(new Error('x'), { code: 'ENOSPC', syscall: 'write', path: '/full/a' });
    const error = toS3xferError(enospc, ctx);
    expect(error).toBeInstanceOf(LocalFileError);
    expect(error.message).toBe('/full/a: no space left on device');
  });

  it('too many open files, for a socket or a file: a local limit with the way out, never a raw Node message', () => {
    const socket = Object.assign(new Error('connect EMFILE 127.0.0.1:7480 - Local (undefined:undefined)'), {
      code: 'EMFILE',
      syscall: 'connect',
      $metadata: { attempts: 1 },
    });
    const fromSocket = toS3xferError(socket, ctx);
    expect(fromSocket).toBeInstanceOf(LocalFileError);
    expect(fromSocket.message).toBe(
      'cannot open a connection: too many open files (Node already uses the hard limit, `ulimit -Hn`: raise it, or lower --concurrency)',
    );
    expect(fromSocket.code).toBe('EMFILE');
    const file = Object.assign(new Error('x'), { code: 'EMFILE', syscall: 'open', path: '/src/a.txt' });
    expect(toS3xferError(file, ctx).message).toBe(
      '/src/a.txt: too many open files (Node already uses the hard limit, `ulimit -Hn`: raise it, or lower --concurrency)',
    );
  });

  it('keeps the original error as cause', () => {
    const original = sdkError('NoSuchKey', 404);
    expect(toS3xferError(original, ctx).cause).toBe(original);
  });
});

describe('exitCodeFor', () => {
  it('follows the aws CLI: 2 bad usage or unreadable source, 1 failed transfer, 253 credentials, 254 service error, 130 interrupted', () => {
    expect(exitCodeFor(new UsageError('x', 'X'))).toBe(EXIT.usage);
    expect(exitCodeFor(new LocalFileError('x', 'ENOENT', { isSource: true }))).toBe(EXIT.usage);
    expect(exitCodeFor(new LocalFileError('x', 'ENOENT'))).toBe(EXIT.failed);
    expect(exitCodeFor(new S3ServiceError('x', 'NoSuchKey', { operation: 'download' }))).toBe(EXIT.failed);
    expect(exitCodeFor(new S3ServiceError('x', 'AccessDenied', { operation: 'upload' }))).toBe(EXIT.failed);
    expect(exitCodeFor(new S3ServiceError('x', 'NoSuchBucket', { operation: 'ListObjectsV2' }))).toBe(254);
    expect(exitCodeFor(new S3ServiceError('x', 'NoSuchBucket'))).toBe(254);
    expect(exitCodeFor(new S3ServiceError('x', 'InvalidAccessKeyId', { operation: 'upload' }))).toBe(253);
    expect(exitCodeFor(new S3ServiceError('x', 'SignatureDoesNotMatch', { operation: 'ListObjectsV2' }))).toBe(253);
    expect(exitCodeFor(new CredentialsError('x', 'NoCredentials'))).toBe(253);
    expect(exitCodeFor(new NetworkError('x', 'ECONNREFUSED'))).toBe(EXIT.failed);
    expect(exitCodeFor(new TransferAbortedError())).toBe(130);
    expect(exitCodeFor(new TransferAbortedError(), 'SIGTERM')).toBe(143);
    // Cancelled by the engine (another transfer failed, the endpoint cannot be reached): a failure, not an interrupt.
    expect(exitCodeFor(new TransferAbortedError({ message: 'cancelled: the S3 endpoint cannot be reached' }))).toBe(EXIT.failed);
    expect(exitCodeFor(new Error('bug'))).toBe(EXIT.failed);
  });
});

describe('worseExit (a batch exits with its worst line)', () => {
  it('ranks 253 over 254 over 1 over 2 over 0, whichever order the lines end in', () => {
    const ranked = [EXIT.ok, EXIT.usage, EXIT.failed, EXIT.service, EXIT.config, EXIT.brokenPipe];
    for (const [i, better] of ranked.entries()) {
      for (const worse of ranked.slice(i)) {
        expect(worseExit(better, worse), `${better} then ${worse}`).toBe(worse);
        expect(worseExit(worse, better), `${worse} then ${better}`).toBe(worse);
      }
    }
  });
});
