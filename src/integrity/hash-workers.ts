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
import { MD5X4_WASM } from './md5x4-wasm.js';

/** Algorithms the workers hash (native in `node:crypto`; the JavaScript CRCs stay inline). */
export type FileHashAlgorithm = 'md5' | 'sha256';

/** Objects below this size are hashed inline: a worker's round trips would cost more than they save. */
export const FILE_HASHING_MIN_BYTES = 8 * 1024 * 1024;

/**
 * In a directory job (four downloads to files or more at once), objects from this size on go to the
 * threads too: the threads' start is shared, and their MD5s are hashed four at a time.
 */
export const JOB_FILE_HASHING_MIN_BYTES = 1024 * 1024;

/** What the main thread tells a worker. `end` is exclusive; `last`: where a {@link FileDigestOptions.streams} unit ends. */
type Message =
  | { type: 'update'; key: string; algorithm: FileHashAlgorithm; path: string; start: number; end: number; last?: number }
  | { type: 'digest'; key: string; algorithm: FileHashAlgorithm; id: number }
  | { type: 'drop'; keys: string[]; id: number };

/** A digest (`fourAtATime`: by md5x4), or an error, or (to a drop) nothing: the file is closed. */
type Reply = { id: number; digest?: Uint8Array; fourAtATime?: boolean; error?: string };

/**
 * The worker's code (the messages are {@link Message}, the replies {@link Reply}). It is plain
 * JavaScript in a string, run as an eval'd CommonJS script, so that no bundler, minifier or
 * coverage tool can rewrite it into something that needs this module's scope.
 *
 * A unit is hashed one of two ways:
 * - by `node:crypto`, its bytes read back and hashed as each update arrives;
 * - the MD5 units written side by side (`last` given: the parts of an object, or the files of a
 *   directory job), four at a time by the
 *   WebAssembly of md5x4.c, when the thread could load it (`workerData.md5x4`) and it gave
 *   RFC 1321's answers to a test when it loaded: an update only
 *   records how far the file is written, and the thread hashes (on its next turn, once the
 *   messages already queued are read) up to 256 KiB of each of the four units with the most bytes
 *   waiting. It waits for four units to have bytes, as four cost what one costs, unless fewer than
 *   four are still being written or 64 MiB wait (parts bigger than the usual 8 MiB): the bytes
 *   wait in the file, not in memory. Asked for a digest, it hashes the unit's last bytes (with
 *   partners when there are) and MD5's padding.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const buffer = Buffer.allocUnsafe(1024 * 1024);
// key -> unit: { hash } or { streams: true, begin, pos, end, last, state }, and { path, fd, error }
// The file stays open from a unit's first bytes to its digest.
const units = new Map();
const forget = (key) => {
  const unit = units.get(key);
  units.delete(key);
  if (unit && unit.fd !== undefined) closeSync(unit.fd);
  return unit;
};
const fail = (unit, error) => {
  if (unit.error === undefined) unit.error = error instanceof Error ? error.message : String(error);
};
/** Reads bytes start..end of the unit's file into 'into' at 'at'. */
const readInto = (unit, into, at, start, end) => {
  if (start >= end) return;
  if (unit.fd === undefined) unit.fd = openSync(unit.path, 'r');
  for (let position = start; position < end; ) {
    const read = readSync(unit.fd, into, at + position - start, end - position, position);
    if (read === 0) throw new Error(unit.path + ' ends at byte ' + position + ', before byte ' + end);
    position += read;
  }
};

// Four streams at a time (md5x4.c): its memory holds the four lanes' state words (A, B, C, D
// vectors, little-endian as WebAssembly's memory is on every host), then each lane's bytes.
const LANE_BYTES = 256 * 1024;
// Bytes that may wait for partners, in all; beyond, they are hashed with fewer (big parts).
const BACKLOG_BYTES = 64 * 1024 * 1024;
let lanes = (() => {
  if (!workerData || !workerData.md5x4) return undefined;
  try {
    const at = [0, 1, 2, 3].map((i) => 64 + i * (LANE_BYTES + 128));
    const memory = new WebAssembly.Memory({ initial: Math.ceil((at[3] + LANE_BYTES + 128) / 65536) });
    const module = new WebAssembly.Module(workerData.md5x4);
    const { md5x4 } = new WebAssembly.Instance(module, { env: { memory } }).exports;
    const bytes = new Uint8Array(memory.buffer);
    return { md5x4, at, bytes, view: new DataView(memory.buffer) };
  } catch {
    return undefined; // (no WebAssembly SIMD here): node:crypto hashes every unit
  }
})();
const waiting = (unit) => (unit.error === undefined ? unit.end - unit.pos : 0);
const byWaiting = (a, b) => waiting(b) - waiting(a);
/** Runs md5x4 over 'blocks' 64-byte blocks in the lanes of up to four units (an empty lane repeats lane 0). */
const compress = (group, blocks) => {
  const { view, at } = lanes;
  for (let i = 0; i < 4; i++) {
    const state = (group[i] || group[0]).state;
    for (let r = 0; r < 4; r++) view.setUint32(16 * r + 4 * i, state[r], true);
  }
  const lane = (i) => (i < group.length ? at[i] : at[0]);
  lanes.md5x4(0, lane(0), lane(1), lane(2), lane(3), blocks);
  for (let i = 0; i < group.length; i++) for (let r = 0; r < 4; r++) group[i].state[r] = view.getUint32(16 * r + 4 * i, true);
};
const initialState = () => new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
/** Writes MD5's padding after 'tail' bytes at 'at' (0x80, zeros, the length in bits of all 'length' bytes); returns its blocks. */
const pad = (at, tail, length) => {
  const padded = tail < 56 ? 64 : 128;
  lanes.bytes.fill(0, at + tail, at + padded);
  lanes.bytes[at + tail] = 0x80;
  const bits = length * 8;
  lanes.view.setUint32(at + padded - 8, bits % 4294967296, true);
  lanes.view.setUint32(at + padded - 4, Math.floor(bits / 4294967296), true);
  return padded / 64;
};
const digestOf = (state) => {
  const digest = Buffer.alloc(16);
  for (let r = 0; r < 4; r++) digest.writeUInt32LE(state[r], r * 4);
  return digest;
};
// A known answer before the first use (RFC 1321's test messages, one per lane): a module that
// computes anything else (a miscompile, a host this code does not expect) is not used.
if (lanes) {
  try {
    const messages = ['', 'a', 'abc', 'message digest'].map((m) => Buffer.from(m));
    const group = messages.map((m, i) => {
      lanes.bytes.set(m, lanes.at[i]);
      pad(lanes.at[i], m.length, m.length);
      return { state: initialState() };
    });
    compress(group, 1);
    if (!group.every((u, i) => digestOf(u.state).equals(createHash('md5').update(messages[i]).digest()))) lanes = undefined;
  } catch {
    lanes = undefined;
  }
}
/** Hashes the next 'blocks' blocks of each unit of 'group', read from their files; returns the bytes hashed. */
const hashLanes = (group, blocks) => {
  const read = [];
  for (const unit of group) {
    try {
      readInto(unit, lanes.bytes, lanes.at[read.length], unit.pos, unit.pos + blocks * 64);
      read.push(unit);
    } catch (error) {
      fail(unit, error);
    }
  }
  if (read.length === 0) return 0;
  compress(read, blocks);
  for (const unit of read) unit.pos += blocks * 64;
  return read.length * blocks * 64;
};
/** Hashes 'unit' (if given) and the units with the most bytes waiting, at most four, as far as all have whole blocks; returns the bytes hashed. */
const hashGroup = (unit, others) => {
  const group = unit ? [unit, ...others.filter((u) => u !== unit).slice(0, 3)] : others.slice(0, 4);
  let blocks = LANE_BYTES / 64;
  for (const u of group) blocks = Math.min(blocks, Math.floor(waiting(u) / 64));
  return hashLanes(group, blocks);
};
const ready = () => {
  const found = [];
  for (const unit of units.values()) if (unit.streams && waiting(unit) >= 64) found.push(unit);
  return found.sort(byWaiting);
};
/** How many units hashed four at a time are still being written. */
const writing = () => {
  let count = 0;
  for (const unit of units.values()) if (unit.streams && unit.error === undefined && unit.end < unit.last) count++;
  return count;
};
let turn;
const pump = () => {
  turn = undefined;
  for (let hashed = 0; hashed < 32 * 1024 * 1024; ) {
    const found = ready();
    if (found.length === 0) return;
    let backlog = 0;
    for (const unit of found) backlog += waiting(unit);
    if (found.length < 4 && backlog < BACKLOG_BYTES && writing() >= 4) return; // partners are coming
    hashed += hashGroup(undefined, found) + 1; // (+1: a group whose reads all failed still counts)
  }
  turn = setImmediate(pump); // more to do: the messages queued meanwhile first
};
/** The MD5 of a lanes unit: its last bytes, then MD5's padding (0x80, zeros, the length in bits). */
const finish = (unit) => {
  while (unit.error === undefined && waiting(unit) >= 64) hashGroup(unit, ready());
  if (unit.error !== undefined) return undefined;
  const at = lanes.at[0];
  try {
    readInto(unit, lanes.bytes, at, unit.pos, unit.end);
  } catch (error) {
    fail(unit, error);
    return undefined;
  }
  compress([unit], pad(at, unit.end - unit.pos, unit.end - unit.begin));
  return digestOf(unit.state);
};

parentPort.on('message', (m) => {
  if (m.type === 'update') {
    let unit = units.get(m.key);
    if (!unit) {
      unit = { path: m.path, fd: undefined, error: undefined };
      if (m.last !== undefined && m.algorithm === 'md5' && lanes) {
        Object.assign(unit, { streams: true, begin: m.start, pos: m.start, end: m.start, last: m.last });
        unit.state = initialState();
      } else {
        unit.hash = createHash(m.algorithm);
      }
      units.set(m.key, unit);
    }
    if (unit.error !== undefined || m.start === m.end) return;
    if (unit.streams) {
      if (m.start !== unit.end) fail(unit, new Error('bytes of ' + m.path + ' were reported out of order'));
      unit.end = m.end;
      turn = turn || setImmediate(pump);
      return;
    }
    try {
      for (let position = m.start; position < m.end; ) {
        const length = Math.min(buffer.length, m.end - position);
        readInto(unit, buffer, 0, position, position + length);
        unit.hash.update(length === buffer.length ? buffer : buffer.subarray(0, length));
        position += length;
      }
    } catch (error) {
      fail(unit, error);
    }
  } else if (m.type === 'digest') {
    const unit = units.get(m.key);
    const digest = unit && unit.streams ? finish(unit) : undefined;
    forget(m.key);
    parentPort.postMessage(
      unit && unit.error !== undefined
        ? { id: m.id, error: unit.error }
        : { id: m.id, digest: digest || (unit ? unit.hash : createHash(m.algorithm)).digest(), fourAtATime: !!digest },
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

/** How a digest's bytes will come. */
export interface FileDigestOptions {
  /**
   * The digest is one of several units (the parts of an object, or the files and parts of a
   * directory job) whose bytes are written side by side, and its bytes are `start` to `end`
   * (exclusive): its thread may then hash it in step with the others (an MD5 four streams at a
   * time). The thread learns of it at once, so that it waits
   * for it as a partner before its first bytes come. Not for a lone stream: one stream at a time
   * is cheaper by `node:crypto`.
   */
  streams?: { start: number; end: number };
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
  /** How many digests the threads computed four streams at a time (md5x4.c) so far. */
  multiStreamDigests = 0;

  /**
   * @param size threads at most
   * @param multiStream whether threads may hash MD5s four streams at a time (md5x4.c); without
   *   it (or without WebAssembly SIMD) every digest is `node:crypto`'s. Tests may pass the bytes of
   *   another module instead of md5x4.c's.
   */
  constructor(
    size = Math.max(1, Math.min(4, availableParallelism() - 1)),
    private readonly multiStream: boolean | Uint8Array = true,
  ) {
    this.threads = new Array(size).fill(undefined);
  }

  /** How many threads the pool may run. */
  get size(): number {
    return this.threads.length;
  }

  /** A new digest of bytes of the file at `path`, on the next thread in turn. */
  fileDigest(path: string, algorithm: FileHashAlgorithm, options: FileDigestOptions = {}): FileDigest {
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
    const last = options.streams?.end;
    if (options.streams) {
      thread = this.threadAt(index);
      const { start } = options.streams;
      thread?.worker.postMessage({ type: 'update', key, algorithm, path, start, end: start, last } satisfies Message);
    }
    return {
      written: (start, end) => {
        if (state !== 'open' || end <= start) return;
        if (from === undefined) from = start;
        else if (start !== to) inOrder = false;
        to = end;
        if (thread === undefined) thread = this.threadAt(index);
        if (thread && !thread.stopped)
          thread.worker.postMessage({ type: 'update', key, algorithm, path, start, end, last } satisfies Message);
      },
      digest: async () => {
        if (state === 'dropped') throw new Error('the digest was dropped');
        state = 'asked';
        if (from === undefined && !thread) return createHash(algorithm).digest(); // no bytes, no thread told
        if (!inOrder) {
          // (a caller's bug) The thread forgets the digest and closes the file; a drop waits for that.
          if (thread && !thread.stopped) asked = this.ask(thread, { type: 'drop', keys: [key], id: this.nextId++ }).catch(() => undefined);
          throw new Error(`bytes of ${path} were reported out of order`);
        }
        if (thread && !thread.stopped) {
          try {
            const answer = this.ask(thread, { type: 'digest', key, algorithm, id: this.nextId++ });
            asked = answer.catch(() => undefined);
            return await answer;
          } catch (error) {
            if (!(error instanceof ThreadStopped)) throw error;
          }
        }
        if (from === undefined) return createHash(algorithm).digest();
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
      const module = this.multiStream === true ? md5x4Module() : this.multiStream || undefined;
      const workerData = { md5x4: module };
      worker = new Worker(WORKER_SOURCE, { eval: true, name: 's3xfer-hash', execArgv: [], workerData });
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
      else {
        if (reply.fourAtATime) this.multiStreamDigests++;
        waiting.resolve(Buffer.from(reply.digest ?? []));
      }
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

let md5x4: Uint8Array | undefined;

/** The bytes of md5x4.c's WebAssembly module. */
function md5x4Module(): Uint8Array {
  md5x4 ??= Buffer.from(MD5X4_WASM, 'base64');
  return md5x4;
}

let shared: HashWorkers | undefined;

/** The process's pool. */
export function hashWorkers(): HashWorkers {
  shared ??= new HashWorkers();
  return shared;
}
