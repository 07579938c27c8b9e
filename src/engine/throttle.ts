import type { S3Client } from '@aws-sdk/client-s3';
import type { RequestPool } from './request-pool.js';

/**
 * Concurrency that follows the store: halved when it throttles (503 SlowDown and its kin), raised
 * by one again after each `limit` requests answered without throttling, up to the configured
 * concurrency (additive increase, multiplicative decrease, as TCP and the SDKs' adaptive retry
 * modes do). A burst of throttled answers to requests sent at the same time counts once.
 */
export class AdaptiveConcurrency {
  private successes = 0;
  private lastDecrease = Number.NEGATIVE_INFINITY;
  private lowest: number;

  constructor(
    private readonly pool: RequestPool,
    private readonly max: number,
    private readonly now: () => number = () => performance.now(),
    /** Throttled answers within this window of a decrease belong to the same burst. */
    private readonly burstMs = 1000,
  ) {
    this.lowest = max;
  }

  /** The lowest concurrency used so far. */
  get minimum(): number {
    return this.lowest;
  }

  /** One attempt was throttled by the store. */
  throttled(): void {
    const at = this.now();
    this.successes = 0;
    if (at - this.lastDecrease < this.burstMs) return;
    this.lastDecrease = at;
    const next = Math.max(1, Math.floor(this.pool.concurrency / 2));
    this.lowest = Math.min(this.lowest, next);
    this.pool.setConcurrency(next);
  }

  /** One attempt was answered without throttling. */
  answered(): void {
    if (this.pool.concurrency >= this.max) return;
    if (++this.successes < this.pool.concurrency) return;
    this.successes = 0;
    this.pool.setConcurrency(this.pool.concurrency + 1);
  }
}

/** Codes and statuses by which S3 and compatible stores say "slow down". */
const THROTTLING_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequests',
  'RequestThrottled',
]);

/** Whether an attempt's error is the store throttling (not a failure of the request itself). */
export function isThrottling(error: unknown): boolean {
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  return THROTTLING_CODES.has(e?.name ?? '') || THROTTLING_CODES.has(e?.Code ?? '') || status === 503 || status === 429;
}

const observers = new WeakMap<S3Client, Set<AdaptiveConcurrency>>();

/**
 * Lets `controller` see every attempt of every request `client` sends (the middleware sits inside
 * the SDK's retry loop, so a request retried after SlowDown reports each throttled attempt).
 * The middleware is added to a client once; it only observes. Returns the function that stops it.
 */
export function observeThrottling(client: S3Client, controller: AdaptiveConcurrency): () => void {
  let set = observers.get(client);
  if (!set) {
    const registered = new Set<AdaptiveConcurrency>();
    set = registered;
    observers.set(client, registered);
    client.middlewareStack?.add(
      (next) => async (args) => {
        try {
          const output = await next(args);
          noteAttempt(client);
          return output;
        } catch (error) {
          noteAttempt(client, error);
          throw error;
        }
      },
      { step: 'deserialize', name: 's3xferThrottleObserver', priority: 'high' },
    );
  }
  set.add(controller);
  return () => set.delete(controller);
}

/**
 * Tells the controllers observing `client` how one attempt went: answered (no `error`), or
 * failed with `error` (a throttle counts; other errors do not). The observer middleware calls it
 * for attempts through the SDK's pipeline, `sendS3` for its direct attempts.
 */
export function noteAttempt(client: S3Client, error?: unknown): void {
  const registered = observers.get(client);
  if (!registered) return;
  if (error === undefined) for (const c of registered) c.answered();
  else if (isThrottling(error)) for (const c of registered) c.throttled();
}
