/**
 * End-to-end: `s3xfer run FILE` and `run -` (stdin), the batch mode: one command per line, all
 * through one process, one client and one transfer manager.
 *
 * Lines are split as a shell would (quotes, escapes), `#` comments and blank lines are skipped, a
 * leading `s3xfer` is accepted. A bad line (exit 2) or a failing one (exit 1) is reported with its
 * line number and the other lines still run; the exit code is the worst of the lines'.
 *
 * The lines run CONCURRENTLY (up to 64 at once, like s5cmd's `run`), in no guaranteed order:
 * commands that depend on each other (upload, then download the same key) belong in separate runs.
 * The concurrency test below holds every PutObject 1.5 s at a proxy and shows eight lines in
 * flight together.
 */

import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, isPutObject, startFaultProxy } from '../helpers/fault-proxy.js';
import { cliEnv, s3Server } from '../helpers/s3.js';
import { keysUnder, putObjects, writeTree } from '../helpers/trees.js';
import { escapeRegExp, expectExitCode, expectFailure, expectNoNoise } from './expect-cli.js';
import { CLI, type CliResult, closeCliWorkspace, describeResult, endpointGoneOnceHeld, openCliWorkspace, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('run'));
  await writeFile(join(work, 'up-1.txt'), 'one\n');
  await writeFile(join(work, 'up-2.txt'), 'two\n');
  await writeFile(join(work, 'name with spaces.txt'), 'spaces\n');
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

const url = (key: string) => `s3://${bucket}/${key}`;
const lines = (text: string) => text.split('\n').filter((line) => line !== '');

/** Writes the command file `name` and runs `s3xfer run name ...extra`. */
async function runFile(name: string, commands: string[], extra: string[] = []): Promise<CliResult> {
  await writeFile(join(work, name), `${commands.join('\n')}\n`);
  return runCli(['run', name, ...extra], { env: cliEnv(), cwd: work });
}

/**
 * Runs `commands` as the batch `name` (2 requests in flight, 2 attempts each) through a proxy that
 * holds the fourth PutObject and those after it, and goes away once it holds one.
 */
async function runWhileEndpointGoes(name: string, commands: string[]): Promise<CliResult> {
  proxy = await startFaultProxy({
    upstream: s3Server().endpoint,
    rules: [{ match: isPutObject, fault: { type: 'stall', ms: 60_000 }, after: 3 }],
  });
  await writeFile(join(work, name), `${commands.join('\n')}\n`);
  const running = runCli(['run', name, '--endpoint-url', proxy.url, '--concurrency', '2', '--max-attempts', '2'], {
    env: cliEnv(),
    cwd: work,
  });
  return endpointGoneOnceHeld(proxy, running);
}

/** The batch's one summary line, last on stderr. */
const BATCH_SUMMARY = /^(\d+ files?, .+|nothing transferred) in \d+\.\d s/;

describe('run FILE', () => {
  it('uploads, downloads and deletes; quoted names with spaces; comments, blank lines and a leading "s3xfer"', async () => {
    await putObjects(client, bucket, { 'basic/seed.txt': 'seed\n', 'basic/old.txt': 'old' });
    await mkdir(join(work, 'down dir'));
    const result = await runFile('basic.txt', [
      '# uploads, a download and a delete',
      '',
      `cp up-1.txt ${url('basic/up-1.txt')}`,
      `s3xfer cp "name with spaces.txt" '${url('basic/name with spaces.txt')}'`,
      '   # an indented comment',
      '   ',
      `cp ${url('basic/seed.txt')} "down dir/seed copy.txt"`,
      `rm ${url('basic/old.txt')}`,
      `upload up-2.txt ${url('basic/')}`,
      `cp name\\ with\\ spaces.txt ${url('basic/escaped.txt')}`,
    ]);

    expectExitCode(result, 0);
    expectNoNoise(result.stderr);
    expect(
      lines(result.stdout)
        .map((line) => line.replace(/ {2}\d.*$/, ''))
        .sort(),
    ).toEqual(
      [
        `upload: up-1.txt → ${url('basic/up-1.txt')}`,
        `upload: name with spaces.txt → ${url('basic/name with spaces.txt')}`,
        `download: ${url('basic/seed.txt')} → down dir/seed copy.txt`,
        `delete: ${url('basic/old.txt')}`,
        `upload: up-2.txt → ${url('basic/up-2.txt')}`,
        `upload: name with spaces.txt → ${url('basic/escaped.txt')}`,
      ].sort(),
    );
    // One summary for the whole batch.
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^5 files, 27 B in \d+\.\d s.*; 1 deleted$/)]);
    expect(await keysUnder(client, bucket, 'basic/')).toEqual(['escaped.txt', 'name with spaces.txt', 'seed.txt', 'up-1.txt', 'up-2.txt']);
    expect(await readFile(join(work, 'down dir', 'seed copy.txt'), 'utf8')).toBe('seed\n');
  });

  it('a bad line: reported with its number (exit 2); the other lines still run', async () => {
    const result = await runFile('bad.txt', [
      `cp up-1.txt ${url('bad/before.txt')}`,
      `cp up-1.txt ${url('bad/x')} ${url('bad/y')}`,
      `cp up-1.txt ${url('bad/z')} > log.txt`,
      'frobnicate everything',
      `cp up-2.txt ${url('bad/after.txt')}`,
    ]);
    expectExitCode(result, 2);
    const errors = lines(result.stderr).filter((line) => line.startsWith('s3xfer: error: '));
    expect(errors.sort()).toEqual([
      expect.stringMatching(/^s3xfer: error: line 2: Unknown argument/),
      expect.stringMatching(/^s3xfer: error: line 3: only plain words and quotes are allowed .*> log\.txt$/),
      expect.stringMatching(/^s3xfer: error: line 4: Unknown arguments?: frobnicate/),
    ]);
    expect(lines(result.stderr).at(-1)).toMatch(BATCH_SUMMARY);
    expectNoNoise(result.stderr);
    expect(await keysUnder(client, bucket, 'bad/')).toEqual(['after.txt', 'before.txt']);
  });

  it('a failing line: exit 1 (worse than a bad line); the other lines still run', async () => {
    const result = await runFile('failing.txt', [
      `cp ${url('failing/no-such-key')} never.txt`,
      `cp up-1.txt ${url('failing/ok.txt')}`,
      'cp only-one-operand',
    ]);
    expectExitCode(result, 1);
    expect(
      lines(result.stderr)
        .filter((line) => line.startsWith('s3xfer: error: '))
        .sort(),
    ).toEqual([
      expect.stringMatching(new RegExp(`^s3xfer: error: line 1: ${escapeRegExp(url('failing/no-such-key'))} does not exist`)),
      expect.stringMatching(/^s3xfer: error: line 3: /),
    ]);
    expect(lines(result.stderr).at(-1)).toMatch(/^1 file, 4 B in \d+\.\d s.*; 1 failed$/);
    expect(await keysUnder(client, bucket, 'failing/')).toEqual(['ok.txt']);
  });

  it('a store error outside a transfer (ls of a missing bucket) outranks a failed transfer: exit 254', async () => {
    const result = await runFile('worst.txt', [
      `cp ${url('worst/no-such-key')} never.txt`,
      `ls s3://${bucket}-no-such-bucket/`,
      'cp only-one-operand',
    ]);
    expectExitCode(result, 254);
    expect(lines(result.stderr).filter((line) => line.startsWith('s3xfer: error: ')).length).toBe(3);
  });

  it('directory lines (cp --recursive, sync, rm --recursive): one summary for the batch, with their skips and unchanged files', async () => {
    await writeTree(join(work, 'tree'), { 'a.txt': 'a', 'b/c.txt': 'cc' });
    execFileSync('mkfifo', [join(work, 'tree', 'fifo')]);
    await putObjects(client, bucket, { 'dirs/synced/a.txt': 'a', 'dirs/old/1': '1', 'dirs/old/2': '2' });
    // The sync target holds a.txt already, newer than the local file: unchanged.
    const result = await runFile('dirs.txt', [
      `cp --recursive tree ${url('dirs/copied/')}`,
      `sync tree ${url('dirs/synced/')} --size-only`,
      `rm --recursive ${url('dirs/old/')}`,
    ]);
    expectExitCode(result, 2);
    expect(lines(result.stderr)).toEqual([
      's3xfer: warning: skipped tree/fifo: is a FIFO (named pipe)',
      's3xfer: warning: skipped tree/fifo: is a FIFO (named pipe)',
      expect.stringMatching(/^3 files, 5 B in \d+\.\d s.*; 1 unchanged, 2 skipped, 2 deleted$/),
    ]);
    expect(await keysUnder(client, bucket, 'dirs/')).toEqual(['copied/a.txt', 'copied/b/c.txt', 'synced/a.txt', 'synced/b/c.txt']);
  });

  it('a missing FILE: exit 2, one line', async () => {
    expectFailure(await runCli(['run', 'no-such-commands.txt'], { env: cliEnv(), cwd: work }), 2, 'no-such-commands.txt', 'ENOENT');
  });

  it('a directory as FILE: exit 2, one line', async () => {
    await mkdir(join(work, 'a-dir-of-commands'), { recursive: true });
    expectFailure(await runCli(['run', 'a-dir-of-commands'], { env: cliEnv(), cwd: work }), 2, 'a-dir-of-commands', 'EISDIR');
  });

  it('lines a shell would read otherwise are refused, never run as something they do not say', async () => {
    const result = await runFile('shellish.txt', [
      `cp up-1.txt ${url('shellish/$HOME.txt')}`,
      `cp "up-1.txt ${url('shellish/unclosed.txt')}`,
      `cp ${url('shellish/ok.txt')} -`,
      `cp - ${url('shellish/from-stdin.txt')}`,
      `cp up-1.txt ${url('shellish/k#1.txt')}`,
      `cp up-1.txt '${url('shellish/quoted#1.txt')}'   # a comment after a space is one`,
      `cp up-2.txt '${url('shellish/$literal.txt')}'`,
    ]);
    expectExitCode(result, 2);
    expect(
      lines(result.stderr)
        .filter((line) => line.startsWith('s3xfer: error: '))
        .sort(),
    ).toEqual([
      expect.stringMatching(/^s3xfer: error: line 1: variables are not expanded \(\$HOME\)/),
      expect.stringMatching(/^s3xfer: error: line 2: a quote is not closed/),
      expect.stringMatching(/^s3xfer: error: line 3: '-' \(stdin or stdout\) cannot be used in a line of run/),
      expect.stringMatching(/^s3xfer: error: line 4: '-' \(stdin or stdout\) cannot be used in a line of run/),
      expect.stringMatching(/^s3xfer: error: line 5: only plain words and quotes are allowed .*quote a '#' inside a word/),
    ]);
    expect(await keysUnder(client, bucket, 'shellish/')).toEqual(['$literal.txt', 'quoted#1.txt']);
  });

  it('more than ten ls and rm lines print no Node warning', async () => {
    const result = await runFile('many-ls.txt', [
      ...Array.from({ length: 12 }, () => `ls ${url('shellish/')}`),
      ...Array.from({ length: 12 }, (_, i) => `rm ${url(`shellish/none-${i}`)}`),
    ]);
    expectExitCode(result, 0);
    expect(result.stderr).not.toMatch(/MaxListeners|Warning/);
  });
});

describe('run - (stdin)', () => {
  it('reads the commands from a pipe', async () => {
    const commands = [`cp up-1.txt ${url('stdin/one.txt')}`, '# comment', `cp up-2.txt ${url('stdin/two.txt')}`].join('\n');
    const result = await runCli(['-c', 'printf "%s\\n" "$COMMANDS" | "$NODE" "$CLI" run -; exit $PIPESTATUS'], {
      command: 'bash',
      env: cliEnv({ NODE: process.execPath, CLI, COMMANDS: commands }),
      cwd: work,
    });
    expectExitCode(result, 0);
    expect(lines(result.stdout)).toHaveLength(2);
    expect(await keysUnder(client, bucket, 'stdin/')).toEqual(['one.txt', 'two.txt']);
  });
});

describe('many lines, one process', () => {
  it('an endpoint that goes away midway: the lines in flight fail, the rest are cancelled with one line that says why (exit 1, not 130)', async () => {
    const result = await runWhileEndpointGoes(
      'gone.txt',
      Array.from({ length: 40 }, (_, i) => `cp up-1.txt ${url(`gone/${i}.txt`)}`),
    );

    expectExitCode(result, 1);
    const errors = lines(result.stderr).filter((line) => line.startsWith('s3xfer: error: '));
    const own = errors.slice(0, -1);
    expect(own.length, describeResult(result)).toBeGreaterThan(0);
    expect(own.length, describeResult(result)).toBeLessThanOrEqual(4);
    for (const line of own)
      expect(line).toMatch(/^s3xfer: error: line \d+: cannot reach the S3 endpoint: connection refused \(ECONNREFUSED\) after 2 attempts$/);
    expect(errors.at(-1)).toBe(`s3xfer: error: stopped: the S3 endpoint cannot be reached; ${37 - own.length} other transfers cancelled`);
    expect(lines(result.stderr).at(-1)).toMatch(/^3 files, 12 B in \d+\.\d s.*; 37 failed$/);
    expect(await keysUnder(client, bucket, 'gone/')).toHaveLength(3);
  });

  it('directory lines stopped by an endpoint that goes away: one "stopped" line for the batch, not one per line', async () => {
    await writeTree(join(work, 'gone-tree'), Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.txt`, `file ${i}`])));
    const result = await runWhileEndpointGoes(
      'gone-trees.txt',
      [1, 2, 3].map((i) => `cp --recursive gone-tree ${url(`gone-tree-${i}/`)}`),
    );

    expectExitCode(result, 1);
    const stopped = lines(result.stderr).filter((line) => line.startsWith('s3xfer: error: stopped: '));
    expect(stopped, describeResult(result)).toEqual([
      expect.stringMatching(/^s3xfer: error: stopped: the S3 endpoint cannot be reached; \d+ other transfers cancelled$/),
    ]);
    expect(lines(result.stderr).at(-1)).toMatch(/^3 files, .*; 57 failed$/);
  });

  it('runs the lines concurrently: eight uploads held 1.5 s each at a proxy finish in about 1.5 s, all in flight together', async () => {
    proxy = await startFaultProxy({ upstream: s3Server().endpoint, rules: [{ match: isPutObject, fault: { type: 'stall', ms: 1500 } }] });
    const commands = Array.from({ length: 8 }, (_, i) => `cp up-1.txt ${url(`concurrent/${i}.txt`)}`);
    const started = performance.now();
    const result = await runFile('concurrent.txt', commands, ['--endpoint-url', proxy.url]);
    const seconds = (performance.now() - started) / 1000;
    expectExitCode(result, 0);
    expect(lines(result.stdout)).toHaveLength(8);
    expect(proxy.stats.maxInFlight, 'PutObjects in flight at once').toBe(8);
    // One after another they would take 12 s.
    expect(seconds, describeResult(result)).toBeLessThan(6);
  });

  it('200 one-file lines finish in one process, each object uploaded once', async () => {
    await mkdir(join(work, 'many'));
    const names = Array.from({ length: 200 }, (_, i) => `f${String(i).padStart(3, '0')}.txt`);
    await Promise.all(names.map((name, i) => writeFile(join(work, 'many', name), `file ${i}\n`)));
    const started = performance.now();
    const result = await runFile(
      'many.txt',
      names.map((name) => `cp many/${name} ${url(`many/${name}`)}`),
    );
    const seconds = (performance.now() - started) / 1000;
    expectExitCode(result, 0);
    expect(lines(result.stdout)).toHaveLength(200);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^200 files, \d+(\.\d)? (B|KiB) in \d+\.\d s/)]);
    expect(await keysUnder(client, bucket, 'many/')).toEqual(names);
    // Start-up is paid once: far below 200 processes' ~0.3 s each.
    expect(seconds, describeResult(result)).toBeLessThan(20);
  });
});
