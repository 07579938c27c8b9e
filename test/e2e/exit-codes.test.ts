/**
 * End-to-end: every exit code of README's table (src/cli/exit-codes.ts), each from a real case.
 *
 * 0 success · 1 a transfer failed · 2 bad usage, an unreadable source, a skipped file ·
 * 130 SIGINT · 143 SIGTERM · 141 stdout closed early · 253 credentials · 254 a service error
 * outside a transfer.
 *
 * The signal tests put the fault proxy (test/helpers/fault-proxy.ts) between the CLI and Ceph and
 * stall the transfer's data requests for a minute, so the transfer is provably under way (an open
 * multipart upload, a temp file) when the signal is sent, however fast the machine is. The
 * clean-up requests (AbortMultipartUpload) pass, except in the double Ctrl-C test, where the abort
 * itself is stalled so that only a second Ctrl-C can end the process early.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uploadFile } from '../../src/index.js';
import {
  type FaultProxy,
  type FaultRule,
  isAbortMultipartUpload,
  isGetObject,
  isUploadPart,
  startFaultProxy,
} from '../helpers/fault-proxy.js';
import { leftoverTempFiles, MiB, randomFile, rm, tempDir } from '../helpers/files.js';
import { cliEnv, listKeys, openMultipartUploads, s3Server } from '../helpers/s3.js';
import { exists, writeTree } from '../helpers/trees.js';
import { expectExitCode, expectFailure, expectNoNoise } from './expect-cli.js';
import {
  CLI,
  type CliResult,
  closeCliWorkspace,
  describeResult,
  openCliWorkspace,
  pollUntil,
  type RunningCli,
  runCli,
  startCli,
} from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
/** 12 MiB: three 5 MiB parts with PARTS. */
let file: string;
const PARTS = ['--part-size', '5MiB', '--multipart-threshold', '5MiB', '--concurrency', '2'];
const running: RunningCli[] = [];
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('exit'));
  file = await randomFile(work, 'twelve.bin', 12 * MiB);
  await writeFile(join(work, 'small.txt'), 'small\n');
  await uploadFile(client, file, bucket, 'seed/twelve.bin');
});

afterEach(async () => {
  for (const cli of running.splice(0)) {
    if (cli.running()) cli.child.kill('SIGKILL');
    await cli.result.catch(() => {});
  }
  await proxy?.close();
  proxy = undefined;
});

afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

const s3xfer = (args: string[], env = cliEnv()): Promise<CliResult> => runCli(args, { env, cwd: work });
const url = (key: string) => `s3://${bucket}/${key}`;

describe('0: success', () => {
  it('an upload, a download and a listing', async () => {
    const results = await Promise.all([
      s3xfer(['cp', 'small.txt', url('zero/small.txt')]),
      s3xfer(['cp', url('seed/twelve.bin'), 'zero.bin']),
      s3xfer(['ls', url('seed/')]),
    ]);
    for (const result of results) {
      expectExitCode(result, 0);
      expectNoNoise(result.stderr);
    }
  });
});

describe('1: a transfer failed', () => {
  it('a missing key, a missing bucket on upload', async () => {
    expectFailure(await s3xfer(['cp', url('one/no-such-key'), 'never.bin']), 1, 'does not exist', 'NoSuchKey');
    expectFailure(await s3xfer(['cp', 'small.txt', 's3://s3xfer-e2e-exit-no-such-bucket/k']), 1, 'NoSuchBucket');
    expect(await exists(join(work, 'never.bin'))).toBe(false);
  });
});

describe('ls: 1 when a key or prefix matches nothing, as the aws CLI (a script tests that something is there)', () => {
  it('nothing under the prefix: 1 and no output; an object or a prefix matched: 0', async () => {
    const none = await s3xfer(['ls', url('no-such-prefix/')]);
    expectExitCode(none, 1);
    expect([none.stdout, none.stderr]).toEqual(['', '']);
    expectExitCode(await s3xfer(['ls', url('seed/twelve.bin')]), 0);
    expectExitCode(await s3xfer(['ls', url('se')]), 0); // the prefix "seed/"
  });
});

describe('2: bad usage, an unreadable source, a skipped file', () => {
  it('bad usage: an unknown flag, a missing operand', async () => {
    expectFailure(await s3xfer(['cp', '--no-such-flag', 'small.txt', url('two/x')]), 2, 'Unknown argument: --no-such-flag');
    expectFailure(await s3xfer(['cp', 'small.txt']), 2, 'see s3xfer --help');
  });

  it('a missing source file', async () => {
    expectFailure(await s3xfer(['cp', 'no-such-file.txt', url('two/x')]), 2, 'no-such-file.txt', 'no such file or directory');
    expect(await listKeys(client, bucket)).not.toContain('two/x');
  });

  it('a file skipped by a directory job (a FIFO); the other files are transferred', async () => {
    await writeTree(join(work, 'skips'), { 'ok.txt': 'ok' });
    execFileSync('mkfifo', [join(work, 'skips', 'fifo')]);
    const result = await s3xfer(['cp', '--recursive', 'skips', url('two/skips/')]);
    expectExitCode(result, 2);
    expect(result.stderr).toContain('s3xfer: warning: skipped skips/fifo: is a FIFO (named pipe)');
    expect(await listKeys(client, bucket)).toContain('two/skips/ok.txt');
  });
});

/** Starts the CLI against the fault proxy (with `rules`) and remembers it for clean-up. */
async function startThroughProxy(args: string[], rules: FaultRule[]): Promise<RunningCli> {
  proxy = await startFaultProxy({ upstream: s3Server().endpoint, rules });
  const cli = startCli([...args, '--endpoint-url', proxy.url], { env: cliEnv(), cwd: work, timeoutMs: 60_000 });
  running.push(cli);
  return cli;
}

/** Waits (at most 30 s) until `check` holds, failing with the CLI's output if it exits first. */
async function waitFor<T>(cli: RunningCli, what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const value = await pollUntil(check, { intervalMs: 25, deadlineMs: 30_000, stopIf: () => !cli.running() });
  if (value === undefined || !cli.running()) {
    if (cli.running()) cli.child.kill('SIGKILL');
    throw new Error(`never saw ${what} while the CLI ran\n${describeResult(await cli.result)}`);
  }
  return value;
}

/** The multipart uploads open on Ceph (directly, not through the proxy). */
const openUploads = async () => {
  const open = await openMultipartUploads(client, bucket);
  return open.length > 0 ? open : undefined;
};

/** A stall of a minute on every request `match` picks. */
const stall = (match: FaultRule['match']): FaultRule => ({ match, fault: { type: 'stall', ms: 60_000 } });

/** The one line an interrupted command prints: on stderr, nothing on stdout. */
function expectInterruptedLine(result: CliResult, signal: 'SIGINT' | 'SIGTERM'): void {
  expect(result.stdout, describeResult(result)).toBe('');
  expect(result.stderr, describeResult(result)).toBe(`s3xfer: error: interrupted (${signal}); nothing was left behind\n`);
}

describe('130 and 143: interrupted', () => {
  it('130: SIGINT during a multipart upload aborts it (ListMultipartUploads empty), stores nothing, prints one line', async () => {
    const cli = await startThroughProxy(['cp', 'twelve.bin', url('int/upload.bin'), ...PARTS], [stall(isUploadPart)]);
    const open = await waitFor(cli, 'an open multipart upload', openUploads);
    await waitFor(cli, 'a stalled UploadPart', () => (proxy!.stats.faults > 0 ? true : undefined));
    expect(open.map((u) => u.Key)).toEqual(['int/upload.bin']);

    cli.child.kill('SIGINT');
    const result = await cli.result;
    expectExitCode(result, 130);
    expectInterruptedLine(result, 'SIGINT');
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain('int/upload.bin');
  });

  it('130: SIGINT during a ranged download removes the temp file and creates nothing, prints one line', async () => {
    const dir = join(work, 'int-download');
    await mkdir(dir);
    const cli = await startThroughProxy(
      ['cp', url('seed/twelve.bin'), join(dir, 'twelve.bin'), ...PARTS],
      [{ match: isGetObject, fault: { type: 'stall', ms: 60_000, afterBytes: 64 * 1024 } }],
    );
    await waitFor(cli, 'a temp file', async () => ((await leftoverTempFiles(dir)).length > 0 ? true : undefined));
    await waitFor(cli, 'a stalled GetObject', () => (proxy!.stats.faults > 0 ? true : undefined));

    cli.child.kill('SIGINT');
    const result = await cli.result;
    expectExitCode(result, 130);
    expectInterruptedLine(result, 'SIGINT');
    expect(await readdir(dir), 'no temp file, no destination').toEqual([]);
  });

  it('143: SIGTERM during a multipart upload aborts it too', async () => {
    const cli = await startThroughProxy(['cp', 'twelve.bin', url('term/upload.bin'), ...PARTS], [stall(isUploadPart)]);
    await waitFor(cli, 'an open multipart upload', openUploads);
    await waitFor(cli, 'a stalled UploadPart', () => (proxy!.stats.faults > 0 ? true : undefined));

    cli.child.kill('SIGTERM');
    const result = await cli.result;
    expectExitCode(result, 143);
    expectInterruptedLine(result, 'SIGTERM');
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
  });

  it('a second SIGINT exits at once (130), even while the clean-up of the first is still waiting on the store', async () => {
    const key = 'int/twice.bin';
    const cli = await startThroughProxy(['cp', 'twelve.bin', url(key), ...PARTS], [stall(isUploadPart), stall(isAbortMultipartUpload)]);
    await waitFor(cli, 'an open multipart upload', openUploads);
    await waitFor(cli, 'a stalled UploadPart', () => (proxy!.stats.faultsByRule[0]! > 0 ? true : undefined));

    cli.child.kill('SIGINT');
    // The first Ctrl-C's clean-up is under way: its AbortMultipartUpload is held by the proxy.
    await waitFor(cli, 'the stalled AbortMultipartUpload', () => (proxy!.stats.faultsByRule[1]! > 0 ? true : undefined));
    const second = performance.now();
    cli.child.kill('SIGINT');
    const result = await cli.result;
    const exitedAfterMs = performance.now() - second;

    expectExitCode(result, 130);
    expect(exitedAfterMs, 'the second Ctrl-C must not wait for the stalled clean-up').toBeLessThan(2_000);
    expect(result.stdout).toBe('');
    // The abort never reached the store: the open upload is the price of leaving at once.
    expect((await openMultipartUploads(client, bucket)).map((u) => u.Key)).toEqual([key]);
  });
});

describe('141: the reader of stdout went away', () => {
  it('cp s3://… - | head -c 10: exit 141, nothing printed', async () => {
    const result = await runCli(['-c', '"$NODE" "$CLI" cp "$1" - | head -c 10 | wc -c; exit $PIPESTATUS', 'bash', url('seed/twelve.bin')], {
      command: 'bash',
      env: cliEnv({ NODE: process.execPath, CLI }),
      cwd: work,
    });
    expectExitCode(result, 141);
    expect(result.stdout.trim()).toBe('10');
    expect(result.stderr, describeResult(result)).toBe('');
  });
});

describe('253: credentials', () => {
  it('a wrong secret key', async () => {
    const env = cliEnv({ AWS_SECRET_ACCESS_KEY: `${s3Server().secretAccessKey}-wrong` });
    expectFailure(await s3xfer(['cp', 'small.txt', url('cred/x')], env), 253, 'SignatureDoesNotMatch');
    expectFailure(await s3xfer(['ls', url('')], env), 253, 'SignatureDoesNotMatch');
  });

  it('no credentials at all: an empty environment, no config or credentials file, no instance metadata', async () => {
    const home = await tempDir('s3xfer-e2e-exit-home-');
    try {
      const env = {
        PATH: process.env.PATH,
        HOME: home,
        AWS_CONFIG_FILE: join(home, 'nowhere', 'config'),
        AWS_SHARED_CREDENTIALS_FILE: join(home, 'nowhere', 'credentials'),
        // On a CI runner in EC2 the instance's role would be found: keep the test hermetic.
        AWS_EC2_METADATA_DISABLED: 'true',
      };
      const endpoint = ['--endpoint-url', s3Server().endpoint];
      expectFailure(await s3xfer(['cp', 'small.txt', url('cred/none'), ...endpoint], env), 253, 'no AWS credentials found');
      expectFailure(await s3xfer(['ls', url(''), ...endpoint], env), 253, 'no AWS credentials found');
    } finally {
      await rm(home, { recursive: true, force: true });
    }
    expect(await listKeys(client, bucket)).not.toContain('cred/none');
  });
});

describe('254: a service error outside a transfer', () => {
  const missing = `s3xfer-e2e-missing-${randomBytes(4).toString('hex')}`;

  it('ls of a missing bucket', async () => {
    expectFailure(await s3xfer(['ls', `s3://${missing}`]), 254, `bucket "${missing}" does not exist`, 'NoSuchBucket');
  });

  it('rm of a key in a missing bucket', async () => {
    expectFailure(await s3xfer(['rm', `s3://${missing}/k`]), 254, 'NoSuchBucket');
  });
});
