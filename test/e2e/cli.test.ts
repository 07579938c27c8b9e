/**
 * End-to-end: the built CLI (`node bin/s3xfer.js`) against the real S3 server, on the paths that
 * succeed. Every transfer is checked byte for byte (sha256) and by what the CLI prints.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { cliEnv, listKeys, openMultipartUploads } from '../helpers/s3.js';
import { expectExitCode, expectNoNoise, resultLinePattern } from './expect-cli.js';
import { type CliOptions, closeCliWorkspace, describeResult, openCliWorkspace, REPO_ROOT, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('cli'));
});

afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

/** Runs the CLI in the work directory with the test server's settings. */
function s3xfer(args: string[], options: Partial<CliOptions> = {}) {
  return runCli(args, { env: cliEnv(), cwd: work, ...options });
}

/** Stdout holds exactly one line, matching `pattern`. */
function expectOneStdoutLine(stdout: string, pattern: RegExp): void {
  expect(stdout.endsWith('\n'), `stdout should end with a newline: ${JSON.stringify(stdout)}`).toBe(true);
  const lines = stdout.slice(0, -1).split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

/** A successful command: exit 0, no error and no warnings on stderr. */
function expectSuccess(result: Awaited<ReturnType<typeof runCli>>): void {
  expectExitCode(result, 0);
  expect(result.stderr, describeResult(result)).not.toContain('error');
  expectNoNoise(result.stderr);
}

async function objectSha256(key: string): Promise<string> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return createHash('sha256')
    .update(await response.Body!.transformToByteArray())
    .digest('hex');
}

async function head(key: string) {
  return client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
}

describe('cp FILE s3://bucket/key, then cp s3://bucket/key FILE', () => {
  // The default multipart threshold and part size are 8 MiB: these sizes sit on both sides of it.
  it.each([
    { label: '0 B (an empty file)', size: 0, shown: '0 B' },
    { label: '1 B', size: 1, shown: '1 B' },
    { label: '8 MiB − 1 (the largest single PUT/GET by default)', size: 8 * MiB - 1, shown: '8.0 MiB' },
    { label: '8 MiB (exactly the multipart threshold: one part)', size: 8 * MiB, shown: '8.0 MiB' },
    { label: '8 MiB + 1 (two parts, the last one of 1 byte)', size: 8 * MiB + 1, shown: '8.0 MiB' },
    { label: '~20 MiB (three parts, the last one short)', size: 20 * MiB + 12_345, shown: '20.0 MiB' },
  ])('round-trips $label byte for byte and prints one result line each way', async ({ size, shown }) => {
    const name = `in-${size}.bin`;
    const key = `roundtrip/${name}`;
    const source = await randomFile(work, name, size);
    const expected = await sha256File(source);

    const up = await s3xfer(['cp', name, `s3://${bucket}/${key}`]);
    expectSuccess(up);
    expectOneStdoutLine(up.stdout, resultLinePattern('upload', name, `s3://${bucket}/${key}`, shown));
    expect((await head(key)).ContentLength).toBe(size);
    expect(await objectSha256(key)).toBe(expected);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);

    const copy = `out-${size}.bin`;
    const down = await s3xfer(['cp', `s3://${bucket}/${key}`, copy]);
    expectSuccess(down);
    expectOneStdoutLine(down.stdout, resultLinePattern('download', `s3://${bucket}/${key}`, copy, shown));
    expect(await sha256File(join(work, copy))).toBe(expected);
    expect(await leftoverTempFiles(work)).toEqual([]);
  });
});

describe('upload FILE s3://bucket/prefix/', () => {
  it('writes the key prefix/<basename of FILE>', async () => {
    const dir = join(work, 'upload-prefix');
    await mkdir(dir);
    const source = await randomFile(dir, 'notes.bin', 4096);

    const result = await s3xfer(['upload', source, `s3://${bucket}/prefix/`]);

    expectSuccess(result);
    expectOneStdoutLine(result.stdout, resultLinePattern('upload', source, `s3://${bucket}/prefix/notes.bin`, '4.0 KiB'));
    expect((await listKeys(client, bucket)).filter((k) => k.startsWith('prefix/'))).toEqual(['prefix/notes.bin']);
    expect(await objectSha256('prefix/notes.bin')).toBe(await sha256File(source));
  });
});

describe('download s3://bucket/key [FILE|DIR/]', () => {
  const key = 'docs/report.txt';
  const body = 'quarterly report\nline two\n';

  beforeAll(async () => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  });

  it('without FILE writes ./<basename of the key> in the current directory', async () => {
    const cwd = await tempDir('s3xfer-e2e-cwd-');
    try {
      const result = await s3xfer(['download', `s3://${bucket}/${key}`], { cwd });

      expectSuccess(result);
      expectOneStdoutLine(result.stdout, resultLinePattern('download', `s3://${bucket}/${key}`, 'report.txt', `${body.length} B`));
      expect(await readdir(cwd)).toEqual(['report.txt']);
      expect(await readFile(join(cwd, 'report.txt'), 'utf8')).toBe(body);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it('into an existing directory given as DIR/ writes DIR/<basename of the key>', async () => {
    const dir = join(work, 'download-into-dir');
    await mkdir(dir);

    const result = await s3xfer(['download', `s3://${bucket}/${key}`, `${dir}/`]);

    expectSuccess(result);
    expectOneStdoutLine(result.stdout, resultLinePattern('download', `s3://${bucket}/${key}`, join(dir, 'report.txt'), `${body.length} B`));
    expect(await readdir(dir)).toEqual(['report.txt']);
    expect(await readFile(join(dir, 'report.txt'), 'utf8')).toBe(body);
  });

  it('over an existing file replaces its contents entirely', async () => {
    const dir = join(work, 'download-over-file');
    await mkdir(dir);
    const target = join(dir, 'existing.txt');
    // Longer than the object: a download that wrote in place without truncating would leave a tail.
    await writeFile(target, 'old contents that are longer than the object, so a leftover tail would show\n'.repeat(3));

    const result = await s3xfer(['cp', `s3://${bucket}/${key}`, target]);

    expectSuccess(result);
    expect(await readFile(target, 'utf8')).toBe(body);
    expect(await readdir(dir)).toEqual(['existing.txt']);
  });
});

describe('output modes', () => {
  it('--quiet prints nothing at all on a successful upload and download', async () => {
    const source = await randomFile(work, 'quiet.bin', 10_000);

    const up = await s3xfer(['cp', '--quiet', source, `s3://${bucket}/quiet.bin`]);
    expectExitCode(up, 0);
    expect(up.stdout).toBe('');
    expect(up.stderr).toBe('');
    expect((await head('quiet.bin')).ContentLength).toBe(10_000);

    const target = join(work, 'quiet-copy.bin');
    const down = await s3xfer(['cp', '-q', `s3://${bucket}/quiet.bin`, target]);
    expectExitCode(down, 0);
    expect(down.stdout).toBe('');
    expect(down.stderr).toBe('');
    expect(await sha256File(target)).toBe(await sha256File(source));
  });

  it('--json prints one JSON object per transfer on stdout with operation, success and bytes, then a summary', async () => {
    const source = await randomFile(work, 'json.bin', 12_345);

    const up = await s3xfer(['cp', '--json', source, `s3://${bucket}/json.bin`]);
    expectExitCode(up, 0);
    expect(up.stderr).toBe('');
    const upLines = up.stdout.trimEnd().split('\n');
    expect(upLines).toHaveLength(2);
    expect(JSON.parse(upLines[1]!)).toMatchObject({ type: 'summary', success: true, exitCode: 0, transferred: 1, bytes: 12_345 });
    expect(JSON.parse(upLines[0]!)).toMatchObject({
      type: 'transfer',
      operation: 'upload',
      success: true,
      bytes: 12_345,
      source,
      destination: `s3://${bucket}/json.bin`,
      bucket,
      key: 'json.bin',
    });

    const target = join(work, 'json-copy.bin');
    const down = await s3xfer(['cp', '--json', `s3://${bucket}/json.bin`, target]);
    expectExitCode(down, 0);
    expect(down.stderr).toBe('');
    const downLines = down.stdout.trimEnd().split('\n');
    expect(downLines).toHaveLength(2);
    expect(JSON.parse(downLines[0]!)).toMatchObject({ operation: 'download', success: true, bytes: 12_345, destination: target });
    expect(await sha256File(target)).toBe(await sha256File(source));
  });
});

describe('object properties set by upload flags', () => {
  it('--content-type, --cache-control, --content-disposition, --content-language and --metadata a=1,b=2 are stored on the object', async () => {
    const source = await randomFile(work, 'props.bin', 2048);

    const result = await s3xfer([
      'cp',
      source,
      `s3://${bucket}/props.bin`,
      '--content-type',
      'application/x-s3xfer-test',
      '--cache-control',
      'max-age=60, public',
      '--content-disposition',
      'attachment; filename="props.bin"',
      '--content-language',
      'de-CH',
      '--metadata',
      'a=1,b=2',
    ]);

    expectSuccess(result);
    const stored = await head('props.bin');
    expect(stored.ContentType).toBe('application/x-s3xfer-test');
    expect(stored.CacheControl).toBe('max-age=60, public');
    expect(stored.ContentDisposition).toBe('attachment; filename="props.bin"');
    expect(stored.ContentLanguage).toBe('de-CH');
    expect(stored.Metadata).toEqual({ a: '1', b: '2' });
  });

  it('without --content-type a .txt file is stored as text/plain', async () => {
    const source = join(work, 'readme.txt');
    await writeFile(source, 'plain text\n');

    const result = await s3xfer(['cp', source, `s3://${bucket}/readme.txt`]);

    expectSuccess(result);
    expect((await head('readme.txt')).ContentType).toMatch(/^text\/plain\b/);
  });
});

describe('multipart settings', () => {
  it('--part-size 5MiB --multipart-threshold 5MiB moves a 12 MiB file in 3 parts each way', async () => {
    const source = await randomFile(work, 'parts.bin', 12 * MiB);
    const flags = ['--part-size', '5MiB', '--multipart-threshold', '5MiB', '--json'];

    const up = await s3xfer(['cp', source, `s3://${bucket}/parts.bin`, ...flags]);
    expectExitCode(up, 0);
    expect(JSON.parse(up.stdout.split('\n')[0]!)).toMatchObject({
      operation: 'upload',
      success: true,
      bytes: 12 * MiB,
      parts: 3,
      multipart: true,
    });
    // A multipart object's ETag is "<md5 of the part md5s>-<number of parts>".
    expect((await head('parts.bin')).ETag).toMatch(/-3"$/);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);

    const target = join(work, 'parts-copy.bin');
    const down = await s3xfer(['cp', `s3://${bucket}/parts.bin`, target, ...flags]);
    expectExitCode(down, 0);
    expect(JSON.parse(down.stdout.split('\n')[0]!)).toMatchObject({
      operation: 'download',
      success: true,
      bytes: 12 * MiB,
      parts: 3,
      multipart: true,
    });
    expect(await sha256File(target)).toBe(await sha256File(source));
    expect(await leftoverTempFiles(work)).toEqual([]);
  });
});

describe('--help and --version', () => {
  it('--help exits 0 and describes the commands and exit codes on stdout', async () => {
    const result = await s3xfer(['--help']);

    expectExitCode(result, 0);
    expect(result.stdout).toMatch(/s3xfer <command>/);
    for (const command of ['cp <source> <destination>', 'upload <source> <destination>', 'download <source> [destination]']) {
      expect(result.stdout).toContain(command);
    }
    expect(result.stdout).toContain('Exit codes: 0 ok, 1 transfer failed, 2 bad usage');
    expect(result.stderr).toBe('');
  });

  it('--version exits 0 and prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };

    const result = await s3xfer(['--version']);

    expectExitCode(result, 0);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.stderr).toBe('');
  });
});

describe('stderr hygiene', () => {
  it('never shows the AWS SDK NodeVersionSupportWarning, even though the environment does not disable it', async () => {
    // The CLI itself must silence it; the test environment must not do the CLI's job.
    expect(cliEnv()).not.toHaveProperty('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED');
    const source = await randomFile(work, 'warning.bin', 100);

    const up = await s3xfer(['cp', source, `s3://${bucket}/warning.bin`]);
    const down = await s3xfer(['cp', `s3://${bucket}/warning.bin`, join(work, 'warning-copy.bin')]);
    const failed = await s3xfer(['cp', `s3://${bucket}/no-such-key`, join(work, 'never.bin')]);

    expectExitCode(up, 0);
    expectExitCode(down, 0);
    expectExitCode(failed, 1);
    for (const result of [up, down, failed]) {
      expect(result.stderr).not.toContain('NodeVersionSupportWarning');
      expect(result.stderr).not.toContain('AWS SDK for JavaScript');
    }
  });
});
