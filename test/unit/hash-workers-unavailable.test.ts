import { createHash, randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { HashWorkers } from '../../src/integrity/hash-workers.js';
import { tempDir } from '../helpers/files.js';

// Where no worker thread can start (thread limits, a permission model without workers), the
// digests are computed on the calling thread from the same file.
vi.mock('node:worker_threads', () => ({
  Worker: class {
    constructor() {
      throw Object.assign(new Error('cannot start a thread'), { code: 'ERR_WORKER_INIT_FAILED' });
    }
  },
}));

let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('digests are computed on the calling thread when no thread can start', async () => {
  dir = await tempDir();
  const path = join(dir, 'data.bin');
  const bytes = randomBytes(300_000);
  await writeFile(path, bytes);
  const digest = new HashWorkers(2).fileDigest(path, 'md5');
  expect(() => digest.written(0, 100_000)).not.toThrow();
  digest.written(100_000, bytes.length);
  expect((await digest.digest()).toString('hex')).toBe(createHash('md5').update(bytes).digest('hex'));
});
