import { GetObjectCommand, type GetObjectCommandInput, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import pRetry from 'p-retry';
import { sendS3 } from '../engine/direct-send.js';
import type { ByteRange } from '../engine/part-plan.js';
import type { TransferContext } from '../engine/transfer-context.js';
import { IntegrityError, S3xferError } from '../errors.js';
import { ResponseBody } from '../get-handler.js';

/** Body of a GetObject response: a Node stream, iterable in chunks. */
export type Body = AsyncIterable<Uint8Array> & { destroy?: (error?: Error) => void };

/**
 * Where the bytes of one range go (a file at offsets, a buffer), and how far they are kept: a
 * response that breaks is resumed from `position`.
 */
export interface RangeReceiver {
  /** The first byte not kept yet: where the next request of the range starts. */
  readonly position: number;
  /**
   * Takes the next chunk of the response (a promise when it must be waited for). The chunk may be
   * a view of a buffer that is reused as soon as the call returns: a receiver copies what it keeps
   * before returning.
   */
  take(chunk: Uint8Array): void | Promise<void>;
  /** Keeps what was taken (at the end of a response, and of a broken one). */
  keep(): void | Promise<void>;
}

/** Marks a failure of the response body (after the headers arrived): worth resuming. */
class BrokenStreamError extends Error {
  override name = 'BrokenStreamError';
}

/**
 * GETs one range of an object version into `receiver`, within a request slot the caller holds.
 * The server must send exactly the bytes asked for (Content-Range, Content-Length, no more). A
 * stream that breaks mid-body is resumed from the first byte not kept, up to `maxAttempts` times
 * with back-off; `inspect` sees every response's headers (encryption, checksums).
 * @throws {IntegrityError} when the server sends other bytes than asked for.
 */
export async function getRange(
  t: TransferContext,
  request: GetObjectCommandInput,
  size: number,
  range: ByteRange,
  signal: AbortSignal,
  receiver: RangeReceiver,
  inspect?: (response: GetObjectCommandOutput) => void,
): Promise<void> {
  await pRetry(
    async () => {
      const from = receiver.position;
      const whole = from === 0 && range.end === size - 1;
      const response = await sendS3<GetObjectCommandOutput>(
        t.client,
        new GetObjectCommand({ ...request, ...(whole ? {} : { Range: `bytes=${from}-${range.end}` }) }),
        { abortSignal: signal },
      );
      const body = response.Body as Body | undefined;
      try {
        checkHeaders(t, size, response, from, range.end, whole);
        inspect?.(response);
      } catch (error) {
        body?.destroy?.();
        throw error;
      }
      let received = from;
      const take = (chunk: Uint8Array) => {
        received += chunk.length;
        if (received > range.end + 1) sizeMismatch(t, received - range.start, range.end - range.start + 1);
        return receiver.take(chunk);
      };
      try {
        if (body instanceof ResponseBody) {
          await body.drain(take); // straight from the connection's buffer (get-handler.ts)
        } else {
          for await (const chunk of body ?? []) {
            const taking = take(chunk);
            if (taking) await taking;
          }
        }
      } catch (error) {
        body?.destroy?.();
        if (error instanceof S3xferError || signal.aborted) throw error;
        // Keep the bytes that did arrive: the next attempt resumes after them.
        await receiver.keep();
        throw new BrokenStreamError(`the response stream broke at byte ${receiver.position}`, { cause: error });
      }
      await receiver.keep();
      if (receiver.position !== range.end + 1) {
        throw new BrokenStreamError(`the response ended at byte ${receiver.position} of ${range.start}-${range.end}`);
      }
    },
    {
      retries: t.config.maxAttempts - 1,
      minTimeout: 200,
      maxTimeout: 5_000,
      randomize: true,
      signal,
      shouldRetry: ({ error }) => error instanceof BrokenStreamError && !signal.aborted,
    },
  );
}

/**
 * GETs an empty object, whole: a Range on 0 bytes is unsatisfiable (416). Any byte it sends is
 * an error.
 */
export async function getEmpty(
  t: TransferContext,
  request: GetObjectCommandInput,
  signal: AbortSignal,
  inspect?: (response: GetObjectCommandOutput) => void,
): Promise<void> {
  const response = await sendS3<GetObjectCommandOutput>(t.client, new GetObjectCommand(request), { abortSignal: signal });
  inspect?.(response);
  for await (const chunk of (response.Body ?? []) as Body) if (chunk.length > 0) sizeMismatch(t, chunk.length, 0);
}

/** Checks that the server sent exactly the bytes asked for. */
function checkHeaders(
  t: TransferContext,
  size: number,
  response: GetObjectCommandOutput,
  start: number,
  end: number,
  whole: boolean,
): void {
  const { ContentRange: contentRange, ContentLength: contentLength } = response;
  if (!whole) {
    const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
    if (!match || Number(match[1]) !== start || Number(match[2]) !== end || (match[3] !== '*' && Number(match[3]) !== size)) {
      throw new IntegrityError(
        `${t.info.source}: asked for bytes ${start}-${end}/${size}, the server sent Content-Range "${contentRange ?? ''}"`,
        'RangeMismatch',
        { source: t.info.source },
      );
    }
  }
  if (contentLength !== undefined && contentLength !== end - start + 1) sizeMismatch(t, contentLength, end - start + 1);
}

function sizeMismatch(t: TransferContext, got: number, expected: number): never {
  throw new IntegrityError(`${t.info.source}: the server sent ${got} bytes where ${expected} were expected`, 'SizeMismatch', {
    source: t.info.source,
  });
}
