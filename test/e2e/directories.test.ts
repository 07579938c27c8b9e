/**
 * End-to-end: the directory commands of the built CLI — `cp --recursive`, `sync`, `ls`, `rm` —
 * against the real S3 server: what they print, their exit codes (0 done, 1 something failed,
 * 2 something skipped or bad usage), and what they leave on both sides. Trees are small files
 * (plus one multipart file), commands run with --concurrency 32.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, chmod, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteBucketPolicyCommand, HeadObjectCommand, PutBucketPolicyCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import { type FaultProxy, isGetObject, isPutObject, isUploadPart, type ProxiedRequest, startFaultProxy } from '../helpers/fault-proxy.js';
import { MiB, rm, tempDir } from '../helpers/files.js';
import { cliEnv, openMultipartUploads, s3Server } from '../helpers/s3.js';
import {
  exists,
  hashes,
  keysUnder as keysIn,
  lastModifiedUnder as lastModifiedIn,
  namesUnder,
  putObjects as putIn,
  readTree,
  smallFiles,
  sortedPaths,
  writeTree,
} from '../helpers/trees.js';
import { escapeRegExp, expectExitCode, expectFailure, expectNoNoise } from './expect-cli.js';
import {
  type CliOptions,
  type CliResult,
  closeCliWorkspace,
  describeResult,
  endpointGoneOnceHeld,
  openCliWorkspace,
  runCli,
} from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('dirs'));
});

afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

// --- helpers ---

/** Runs the CLI in the work directory with the test server's settings. */
function s3xfer(args: string[], options: Partial<CliOptions> = {}): Promise<CliResult> {
  return runCli(['--concurrency', '32', ...args], { env: cliEnv(), cwd: work, ...options });
}

const url = (key: string) => `s3://${bucket}/${key}`;
const keysUnder = (prefix: string) => keysIn(client, bucket, prefix);
const putObjects = (objects: Record<string, string | Uint8Array>) => putIn(client, bucket, objects);
const lines = (text: string) => text.split('\n').filter((line) => line !== '');
/** User `nobody`, to run the CLI as someone who may not read or write root's files. */
const NOBODY = 65534;

/** Exit 0, nothing on stderr but the summary line. */
function expectDone(result: CliResult): void {
  expectExitCode(result, 0);
  expectNoNoise(result.stderr);
  expect(lines(result.stderr), describeResult(result)).toHaveLength(1);
}

/** The job's summary: the last line on stderr (`3 files, 8 B in 0.1 s (…); 2 skipped`). */
const summaryOf = (result: CliResult) => lines(result.stderr).at(-1) ?? '';

/** A run that changed nothing: no result line, and a summary of `unchanged` files left as they were. */
function expectNothingTransferred(result: CliResult, unchanged: number): void {
  expectDone(result);
  expect(result.stdout, describeResult(result)).toBe('');
  expect(summaryOf(result)).toMatch(new RegExp(`^nothing transferred in \\d+\\.\\d s; ${unchanged} unchanged$`));
}

/** `upload: SRC → DST  SIZE in T s (RATE)` → `upload: SRC → DST` */
const actions = (result: CliResult) => lines(result.stdout).map((line) => line.replace(/ {2}\S+ \S+ in .*$/, ''));

/** The `s3xfer: warning: …` lines on stderr. */
const warnings = (result: CliResult) => lines(result.stderr).filter((line) => line.startsWith('s3xfer: warning: '));

// --- cp --recursive ---

describe('cp --recursive', () => {
  it('DIR → s3://bucket/prefix/ and back: keys are the relative paths joined by "/", one line per file, byte for byte', async () => {
    const files = { ...smallFiles(200), 'big/multipart.bin': randomBytes(6 * MiB + 1) };
    await writeTree(join(work, 'tree'), files);
    const sizes = ['--multipart-threshold', '5MiB', '--part-size', '5MiB'];

    const up = await s3xfer(['cp', '--recursive', 'tree', url('cp/'), ...sizes]);
    expectDone(up);
    expect(actions(up).sort()).toEqual(sortedPaths(files).map((path) => `upload: tree/${path} → ${url(`cp/${path}`)}`));
    expect(summaryOf(up)).toMatch(/^201 files, 6\.\d MiB in \d+\.\d s \(.+\/s\)$/);
    expect(await keysUnder('cp/')).toEqual(sortedPaths(files));
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cp/big/multipart.bin' }));
    expect(head.ETag, 'uploaded in two parts').toMatch(/-2"$/);

    const down = await s3xfer(['cp', '--recursive', url('cp/'), 'tree-copy', ...sizes]);
    expectDone(down);
    expect(actions(down)).toHaveLength(201);
    expect(actions(down)).toContain(`download: ${url('cp/big/multipart.bin')} → ${join('tree-copy', 'big', 'multipart.bin')}`);
    expect(await readTree(join(work, 'tree-copy'))).toEqual(hashes(files));
  });
});

// --- sync ---

describe('sync', () => {
  it('copies everything the first time and nothing the second, up and down; a sync back after the download sends nothing; a resized file is sent again', async () => {
    const files = smallFiles(40);
    await writeTree(join(work, 'sync-src'), files);

    const up = await s3xfer(['sync', 'sync-src', url('sync/')]);
    expectDone(up);
    expect(actions(up)).toHaveLength(40);
    expectNothingTransferred(await s3xfer(['sync', 'sync-src', url('sync/')]), 40);

    const down = await s3xfer(['sync', url('sync/'), 'sync-copy']);
    expectDone(down);
    expect(actions(down)).toHaveLength(40);
    expect(await readTree(join(work, 'sync-copy'))).toEqual(hashes(files));
    expectNothingTransferred(await s3xfer(['sync', url('sync/'), 'sync-copy']), 40);

    // The download set each file's time from LastModified: the copy is not newer than the objects.
    expectNothingTransferred(await s3xfer(['sync', 'sync-copy', url('sync/')]), 40);

    // A file whose size changed goes up again, and comes down again into the copy.
    const [resized] = sortedPaths(files);
    await appendFile(join(work, 'sync-src', resized!), ' and more');
    const again = await s3xfer(['sync', 'sync-src', url('sync/')]);
    expectDone(again);
    expect(actions(again)).toEqual([`upload: sync-src/${resized} → ${url(`sync/${resized}`)}`]);
    expect(summaryOf(again)).toMatch(/^1 file, .* in .*; 39 unchanged$/);
    const back = await s3xfer(['sync', url('sync/'), 'sync-copy']);
    expect(actions(back)).toEqual([`download: ${url(`sync/${resized}`)} → ${join('sync-copy', resized!)}`]);
    expect(await readFile(join(work, 'sync-copy', resized!), 'utf8')).toMatch(/ and more$/);
  });

  it('--size-only ignores a newer file of the same size; --exact-timestamps downloads a same-sized object whose time differs', async () => {
    await writeTree(join(work, 'modes'), { 'same.txt': 'aaaa' });
    expectDone(await s3xfer(['sync', 'modes', url('modes/')]));
    const file = join(work, 'modes', 'same.txt');
    await writeFile(file, 'bbbb');
    await utimes(file, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));

    expectNothingTransferred(await s3xfer(['sync', '--size-only', 'modes', url('modes/')]), 1);
    expect(actions(await s3xfer(['sync', 'modes', url('modes/')]))).toEqual([`upload: modes/same.txt → ${url('modes/same.txt')}`]);

    // Now the file is older than its object, with other bytes of the same size.
    const objectTime = (await lastModifiedIn(client, bucket, 'modes/')).get('same.txt')!;
    await writeFile(file, 'cccc');
    await utimes(file, new Date(objectTime - 60_000), new Date(objectTime - 60_000));
    expectNothingTransferred(await s3xfer(['sync', url('modes/'), 'modes']), 1);
    const exact = await s3xfer(['sync', '--exact-timestamps', url('modes/'), 'modes']);
    expectDone(exact);
    expect(actions(exact)).toEqual([`download: ${url('modes/same.txt')} → modes/same.txt`]);
    expect(await readFile(file, 'utf8')).toBe('bbbb');
  });

  it('--delete removes what the source lacks, up and down, and prints each deletion', async () => {
    await writeTree(join(work, 'del-src'), { 'keep.txt': 'keep' });
    await putObjects({ 'del/keep.txt': 'keep', 'del/gone.txt': 'x', 'del/sub/gone.txt': 'x' });

    const kept = await s3xfer(['sync', 'del-src', url('del/')]);
    expectDone(kept);
    expect(await keysUnder('del/')).toEqual(['gone.txt', 'keep.txt', 'sub/gone.txt']);
    const up = await s3xfer(['sync', '--delete', 'del-src', url('del/')]);
    expectDone(up);
    expect(actions(up)).toEqual([`delete: ${url('del/gone.txt')}`, `delete: ${url('del/sub/gone.txt')}`]);
    expect(await keysUnder('del/')).toEqual(['keep.txt']);

    await writeTree(join(work, 'del-dst'), { 'old.txt': 'x', 'sub/old.txt': 'x' });
    const down = await s3xfer(['sync', '--delete', url('del/'), 'del-dst']);
    expectDone(down);
    expect(actions(down).sort()).toEqual([
      'delete: del-dst/old.txt',
      'delete: del-dst/sub/old.txt',
      `download: ${url('del/keep.txt')} → ${join('del-dst', 'keep.txt')}`,
    ]);
    expect(await namesUnder(join(work, 'del-dst'))).toEqual(['keep.txt', 'sub/']);
  });

  it('--dryrun prints "(dryrun)" lines and changes nothing, on sync, cp --recursive and rm --recursive', async () => {
    await writeTree(join(work, 'dry'), { 'new.txt': 'new' });
    await putObjects({ 'dry/extra.txt': 'extra' });
    await writeTree(join(work, 'dry-dst'), { 'local-only.txt': 'x' });

    const runs = await Promise.all([
      s3xfer(['sync', '--dryrun', '--delete', 'dry', url('dry/')]),
      s3xfer(['sync', '--dryrun', '--delete', url('dry/'), 'dry-dst']),
      s3xfer(['cp', '--recursive', '--dryrun', url('dry/'), 'dry-new']),
      s3xfer(['sync', '--dryrun', url('dry/'), 'dry-new']),
      s3xfer(['rm', '--recursive', '--dryrun', url('dry/')]),
    ]);
    for (const run of runs) expectDone(run);
    expect(runs.map((run) => lines(run.stdout))).toEqual([
      [`(dryrun) upload: dry/new.txt → ${url('dry/new.txt')}`, `(dryrun) delete: ${url('dry/extra.txt')}`],
      [`(dryrun) download: ${url('dry/extra.txt')} → ${join('dry-dst', 'extra.txt')}`, '(dryrun) delete: dry-dst/local-only.txt'],
      [`(dryrun) download: ${url('dry/extra.txt')} → ${join('dry-new', 'extra.txt')}`],
      [`(dryrun) download: ${url('dry/extra.txt')} → ${join('dry-new', 'extra.txt')}`],
      [`(dryrun) delete: ${url('dry/extra.txt')}`],
    ]);
    // The summary says what would have been done, not "0 files".
    expect(runs.map(summaryOf)).toEqual([
      expect.stringMatching(/^\(dryrun\) 1 file, 3 B to transfer, 1 to delete; nothing changed \(\d+\.\d s\)$/),
      expect.stringMatching(/^\(dryrun\) 1 file, 5 B to transfer, 1 to delete; nothing changed \(\d+\.\d s\)$/),
      expect.stringMatching(/^\(dryrun\) 1 file, 5 B to transfer; nothing changed \(\d+\.\d s\)$/),
      expect.stringMatching(/^\(dryrun\) 1 file, 5 B to transfer; nothing changed \(\d+\.\d s\)$/),
      expect.stringMatching(/^\(dryrun\) 1 to delete; nothing changed \(\d+\.\d s\)$/),
    ]);
    expect(await keysUnder('dry/')).toEqual(['extra.txt']);
    expect(await namesUnder(join(work, 'dry-dst'))).toEqual(['local-only.txt']);
    expect(await exists(join(work, 'dry-new'))).toBe(false);
  });
});

// --- filters ---

describe('--include/--exclude apply in command-line order, the last match winning', () => {
  const onlyTxt = ['--exclude', '*', '--include', '*.txt'];
  const nothing = ['--include', '*.txt', '--exclude', '*'];

  beforeAll(async () => {
    await writeTree(join(work, 'filter'), { 'a.txt': 'a', 'b.log': 'b', 'sub/c.txt': 'c', 'sub/d.log': 'd' });
  });

  it('on cp --recursive (flags before or after the operands)', async () => {
    const runs = await Promise.all([
      s3xfer(['cp', '--recursive', ...onlyTxt, 'filter', url('filter-cp/1/')]),
      s3xfer(['cp', '--recursive', 'filter', url('filter-cp/2/'), ...nothing]),
    ]);
    for (const run of runs) expectDone(run);
    expect(await keysUnder('filter-cp/')).toEqual(['1/a.txt', '1/sub/c.txt']);
  });

  it('on sync', async () => {
    const runs = await Promise.all([
      s3xfer(['sync', ...onlyTxt, 'filter', url('filter-sync/1/')]),
      s3xfer(['sync', ...nothing, 'filter', url('filter-sync/2/')]),
    ]);
    for (const run of runs) expectDone(run);
    expect(await keysUnder('filter-sync/')).toEqual(['1/a.txt', '1/sub/c.txt']);
  });

  it('on rm --recursive', async () => {
    await putObjects({ 'filter-rm/a.txt': 'a', 'filter-rm/b.log': 'b', 'filter-rm/sub/c.txt': 'c' });
    expectDone(await s3xfer(['rm', '--recursive', ...nothing, url('filter-rm/')]));
    expect(await keysUnder('filter-rm/')).toEqual(['a.txt', 'b.log', 'sub/c.txt']);
    expectDone(await s3xfer(['rm', '--recursive', ...onlyTxt, url('filter-rm/')]));
    expect(await keysUnder('filter-rm/')).toEqual(['b.log']);
  });
});

// --- ls ---

const TIME = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`;

describe('ls', () => {
  beforeAll(async () => {
    await putObjects({ 'ls/a.txt': 'a', 'ls/big.bin': randomBytes(2048), 'ls/sub/x': 'x', 'ls/sub/deeper/y': 'yy' });
  });

  it('without a URL lists the buckets', async () => {
    const result = await s3xfer(['ls']);
    expectExitCode(result, 0);
    expect(lines(result.stdout)).toContainEqual(expect.stringMatching(new RegExp(`^${TIME} ${escapeRegExp(bucket)}$`)));
  });

  it('lists PRE prefixes and objects one level down; --recursive every key; --human-readable; --summarize (as the aws CLI prints them)', async () => {
    const level = await s3xfer(['ls', url('ls/')]);
    expectExitCode(level, 0);
    // As the aws CLI prints them: the prefixes of each page first, then its objects.
    expect(lines(level.stdout)).toEqual([
      `${' '.repeat(27)}PRE sub/`,
      expect.stringMatching(new RegExp(`^${TIME} {10}1 a\\.txt$`)),
      expect.stringMatching(new RegExp(`^${TIME} {7}2048 big\\.bin$`)),
    ]);

    const all = await s3xfer(['ls', '--recursive', '--human-readable', '--summarize', url('ls/')]);
    expectExitCode(all, 0);
    expect(lines(all.stdout).map((line) => line.replace(new RegExp(`^${TIME} `), ''))).toEqual([
      '    1 Byte ls/a.txt',
      '   2.0 KiB ls/big.bin',
      '   2 Bytes ls/sub/deeper/y',
      '    1 Byte ls/sub/x',
      'Total Objects: 4',
      '   Total Size: 2.0 KiB',
    ]);
  });
});

describe('many keys', () => {
  const many = Array.from({ length: 1100 }, (_, i) => `many/k${String(i).padStart(4, '0')}`);
  let proxy: FaultProxy | undefined;

  beforeAll(async () => {
    await putObjects(Object.fromEntries(many.map((key) => [key, 'x'])));
  });
  afterAll(() => proxy?.close());

  it('ls paginates past 1,000 keys', async () => {
    const result = await s3xfer(['ls', '--recursive', '--summarize', url('many/')]);
    expectExitCode(result, 0);
    const listed = lines(result.stdout);
    expect(listed.slice(0, -2).map((line) => line.split(' ').at(-1))).toEqual(many);
    expect(listed.slice(-2)).toEqual(['Total Objects: 1100', '   Total Size: 1100']);
  });

  it('rm --recursive deletes them all in DeleteObjects batches of at most 1,000', async () => {
    proxy = await startFaultProxy({ upstream: s3Server().endpoint });
    const result = await s3xfer(['rm', '--recursive', url('many/')], { env: cliEnv({ AWS_ENDPOINT_URL: proxy.url }) });
    expectDone(result);
    expect(lines(result.stdout)).toHaveLength(1100);
    expect(summaryOf(result)).toMatch(/; 1100 deleted$/);
    expect(proxy.log.filter((entry) => entry.method === 'POST' && /(^|&)delete(=|&|$)/.test(entry.query))).toHaveLength(2);
    expect(await keysUnder('many/')).toEqual([]);
  });
});

// --- rm ---

describe('rm', () => {
  it('deletes one key', async () => {
    await putObjects({ 'rm1/one.txt': '1', 'rm1/one.txt.bak': '2' });
    const result = await s3xfer(['rm', url('rm1/one.txt')]);
    expectExitCode(result, 0);
    expect(lines(result.stdout)).toEqual([`delete: ${url('rm1/one.txt')}`]);
    expect(await keysUnder('rm1/')).toEqual(['one.txt.bak']);
  });

  it('refuses a prefix or a whole bucket without --recursive: exit 2, one line, nothing deleted', async () => {
    await putObjects({ 'rm2/x.txt': 'x' });
    const results = await Promise.all([url('rm2/'), `s3://${bucket}`, `s3://${bucket}/`].map((target) => s3xfer(['rm', target])));
    for (const result of results) expectFailure(result, 2, 'is a prefix', '--recursive');
    expect(await keysUnder('rm2/')).toEqual(['x.txt']);
  });

  it('reports each key the store refuses (exit 1) and deletes the others', async () => {
    await putObjects({ 'rm3/keep-1': 'x', 'rm3/free-1': 'x', 'rm3/free-2': 'x' });
    await client.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/rm3/keep-*` }],
        }),
      }),
    );
    let result: CliResult;
    let synced: CliResult;
    await mkdir(join(work, 'rm3-empty'), { recursive: true });
    try {
      result = await s3xfer(['rm', '--recursive', url('rm3/')]);
      synced = await s3xfer(['sync', '--delete', 'rm3-empty', url('rm3/')]);
    } finally {
      await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    }
    // One mention of the key and of the code (Ceph's message is the code again), the same for both.
    for (const run of [result, synced]) {
      expectExitCode(run, 1);
      expect(lines(run.stderr).filter((line) => line.startsWith('s3xfer: error: '))).toEqual([
        `s3xfer: error: delete ${url('rm3/keep-1')}: not deleted (AccessDenied)`,
      ]);
    }
    expect(await keysUnder('rm3/')).toEqual(['keep-1']);
  });
});

// --- safety ---

describe('safety', () => {
  it('never writes outside the destination: unsafe keys are skipped with a warning each (exit 2)', async () => {
    const unsafe = ['../x', 'a/../../x', '/etc/x', 'C:\\x', '\\\\host\\share', '..', 'a//b'];
    await putObjects(Object.fromEntries([...unsafe, 'ok.txt'].map((key) => [`hostile/${key}`, 'evil'])));
    // The destination sits two empty directories deep, so that an escape would show.
    const jail = join(work, 'jail');
    await mkdir(join(jail, 'inside'), { recursive: true });

    for (const command of ['cp', 'sync']) {
      const result = await s3xfer([command, ...(command === 'cp' ? ['--recursive'] : []), url('hostile/'), 'jail/inside/dest']);
      expectExitCode(result, 2);
      expectNoNoise(result.stderr);
      const skipped = warnings(result).map((line) => line.match(/^s3xfer: warning: skipped s3:\/\/[^/]+\/hostile\/(.*): the key /)?.[1]);
      expect(skipped.sort()).toEqual([...unsafe].sort());
      expect(await namesUnder(jail)).toEqual(['inside/', 'inside/dest/', 'inside/dest/ok.txt']);
    }
    expect(await exists('/etc/x')).toBe(false);
  });

  it('a key ending in "/" makes a directory; a key that is also a prefix ("a" and "a/b") is reported (exit 2)', async () => {
    await putObjects({ 'folders/empty/': '', 'folders/a': 'file', 'folders/a/b': 'under' });
    const result = await s3xfer(['cp', '--recursive', url('folders/'), 'folders']);
    expectExitCode(result, 2);
    expect(warnings(result)).toEqual([
      `s3xfer: warning: skipped ${url('folders/a/b')}: "a" is both an object and a prefix of "a/b": one of them cannot be a file here`,
    ]);
    expect(summaryOf(result)).toMatch(/^1 file, .*; 1 skipped$/);
    expect(await namesUnder(join(work, 'folders'))).toEqual(['a', 'empty/']);
  });

  it('file names with spaces, NFC and NFD unicode, "+", "%", "#", "?" and 200+ bytes round-trip; sync finds them unchanged', async () => {
    const names = ['with space.txt', 'caf\u00e9.txt', 'cafe\u0301.txt', 'a+b.txt', '100%.txt', '50%25.txt', 'c#.txt', 'what?.txt'];
    names.push(`${'é'.repeat(110)}.txt`);
    const files = Object.fromEntries(names.map((name, i) => [`dir ü/${name}`, `content ${i}`]));
    await writeTree(join(work, 'names'), files);

    expectDone(await s3xfer(['cp', '--recursive', 'names', url('names/')]));
    expect(new Set(await keysUnder('names/'))).toEqual(new Set(Object.keys(files)));

    const [listed, down, syncUp] = await Promise.all([
      s3xfer(['ls', '--recursive', url('names/')]),
      s3xfer(['cp', '--recursive', url('names/'), 'names-copy']),
      s3xfer(['sync', 'names', url('names/')]),
    ]);
    expect(new Set(lines(listed.stdout).map((line) => line.replace(/^\S+ \S+ +\d+ names\//, '')))).toEqual(new Set(Object.keys(files)));
    expectDone(down);
    expect(await readTree(join(work, 'names-copy'))).toEqual(hashes(files));
    expectNothingTransferred(syncUp, names.length);
    expectNothingTransferred(await s3xfer(['sync', url('names/'), 'names-copy']), names.length);
  });

  it("a local listing never picks up s3xfer's own temp files: not uploaded, not deleted by sync --delete", async () => {
    const temps = { '.a.txt.0123456789ab.s3xfer-part': 'partial', 'sub/.0123456789abcdef0123.s3xfer-part': 'not ours: 20 hex' };
    await writeTree(join(work, 'temps'), { 'a.txt': 'a', ...temps });
    expectDone(await s3xfer(['cp', '--recursive', 'temps', url('temps/')]));
    expect(await keysUnder('temps/')).toEqual(['a.txt', 'sub/.0123456789abcdef0123.s3xfer-part']);
    expectNothingTransferred(await s3xfer(['sync', '--delete', url('temps/'), 'temps']), 2);
    expect(await namesUnder(join(work, 'temps'))).toEqual([
      '.a.txt.0123456789ab.s3xfer-part',
      'a.txt',
      'sub/',
      'sub/.0123456789abcdef0123.s3xfer-part',
    ]);
  });

  it('skips symlink loops and FIFOs with a warning (exit 2); --no-follow-symlinks skips symlinks quietly', async () => {
    const root = join(work, 'links');
    await writeTree(root, { 'real/file.txt': 'real' });
    await symlink('real/file.txt', join(root, 'link.txt'));
    await symlink('..', join(root, 'real', 'loop'));
    execFileSync('mkfifo', [join(root, 'fifo')]);

    const followed = await s3xfer(['cp', '--recursive', 'links', url('links/1/')]);
    expectExitCode(followed, 2);
    expect(warnings(followed)).toEqual([
      's3xfer: warning: skipped links/fifo: is a FIFO (named pipe)',
      's3xfer: warning: skipped links/real/loop: is a directory already being listed (a symlink loop)',
    ]);
    expect(await keysUnder('links/1/')).toEqual(['link.txt', 'real/file.txt']);

    await rm(join(root, 'fifo'));
    const quiet = await s3xfer(['sync', '--no-follow-symlinks', 'links', url('links/2/')]);
    expectDone(quiet);
    expect(await keysUnder('links/2/')).toEqual(['real/file.txt']);
  });
});

// --- failures ---

describe('a failure on one file', () => {
  let proxy: FaultProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /**
   * A fresh directory that user `nobody` may enter, removed after the test, for a CLI run as
   * `nobody`: the test is skipped unless it runs as root (only root starts a process as another user).
   */
  async function nobodysDir(context: TestContext, name: string): Promise<string> {
    context.skip(process.getuid?.() !== 0, 'needs root to start the CLI as another user');
    const dir = await tempDir(`s3xfer-e2e-nobody-${name}-`);
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await chmod(dir, 0o755);
    return dir;
  }

  /** The CLI's environment, through a fault proxy that refuses (403 AccessDenied) the requests `match` picks. */
  async function refusing(match: (request: ProxiedRequest) => boolean) {
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [{ match, fault: { type: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } }],
    });
    return { env: cliEnv({ AWS_ENDPOINT_URL: proxy.url }) };
  }

  it('an upload refused midway leaves no multipart upload, and the other files still go up (exit 1)', async () => {
    const files = { ...smallFiles(30), 'big/multipart.bin': randomBytes(6 * MiB) };
    await writeTree(join(work, 'fail-up'), files);
    const options = await refusing(
      (r) => isUploadPart(r) && r.path.endsWith('/fail-up/big/multipart.bin') && r.query.get('partNumber') === '2',
    );

    const result = await s3xfer(
      ['cp', '--recursive', 'fail-up', url('fail-up/'), '--multipart-threshold', '5MiB', '--part-size', '5MiB'],
      options,
    );

    expectExitCode(result, 1);
    expect(lines(result.stderr).filter((line) => line.includes('error'))).toEqual([
      expect.stringMatching(
        new RegExp(
          `^s3xfer: error: upload fail-up/big/multipart\\.bin → ${escapeRegExp(url('fail-up/big/multipart.bin'))}: .*AccessDenied`,
        ),
      ),
    ]);
    expect(summaryOf(result)).toMatch(/^30 files, .*; 1 failed$/);
    expect(await keysUnder('fail-up/')).toEqual(sortedPaths(smallFiles(30)));
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
  });

  it("a failed file's line names it once: the reason after it does not repeat the URL", async () => {
    await writeTree(join(work, 'fail-once'), { 'a.txt': 'a', 'b.txt': 'b' });
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [
        {
          match: (r) => isPutObject(r) && r.path.endsWith('/a.txt'),
          fault: { type: 'status', status: 400, code: 'InvalidArgument', message: 'bad value' },
        },
      ],
    });
    const result = await s3xfer(['cp', '--recursive', 'fail-once', url('fail-once/')], { env: cliEnv({ AWS_ENDPOINT_URL: proxy.url }) });
    expectExitCode(result, 1);
    expect(lines(result.stderr).filter((line) => line.includes('error'))).toEqual([
      `s3xfer: error: upload fail-once/a.txt → ${url('fail-once/a.txt')}: the server answered (InvalidArgument, HTTP 400): bad value`,
    ]);
  });

  it('a download refused leaves no temp file, and the other files still arrive (exit 1)', async () => {
    const files = { ...smallFiles(30), 'broken/file.txt': 'refused' };
    await putObjects(Object.fromEntries(Object.entries(files).map(([path, body]) => [`fail-down/${path}`, body])));
    const options = await refusing((r) => isGetObject(r) && r.path.endsWith('/fail-down/broken/file.txt'));

    const result = await s3xfer(['cp', '--recursive', url('fail-down/'), 'fail-down'], options);

    expectExitCode(result, 1);
    expect(lines(result.stderr).filter((line) => line.includes('error'))).toEqual([
      expect.stringMatching(/^s3xfer: error: download .*broken\/file\.txt.*AccessDenied/),
    ]);
    const { 'broken/file.txt': _refused, ...arrived } = files;
    expect(await readTree(join(work, 'fail-down'))).toEqual(hashes(arrived));
    expect(await namesUnder(join(work, 'fail-down', 'broken'))).toEqual([]);
  });

  it('an endpoint that goes away midway: the files in flight fail, the rest are cancelled with one line that says why (exit 1), no temp file left', async () => {
    const objects = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`gone/f${String(i).padStart(2, '0')}.txt`, `file ${i}`]));
    await putObjects(objects);
    // The sixth GET and those after it hang until the proxy, the only way to the store, goes away.
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [{ match: isGetObject, fault: { type: 'stall', ms: 60_000 }, after: 5 }],
    });
    const running = s3xfer(['cp', '--recursive', url('gone/'), 'gone', '--concurrency', '4', '--max-attempts', '2'], {
      env: cliEnv({ AWS_ENDPOINT_URL: proxy.url }),
    });
    const result = await endpointGoneOnceHeld(proxy, running);

    expectExitCode(result, 1);
    const errors = lines(result.stderr).filter((line) => line.startsWith('s3xfer: error: '));
    const own = errors.filter((line) => line.startsWith('s3xfer: error: download '));
    // The transfers in flight when it went away (and those that began before one gave up) say so themselves.
    expect(own.length, describeResult(result)).toBeGreaterThan(0);
    expect(own.length, describeResult(result)).toBeLessThanOrEqual(8);
    for (const line of own) expect(line).toMatch(/: cannot reach the S3 endpoint: connection refused \(ECONNREFUSED\) after 2 attempts$/);
    expect(errors.at(-1)).toBe(`s3xfer: error: stopped: the S3 endpoint cannot be reached; ${35 - own.length} other transfers cancelled`);
    expect(summaryOf(result)).toMatch(/^5 files, .*; 35 failed$/);
    const left = await namesUnder(join(work, 'gone'));
    expect(left).toHaveLength(5);
    for (const name of left) expect(name).toMatch(/^f\d\d\.txt$/); // no temp file
  });

  it('a destination subdirectory the user cannot enter (run as nobody): its files fail with "permission denied", the others arrive (exit 1)', async (context) => {
    // A destination nobody can write, in a directory nobody can traverse; inside it one directory
    // of root's, mode 0700, which nobody can neither enter nor look into (stat fails with EACCES).
    const dir = await nobodysDir(context, 'dirs');
    const destination = join(dir, 'into');
    await mkdir(join(destination, 'locked'), { recursive: true });
    await chmod(destination, 0o777);
    await chmod(join(destination, 'locked'), 0o700);
    const files = { ...smallFiles(10), 'locked/a.txt': 'a', 'locked/b.txt': 'b' };
    await putObjects(Object.fromEntries(Object.entries(files).map(([path, body]) => [`locked-down/${path}`, body])));

    const result = await s3xfer(['cp', '--recursive', url('locked-down/'), destination], { uid: NOBODY, gid: NOBODY, cwd: dir });

    expectExitCode(result, 1);
    const errors = lines(result.stderr).filter((line) => line.includes('error'));
    expect(errors, describeResult(result)).toHaveLength(2);
    for (const line of errors) expect(line).toMatch(/^s3xfer: error: download .*locked\/[ab]\.txt.*permission denied/);
    expect(summaryOf(result)).toMatch(/^10 files, .*; 2 failed$/);
    const { 'locked/a.txt': _a, 'locked/b.txt': _b, ...arrived } = files;
    await chmod(join(destination, 'locked'), 0o755);
    expect(await readTree(destination)).toEqual(hashes(arrived));
    expect(await namesUnder(join(destination, 'locked'))).toEqual([]);
  });

  it('files and directories of the source the user may not read (run as nobody): skipped with a warning each, the others go up (exit 2), as the aws CLI does', async (context) => {
    const dir = await nobodysDir(context, 'source');
    const files = { ...smallFiles(6), 'secret.txt': 'root only', 'locked/inside.txt': 'unseen', 'open/also-secret.txt': 'root only' };
    await writeTree(join(dir, 'src'), files);
    for (const path of ['secret.txt', 'open/also-secret.txt']) await chmod(join(dir, 'src', path), 0o600);
    await chmod(join(dir, 'src', 'locked'), 0o700);

    for (const [verb, prefix] of [
      ['cp', 'unreadable-cp/'],
      ['sync', 'unreadable-sync/'],
    ] as const) {
      const args = verb === 'cp' ? ['cp', '--recursive', 'src', url(prefix)] : ['sync', 'src', url(prefix)];
      const result = await s3xfer(args, { uid: NOBODY, gid: NOBODY, cwd: dir });
      expectExitCode(result, 2);
      expect(warnings(result), describeResult(result)).toEqual([
        's3xfer: warning: skipped src/locked: cannot read the directory: permission denied',
        's3xfer: warning: skipped src/open/also-secret.txt: cannot be read: permission denied',
        's3xfer: warning: skipped src/secret.txt: cannot be read: permission denied',
      ]);
      expect(
        lines(result.stderr).filter((line) => line.includes('error')),
        describeResult(result),
      ).toEqual([]);
      expect(summaryOf(result)).toMatch(/^6 files, .*; 3 skipped$/);
      expect(await keysUnder(prefix)).toEqual(Object.keys(smallFiles(6)).sort());
    }
  });
});

// --- bad input ---

describe('bad input: one clear line, the right exit code, nothing changed', () => {
  it('a missing source directory (2), a file where a directory is needed (2)', async () => {
    await writeFile(join(work, 'a-file'), 'stays');
    await putObjects({ 'bad/x.txt': 'x' });
    const [missing, cpOntoFile, syncOntoFile] = await Promise.all([
      s3xfer(['cp', '--recursive', 'no-such-dir', url('bad/')]),
      s3xfer(['cp', '--recursive', url('bad/'), 'a-file']),
      s3xfer(['sync', url('bad/'), 'a-file']),
    ]);
    expectFailure(missing, 2, 'no-such-dir', 'does not exist');
    expectFailure(cpOntoFile, 2, 'a-file', 'a directory is needed');
    expectFailure(syncOntoFile, 2, 'a-file', 'a directory is needed');
    expect(await readFile(join(work, 'a-file'), 'utf8')).toBe('stays');
    expect(await keysUnder('bad/')).toEqual(['x.txt']);
  });

  it('a missing bucket (254, a service error), on every command, and no directory made for a download', async () => {
    const missing = `s3://${bucket}-missing/x/`;
    await writeTree(join(work, 'up'), { 'a.txt': 'a' });
    const results = await Promise.all([
      s3xfer(['cp', '--recursive', 'up', missing]),
      s3xfer(['cp', '--recursive', missing, 'from-missing-1']),
      s3xfer(['sync', 'up', missing]),
      s3xfer(['sync', missing, 'from-missing-2']),
      s3xfer(['ls', missing]),
      s3xfer(['rm', '--recursive', missing]),
    ]);
    // The bucket check or listing is a service error before any transfer: the aws CLI's 254.
    for (const result of results) expectFailure(result, 254, 'does not exist', 'NoSuchBucket');
    expect(await exists(join(work, 'from-missing-1'))).toBe(false);
    expect(await exists(join(work, 'from-missing-2'))).toBe(false);
  });

  it('conflicting flags (2): --size-only with --exact-timestamps; --include without --recursive on cp', async () => {
    await writeTree(join(work, 'flags'), { 'a.txt': 'a' });
    const [modes, include] = await Promise.all([
      s3xfer(['sync', '--size-only', '--exact-timestamps', 'flags', url('flags/')]),
      s3xfer(['cp', '--include', '*.txt', 'flags/a.txt', url('flags/a.txt')]),
    ]);
    expectFailure(modes, 2, '--size-only and --exact-timestamps cannot be used together');
    expectFailure(include, 2, '--include', '--recursive');
    expect(await keysUnder('flags/')).toEqual([]);
  });

  it('--dryrun on a one-file cp, as aws s3 cp: the line the copy would print, nothing sent or written; a missing source still exits 2', async () => {
    await writeTree(join(work, 'dry-one'), { 'a.txt': 'a' });
    await putObjects({ 'dry-one/b.txt': 'b' });
    const up = await s3xfer(['cp', 'dry-one/a.txt', url('dry-one/'), '--dryrun']);
    expectExitCode(up, 0);
    expect(lines(up.stdout)).toEqual([`(dryrun) upload: dry-one/a.txt → ${url('dry-one/a.txt')}`]);
    const down = await s3xfer(['cp', url('dry-one/b.txt'), 'dry-one/new-dir/', '--dryrun']);
    expectExitCode(down, 0);
    expect(lines(down.stdout)).toEqual([`(dryrun) download: ${url('dry-one/b.txt')} → dry-one/new-dir/b.txt`]);
    expectFailure(await s3xfer(['cp', 'dry-one/missing.txt', url('dry-one/'), '--dryrun']), 2, 'missing.txt');
    // A file in the way of the directories: the dry run fails as the copy would.
    const inTheWay = await s3xfer(['cp', url('dry-one/b.txt'), 'dry-one/a.txt/deeper/b.txt', '--dryrun']);
    expectFailure(inTheWay, 1, 'dry-one/a.txt: not a directory (a file is in the way)');
    expect(await keysUnder('dry-one/')).toEqual(['b.txt']);
    expect(await namesUnder(join(work, 'dry-one'))).toEqual(['a.txt']);
  });
});
