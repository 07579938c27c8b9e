/**
 * One pool of request slots for every transfer a manager runs. A transfer gets a {@link Lane};
 * queued work is taken from the lanes in turn (round robin), so the parts of one big file never
 * starve the small files queued after it, and no more than `limit` requests are ever in flight.
 */
export class RequestPool {
  private active = 0;
  private maxActiveSeen = 0;
  /** Lanes that have work queued, in the order they are served. */
  private readonly ready: Lane[] = [];

  /** @param limit requests in flight at once, at least 1. */
  constructor(private limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`pool limit must be a positive integer, got ${limit}`);
  }

  /** Requests running now. */
  get inFlight(): number {
    return this.active;
  }

  /** The most requests that were ever in flight at once. */
  get maxInFlight(): number {
    return this.maxActiveSeen;
  }

  /** The current limit. */
  get concurrency(): number {
    return this.limit;
  }

  /** Changes the limit (throttling back-off); running requests finish, new ones follow the new limit. */
  setConcurrency(limit: number): void {
    this.limit = Math.max(1, Math.floor(limit));
    this.dispatch();
  }

  /** A new lane: one per transfer. */
  lane(): Lane {
    return new Lane(this);
  }

  /** @internal called by lanes when work arrives. */
  enqueue(lane: Lane): void {
    if (!this.ready.includes(lane)) this.ready.push(lane);
    this.dispatch();
  }

  /** @internal called by lanes when queued work is withdrawn. */
  withdraw(lane: Lane): void {
    if (lane.queued > 0) return;
    const index = this.ready.indexOf(lane);
    if (index !== -1) this.ready.splice(index, 1);
  }

  private dispatch(): void {
    while (this.active < this.limit && this.ready.length > 0) {
      const lane = this.ready.shift()!;
      const job = lane.take();
      if (lane.queued > 0) this.ready.push(lane);
      if (!job) continue;
      this.active++;
      this.maxActiveSeen = Math.max(this.maxActiveSeen, this.active);
      job(() => {
        this.active--;
        this.dispatch();
      });
    }
  }
}

type Job = (done: () => void) => void;

/** One transfer's queue in a {@link RequestPool}; its jobs run in the order they were queued. */
export class Lane {
  private readonly jobs: Job[] = [];

  constructor(private readonly pool: RequestPool) {}

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.jobs.length;
  }

  /**
   * Runs `request` once a slot is free and holds the slot until it settles. A job whose signal
   * aborts while it waits never starts and rejects with the signal's reason.
   */
  run<T>(request: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        const index = this.jobs.indexOf(job);
        if (index === -1) return;
        this.jobs.splice(index, 1);
        this.pool.withdraw(this);
        reject(signal!.reason);
      };
      const job: Job = (done) => {
        signal?.removeEventListener('abort', onAbort);
        let settled: Promise<T>;
        try {
          settled = request();
        } catch (error) {
          settled = Promise.reject(error);
        }
        settled.then(resolve, reject).finally(done);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.jobs.push(job);
      this.pool.enqueue(this);
    });
  }

  /** @internal */
  take(): Job | undefined {
    return this.jobs.shift();
  }
}
