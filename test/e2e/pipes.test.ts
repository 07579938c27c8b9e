/**
 * End-to-end: the built CLI moving bytes through pipes against the real S3 server. `cp -
 * s3://…` uploads stdin (fed by this test, or by `cat` in a shell pipeline); `cp s3://… -`
 * writes the object to stdout, piped to sha256sum or `head -c 100` by bash, with every line
 * s3xfer prints on stderr. The 10,000-part limit itself is tested through the library (see
 * test/integration/streams.test.ts, with maxParts lowered); here --expected-size is shown to
 * raise the part size on a modest stream.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, randomFile, rm, sha256File } from '../helpers/files.js';
import { cliEnv, listKeys, openMultipartUploads } from '../helpers/s3.js';
import { expectExitCode, expectFailure, expectNoNoise } from './expect-cli.js';
import { CLI, type CliResult, closeCliWorkspace, describeResult, openCliWorkspace, pollUntil, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
/** 100 MiB of random bytes: 13 parts of 8 MiB. */
let bigFile: string;
let bigSha256: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('pipes'));
  bigFile = await randomFile(work, 'big.bin', 100 * MiB);
  bigSha256 = await sha256File(bigFile);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await closeCliWorkspace({ client, bucket, work });
});

const url = (key: string) => `s3://${bucket}/${key}`;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const md5Etag = (data: Buffer) => `"${createHash('md5').update(data).digest('hex')}"`;

/**
 * Runs `script` with bash, with $NODE and $CLI set and the arguments as $1, $2, …; a pipeline
 * ends with `exit $PIPESTATUS` (the status of its first command: s3xfer's, not sha256sum's).
 */
function bash(script: string, ...args: string[]): Promise<CliResult> {
  return runCli(['-c', script, 'bash', ...args], {
    command: 'bash',
    env: cliEnv({ NODE: process.execPath, CLI }),
    cwd: work,
    timeoutMs: 110_000,
  });
}

/** Starts the CLI with a pipe on its stdin; `feed` writes to it. */
function startWithStdin(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: tmpdir(), env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // A CLI that exits before reading all of stdin is what some tests expect.
  child.stdin!.on('error', () => {});
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, timedOut: false }));
  });
  return { child, result };
}

/** Runs the CLI with `input` on stdin, written in 1 MiB pieces as a producer in a pipeline would. */
async function withStdin(args: string[], input: Buffer): Promise<CliResult> {
  const { child, result } = startWithStdin(args);
  // A CLI that exits early (an error) drains nothing more: stop feeding it then.
  const exited = result.then(() => true);
  for (let offset = 0; offset < input.length; offset += MiB) {
    if (child.stdin!.write(input.subarray(offset, offset + MiB))) continue;
    const drained = new Promise<boolean>((resolve) => child.stdin!.once('drain', () => resolve(false)));
    if (await Promise.race([drained, exited])) break;
  }
  child.stdin!.end();
  return result;
}

async function objectSha256(key: string): Promise<string> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return sha256(Buffer.from(await response.Body!.transformToByteArray()));
}

/** The transfer record of a successful --json command (then its summary, the last line). */
function jsonResult(result: CliResult): Record<string, unknown> {
  expectExitCode(result, 0);
  const lines = result.stdout.trim().split('\n');
  expect(lines, describeResult(result)).toHaveLength(2);
  expect(JSON.parse(lines[1]!)).toMatchObject({ type: 'summary', success: true, exitCode: 0 });
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

describe('cp - s3://bucket/key (upload from stdin)', () => {
  it('uploads a 100 MiB stream in 8 MiB parts, byte for byte', async () => {
    const result = await withStdin(['cp', '-', url('stdin/big.bin'), '--json'], await readFile(bigFile));
    expect(jsonResult(result)).toMatchObject({ source: '-', bytes: 100 * MiB, parts: 13, multipart: true, success: true });
    expectNoNoise(result.stderr);
    expect(result.stderr).toBe('');
    expect(await objectSha256('stdin/big.bin')).toBe(bigSha256);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
  });

  it('reads stdin from a shell pipeline (cat FILE | s3xfer cp - …)', async () => {
    const result = await bash('cat "$1" | "$NODE" "$CLI" cp - "$2"', bigFile, url('stdin/piped.bin'));
    expectExitCode(result, 0);
    expect(result.stdout).toMatch(/^upload: - → s3:\/\/\S+\/stdin\/piped\.bin {2}100\.0 MiB in /);
    expect(await objectSha256('stdin/piped.bin')).toBe(bigSha256);
  });

  it('--dryrun (or a filter) with stdin or stdout: exit 2, nothing sent, the stream not read', async () => {
    for (const flags of [['--dryrun'], ['--exclude', '*']]) {
      const up = await bash(`echo data | "$NODE" "$CLI" cp - "$1" ${flags.join(' ')}`, url('stdin/dry.bin'));
      expectFailure(up, 2, flags[0]!, 'stdin or stdout');
      const down = await bash(`"$NODE" "$CLI" cp "$1" - ${flags.join(' ')}`, url('stdin/piped.bin'));
      expectFailure(down, 2, flags[0]!, 'stdin or stdout');
    }
    await expect(objectSha256('stdin/dry.bin')).rejects.toMatchObject({ name: 'NoSuchKey' });
  });

  it('sends a stream that fits in one part as one PutObject (a plain MD5 ETag)', async () => {
    const data = Buffer.from('a short stream\n'.repeat(70_000)); // ~1 MiB
    const result = await withStdin(['cp', '-', url('stdin/short.txt'), '--json', '--content-type', 'text/plain'], data);
    expect(jsonResult(result)).toMatchObject({ bytes: data.length, parts: 1, multipart: false, etag: md5Etag(data) });
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'stdin/short.txt' }));
    expect(head).toMatchObject({ ETag: md5Etag(data), ContentLength: data.length, ContentType: 'text/plain' });
  });

  it('a stream without --content-type is application/octet-stream, in one PutObject and in parts (as a file is)', async () => {
    for (const [key, size] of [
      ['stdin/typeless-one', 1024],
      ['stdin/typeless-parts', 6 * MiB],
    ] as const) {
      const result = await withStdin(['cp', '-', url(key), '--json', '--part-size', '5MiB'], Buffer.alloc(size, 'x'));
      expect(jsonResult(result)).toMatchObject({ bytes: size, multipart: size > 5 * MiB });
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ContentType, key).toBe('application/octet-stream');
    }
  });

  it('uploads an empty stdin as an empty object', async () => {
    const result = await withStdin(['cp', '-', url('stdin/empty'), '--json'], Buffer.alloc(0));
    expect(jsonResult(result)).toMatchObject({ bytes: 0, parts: 1, multipart: false, etag: md5Etag(Buffer.alloc(0)) });
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'stdin/empty' }));
    expect(head.ContentLength).toBe(0);
  });

  it('refuses a stdin that is a directory (Node reads it as empty): exit 2, nothing stored', async () => {
    const fromDir = await bash('"$NODE" "$CLI" cp - "$1" < "$2"', url('stdin/from-dir'), tmpdir());
    expectFailure(fromDir, 2, 'stdin ("-") is a directory');
    expect(await listKeys(client, bucket)).not.toContain('stdin/from-dir');
  });

  it('raises the part size with --expected-size so that the size fits in 10,000 parts', async () => {
    const data = (await readFile(bigFile)).subarray(0, 30 * MiB);
    // 100 GiB / 10,000 = 10.24 MiB: parts of 11 MiB, so 3 of them for 30 MiB (6 without the flag).
    const raised = await withStdin(
      ['cp', '-', url('stdin/expected.bin'), '--part-size', '5MiB', '--expected-size', '100GiB', '--json'],
      data,
    );
    expect(jsonResult(raised)).toMatchObject({ bytes: 30 * MiB, parts: 3, multipart: true });
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'stdin/expected.bin' }));
    expect(head.Metadata?.['s3xfer-part-size']).toBe(String(11 * MiB));
    expect(head.ETag).toMatch(/-3"$/);
    expect(await objectSha256('stdin/expected.bin')).toBe(sha256(data));

    const plain = await withStdin(['cp', '-', url('stdin/plain.bin'), '--part-size', '5MiB', '--json'], data);
    expect(jsonResult(plain)).toMatchObject({ parts: 6 });
  });

  it('stops on SIGINT: exit 130, the multipart upload aborted, no object', async () => {
    const { child, result } = startWithStdin(['cp', '-', url('stdin/interrupted.bin'), '--part-size', '5MiB']);
    // 20 MiB, and stdin left open: the upload is under way and waits for more.
    child.stdin!.write((await readFile(bigFile)).subarray(0, 20 * MiB));
    const started = await pollUntil(async () => ((await openMultipartUploads(client, bucket)).length > 0 ? true : undefined), {
      stopIf: () => child.exitCode !== null,
    });
    expect(started, 'the multipart upload never started').toBe(true);
    child.kill('SIGINT');
    const done = await result;
    expectExitCode(done, 130);
    expect(done.stderr).toMatch(/interrupted \(SIGINT\)/);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain('stdin/interrupted.bin');
  });

  it('refuses a destination without a full key, and --expected-size without stdin', async () => {
    expectFailure(await withStdin(['cp', '-', url('stdin/')], Buffer.from('x')), 2, 'has no file name');
    expectFailure(await runCli(['cp', bigFile, url('x'), '--expected-size', '1GiB'], { env: cliEnv() }), 2, '--expected-size');
    expectFailure(await runCli(['cp', '-', '-'], { env: cliEnv() }), 2, 'not both');
  });
});

describe('cp s3://bucket/key - (download to stdout)', () => {
  beforeAll(async () => {
    const done = await runCli(['cp', bigFile, url('out/big.bin')], { env: cliEnv() });
    expectExitCode(done, 0);
  });

  it('writes a 100 MiB object, fetched in parallel ranges, in order to a pipe (| sha256sum)', async () => {
    const result = await bash('"$NODE" "$CLI" cp "$1" - | sha256sum; exit $PIPESTATUS', url('out/big.bin'));
    expectExitCode(result, 0);
    expect(result.stdout).toBe(`${bigSha256}  -\n`);
    // The result line goes to stderr: stdout carries the object.
    expect(result.stderr).toMatch(/^download: s3:\/\/\S+\/out\/big\.bin → - {2}100\.0 MiB in /);
    expectNoNoise(result.stderr);
  });

  it('puts --json records on stderr, never on the stdout that carries the data', async () => {
    const result = await bash('"$NODE" "$CLI" cp "$1" - --json | sha256sum; exit $PIPESTATUS', url('out/big.bin'));
    expectExitCode(result, 0);
    expect(result.stdout).toBe(`${bigSha256}  -\n`);
    const records = result.stderr.trim().split('\n');
    expect(records).toHaveLength(2);
    expect(JSON.parse(records[1]!)).toMatchObject({ type: 'summary', success: true });
    expect(JSON.parse(records[0]!)).toMatchObject({
      operation: 'download',
      destination: '-',
      bytes: 100 * MiB,
      parts: 13,
      success: true,
    });
  });

  it('writes a single-part object (checked against its MD5 ETag) and an empty one', async () => {
    const data = Buffer.from('hello, pipe\n');
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'out/small.txt', Body: data }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'out/empty', Body: Buffer.alloc(0) }));
    const small = await runCli(['cp', url('out/small.txt'), '-'], { env: cliEnv() });
    expectExitCode(small, 0);
    expect(small.stdout).toBe('hello, pipe\n');
    const empty = await runCli(['cp', url('out/empty'), '-', '--quiet'], { env: cliEnv() });
    expectExitCode(empty, 0);
    expect(empty.stdout).toBe('');
    expect(empty.stderr).toBe('');
  });

  it('ends quietly with exit 141 when the reader goes away (| head -c 100)', async () => {
    const result = await bash('"$NODE" "$CLI" cp "$1" - | head -c 100 | wc -c; exit $PIPESTATUS', url('out/big.bin'));
    expectExitCode(result, 141);
    expect(result.stdout.trim()).toBe('100');
    expect(result.stderr, describeResult(result)).toBe('');
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
  });

  it('ends quietly with exit 141 for a single-part object too', async () => {
    const data = Buffer.alloc(4 * MiB, 'x');
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'out/4mib', Body: data }));
    const result = await bash('"$NODE" "$CLI" cp "$1" - | head -c 100 >/dev/null; exit $PIPESTATUS', url('out/4mib'));
    expectExitCode(result, 141);
    expect(result.stderr).toBe('');
  });

  it('writes to a file (> out, and >> after what it holds) byte for byte', async () => {
    const result = await bash(
      'echo before > appended.bin && "$NODE" "$CLI" cp "$1" - > out.bin && "$NODE" "$CLI" cp "$1" - >> appended.bin',
      url('out/big.bin'),
    );
    expectExitCode(result, 0);
    expect(await sha256File(join(work, 'out.bin'))).toBe(bigSha256);
    const appended = await readFile(join(work, 'appended.bin'));
    expect(appended.subarray(0, 7).toString()).toBe('before\n');
    expect(sha256(appended.subarray(7))).toBe(bigSha256);
  });

  it('a file on a disk that fills up: exit 1, "no space left on device", never a short file and success', async (context) => {
    // Node's stdout on a file drops what a short write left out; only a real full disk shows it.
    context.skip(process.getuid?.() !== 0, 'needs root to mount a small tmpfs');
    const full = join(work, 'full');
    await mkdir(full);
    const mounted = await runCli(['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', full], { command: 'mount', env: process.env });
    context.skip(mounted.code !== 0, `cannot mount a tmpfs here: ${mounted.stderr.trim()}`);
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'out/3mib', Body: Buffer.alloc(3 * MiB, 'y') }));
      for (const key of ['out/3mib', 'out/big.bin']) {
        const result = await bash('"$NODE" "$CLI" cp "$1" - > "$2"', url(key), join(full, 'out.bin'));
        expectFailure(result, 1, '-: cannot write: no space left on device');
        await rm(join(full, 'out.bin'));
      }
    } finally {
      await runCli([full], { command: 'umount', env: process.env });
    }
  });

  it('reports a missing object on stderr with exit 1, writing nothing', async () => {
    const result = await runCli(['cp', url('out/missing'), '-'], { env: cliEnv() });
    expectFailure(result, 1, 'does not exist');
  });
});
