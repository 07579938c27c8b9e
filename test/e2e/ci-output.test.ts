/**
 * End-to-end: what the CLI prints in CI logs. With CI=true, or off a terminal, output is plain
 * lines — no escape sequences, carriage returns or backspaces, only `\n` — with a progress line at
 * most every 5 s; `--no-progress`, `--quiet` and `--only-show-errors` trim it as in the aws CLI.
 * Under GitHub Actions failures and warnings also become `::error`/`::warning` workflow commands
 * (escaped so that one stays one line), and the job's Markdown summary is appended to
 * $GITHUB_STEP_SUMMARY; with --json those commands go to stderr and stdout stays pure NDJSON.
 */

import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, isUploadPart, startFaultProxy } from '../helpers/fault-proxy.js';
import { MiB, randomFile } from '../helpers/files.js';
import { cliEnv, s3Server } from '../helpers/s3.js';
import { putObjects, writeTree } from '../helpers/trees.js';
import { expectExitCode, expectFailure } from './expect-cli.js';
import { jsonStream } from './ndjson.js';
import { CLI, type CliOptions, type CliResult, closeCliWorkspace, describeResult, openCliWorkspace, runCli, startCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('ci'));
  await randomFile(work, 'twelve.bin', 12 * MiB);
  await writeTree(join(work, 'tree'), { 'a.txt': 'a', 'sub/b.txt': 'bb' });
  execFileSync('mkfifo', [join(work, 'tree', 'fifo')]);
  await writeFile(join(work, 'small.txt'), 'small\n');
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

const url = (key: string) => `s3://${bucket}/${key}`;
/** CI=true, no terminal (pipes), in the work directory. */
const ciEnv = (extra: Record<string, string> = {}) => cliEnv({ CI: 'true', ...extra });
const s3xfer = (args: string[], options: Partial<CliOptions> = {}): Promise<CliResult> =>
  runCli(args, { env: ciEnv(), cwd: work, ...options });
const lines = (text: string) => text.split('\n').filter((line) => line !== '');

/** Any control character but `\n`: C0 (ESC, CR, BS, TAB, …), DEL and C1. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: this is what the test looks for
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

function expectNoControlCharacters(result: CliResult): void {
  for (const stream of ['stdout', 'stderr'] as const) {
    const at = result[stream].search(CONTROL);
    expect(at, `a control character in ${stream} at ${at}\n${describeResult(result)}`).toBe(-1);
  }
}

const RESULT_LINE = /^(upload|download): .+ → .+ {2}\d+(\.\d)? (B|KiB|MiB) in \d+\.\d s( \(.+\/s\))?$/;

describe('CI=true, no terminal: plain lines only', () => {
  it('an upload, a download, and directory jobs (with a warning) contain no control characters', async () => {
    const results = [
      await s3xfer(['cp', 'twelve.bin', url('ci/twelve.bin')]),
      await s3xfer(['cp', url('ci/twelve.bin'), 'twelve.copy']),
      await s3xfer(['cp', '--recursive', 'tree', url('ci/tree/')]),
      await s3xfer(['sync', 'tree', url('ci/tree/')]),
      await s3xfer(['cp', '--recursive', url('ci/tree/'), 'tree-copy']),
    ];
    expect(results.map((r) => r.code)).toEqual([0, 0, 2, 2, 0]);
    for (const result of results) {
      expectNoControlCharacters(result);
      for (const line of lines(result.stdout)) expect(line, describeResult(result)).toMatch(RESULT_LINE);
      for (const line of lines(result.stderr)) expect(line, describeResult(result)).toMatch(/^s3xfer: warning: |^(\d+ files?|nothing)/);
    }
    expect(lines(results[2]!.stderr)).toEqual([
      's3xfer: warning: skipped tree/fifo: is a FIFO (named pipe)',
      expect.stringMatching(/^2 files, 3 B in \d+\.\d s.*; 1 skipped$/),
    ]);
  });

  it.skipIf(!hasScript())('CI=true wins over a terminal: no spinner, no escape sequence', async () => {
    const run = (env: NodeJS.ProcessEnv) =>
      runCli(
        ['-qfec', `stty cols 120 rows 30 -onlcr; exec "${process.execPath}" "${CLI}" cp twelve.bin '${url('ci/tty.bin')}'`, '/dev/null'],
        {
          command: 'script',
          env: { ...env, TERM: 'xterm-256color' },
          cwd: work,
          timeoutMs: 60_000,
        },
      );
    // The control run: the same command on the same terminal without CI draws ora's spinner.
    const { CI: _ci, ...noCi } = ciEnv();
    const plain = await run(noCi);
    expectExitCode(plain, 0);
    expect(plain.stdout).toMatch(CONTROL);

    const ci = await run(ciEnv());
    expectExitCode(ci, 0);
    expectNoControlCharacters(ci);
    expect(lines(ci.stdout)).toEqual([expect.stringMatching(RESULT_LINE)]);
  });

  it('progress: a plain line at most every 5 s on stderr; none with --no-progress', async () => {
    // Every UploadPart held 1.8 s at the proxy, one at a time: 4 parts take ~7 s.
    proxy = await startFaultProxy({ upstream: s3Server().endpoint, rules: [{ match: isUploadPart, fault: { type: 'stall', ms: 1800 } }] });
    const slow = ['--part-size', '5MiB', '--concurrency', '1', '--endpoint-url', proxy.url];
    await randomFile(work, 'twenty.bin', 20 * MiB);
    const timed = (args: string[]) => {
      const cli = startCli(args, { env: ciEnv(), cwd: work, timeoutMs: 60_000 });
      const started = performance.now();
      const arrivals: Array<{ ms: number; text: string }> = [];
      cli.child.stderr!.on('data', (text: string) => arrivals.push({ ms: performance.now() - started, text }));
      return cli.result.then((result) => ({ result, arrivals, ms: performance.now() - started }));
    };
    const [progress, quiet] = await Promise.all([
      timed(['cp', 'twenty.bin', url('ci/progress.bin'), ...slow]),
      timed(['cp', 'twenty.bin', url('ci/no-progress.bin'), ...slow, '--no-progress']),
    ]);

    for (const { result } of [progress, quiet]) {
      expectExitCode(result, 0);
      expectNoControlCharacters(result);
      expect(lines(result.stdout)).toEqual([expect.stringMatching(RESULT_LINE)]);
    }
    expect(progress.ms, 'the upload was too fast to show progress pacing').toBeGreaterThan(6_000);
    // `upload twenty.bin → s3://…  10.0 MiB / 20.0 MiB (50%)  1.4 MiB/s  ETA 7s`, each its own write.
    const progressLines = progress.arrivals.filter((a) => a.text.startsWith('upload twenty.bin → '));
    expect(progressLines.length, describeResult(progress.result)).toBeGreaterThanOrEqual(1);
    expect(lines(progress.result.stderr)).toHaveLength(progressLines.length);
    for (const line of progressLines) {
      expect(line.text).toMatch(/^upload twenty\.bin → s3:\/\/\S+ {2}\d+\.\d MiB \/ 20\.0 MiB \(\d+%\) {2}.+\/s( {2}ETA \S+)?\n$/);
    }
    const times = [0, ...progressLines.map((a) => a.ms)];
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!, 'progress lines too close').toBeGreaterThan(4_500);
    expect(quiet.result.stderr).toBe('');
  });
});

describe('--quiet and --only-show-errors', () => {
  it('--quiet: nothing on stdout; on stderr errors only (no warning, no summary)', async () => {
    const ok = await s3xfer(['cp', 'small.txt', url('q/small.txt'), '--quiet']);
    expectExitCode(ok, 0);
    expect(ok.stdout + ok.stderr).toBe('');

    const skipped = await s3xfer(['cp', '--recursive', 'tree', url('q/tree/'), '--quiet']);
    expectExitCode(skipped, 2);
    expect(skipped.stdout + skipped.stderr, describeResult(skipped)).toBe('');

    expectFailure(await s3xfer(['cp', url('q/missing'), 'never.txt', '-q']), 1, 'does not exist');
  });

  it('--only-show-errors: nothing on stdout; warnings and errors on stderr, no summary', async () => {
    const ok = await s3xfer(['cp', 'small.txt', url('e/small.txt'), '--only-show-errors']);
    expectExitCode(ok, 0);
    expect(ok.stdout + ok.stderr).toBe('');

    const skipped = await s3xfer(['cp', '--recursive', 'tree', url('e/tree/'), '--only-show-errors']);
    expectExitCode(skipped, 2);
    expect(skipped.stdout).toBe('');
    expect(skipped.stderr).toBe('s3xfer: warning: skipped tree/fifo: is a FIFO (named pipe)\n');

    expectFailure(await s3xfer(['cp', url('e/missing'), 'never.txt', '--only-show-errors']), 1, 'does not exist');
  });
});

describe('GITHUB_ACTIONS=true', () => {
  /** A key with "%" and a line break: both must be escaped in a workflow command. */
  const oddKey = 'gh/100%\nsure.bin';
  let summaryFile: string;
  const ghEnv = () => ciEnv({ GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summaryFile });

  beforeAll(async () => {
    summaryFile = join(work, 'step-summary.md');
    await writeFile(summaryFile, '');
  });

  it('a failed transfer: an ::error line, "%" and the line break escaped (\\n, as on every line); the step summary gets a Markdown table', async () => {
    const result = await s3xfer(['cp', url(oddKey), 'never.bin'], { env: ghEnv() });
    expectExitCode(result, 1);
    const escaped = url(oddKey).replace('%', '%25').replace('\n', '\\n');
    expect(result.stdout).toBe(`::error title=s3xfer::download ${escaped} → never.bin: ${escaped} does not exist (NoSuchKey, HTTP 404)\n`);
    expect(result.stderr).toBe(`s3xfer: error: ${url(oddKey).replace('\n', '\\n')} does not exist (NoSuchKey, HTTP 404)\n`);

    const summary = (await readFile(summaryFile, 'utf8')).replace(/^\| time \| \d+\.\d s \|$/m, '| time | T |');
    expect(summary).toBe(
      [
        `### s3xfer cp ${url(oddKey).replace('\n', '\\n')} never.bin`,
        '',
        '| | |',
        '|---|---|',
        '| result | ❌ exit code 1 |',
        '| files transferred | 0 |',
        '| bytes | 0 B |',
        '| time | T |',
        '| failed | 1 |',
        '',
        '**Failures**',
        '',
        `- download ${url(oddKey).replace('\n', '\\n')} → never.bin: ${url(oddKey).replace('\n', '\\n')} does not exist (NoSuchKey, HTTP 404)`,
        '',
        '',
      ].join('\n'),
    );
  });

  it('a skipped file: a ::warning line; the summary table counts it', async () => {
    await writeFile(summaryFile, '');
    const result = await s3xfer(['cp', '--recursive', 'tree', url('gh/tree/')], { env: ghEnv() });
    expectExitCode(result, 2);
    const commands = lines(result.stdout).filter((line) => line.startsWith('::'));
    expect(commands).toEqual(['::warning title=s3xfer::skipped tree/fifo: is a FIFO (named pipe)']);
    expect(lines(result.stdout).filter((line) => !line.startsWith('::'))).toHaveLength(2); // the two result lines
    const summary = await readFile(summaryFile, 'utf8');
    expect(summary).toMatch(/^### s3xfer cp --recursive tree s3:\/\/\S+\/gh\/tree\/\n\n\| \| \|\n\|---\|---\|\n/);
    expect(summary).toContain('| result | ❌ exit code 2 |\n| files transferred | 2 |\n| bytes | 3 B |\n');
    expect(summary).toContain('| skipped | 1 |');
    expect(summary).not.toContain('**Failures**');
  });

  it('with --json the workflow commands go to stderr and stdout stays pure NDJSON', async () => {
    await putObjects(client, bucket, { 'gh/json/ok.txt': 'ok' });
    const failed = await s3xfer(['cp', url(oddKey), 'never.bin', '--json'], { env: ghEnv() });
    expectExitCode(failed, 1);
    const { records } = jsonStream(failed);
    expect(records).toEqual([expect.objectContaining({ type: 'transfer', success: false })]);
    expect(lines(failed.stderr)).toEqual([
      expect.stringMatching(/^::error title=s3xfer::download .*100%25\\nsure\.bin/),
      expect.stringMatching(/^\{"success":false,/),
    ]);

    const skipped = await s3xfer(['cp', '--recursive', 'tree', url('gh/json/tree/'), '--json'], { env: ghEnv() });
    expectExitCode(skipped, 2);
    expect(
      jsonStream(skipped)
        .records.map((r) => r.type)
        .sort(),
    ).toEqual(['skip', 'transfer', 'transfer']);
    expect(skipped.stderr).toBe('::warning title=s3xfer::skipped tree/fifo: is a FIFO (named pipe)\n');
  });
});

function hasScript(): boolean {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
