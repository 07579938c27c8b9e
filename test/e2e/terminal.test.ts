/**
 * End-to-end: the CLI on a real pseudo-terminal (util-linux `script`), where it draws an ora
 * spinner with bytes, percent, rate and ETA, and on an unsized one (0 columns, as some CI
 * runners allocate), where it must fall back to plain lines instead of redrawing forever.
 */

import { execFileSync } from 'node:child_process';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, randomFile } from '../helpers/files.js';
import { cliEnv } from '../helpers/s3.js';
import { expectExitCode } from './expect-cli.js';
import { CLI, closeCliWorkspace, openCliWorkspace, runCli } from './run-cli.js';

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let client: S3Client;
let bucket: string;
let work: string;
let file: string;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('tty'));
  file = await randomFile(work, 'file.bin', 64 * MiB);
});
afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

/** Runs the CLI under `script`, with `before` (e.g. `stty cols 120`) run first in the pty. */
function onTerminal(before: string, args: string[]) {
  const command = `${before} exec node ${CLI} ${args.map((a) => `'${a}'`).join(' ')}`;
  const { CI: _ci, ...env } = cliEnv({ TERM: 'xterm-256color' });
  return runCli(['-qfec', command, '/dev/null'], { env, cwd: work, command: 'script', timeoutMs: 60_000 });
}

describe.skipIf(!hasScript)('on a terminal', () => {
  const slow = ['--concurrency', '1', '--part-size', '5MiB'];

  it('draws a spinner with bytes done/total, percent, rate and ETA, then the result line', async () => {
    const result = await onTerminal('stty cols 120 rows 30;', ['cp', file, `s3://${bucket}/tty.bin`, ...slow]);
    expectExitCode(result, 0);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the terminal's escape sequences
    const screen = result.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(screen).toMatch(/upload \S+ → s3:\/\/\S+ {2}\d+\.\d MiB \/ 64\.0 MiB \(\d+%\) {2}\d+(\.\d)? MiB\/s {2}ETA \d+s/);
    expect(screen).toMatch(/upload: \S+ → s3:\/\/\S+\/tty\.bin {2}64\.0 MiB in \d+\.\d s/);
  });

  it('falls back to plain output on a terminal of 0 columns, and finishes', async () => {
    const result = await onTerminal('stty cols 0 rows 0;', ['cp', file, `s3://${bucket}/unsized.bin`, ...slow]);
    expectExitCode(result, 0);
    expect(result.stdout.length).toBeLessThan(10_000);
    expect(result.stdout).toMatch(/upload: \S+ → s3:\/\/\S+\/unsized\.bin {2}64\.0 MiB/);
  });
});
