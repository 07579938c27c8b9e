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
import { open } from 'node:fs/promises';
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
  | { type: 'drop'; keys: string[]; id: number };

/** A digest, or an error, or (to a drop) nothing: the file is closed. */
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
const units = new Map(); // key -> { hash, fd, error }: the file stays open from a unit's first bytes to its digest
const forget = (key) => {
  const unit = units.get(key);
  units.delete(key);
  if (unit && unit.fd !== undefined) closeSync(unit.fd);
  return unit;
};
parentPort.on('message', (m) => {
  if (m.type === 'update') {
    let unit = units.get(m.key);
    if (!unit) {
      unit = { hash: createHash(m.algorithm), fd: undefined, error: undefined };
      units.set(m.key, unit);
    }
    if (unit.error !== undefined) return;
    try {
      if (unit.fd === undefined) unit.fd = openSync(m.path, 'r');
      for (let position = m.start; position < m.end; ) {
        const read = readSync(unit.fd, buffer, 0, Math.min(buffer.length, m.end - position), position);
        if (read === 0) throw new Error(m.path + ' ends at byte ' + position + ', before byte ' + m.end);
        unit.hash.update(read === buffer.length ? buffer : buffer.subarray(0, read));
        position += read;
      }
    } catch (error) {
      unit.error = error instanceof Error ? error.message : String(error);
    }
  } else if (m.type === 'digest') {
    const unit = forget(m.key);
    parentPort.postMessage(
      unit && unit.error !== undefined
        ? { id: m.id, error: unit.error }
        : { id: m.id, digest: (unit ? unit.hash : createHash(m.algorithm)).digest() },
    );
  } else {
    for (const key of m.keys) forget(key);
    parentPort.postMessage({ id: m.id });
  }
});
`;

/** A digest whose bytes a worker reads from a file: told which bytes are written, in order. */
export interface FileDigest {
  /** Bytes `start` to `end` (exclusive) of the file are written, right after the ones before: hash them next. */
  written(start: number, end: number): void;
  /** The digest of everything reported written. Call once. */
  digest(): Promise<Buffer>;
  /**
   * Forgets the digest (the download failed or the check no longer applies). Resolves once the
   * thread has closed the file (a failed download's clean-up waits for it: no descriptor of a
   * removed temp file stays open); never rejects.
   */
  drop(): Promise<void>;
}

/** One hashing thread and the digests it owes. */
interface Thread {
  worker: Worker;
  pending: Map<number, { resolve: (digest: Buffer) => void; reject: (error: Error) => void }>;
  stopped: boolean;
}

/** Why a thread's digest is not coming: the caller hashes the bytes itself instead. */
class ThreadStopped extends Error {}

/**
 * A pool of hashing worker threads. When a thread cannot be started (thread limits, a permission
 * model without workers) or stops, the digests it held are computed on the calling thread from
 * the same file: hashing never fails a download that could be verified.
 */
export class HashWorkers {
  private readonly threads: (Thread | undefined)[];
  private nextId = 0;
  private nextKey = 0;
  private nextThread = 0;

  constructor(size = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    this.threads = new Array(size).fill(undefined);
  }

  /** How many threads the pool may run. */
  get size(): number {
    return this.threads.length;
  }

  /** A new digest of bytes of the file at `path`, on the next thread in turn. */
  fileDigest(path: string, algorithm: FileHashAlgorithm): FileDigest {
    const index = this.nextThread++ % this.threads.length;
    const key = String(this.nextKey++);
    // The thread holding this digest's state from its first bytes on; null: none could start.
    let thread: Thread | null | undefined;
    let from: number | undefined;
    let to = 0;
    let inOrder = true;
    let state: 'open' | 'asked' | 'dropped' = 'open';
    // The thread's answer to `digest`, once asked: it closes the file before it answers.
    let asked: Promise<unknown> | undefined;
    return {
      written: (start, end) => {
        if (state !== 'open' || end <= start) return;
        if (from === undefined) from = start;
        else if (start !== to) inOrder = false;
        to = end;
        if (thread === undefined) thread = this.threadAt(index);
        if (thread && !thread.stopped) thread.worker.postMessage({ type: 'update', key, algorithm, path, start, end } satisfies Message);
      },
      digest: async () => {
        if (state === 'dropped') throw new Error('the digest was dropped');
        state = 'asked';
        if (from === undefined) return createHash(algorithm).digest(); // no bytes
        if (!inOrder) throw new Error(`bytes of ${path} were reported out of order`);
        if (thread && !thread.stopped) {
          try {
            const answer = this.ask(thread, { type: 'digest', key, algorithm, id: this.nextId++ });
            asked = answer.catch(() => undefined);
            return await answer;
          } catch (error) {
            if (!(error instanceof ThreadStopped)) throw error;
          }
        }
        const fallback = hashFileRange(path, algorithm, from, to);
        asked = fallback.catch(() => undefined); // (this thread's read of the file)
        return fallback;
      },
      drop: async () => {
        if (state === 'asked') await asked; // the file is closed once the digest is answered
        if (state !== 'open') return;
        state = 'dropped';
        if (!thread || thread.stopped) return;
        await this.ask(thread, { type: 'drop', keys: [key], id: this.nextId++ }).catch(() => undefined);
      },
    };
  }

  /** Stops every thread (tests; a CLI process just exits). */
  async close(): Promise<void> {
    const threads = this.threads.splice(0, this.threads.length, ...this.threads.map(() => undefined));
    await Promise.all(threads.map((t) => t?.worker.terminate()));
  }

  private ask(thread: Thread, message: Extract<Message, { type: 'digest' | 'drop' }>): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      thread.pending.set(message.id, { resolve, reject });
      thread.worker.ref(); // an awaited reply keeps the process alive
      thread.worker.postMessage(message);
    });
  }

  /** The thread of slot `index`, started if need be; null when none can start. */
  private threadAt(index: number): Thread | null {
    const existing = this.threads[index];
    if (existing && !existing.stopped) return existing;
    let worker: Worker;
    try {
      // No inherited Node flags: `--input-type=module` would make this CommonJS source ESM.
      worker = new Worker(WORKER_SOURCE, { eval: true, name: 's3xfer-hash', execArgv: [] });
    } catch {
      return null;
    }
    const thread: Thread = { worker, pending: new Map(), stopped: false };
    worker.on('message', (reply: Reply) => {
      const waiting = thread.pending.get(reply.id);
      if (!waiting) return;
      thread.pending.delete(reply.id);
      if (thread.pending.size === 0) worker.unref();
      if (reply.error !== undefined) waiting.reject(new Error(`hashing the downloaded file failed: ${reply.error}`));
      else waiting.resolve(Buffer.from(reply.digest ?? []));
    });
    const stop = (error: Error) => {
      thread.stopped = true;
      if (this.threads[index] === thread) this.threads[index] = undefined;
      for (const waiting of thread.pending.values()) waiting.reject(new ThreadStopped(error.message));
      thread.pending.clear();
    };
    worker.on('error', stop);
    worker.on('exit', (code) => stop(new Error(`exit code ${code}`)));
    worker.unref(); // an idle pool never holds the process (after the listeners: adding one refs the worker)
    this.threads[index] = thread;
    return thread;
  }
}

/** The digest of bytes `start` to `end` (exclusive) of a file, on this thread. */
async function hashFileRange(path: string, algorithm: FileHashAlgorithm, start: number, end: number): Promise<Buffer> {
  const hash = createHash(algorithm);
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(Math.min(1024 * 1024, end - start));
    for (let position = start; position < end; ) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - position), position);
      if (bytesRead === 0) throw new Error(`${path} ends at byte ${position}, before byte ${end}`);
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await file.close();
  }
  return hash.digest();
}

let shared: HashWorkers | undefined;

/** The process's pool. */
export function hashWorkers(): HashWorkers {
  shared ??= new HashWorkers();
  return shared;
}
