import { execFileSync, spawn } from 'node:child_process';
import { chmod, lstat, mkdir, readFile, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, LocalFileError, uploadFile } from '../../src/index.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { createTestBucket, removeTestBucket, testClient } from '../helpers/s3.js';

const isRoot = process.getuid?.() === 0;
let client: S3Client;
let bucket: string;
let dir: string;
let source: string;

beforeAll(async () => {
  client = testClient();
  bucket = await createTestBucket(client, 's3xfer-destinations');
  dir = await tempDir();
  source = await randomFile(dir, 'source.bin', 12 * MiB);
  await uploadFile(client, source, bucket, 'object.bin');
});
afterAll(async () => {
  await removeTestBucket(client, bucket);
  await rm(dir, { recursive: true, force: true });
});

describe('what a download does to its destination', () => {
  it('keeps the permissions of the file it replaces', async () => {
    const target = join(dir, 'private.bin');
    await writeFile(target, 'old');
    await chmod(target, 0o600);
    await downloadFile(client, bucket, 'object.bin', target);
    expect((await stat(target)).mode & 0o777).toBe(0o600);
    expect(await sha256File(target)).toBe(await sha256File(source));
  });

  it('replaces a symlink with the downloaded file and leaves its target alone, as aws s3 cp does', async () => {
    const pointedAt = join(dir, 'pointed-at.txt');
    await writeFile(pointedAt, 'keep');
    const link = join(dir, 'link.bin');
    await symlink(pointedAt, link);
    await downloadFile(client, bucket, 'object.bin', link);
    expect((await lstat(link)).isFile()).toBe(true);
    expect(await readFile(pointedAt, 'utf8')).toBe('keep');
  });

  it('writes into a named pipe in order instead of replacing it', async () => {
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const copy = join(dir, 'from-pipe.bin');
    const reader = spawn('sh', ['-c', `cat "${fifo}" > "${copy}"`]);
    const readerDone = new Promise((resolve) => reader.on('exit', resolve));
    const result = await downloadFile(client, bucket, 'object.bin', fifo, { config: { partSize: 5 * MiB, multipartThreshold: 5 * MiB } });
    await readerDone;
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect(result).toMatchObject({ multipart: false, parts: 1 });
    expect(await sha256File(copy)).toBe(await sha256File(source));
  });

  it.skipIf(!isRoot)('writes into a character device (like /dev/null) instead of replacing it', async () => {
    const device = join(dir, 'null-device');
    execFileSync('mknod', [device, 'c', '1', '3']);
    await downloadFile(client, bucket, 'object.bin', device);
    expect((await lstat(device)).isCharacterDevice()).toBe(true);
  });

  it.skipIf(!isRoot)('reports a full disk as such, at once, and leaves nothing behind', async (context) => {
    const small = join(dir, 'small-fs');
    await mkdir(small);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small], { stdio: 'ignore' });
    } catch {
      context.skip('this machine does not let the tests mount a small tmpfs');
    }
    try {
      const started = performance.now();
      const failure = await downloadFile(client, bucket, 'object.bin', join(small, 'full.bin')).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(LocalFileError);
      expect((failure as LocalFileError).code).toBe('ENOSPC');
      expect((failure as Error).message).toMatch(/no space left on device/);
      expect(performance.now() - started).toBeLessThan(3000); // not retried as a network failure
      expect(await leftoverTempFiles(small)).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
      await rmdir(small);
    }
  });
});
