/**
 * The bytes a manager may hold in part buffers at once, shared by all its transfers, and the
 * buffers themselves, reused from part to part: reading a part into a buffer that was just sent
 * costs no allocation and no garbage collection (fresh 8 MiB buffers per part cost about 1 CPU
 * second per GiB of GC on this project's machines; see BENCHMARKS.md).
 */
export class MemoryBudget {
  private used = 0;
  private maxUsedSeen = 0;
  /** Takers and reservations waiting for room, first come first served. */
  private readonly waiters: Waiter[] = [];
  /** Released buffers by size, kept for reuse; their bytes stay counted in `used`. */
  private readonly spare = new Map<number, Buffer[]>();

  /** @param limit bytes, at least 1. */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`memory budget must be a positive integer, got ${limit}`);
  }

  /** Bytes held now (buffers in use and spare ones). */
  get inUse(): number {
    return this.used;
  }

  /** The most bytes ever held at once. */
  get maxInUse(): number {
    return this.maxUsedSeen;
  }

  /**
   * A buffer of exactly `size` bytes (contents undefined), waiting until the budget has room.
   * A buffer larger than the whole budget is granted when nothing else is held, so that one
   * oversized part can always proceed on its own. Rejects with the signal's reason on abort.
   */
  async take(size: number, signal?: AbortSignal): Promise<Buffer> {
    const reused = this.popSpare(size);
    if (reused) return reused;
    // A new buffer that will be kept as a spare replaces a spare one of another size: spares never
    // pile up past the buffers in flight when sizes vary (single PUTs of files of many sizes).
    if (size >= MIN_REUSED_BYTES) this.dropOneSpare();
    if (!this.fits(size)) this.dropSpares();
    if (!this.fits(size) || this.waiters.length > 0) {
      // A buffer handed over by give() (same size, bytes still counted) saves an allocation.
      const handedOver = await this.wait(size, true, signal);
      if (handedOver) return handedOver;
    } else {
      this.grant(size);
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /**
   * A buffer of `size` bytes or more, for bytes whose size varies from taker to taker (a whole
   * file for a single PUT; use `subarray(0, size)`, and give back the buffer itself): the
   * smallest spare buffer that holds them, else a new one of {@link reusableSize}.
   */
  async takeAtLeast(size: number, signal?: AbortSignal): Promise<Buffer> {
    let fit: number | undefined;
    for (const spareSize of this.spare.keys()) {
      if (spareSize >= size && (fit === undefined || spareSize < fit)) fit = spareSize;
    }
    return (fit !== undefined && this.popSpare(fit)) || this.take(reusableSize(size), signal);
  }

  /**
   * Counts `size` bytes held outside the budget's buffers (lib-storage's part buffers for a stream
   * upload) against the budget, waiting as {@link take} does; call the returned function (once;
   * later calls do nothing) to give them back. Rejects with the signal's reason on abort.
   */
  async reserve(size: number, signal?: AbortSignal): Promise<() => void> {
    if (!this.fits(size)) this.dropSpares();
    if (!this.fits(size) || this.waiters.length > 0) await this.wait(size, false, signal);
    else this.grant(size);
    let held = true;
    return () => {
      if (held) this.release(size);
      held = false;
    };
  }

  /**
   * Returns a buffer for reuse. Pass `reusable: false` when the buffer may still be read (a
   * request that failed mid-body may still be writing it to a socket): its bytes are released
   * but the buffer itself is left to the garbage collector. A reusable buffer goes straight to
   * the first waiting taker when that one wants its size: when the budget is what limits the
   * parts in flight, each part reuses the buffer of the part before it instead of a new one.
   */
  give(buffer: Buffer, reusable = true): void {
    const next = this.waiters[0];
    if (reusable && next?.wantsBuffer && next.bytes === buffer.length) {
      this.waiters.shift();
      next.grant(buffer);
      return;
    }
    if (reusable && this.waiters.length === 0 && buffer.length >= MIN_REUSED_BYTES) {
      const list = this.spare.get(buffer.length) ?? [];
      list.push(buffer);
      this.spare.set(buffer.length, list);
      return;
    }
    this.release(buffer.length);
  }

  /** Frees every spare buffer (at the end of a job). */
  dropSpares(): void {
    for (const [size, list] of this.spare) {
      this.used -= size * list.length;
    }
    this.spare.clear();
    this.wake();
  }

  private fits(size: number): boolean {
    return this.used + size <= this.limit || this.used === 0;
  }

  private grant(size: number): void {
    this.used += size;
    this.maxUsedSeen = Math.max(this.maxUsedSeen, this.used);
  }

  private release(size: number): void {
    this.used -= size;
    this.wake();
  }

  /** Resolves once `size` bytes are granted: with a handed-over buffer, or with none (allocate). */
  private wait(size: number, wantsBuffer: boolean, signal?: AbortSignal): Promise<Buffer | undefined> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      signal?.throwIfAborted();
      const waiter: Waiter = {
        bytes: size,
        wantsBuffer,
        grant: (buffer) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(buffer);
        },
      };
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index !== -1) this.waiters.splice(index, 1);
        reject(signal!.reason);
        this.wake();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.wake();
    });
  }

  /** Grants waiting requests in order while they fit (first come, first served: no starvation). */
  private wake(): void {
    while (this.waiters.length > 0) {
      const next = this.waiters[0]!;
      if (!this.fits(next.bytes)) {
        if (this.spare.size === 0) return;
        this.dropSparesQuietly();
        if (!this.fits(next.bytes)) return;
      }
      this.waiters.shift();
      this.grant(next.bytes);
      next.grant();
    }
  }

  /** A spare buffer of exactly `size` bytes, if one is kept (a size's list is never left empty). */
  private popSpare(size: number): Buffer | undefined {
    const list = this.spare.get(size);
    const buffer = list?.pop();
    if (list?.length === 0) this.spare.delete(size);
    return buffer;
  }

  private dropOneSpare(): void {
    const size = this.spare.keys().next().value;
    if (size !== undefined && this.popSpare(size)) this.release(size);
  }

  private dropSparesQuietly(): void {
    for (const [size, list] of this.spare) this.used -= size * list.length;
    this.spare.clear();
  }
}

interface Waiter {
  bytes: number;
  /** A taker (a buffer handed over is welcome), not a reservation (bytes only). */
  wantsBuffer: boolean;
  /** Called once the bytes are counted for it; with a buffer when one was handed over. */
  grant: (buffer?: Buffer) => void;
}

/** Buffers smaller than this are not worth keeping for reuse (small files' single PUTs). */
const MIN_REUSED_BYTES = 1024 * 1024;

/**
 * The buffer size to take for `bytes` of varying size (a whole file for a single PUT): rounded up
 * to a whole MiB from {@link MIN_REUSED_BYTES} on, so that files of similar sizes reuse each
 * other's buffers (at most 1 MiB more each); smaller sizes as they are.
 */
export function reusableSize(bytes: number): number {
  return bytes < MIN_REUSED_BYTES ? bytes : Math.ceil(bytes / MIN_REUSED_BYTES) * MIN_REUSED_BYTES;
}
