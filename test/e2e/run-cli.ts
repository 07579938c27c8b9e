import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { rm, tempDir } from '../helpers/files.js';
import { createTestBucket, removeTestBucket, testClient } from '../helpers/s3.js';

/** The repository root (test/e2e/../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The CLI as users run it: bin/s3xfer.js, which loads the build in dist/. */
export const CLI = join(REPO_ROOT, 'bin', 's3xfer.js');

/** What a finished CLI process left: exit code or signal, and everything it printed. */
export interface CliResult {
  /** Exit code; null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the process ran past its time limit and was killed with SIGKILL. */
  timedOut: boolean;
}

export interface CliOptions {
  /** The complete environment (use cliEnv()); nothing is inherited from the test process. */
  env: NodeJS.ProcessEnv;
  /** Working directory. Default: the system temp directory (never the repository, whose .env the CLI would load). */
  cwd?: string;
  /** Milliseconds before the process is killed with SIGKILL. Default 90 s. */
  timeoutMs?: number;
  /** Run this program with `args` instead of the CLI (e.g. `script`, to give the CLI a terminal). */
  command?: string;
  /** Run as this user and group (needs root). */
  uid?: number;
  gid?: number;
}

/** A CLI process that is still running, for tests that signal it. */
export interface RunningCli {
  child: ChildProcess;
  /** Settles once the process has exited and its output streams are closed. */
  result: Promise<CliResult>;
  /** True until the process exits. */
  running(): boolean;
}

/** Fails early, with the fix, when the CLI has not been built. */
export function assertCliBuilt(): void {
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli', 's3xfer.cjs'))) {
    throw new Error(`${join(REPO_ROOT, 'dist')} has no build of the CLI: run \`npm run build\` before the e2e tests`);
  }
}

/** Starts `node bin/s3xfer.js ...args` and returns at once. */
export function startCli(args: string[], options: CliOptions): RunningCli {
  const child = spawn(options.command ?? process.execPath, options.command ? args : [CLI, ...args], {
    cwd: options.cwd ?? tmpdir(),
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  let timedOut = false;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 90_000);
  const result = new Promise<CliResult>((resolveResult, reject) => {
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close' (not 'exit'): all output has been read by then.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      exited = true;
      resolveResult({ code, signal, stdout, stderr, timedOut });
    });
  });
  child.on('exit', () => (exited = true));
  return { child, result, running: () => !exited && child.exitCode === null && child.signalCode === null };
}

/** Runs `node bin/s3xfer.js ...args` to the end (or its time limit). */
export function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  return startCli(args, options).result;
}

/** The result as one readable block, for assertion messages. */
export function describeResult(result: CliResult): string {
  return [
    `exit code ${result.code}${result.signal ? `, signal ${result.signal}` : ''}${result.timedOut ? ' (timed out, killed)' : ''}`,
    `stdout: ${JSON.stringify(result.stdout)}`,
    `stderr: ${JSON.stringify(result.stderr)}`,
  ].join('\n');
}

/** Polls `check` every `intervalMs` until it returns a value (not undefined) or `deadlineMs` passes. */
export async function pollUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  { intervalMs = 50, deadlineMs = 60_000, stopIf }: { intervalMs?: number; deadlineMs?: number; stopIf?: () => boolean } = {},
): Promise<T | undefined> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const value = await check();
    if (value !== undefined) return value;
    if (stopIf?.()) return undefined;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return undefined;
}

/**
 * An endpoint that goes away midway: once `proxy` (the CLI's only way to the store) holds a
 * request, and every request it does not hold has been answered, it is closed, so every
 * connection from then on is refused. (`proxy`'s faults must be stalls.) Resolves to the CLI's result.
 */
export async function endpointGoneOnceHeld(proxy: FaultProxy, running: Promise<CliResult>): Promise<CliResult> {
  // Closing while an answer is on its way would cut it at a random point, and the count of files
  // that arrived would depend on the machine's speed.
  const onlyHeldInFlight = () => proxy.stats.faults > 0 && proxy.stats.inFlight <= proxy.stats.faults;
  const held = await pollUntil(() => (onlyHeldInFlight() ? true : undefined), { deadlineMs: 30_000 });
  await proxy.close();
  const result = await running;
  if (!held)
    throw new Error(`no request was held at the proxy within 30 s: the endpoint never went away midway\n${describeResult(result)}`);
  return result;
}

/** What an end-to-end test file works with: a client of the test server, a bucket and a temp dir of its own. */
export interface CliWorkspace {
  client: S3Client;
  bucket: string;
  work: string;
}

/** Checks that the CLI is built, then makes the workspace of test file `name` (`s3xfer-e2e-<name>…`). */
export async function openCliWorkspace(name: string): Promise<CliWorkspace> {
  assertCliBuilt();
  const client = testClient();
  const bucket = await createTestBucket(client, `s3xfer-e2e-${name}`);
  const work = await tempDir(`s3xfer-e2e-${name}-`);
  return { client, bucket, work };
}

/** Removes what {@link openCliWorkspace} made, as far as it got. */
export async function closeCliWorkspace({ client, bucket, work }: Partial<CliWorkspace>): Promise<void> {
  if (client && bucket) await removeTestBucket(client, bucket);
  if (work) await rm(work, { recursive: true, force: true });
  client?.destroy();
}
