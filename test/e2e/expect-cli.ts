import { expect } from 'vitest';
import { type CliResult, describeResult } from './run-cli.js';

/** The process ended on its own (no time-out, no signal) with `code`. */
export function expectExitCode(result: CliResult, code: number): void {
  expect(result.timedOut, `the CLI ran past its time limit\n${describeResult(result)}`).toBe(false);
  expect(result.signal, `the CLI was killed by a signal\n${describeResult(result)}`).toBeNull();
  expect(result.code, `unexpected exit code\n${describeResult(result)}`).toBe(code);
}

/** Nothing on stderr that a user did not ask for: no Node/SDK warnings, no stack traces. */
export function expectNoNoise(stderr: string): void {
  expect(stderr).not.toMatch(/NodeVersionSupportWarning/);
  expect(stderr, 'a Node.js process warning on stderr').not.toMatch(/^\(node:\d+\) \w*Warning/m);
  expect(stderr, 'a stack trace on stderr').not.toMatch(/^\s+at .+[:(]/m);
}

/**
 * The error report of a failed command: exactly one line on stderr, `s3xfer: error: ` followed by
 * a message containing each fragment, and no stack trace.
 */
export function expectOneErrorLine(result: CliResult, ...fragments: Array<string | RegExp>): string {
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  expect(lines, `stderr should be one error line\n${describeResult(result)}`).toHaveLength(1);
  const line = lines[0]!;
  expect(line.startsWith('s3xfer: error: '), `stderr should start with "s3xfer: error: "\n${describeResult(result)}`).toBe(true);
  for (const fragment of fragments) {
    if (typeof fragment === 'string') expect(line, describeResult(result)).toContain(fragment);
    else expect(line, describeResult(result)).toMatch(fragment);
  }
  expectNoNoise(result.stderr);
  return line;
}

/** A failed command exits with `code`, reports one clean error line and prints nothing on stdout. */
export function expectFailure(result: CliResult, code: number, ...fragments: Array<string | RegExp>): string {
  expectExitCode(result, code);
  const line = expectOneErrorLine(result, ...fragments);
  expect(result.stdout, `a failed command should print no result\n${describeResult(result)}`).toBe('');
  return line;
}

/** Escapes text for use inside a RegExp. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The shape of a rate in a result line: `0 B/s`, `126 B/s`, `94.9 MiB/s`. */
export const RATE = String.raw`\d+(?:\.\d)? (?:B|KiB|MiB|GiB|TiB)/s`;

/**
 * The result line of a successful transfer:
 * `upload: <src> → s3://b/key  <size> in <n> s (<rate>/s)`.
 */
export function resultLinePattern(direction: 'upload' | 'download', source: string, destination: string, sizeText: string): RegExp {
  return new RegExp(
    `^${direction}: ${escapeRegExp(source)} → ${escapeRegExp(destination)}  ${escapeRegExp(sizeText)} in \\d+\\.\\d s \\(${RATE}\\)$`,
  );
}
