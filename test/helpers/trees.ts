/** Directory trees for the directory-command tests: write them, read them back, list them. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { listS3 } from '../../src/storage/index.js';

/** Relative path (`/`-separated) → content. */
export type Tree = Record<string, string | Uint8Array>;

/** Writes files under `root`, making directories as needed. */
export async function writeTree(root: string, files: Tree): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const [relative, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, relative)), { recursive: true });
    await writeFile(join(root, relative), content);
  }
}

/** Every regular file under `root`: relative path → sha256 of its bytes. */
export async function readTree(root: string, prefix = ''): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const relative = prefix + entry.name;
    if (entry.isDirectory()) Object.assign(files, await readTree(root, `${relative}/`));
    else if (entry.isFile()) files[relative] = sha256(await readFile(join(root, relative)));
  }
  return files;
}

/** Every name under `root` (files, directories with a trailing `/`, anything else), sorted. */
export async function namesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.map((e) => join(e.parentPath, e.name).slice(root.length + 1) + (e.isDirectory() ? '/' : '')).sort();
}

export const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** What {@link readTree} returns for a tree of these files. */
export const hashes = (files: Tree) => Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)]));

/** The relative paths of a tree sorted as S3 lists them (for ASCII names, code unit order is byte order). */
export const sortedPaths = (files: Tree) => Object.keys(files).sort();

/** `count` small files of assorted sizes (0–2 KiB) spread over nested directories. */
export function smallFiles(count: number): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < count; i++) files[`d${i % 7}/sub${i % 3}/f${String(i).padStart(4, '0')}.txt`] = randomBytes((i * 37) % 2048);
  return files;
}

export const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** Keys under `prefix`, relative to it, in listing order (all pages). */
export async function keysUnder(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of listS3(client, bucket, prefix)) if (entry.kind === 'file') keys.push(entry.relative);
  return keys;
}

/** Relative key → LastModified (ms) of every object under `prefix`. */
export async function lastModifiedUnder(client: S3Client, bucket: string, prefix: string): Promise<Map<string, number>> {
  const times = new Map<string, number>();
  for await (const entry of listS3(client, bucket, prefix)) if (entry.kind === 'file') times.set(entry.relative, entry.mtimeMs);
  return times;
}

const putLimit = pLimit(64);

/** Puts objects (key → body), many at once. */
export async function putObjects(client: S3Client, bucket: string, objects: Record<string, string | Uint8Array>): Promise<void> {
  await Promise.all(
    Object.entries(objects).map(([Key, Body]) => putLimit(() => client.send(new PutObjectCommand({ Bucket: bucket, Key, Body })))),
  );
}
