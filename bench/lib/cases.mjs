// The cases: what is moved (one file, or a tree of files), in which directions, by which tools.
// Also making their local data, and checking what each transfer produced (not timed).
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fmtSize, MiB, parseSize } from './util.mjs';

/**
 * Every case. `size` is the default, overridable with `--size ID=SIZE`: a file size, or for a
 * tree `COUNTxSIZE` (COUNT files of SIZE each) or `TOTAL/COUNT` (TOTAL split over COUNT files),
 * with `:DIRS` for the number of sub-directories the files are spread over. A `batch` takes a
 * tree's size (its files all in one directory): each file is one upload command, which s3xfer
 * runs as one `s3xfer run FILE` and the other tools as a shell loop of one process per file
 * (issue 8's goal: s3xfer ≤ 0.1 × the aws CLI's loop, and faster than rclone's).
 */
export const CASES = [
  { id: 'big', kind: 'file', size: '1GiB', directions: ['upload', 'download'], about: 'one big file' },
  { id: 'medium', kind: 'file', size: '64MiB', directions: ['upload', 'download'], about: 'one medium file' },
  { id: 'tiny', kind: 'file', size: '1KiB', directions: ['upload'], minRuns: 10, about: 'start-up + one request' },
  { id: 'tree-small', kind: 'tree', size: '2000x8KiB:20', directions: ['upload', 'download'], about: 'many small files' },
  { id: 'tree-big', kind: 'tree', size: '1GiB/100:10', directions: ['upload', 'download'], about: 'big data in 100 files' },
  {
    id: 'batch',
    kind: 'batch',
    size: '500x1KiB',
    directions: ['upload'],
    tools: ['s3xfer', 'aws', 'rclone'],
    about:
      'many one-file commands: s3xfer as one `s3xfer run FILE` process, the others as a shell loop of one process per file (`aws s3 cp`, `rclone copyto`), the whole loop timed',
  },
  {
    id: 'huge',
    kind: 'file',
    size: '4GiB',
    directions: ['upload', 'download'],
    tools: ['s3xfer'],
    optIn: true,
    about: "s3xfer's peak RSS on a huge file",
  },
];

export const DEFAULT_CASES = CASES.filter((c) => !c.optIn).map((c) => c.id);

/** The files of a case: [{ rel, size }] (rel: path under the case's local dir, '/'-separated). */
export function layout(c, sizeText) {
  if (c.kind === 'file') return [{ rel: `${c.id}.bin`, size: parseSize(sizeText) }];
  // A batch is a tree's files in one directory: one command (or process) per file.
  if (c.kind === 'batch') return layout({ ...c, kind: 'tree' }, sizeText).map((f) => ({ ...f, rel: f.rel.replace(/^.*\//, '') }));
  const m = /^\s*(?:(\d+)\s*x\s*([^/:]+)|([^/:]+)\/\s*(\d+))\s*(?::\s*(\d+))?\s*$/i.exec(sizeText);
  if (!m)
    throw new Error(`invalid tree size "${sizeText}" for ${c.id}: expected COUNTxSIZE or TOTAL/COUNT, then :DIRS (e.g. 2000x8KiB:20)`);
  const count = Number(m[1] ?? m[4]);
  const dirs = Math.max(1, Math.min(count, Number(m[5] ?? 1)));
  if (!(count >= 1)) throw new Error(`invalid tree size "${sizeText}": at least one file`);
  const total = m[2] ? parseSize(m[2]) * count : parseSize(m[3]);
  const base = Math.floor(total / count);
  if (base < 1) throw new Error(`invalid tree size "${sizeText}": less than a byte per file`);
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, i) => ({
    rel: `d${String(i % dirs).padStart(2, '0')}/f${String(i).padStart(width, '0')}.bin`,
    size: base + (i < total % count ? 1 : 0), // the remainder goes one byte each to the first files
  }));
}

export function describe(files, kind) {
  const total = files.reduce((a, f) => a + f.size, 0);
  if (kind === 'file') return fmtSize(total);
  if (kind === 'batch') return `${files.length} × ${fmtSize(files[0].size)} = ${fmtSize(total)}, one object per command`;
  const dirs = new Set(files.map((f) => f.rel.split('/')[0])).size;
  const sizes = new Set(files.map((f) => f.size));
  const each = sizes.size === 1 ? fmtSize(files[0].size) : `~${fmtSize(Math.round(total / files.length))}`;
  return `${files.length} × ${each} = ${fmtSize(total)} in ${dirs} dirs`;
}

/** Writes random files for `files` under `dir`; adds each file's sha256. */
export async function makeData(dir, files) {
  const buf = Buffer.alloc(8 * MiB);
  for (const f of files) {
    const path = join(dir, f.rel);
    await mkdir(join(path, '..'), { recursive: true });
    const handle = await open(path, 'w');
    const hash = createHash('sha256');
    try {
      for (let done = 0; done < f.size; ) {
        const chunk = buf.subarray(0, Math.min(buf.length, f.size - done));
        randomFillSync(chunk);
        hash.update(chunk);
        await handle.write(chunk, 0, chunk.length, done);
        done += chunk.length;
      }
    } finally {
      await handle.close();
    }
    f.sha256 = hash.digest('hex');
  }
}

function sha256File(path) {
  return new Promise((resolveHash, rejectHash) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 * MiB })
      .on('data', (d) => hash.update(d))
      .on('error', rejectHash)
      .on('end', () => resolveHash(hash.digest('hex')));
  });
}

async function walk(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile())
      out.push(
        relative(dir, join(e.parentPath ?? e.path, e.name))
          .split('\\')
          .join('/'),
      );
  }
  return out.sort();
}

/** Why a download at `path` (a file, or a dir for a tree) differs from `files`, or undefined. */
export async function checkDownload(path, files, kind) {
  if (kind === 'file') {
    const sha = await sha256File(path).catch((e) => `unreadable (${e.code ?? e.message})`);
    return sha === files[0].sha256 ? undefined : `the downloaded file differs (sha256 ${sha})`;
  }
  const got = await walk(path).catch(() => []);
  const want = files.map((f) => f.rel).sort();
  if (got.join('\n') !== want.join('\n')) {
    const missing = want.filter((r) => !got.includes(r));
    return `${got.length} files downloaded, ${want.length} expected (first missing: ${missing[0] ?? 'none'}; first found: ${got[0] ?? 'none'})`;
  }
  for (const f of files) {
    if ((await sha256File(join(path, f.rel))) !== f.sha256) return `${f.rel} differs`;
  }
  return undefined;
}

/** Why the objects under `prefix` differ from `files` (names and sizes), or undefined. */
export async function checkUpload(admin, bucket, prefix, files) {
  const got = new Map((await admin.list(bucket, prefix)).map((o) => [o.key.slice(prefix.length), o.size]));
  for (const f of files) {
    if (got.get(f.rel) !== f.size)
      return `object ${prefix}${f.rel}: ${got.has(f.rel) ? `${got.get(f.rel)} bytes, expected ${f.size}` : 'missing'}`;
  }
  if (got.size !== files.length) return `${got.size} objects under ${prefix}, expected ${files.length}`;
  return undefined;
}
