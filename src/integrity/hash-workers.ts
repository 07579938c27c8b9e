/**
 * Hashing off the main thread. A download of a big object to a file hands its MD5 or SHA-256
 * work to worker threads: as each batch of bytes is written, the worker that owns that part reads
 * the same bytes back from the file (from the page cache, a copy of ~0.1 s per GiB) and hashes
 * them, while the main thread goes on parsing responses and writing. The digest is thus of the
 * bytes as they are in the file, not only as they came off the socket.
 *
 * One pool per process, started on first use, never keeping the process alive while idle. Each
 * part is pinned to one worker, so its bytes are hashed in the order they were written.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Algorithms the workers hash (native in `node:crypto`; the JavaScript CRCs stay inline). */
export type FileHashAlgorithm = 'md5' | 'sha256';

/** Objects below this size are hashed inline: a worker's round trips would cost more than they save. */
export const FILE_HASHING_MIN_BYTES = 8 * 1024 * 1024;

/** What the main thread tells a worker. `end` is exclusive. */
type Message =
  | { type: 'update'; key: string; algorithm: FileHashAlgorithm; path: string; start: number; end: number }
  | { type: 'digest'; key: string; algorithm: FileHashAlgorithm; id: number }
  | { type: 'drop'; keys: string[] };

type Reply = { id: number; digest?: Uint8Array; error?: string };

/**
 * The worker's code (the messages are {@link Message}, the replies {@link Reply}). It is plain
 * JavaScript in a string, run as an eval'd CommonJS script, so that no bundler, minifier or
 * coverage tool can rewrite it into something that needs this module's scope.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const buffer = Buffer.allocUnsafe(1024 * 1024);
const units = new Map(); // key -> { hash, error }
parentPort.on('message', (m) => {
  if (m.type === 'update') {
    let unit = units.get(m.key);
    if (!unit) {
      unit = { hash: createHash(m.algorithm), error: undefined };
      units.set(m.key, unit);
    }
    if (unit.error !== undefined) return;
    let fd;
    try {
      fd = openSync(m.path, 'r');
      for (let position = m.start; position < m.end; ) {
        const read = readSync(fd, buffer, 0, Math.min(buffer.length, m.end - position), position);
        if (read === 0) throw new Error(m.path + ' ends at byte ' + position + ', before byte ' + m.end);
        unit.hash.update(read === buffer.length ? buffer : buffer.subarray(0, read));
        position += read;
      }
    } catch (error) {
      unit.error = error instanceof Error ? error.message : String(error);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  } else if (m.type === 'digest') {
    const unit = units.get(m.key);
    units.delete(m.key);
    parentPort.postMessage(
      unit && unit.error !== undefined
        ? { id: m.id, error: unit.error }
        : { id: m.id, digest: (unit ? unit.hash : createHash(m.algorithm)).digest() },
    );
  } else {
    for (const key of m.keys) units.delete(key);
  }
});
`;

/** A digest whose bytes a worker reads from a file: told which bytes are written, in order. */
export interface FileDigest {
  /** Bytes `start` to `end` (exclusive) of the file are written: hash them next. */
  written(start: number, end: number): void;
  /** The digest of everything reported written. Call once. */
  digest(): Promise<Buffer>;
  /** Forgets the digest (the download failed or the check no longer applies). */
  drop(): void;
}

/** A pool of hashing worker threads. */
export class HashWorkers {
  private readonly workers: (Worker | undefined)[];
  private readonly pending = new Map<number, { worker: number; resolve: (digest: Buffer) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private nextKey = 0;
  private nextWorker = 0;

  constructor(size = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    this.workers = new Array(size).fill(undefined);
  }

  /** How many threads the pool may run. */
  get size(): number {
    return this.workers.length;
  }

  /** A new digest of bytes of the file at `path`, on the next worker in turn. */
  fileDigest(path: string, algorithm: FileHashAlgorithm): FileDigest {
    const index = this.nextWorker++ % this.workers.length;
    const key = String(this.nextKey++);
    let worker: Worker | undefined; // the thread holding this digest's state, from its first bytes on
    let done = false;
    return {
      written: (start, end) => {
        if (done || end <= start) return;
        worker ??= this.workerAt(index);
        // A thread that stopped took the state with it: digest() says so.
        if (this.workers[index] === worker) worker.postMessage({ type: 'update', key, algorithm, path, start, end } satisfies Message);
      },
      digest: () => {
        done = true;
        if (!worker) return Promise.resolve(createHash(algorithm).digest()); // no bytes
        if (this.workers[index] !== worker) return Promise.reject(new Error('a hashing thread stopped before the download ended'));
        const owner = worker;
        return new Promise<Buffer>((resolve, reject) => {
          const id = this.nextId++;
          this.pending.set(id, { worker: index, resolve, reject });
          owner.ref(); // an awaited reply keeps the process alive
          owner.postMessage({ type: 'digest', key, algorithm, id } satisfies Message);
        });
      },
      drop: () => {
        if (done) return;
        done = true;
        if (worker && this.workers[index] === worker) worker.postMessage({ type: 'drop', keys: [key] } satisfies Message);
      },
    };
  }

  /** Stops every worker (tests; a CLI process just exits). */
  async close(): Promise<void> {
    const workers = this.workers.splice(0, this.workers.length, ...this.workers.map(() => undefined));
    await Promise.all(workers.map((w) => w?.terminate()));
  }

  private workerAt(index: number): Worker {
    const existing = this.workers[index];
    if (existing) return existing;
    // No inherited Node flags: `--input-type=module` would make this CommonJS source ESM.
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 's3xfer-hash', execArgv: [] });
    worker.on('message', (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (![...this.pending.values()].some((p) => p.worker === index)) worker.unref();
      if (reply.error !== undefined) waiting.reject(new Error(`hashing the downloaded file failed: ${reply.error}`));
      else waiting.resolve(Buffer.from(reply.digest!));
    });
    const fail = (error: Error) => {
      if (this.workers[index] === worker) this.workers[index] = undefined;
      for (const [id, waiting] of this.pending) {
        if (waiting.worker !== index) continue;
        this.pending.delete(id);
        waiting.reject(new Error(`a hashing thread stopped: ${error.message}`));
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    worker.unref(); // an idle pool never holds the process (after the listeners: adding one refs the worker)
    this.workers[index] = worker;
    return worker;
  }
}

let shared: HashWorkers | undefined;

/** The process's pool. */
export function hashWorkers(): HashWorkers {
  shared ??= new HashWorkers();
  return shared;
}
