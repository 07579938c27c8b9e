import { setMaxListeners } from 'node:events';
import { createWriteStream, fstatSync, type Stats } from 'node:fs';
import type { Writable } from 'node:stream';
import { isatty } from 'node:tty';
import type { GetObjectCommandInput, GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { DEFAULT_VERIFY_MODE } from '../config.js';
import { type ByteRange, planParts } from '../engine/part-plan.js';
import type { TransferContext, TransferOptions } from '../engine/transfer-context.js';
import { describeValue, IntegrityError, LocalFileError, type S3xferError, UsageError } from '../errors.js';
import type { TransferResult } from '../events.js';
import { digestValue, PassDigests } from '../integrity/checks.js';
import { layoutRanges } from '../integrity/layout.js';
import type { DownloadVerification, VerificationOutcome } from '../integrity/verification.js';
import { type DownloadExtraArgs, type KnownObject, type ObjectHead, objectHead, planDownloadVerification } from './download.js';
import { fileErrorReason, isAbortError } from './error-mapping.js';
import { checkExtraArgs, DOWNLOAD_EXTRA_ARGS } from './extra-args.js';
import { getEmpty, getRange, type RangeReceiver } from './ranged-get.js';

/** Options of {@link TransferManager.downloadToStream}. */
export interface StreamDownloadOptions extends TransferOptions {
  /** Version, SSE-C key, requester-pays, expected owner. */
  extraArgs?: DownloadExtraArgs;
  /** Size and ETag of the object when a listing already gave them: no HeadObject then. */
  known?: KnownObject;
  /**
   * Ranges held in memory at once, from their request until their bytes are written: the window
   * of s3transfer's non-seekable downloads. Default: the concurrency, fewer when the memory
   * budget cannot hold that many parts (at least 1).
   */
  maxBufferedRanges?: number;
  /** How the destination is named in events, results and errors. Default `-` (stdout, as the CLI writes it). */
  destinationName?: string;
  /**
   * End the stream once every byte is written, and destroy it (without an error: the promise
   * rejects with it) when the download fails. Default true; the CLI passes false for stdout.
   */
  end?: boolean;
}

/**
 * One download to a stream (stdout, a pipe): HeadObject for size and ETag, then ranges of
 * `partSize` fetched in parallel through the manager's pool, pinned to the ETag with If-Match and
 * checked against Content-Range, and written strictly in order. A range takes a buffer from the
 * manager's memory budget before its request and gives it back once its bytes are written, and
 * at most `maxBufferedRanges` are held at once: a slow reader slows the requests down instead of
 * filling memory, and one slow range never lets the others run ahead without bound.
 * Verification (see {@link TransferConfig.verify}) is planned as for a file download (stored
 * checksums, a plain MD5 ETag, a multipart ETag with its part layout): `require` refuses an object
 * that cannot be verified before any byte is written. An object below the multipart threshold is
 * one GET, held whole and checked before any byte is written. Above it the ranges are hashed in
 * order as they are written and checked at the end; a mismatch then fails the download with an
 * IntegrityError saying the output is corrupt. A pipe cannot be rolled back: when a later range
 * fails, the bytes already written stay written, and the error says the output is incomplete.
 * A stream that errors or closes (a reader that went away: `| head -c 100`) fails the download
 * with LocalFileError code `EPIPE` and cancels every request.
 */
export async function runStreamDownload(t: TransferContext, writable: Writable, options: StreamDownloadOptions): Promise<TransferResult> {
  const candidate = writable as Partial<Writable> | null;
  if (typeof candidate?.write !== 'function' || typeof candidate.end !== 'function' || typeof candidate.once !== 'function') {
    throw new UsageError(`downloadToStream needs a Writable stream, not ${describeValue(writable)}`, 'InvalidStream');
  }
  const source = t.info.source;
  if (t.key === '' || t.key.endsWith('/')) {
    throw new UsageError(`${source} names no object: give the key of a file, e.g. s3://${t.bucket}/path/file`, 'MissingKey');
  }
  const end = options.end !== false;
  checkExtraArgs(options.extraArgs ?? {}, DOWNLOAD_EXTRA_ARGS, 'download');
  const request: GetObjectCommandInput = { ...options.extraArgs, Bucket: t.bucket, Key: t.key };
  const output = new OrderedOutput(wholeWrites(writable), t.info.destination, t.signal, (bytes) => t.events.progress(bytes));
  let verification: StreamVerification | undefined;
  try {
    const known = options.known;
    const verify = (t.config.verify ?? DEFAULT_VERIFY_MODE) !== 'off';
    const head = await objectHead(t, request, known, verify);
    const size = head.ContentLength ?? 0;
    t.events.queued(size);
    const plan = planParts(size, t.config, 'download');
    verification = verify ? await planStreamVerification(t, request, head, size) : undefined;
    // Before any GET: nothing written to a stream can be taken back.
    verification?.assertVerifiable();
    const getter = new RangeFetcher(t, { ...request, ...(head.ETag ? { IfMatch: head.ETag } : {}) }, size, verification);
    let outcome: VerificationOutcome = { verified: false, warnings: [] };
    if (plan.multipart) {
      const budgetParts = Math.floor(t.config.memoryBudget / plan.partSize);
      const window = Math.max(1, Math.min(options.maxBufferedRanges ?? t.config.concurrency, budgetParts));
      // Inline digests, fed in the order the bytes are written: a pass needs no more memory.
      const digests = verification?.startPass(plan.ranges);
      await fetchInOrder(t, plan.ranges, plan.partSize, window, getter, output, digests);
      if (verification) outcome = await verification.conclude(output.written);
    } else if (size > 0) {
      outcome = await fetchWhole(t, getter, output, verification);
    } else {
      await getter.fetchEmpty(output.signal);
      verification?.startPass([]);
      if (verification) outcome = await verification.conclude(0);
    }
    await output.finish(end);
    return t.result({
      bytes: size,
      parts: Math.max(1, plan.ranges.length),
      multipart: plan.multipart,
      etag: head.ETag,
      versionId: head.VersionId,
      verified: outcome.verified,
      warnings: outcome.warnings,
    });
  } catch (error) {
    await verification?.release();
    // Report the failure, not the cancellations it caused in the other requests.
    const first = output.failure ?? error;
    // As the manager would report it (an S3 error mapped, with its message), then told what became
    // of the output. A cancelled transfer is left to the manager to report.
    const failure = t.signal.aborted ? first : sayIncomplete(t.toError(first), output.written);
    // Destroyed without an error: the caller learns of the failure from the promise, and a stream
    // with no 'error' listener would otherwise crash the process.
    if (end) writable.destroy();
    throw failure;
  } finally {
    output.detach();
  }
}

/**
 * The stream to write to, so that a write's callback means the bytes were written. On a file or a
 * device (`> out.bin`), Node's `process.stdout` writes with `writeSync` and drops what a short
 * write left out: on a disk that fills up the output ends short while every write reports success.
 * There, a write stream on the same descriptor takes its place: it writes the rest of a short
 * write again, and so gets the disk's ENOSPC. It never closes the descriptor. Pipes and terminals
 * keep `process.stdout`, whose writes are whole; any other stream is the caller's.
 */
function wholeWrites(writable: Writable): Writable {
  if (writable !== process.stdout || isatty(1)) return writable;
  let info: Stats;
  try {
    info = fstatSync(1);
  } catch {
    return writable; // closed: the first write says so
  }
  if (!(info.isFile() || info.isBlockDevice() || info.isCharacterDevice())) return writable;
  // The path is ignored when a descriptor is given.
  return createWriteStream('/dev/stdout', { fd: 1, autoClose: false });
}

/**
 * Chooses how to verify the object, as a file download does ({@link planDownloadVerification}),
 * but hashed in one pass, in the order the bytes are written: any check's shape fits a stream.
 */
async function planStreamVerification(
  t: TransferContext,
  request: GetObjectCommandInput,
  head: ObjectHead,
  size: number,
): Promise<StreamVerification> {
  return new StreamVerification(t, await planDownloadVerification(t, request, head, size, false), size);
}

/**
 * A {@link DownloadVerification} over bytes that are written once, in order, and cannot be
 * fetched again. When the part layout of the check is only guessed, the other guessed layouts
 * are hashed in the same pass (a re-read of the output is impossible), and one that fits verifies.
 */
class StreamVerification {
  private alternatives: PassDigests[] = [];

  constructor(
    private readonly t: TransferContext,
    private readonly verification: DownloadVerification,
    private readonly size: number,
  ) {}

  /** See {@link DownloadVerification.assertVerifiable}. */
  assertVerifiable(): void {
    this.verification.assertVerifiable();
  }

  /** See {@link DownloadVerification.inspect}. */
  inspect(response: GetObjectCommandOutput): void {
    this.verification.inspect(response);
  }

  /** Digests for the one pass, fed in the order the bytes are written (any check's units then fit). */
  startPass(ranges: ByteRange[]): Pick<PassDigests, 'feed'> | undefined {
    const main = this.verification.startPass(ranges);
    const check = this.verification.plan.check;
    if (!main || !check || check.certain) return main;
    this.alternatives = this.verification.plan.alternatives.map(
      (layout) => new PassDigests({ ...check, layout }, layoutRanges(this.size, layout)),
    );
    const passes = [main, ...this.alternatives];
    return {
      feed: (position, chunks) => {
        for (const pass of passes) pass.feed(position, chunks);
      },
    };
  }

  /** Lets go of the digests in progress (the download failed). */
  async release(): Promise<void> {
    await Promise.all([this.verification.release(), ...this.alternatives.map((pass) => pass.stop())]);
  }

  /**
   * The verdict. A mismatch says the output is corrupt (`written` bytes of it went out already),
   * or, when nothing was written yet, that nothing was.
   * @throws {IntegrityError} `ChecksumMismatch`, or `Unverifiable` under `require`.
   */
  async conclude(written: number): Promise<VerificationOutcome> {
    const destination = this.t.info.destination;
    const consequence =
      written > 0
        ? `: the output is corrupt (${written} bytes were written to ${destination} and cannot be taken back; a stream is not fetched again)`
        : ': nothing was written';
    try {
      return await this.verification.conclude(undefined, undefined, consequence);
    } catch (error) {
      if (!(error instanceof IntegrityError) || error.code !== 'ChecksumMismatch') throw error;
      for (const pass of this.alternatives) {
        if ((await digestValue(pass.check, pass.units, await pass.unitDigests())) === pass.check.expected) {
          return { verified: pass.check.method, warnings: [] };
        }
      }
      throw error;
    }
  }
}

/**
 * A failure after bytes went out: its message says the output is incomplete (a pipe cannot take
 * them back). Not for a reader that went away (EPIPE: it took what it wanted), nor for a mismatch,
 * whose message already says what became of the output ({@link StreamVerification.conclude}).
 */
function sayIncomplete(failure: S3xferError, written: number): S3xferError {
  if (written === 0) return failure;
  if (failure instanceof LocalFileError && failure.code === 'EPIPE') return failure;
  if (failure instanceof IntegrityError && failure.code === 'ChecksumMismatch') return failure;
  failure.message = `${failure.message} (the output is incomplete: ${written} bytes were written)`;
  return failure;
}

/**
 * An object below the multipart threshold: one GET into one buffer from the budget, checked
 * before its first byte goes out (a pipe cannot take bytes back).
 */
async function fetchWhole(
  t: TransferContext,
  getter: RangeFetcher,
  output: OrderedOutput,
  verification: StreamVerification | undefined,
): Promise<VerificationOutcome> {
  const size = getter.size;
  const buffer = await t.budget.take(size, output.signal);
  try {
    const range = { start: 0, end: size - 1 };
    await t.request(() => getter.fetchInto(buffer, range, output.signal));
    let outcome: VerificationOutcome = { verified: false, warnings: [] };
    if (verification) {
      verification.startPass([range])?.feed(0, [buffer.subarray(0, size)]);
      outcome = await verification.conclude(0);
    }
    await output.write(buffer.subarray(0, size));
    return outcome;
  } finally {
    t.budget.give(buffer);
  }
}

/**
 * s3transfer's DeferQueue over a sliding window: range i is requested only once fewer than
 * `window` ranges are held (fetched or in flight, not yet written), ranges complete in any order,
 * and each is written as soon as every range before it has been. Buffers are taken in range order
 * by one producer, so a range never waits on budget held by later ones. The first failure (a
 * request, the output, a cancellation) stops the rest; every request has settled and every buffer
 * is back in the budget before this returns.
 */
export async function fetchInOrder(
  t: Pick<TransferContext, 'budget' | 'request'>,
  ranges: ByteRange[],
  partSize: number,
  window: number,
  getter: Pick<RangeFetcher, 'fetchInto'>,
  output: Pick<OrderedOutput, 'write' | 'fail' | 'signal'>,
  digests?: Pick<PassDigests, 'feed'>,
): Promise<void> {
  const signal = output.signal;
  const slots = ranges.map(() => deferred<Buffer>());
  const requests: Array<Promise<unknown>> = [];
  /** The range the writer is on: ranges before it are written and their buffers given back. */
  let next = 0;
  let wake: (() => void) | undefined;
  const room = (index: number) =>
    new Promise<void>((resolve, reject) => {
      if (index < next + window) return resolve();
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      wake = () => {
        if (index >= next + window) return;
        signal.removeEventListener('abort', onAbort);
        wake = undefined;
        resolve();
      };
    });

  const producing = (async () => {
    for (let index = 0; index < ranges.length; index++) {
      await room(index);
      signal.throwIfAborted();
      const buffer = await t.budget.take(partSize, signal);
      const range = ranges[index]!;
      const slot = slots[index]!;
      const fetched = t
        .request(() => getter.fetchInto(buffer, range, signal))
        .then(
          () => slot.resolve(buffer),
          (error: unknown) => {
            t.budget.give(buffer);
            output.fail(error);
            slot.reject(error);
          },
        );
      requests.push(fetched);
    }
  })().catch((error: unknown) => {
    output.fail(error);
    for (const slot of slots) slot.reject(error); // those already settled keep their outcome
  });

  try {
    while (next < ranges.length) {
      const buffer = await slots[next]!.promise;
      const range = ranges[next]!;
      try {
        const bytes = buffer.subarray(0, range.end - range.start + 1);
        // Hashed in the order written: what the output gets is what is checked.
        digests?.feed(range.start, [bytes]);
        await output.write(bytes);
      } finally {
        // Only now is the buffer free: a stream may hold on to a chunk until its write completes.
        t.budget.give(buffer);
      }
      next++;
      wake?.();
    }
  } finally {
    await producing;
    await Promise.allSettled(requests);
    // Ranges fetched after the one that failed were never written: their buffers go back too.
    for (let index = next + 1; index < slots.length; index++) {
      const buffer = await slots[index]!.settled;
      if (buffer) t.budget.give(buffer);
    }
  }
}

/** A promise settled from outside; `settled` is its value or undefined, and never rejects. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const settled = promise.then(
    (value): T | undefined => value,
    () => undefined,
  );
  return { promise, resolve, reject, settled };
}

/** Fetches byte ranges of one object version into buffers, resuming broken response streams. */
export class RangeFetcher {
  constructor(
    private readonly t: TransferContext,
    private readonly request: GetObjectCommandInput,
    readonly size: number,
    private readonly verification?: StreamVerification,
  ) {}

  /** Shows every GET response to the verification (an ETag check is void for SSE-KMS, SSE-C). */
  private readonly inspect = (response: GetObjectCommandOutput) => this.verification?.inspect(response);

  /** An empty object: one GET without a Range. */
  async fetchEmpty(signal: AbortSignal): Promise<void> {
    await this.t.request(() => getEmpty(this.t, this.request, signal, this.inspect));
  }

  /** Reads `range` into the start of `buffer`, resuming a broken stream from the first missing byte. */
  async fetchInto(buffer: Buffer, range: ByteRange, signal: AbortSignal): Promise<void> {
    await getRange(this.t, this.request, this.size, range, signal, new BufferRangeWriter(buffer, range.start), this.inspect);
  }
}

/** Copies a range's chunks into a buffer that holds the range from its first byte. */
class BufferRangeWriter implements RangeReceiver {
  position: number;

  constructor(
    private readonly buffer: Buffer,
    private readonly start: number,
  ) {
    this.position = start;
  }

  take(chunk: Uint8Array): void {
    this.buffer.set(chunk, this.position - this.start);
    this.position += chunk.length;
  }

  keep(): void {}
}

/**
 * The download's output stream, written one chunk at a time (each write awaited, so the stream
 * never queues more than one range), and the download's stop signal: an error or close of the
 * stream, or the first failure anywhere, cancels every request.
 */
export class OrderedOutput {
  /** The first failure, the one to report (not the cancellations it caused). */
  failure: unknown;
  /** Bytes the stream has taken so far. */
  written = 0;
  /** The transfer's signal, also aborted by the first failure. */
  readonly signal: AbortSignal;
  private readonly stop = new AbortController();
  private finished = false;
  private readonly onError = (error: Error) => this.fail(outputError(error, this.destination));
  private readonly onClose = () => {
    if (!this.finished) this.fail(closedOutput(this.destination));
  };

  constructor(
    private readonly writable: Writable,
    private readonly destination: string,
    transferSignal: AbortSignal,
    private readonly onWritten: (bytes: number) => void = () => {},
  ) {
    this.signal = AbortSignal.any([transferSignal, this.stop.signal]);
    setMaxListeners(0, this.signal); // one listener per request in flight
    writable.on('error', this.onError);
    writable.on('close', this.onClose);
  }

  /** Records the first failure and stops everything else; a cancellation it caused is not recorded. */
  fail(error: unknown): void {
    if (this.failure === undefined && !(this.signal.aborted && isAbortError(error))) this.failure = error;
    this.stop.abort(error);
  }

  /** Writes `bytes`, resolving once the stream has taken them (its write callback). */
  write(bytes: Uint8Array): Promise<void> {
    this.signal.throwIfAborted();
    if (this.writable.destroyed || this.writable.writableEnded) {
      const failure = closedOutput(this.destination);
      this.fail(failure);
      return Promise.reject(failure);
    }
    return new Promise<void>((resolve, reject) => {
      this.writable.write(bytes, (error?: Error | null) => {
        if (!error) {
          this.written += bytes.length;
          this.onWritten(bytes.length);
          return resolve();
        }
        const failure = outputError(error, this.destination);
        this.fail(failure);
        reject(failure);
      });
    });
  }

  /** After the last write: ends the stream (and waits for it to finish) when asked to. */
  async finish(end: boolean): Promise<void> {
    this.finished = true;
    if (!end) return;
    await new Promise<void>((resolve, reject) =>
      this.writable.end((error?: Error | null) => (error ? reject(outputError(error, this.destination)) : resolve())),
    );
  }

  /** Stops listening to the stream. */
  detach(): void {
    this.finished = true;
    this.writable.off('error', this.onError);
    this.writable.off('close', this.onClose);
  }
}

/** Codes of a stream whose reader went away (EPIPE) or that was closed or ended under us. */
const CLOSED_CODES = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_STREAM_PREMATURE_CLOSE']);

function outputError(error: unknown, destination: string): LocalFileError {
  if (error instanceof LocalFileError) return error;
  const code = (error as { code?: string } | undefined)?.code;
  if (code !== undefined && CLOSED_CODES.has(code)) return closedOutput(destination, error);
  const reason = fileErrorReason(error) ?? (error as Error | undefined)?.message ?? String(error);
  return new LocalFileError(`${destination}: cannot write: ${reason}`, code ?? 'EIO', { operation: 'download', destination, cause: error });
}

/** The reader of the output went away: code `EPIPE`, which the CLI turns into a quiet exit 141. */
function closedOutput(destination: string, cause?: unknown): LocalFileError {
  return new LocalFileError(`${destination}: the output was closed before the download finished`, 'EPIPE', {
    operation: 'download',
    destination,
    ...(cause === undefined ? {} : { cause }),
  });
}
