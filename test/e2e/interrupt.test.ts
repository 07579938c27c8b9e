/**
 * End-to-end: Ctrl-C (SIGINT) in the middle of a transfer. The CLI must stop, clean up what it
 * started (abort the multipart upload; remove the download's temp file, keep the old destination),
 * say so on stderr and exit 130.
 *
 * The signal is sent only once the transfer is observably under way (an open multipart upload on
 * the server; a temp file on disk). With --concurrency 1 and 5 MiB parts a 256 MiB transfer takes
 * seconds on a fast local server, and polling sees it start within ~50 ms. If the transfer still
 * ended before the signal could be sent, the test fails: it never passes without an interrupt.
 */

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadFile } from '../../src/index.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { cliEnv, listKeys, openMultipartUploads } from '../helpers/s3.js';
import { expectExitCode, expectNoNoise } from './expect-cli.js';
import { type CliResult, closeCliWorkspace, describeResult, openCliWorkspace, pollUntil, type RunningCli, startCli } from './run-cli.js';

const SIZE = 256 * MiB;
const SLOW = ['--concurrency', '1', '--part-size', '5MiB'];

let client: S3Client;
let bucket: string;
let work: string;
/** A 256 MiB random file, the source of both tests. */
let bigFile: string;
const running: RunningCli[] = [];

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('int'));
  bigFile = await randomFile(work, 'big.bin', SIZE);
});

afterAll(async () => {
  // A failed test may leave its CLI running: stop it before removing what it uses.
  for (const cli of running) {
    if (cli.running()) cli.child.kill('SIGKILL');
    await cli.result.catch(() => {});
  }
  await closeCliWorkspace({ client, bucket, work });
});

/** Starts the CLI and remembers it for clean-up. */
function start(args: string[]): RunningCli {
  const cli = startCli(args, { env: cliEnv(), cwd: work, timeoutMs: 120_000 });
  running.push(cli);
  return cli;
}

/**
 * Waits until `started` reports the transfer under way, then sends SIGINT. Fails (with the
 * CLI's output) when the CLI exited first or the transfer never visibly started.
 */
async function interruptOnce<T>(
  cli: RunningCli,
  what: string,
  started: () => Promise<T | undefined>,
  signal: NodeJS.Signals = 'SIGINT',
): Promise<{ evidence: T; result: CliResult }> {
  const evidence = await pollUntil(started, { intervalMs: 50, deadlineMs: 60_000, stopIf: () => !cli.running() });
  if (evidence === undefined || !cli.running()) {
    const stillRunning = cli.running();
    if (stillRunning) cli.child.kill('SIGKILL');
    const result = await cli.result;
    const why = stillRunning
      ? `no ${what} appeared within 60 s`
      : `the CLI exited before the signal could be sent${evidence === undefined ? ` (no ${what} was seen)` : ''}`;
    throw new Error(`could not interrupt: ${why}; the transfer was too fast or failed, so nothing was tested\n${describeResult(result)}`);
  }
  expect(cli.child.kill(signal), `${signal} could not be delivered`).toBe(true);
  return { evidence, result: await cli.result };
}

describe('Ctrl-C (SIGINT)', () => {
  it('during a multipart upload: exits 130, says it was interrupted, aborts the upload and stores no object', async () => {
    const key = 'interrupted/upload.bin';
    const cli = start(['cp', bigFile, `s3://${bucket}/${key}`, ...SLOW]);

    const { evidence: uploads, result } = await interruptOnce(cli, 'multipart upload', async () => {
      const open = await openMultipartUploads(client, bucket);
      return open.length > 0 ? open : undefined;
    });

    expect(uploads.map((u) => u.Key)).toEqual([key]);
    // 130, not 0: the upload was still running when the signal arrived.
    expectExitCode(result, 130);
    expect(result.stdout, 'an interrupted upload must not print a result line').toBe('');
    expect(result.stderr).toMatch(/^s3xfer: error: .*interrupted/m);
    expectNoNoise(result.stderr);
    expect(await openMultipartUploads(client, bucket), 'the multipart upload must be aborted').toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain(key);
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
  });

  describe('during a ranged download', () => {
    const key = 'interrupted/download.bin';

    beforeAll(async () => {
      await uploadFile(client, bigFile, bucket, key, { config: { concurrency: 8 } });
    });

    it('exits 130, removes its temp file and leaves the existing destination file unchanged', async () => {
      const dir = await tempDir('s3xfer-e2e-int-dl-');
      try {
        const target = join(dir, 'download.bin');
        const previous = 'the previous version of download.bin, which must survive an interrupted download\n';
        await writeFile(target, previous);
        const previousSha = await sha256File(target);

        const cli = start(['cp', `s3://${bucket}/${key}`, target, ...SLOW]);
        const { evidence: temps, result } = await interruptOnce(cli, '*.s3xfer-part temp file', async () => {
          const found = await leftoverTempFiles(dir);
          return found.length > 0 ? found : undefined;
        });

        expect(temps).toHaveLength(1);
        // 130, not 0: the download was still running when the signal arrived.
        expectExitCode(result, 130);
        expect(result.stdout, 'an interrupted download must not print a result line').toBe('');
        expect(result.stderr).toMatch(/^s3xfer: error: .*interrupted/m);
        expectNoNoise(result.stderr);
        expect(await leftoverTempFiles(dir), 'the temp file must be removed').toEqual([]);
        expect(await readdir(dir)).toEqual(['download.bin']);
        expect(await sha256File(target)).toBe(previousSha);
        expect(await readFile(target, 'utf8')).toBe(previous);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('SIGTERM (a CI job cancelled)', () => {
  it('during a multipart upload: exits 143 and aborts the upload', async () => {
    const key = 'terminated/upload.bin';
    const cli = start(['cp', bigFile, `s3://${bucket}/${key}`, ...SLOW]);
    const { result } = await interruptOnce(
      cli,
      'multipart upload',
      async () => {
        const open = await openMultipartUploads(client, bucket);
        return open.some((u) => u.Key === key) ? open : undefined;
      },
      'SIGTERM',
    );
    expectExitCode(result, 143);
    expect(result.stderr).toMatch(/^s3xfer: error: interrupted \(SIGTERM\)/m);
    expect(await openMultipartUploads(client, bucket)).toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain(key);
  });
});
