/**
 * Failures of a connection that never opened: the endpoint cannot be reached at all (nothing was
 * sent). Broken connections (`ECONNRESET`, a body cut short) are not among them: the endpoint was
 * there, and another request may well get through; nor is a DNS lookup that timed out
 * (`EAI_AGAIN`), which the next one may answer. An answer counts when its request settles, so a
 * manager whose only requests in flight are long part bodies, while a new connection is refused
 * on every attempt, stops: the watch is per manager, not per host.
 */
const CANNOT_CONNECT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Watches a manager's requests for an endpoint that has gone away. Every request retries on its
 * own (5 attempts and their back-off), so without this a job of many files whose endpoint died
 * would fail each file in turn: minutes of retries for a job that cannot succeed. A request that
 * fails to connect on every attempt, while no request of the manager got any answer since it
 * began, is proof enough: the manager then stops the others ({@link EndpointUnreachable}). One
 * answer from the store meanwhile (an object, a 404, a 503) means the endpoint is there, and the
 * failure stays one file's.
 */
export class EndpointWatch {
  /** When a request last got an answer (any HTTP status); never, at first. */
  private lastAnswer = Number.NEGATIVE_INFINITY;

  /**
   * Runs one request (its retries included) and tells whether its failure showed the endpoint
   * unreachable: `onUnreachable` is called before the error is rethrown.
   */
  async track<T>(request: () => Promise<T>, onUnreachable: () => void): Promise<T> {
    const started = performance.now();
    try {
      const output = await request();
      this.lastAnswer = performance.now();
      return output;
    } catch (error) {
      if (answered(error)) this.lastAnswer = performance.now();
      else if (cannotConnect(error) && this.lastAnswer < started) onUnreachable();
      throw error;
    }
  }
}

function answered(error: unknown): boolean {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode !== undefined;
}

function cannotConnect(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && CANNOT_CONNECT.has(code);
}
