import { setTimeout as delay } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { resolveTransferConfig } from '../../src/config.js';
import { EndpointWatch } from '../../src/engine/endpoint-watch.js';
import { MemoryBudget } from '../../src/engine/memory-budget.js';
import { RequestPool } from '../../src/engine/request-pool.js';
import { TransferContext } from '../../src/engine/transfer-context.js';

// A transfer's parts run in parallel; the first to fail cancels the others. A part cancelled in
// flight does not always fail with an AbortError: a response stream destroyed under it fails with
// the socket's error (ECONNRESET, "aborted"). The transfer must report the failure that started it
// all (a full disk, a 412), not a cancellation that happens to belong to an earlier part.
function transfer(): TransferContext {
  const engine = {
    client: {} as S3Client,
    config: resolveTransferConfig(),
    budget: new MemoryBudget(64 * 1024 * 1024),
    signal: new AbortController().signal,
    subscribers: [],
    endpoint: new EndpointWatch(),
    fileDownloads: () => 1,
  };
  return new TransferContext(
    engine,
    new RequestPool(4).lane(),
    { direction: 'download', source: 's3://b/k', destination: 'f' },
    'b',
    'k',
    {},
  );
}

/** What a part whose response stream is destroyed by the cancellation throws. */
const brokenByCancel = () => Object.assign(new Error('aborted'), { code: 'ECONNRESET' });

describe('TransferContext.all reports the failure that cancelled the rest', () => {
  it('not the socket error of an earlier part cancelled in flight', async () => {
    const diskFull = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    const failure = await transfer()
      .all(3, (index, signal) => {
        if (index === 2) return delay(20).then(() => Promise.reject(diskFull));
        return new Promise((_, reject) => signal.addEventListener('abort', () => reject(brokenByCancel()), { once: true }));
      })
      .catch((e: unknown) => e);
    expect(failure).toBe(diskFull);
  });

  it('the earliest of several failures, whatever the order of the parts', async () => {
    const first = new Error('first');
    const failure = await transfer()
      .all(4, (index) => delay(index === 3 ? 5 : 40).then(() => Promise.reject(index === 3 ? first : new Error(`later ${index}`))))
      .catch((e: unknown) => e);
    expect(failure).toBe(first);
  });
});
