import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

export const MiB = 1024 * 1024;

/** A fresh temp directory; remove it with `rm(dir, { recursive: true })`. */
export function tempDir(prefix = 's3xfer-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Writes `size` random bytes (in 1 MiB blocks, so memory stays small) and returns the path. */
export async function randomFile(dir: string, name: string, size: number): Promise<string> {
  const path = join(dir, name);
  const handle = await open(path, 'w');
  try {
    for (let written = 0; written < size; ) {
      const block = randomBytes(Math.min(MiB, size - written));
      await handle.write(block, 0, block.length, written);
      written += block.length;
    }
  } finally {
    await handle.close();
  }
  return path;
}

/** sha256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Names of s3xfer temp files left in a directory. */
export async function leftoverTempFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.s3xfer-part'));
}

export { rm };

/** A writable that hashes what it gets (the bytes are not kept: memory stays small), each write taking `delayMs`. */
export function hashingSink(delayMs = 0) {
  const hash = createHash('sha256');
  let bytes = 0;
  const writable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      if (delayMs > 0) setTimeout(callback, delayMs);
      else callback();
    },
  });
  return { writable, sha256: () => hash.digest('hex'), bytes: () => bytes };
}
