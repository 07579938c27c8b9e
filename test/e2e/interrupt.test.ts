/**
 * End-to-end: Ctrl-C (SIGINT) in the middle of a transfer. The CLI must stop, clean up what it
 * started (abort the multipart upload; remove the download's temp file, keep the old destination),
 * say so on stderr and exit 130.
 *
 * The signal is sent only once the transfer is observably under way (an open multipart upload on
 * the server; a temp file on disk). With --concurrency 1 and 5 MiB parts a 256 MiB transfer takes
 * seconds on a fast local server, and polling sees it start within ~50 ms. If the transfer still
 * ended before the signal could be sent, the test fails: it never passes without an interrupt.
 *
 * Directory jobs (cp --recursive, sync) of 8 files of 8 MiB go through the fault proxy
 * (test/helpers/fault-proxy.ts), which holds the data requests of f5–f8 for a minute: the signal is
 * sent once f1–f4 are done and f5–f8 are provably under way (temp files, open multipart uploads),
 * however fast the machine is. The job must end as a single transfer does (130 or 143, the one
 * "interrupted" line), not as a job whose files failed (exit 1, "4 failed"), and leave nothing
 * behind: no temp file, no open multipart upload, f1–f4 whole, f5–f8 nowhere.
 */

import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadFile } from '../../src/index.js';
import {
  type FaultProxy,
  isAbortMultipartUpload,
  isGetObject,
  isUploadPart,
  type ProxiedRequest,
  startFaultProxy,
} from '../helpers/fault-proxy.js';
import { leftoverTempFiles, MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { abortOpenUploads, cliEnv, listKeys, openMultipartUploads, s3Server } from '../helpers/s3.js';
import { keysUnder } from '../helpers/trees.js';
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
/** Fault proxies of the directory tests, closed once their CLIs are stopped. */
const proxies: FaultProxy[] = [];

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
  for (const proxy of proxies) await proxy.close();
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

describe('a second Ctrl-C', () => {
  it("while the first one's clean-up hangs (the abort of a multipart upload held): exits 130 at once and says what may remain", async () => {
    const key = 'twice/upload.bin';
    const proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [{ match: isAbortMultipartUpload, fault: { type: 'stall', ms: 60_000 } }],
    });
    proxies.push(proxy);
    const cli = start(['cp', bigFile, `s3://${bucket}/${key}`, ...SLOW, '--endpoint-url', proxy.url]);
    const open = await pollUntil(async () => ((await openMultipartUploads(client, bucket)).some((u) => u.Key === key) ? true : undefined), {
      intervalMs: 50,
      deadlineMs: 60_000,
      stopIf: () => !cli.running(),
    });
    expect(open && cli.running(), 'the upload never got under way').toBe(true);
    cli.child.kill('SIGINT');
    // The first Ctrl-C's clean-up has begun: its AbortMultipartUpload is held at the proxy.
    const held = await pollUntil(async () => (proxy.stats.faults > 0 ? true : undefined), { intervalMs: 20, deadlineMs: 30_000 });
    expect(held, 'the abort never reached the proxy').toBe(true);
    const second = performance.now();
    cli.child.kill('SIGINT');
    const result = await cli.result;

    expectExitCode(result, 130);
    expect(performance.now() - second, 'it waited for the held abort').toBeLessThan(10_000);
    expect(result.stderr, describeResult(result)).toBe(
      's3xfer: error: interrupted again (SIGINT): left before the clean-up ended; multipart uploads being aborted may remain ' +
        '(`aws s3api list-multipart-uploads --bucket BUCKET`), and temp files (`.*.s3xfer-part`) beside downloads\n',
    );
    // As it says: the upload is still open (the test removes it).
    expect((await openMultipartUploads(client, bucket)).map((u) => u.Key)).toContain(key);
    await abortOpenUploads(client, bucket);
  });
});

describe('a directory job (cp --recursive, sync)', () => {
  const NAMES = ['f1.bin', 'f2.bin', 'f3.bin', 'f4.bin', 'f5.bin', 'f6.bin', 'f7.bin', 'f8.bin'];
  const DONE = NAMES.slice(0, 4);
  const HELD = NAMES.slice(4);
  /** Two 5 MiB parts per 8 MiB file (every upload multipart, every download ranged); 8 of the 10 requests held. */
  const PARTS = ['--part-size', '5MiB', '--multipart-threshold', '5MiB', '--concurrency', '10'];
  /** 8 files of 8 MiB: the local source of the uploads, and under `tree/` the source of the downloads. */
  let tree: string;
  const shas = new Map<string, string>();

  beforeAll(async () => {
    tree = join(work, 'tree');
    await mkdir(tree);
    for (const name of NAMES) {
      const path = await randomFile(tree, name, 8 * MiB);
      shas.set(name, await sha256File(path));
      await uploadFile(client, path, bucket, `tree/${name}`);
    }
  });

  /** f5–f8, the files whose data requests the proxy holds. */
  const held = (r: ProxiedRequest) => /\/f[5-8]\.bin$/.test(r.path);

  /**
   * Starts the CLI through a proxy that holds f5–f8's data requests for a minute: each GetObject
   * after 64 KiB of its body (the temp file is there), each UploadPart before it reaches the store.
   */
  async function startHeld(args: string[]): Promise<{ cli: RunningCli; proxy: FaultProxy }> {
    const proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [
        { match: (r) => isGetObject(r) && held(r), fault: { type: 'stall', ms: 60_000, afterBytes: 64 * 1024 } },
        { match: (r) => isUploadPart(r) && held(r), fault: { type: 'stall', ms: 60_000 } },
      ],
    });
    proxies.push(proxy);
    return { cli: start([...args, ...PARTS, '--endpoint-url', proxy.url]), proxy };
  }

  /** What the CLI has printed on stdout so far. */
  function stdoutOf(cli: RunningCli): () => string {
    let text = '';
    cli.child.stdout!.on('data', (chunk: string) => (text += chunk));
    return () => text;
  }

  /**
   * The files the CLI has reported done (a result line, or a `--json` record of success): the
   * signal must come after, for an object can be on the server while its transfer still checks it.
   */
  const reportedDone = (stdout: string) =>
    [...stdout.matchAll(/^(?:(?:upload|download): |\{"type":"transfer".*"success":true).*\/(f\d\.bin)\b/gm)].map((m) => m[1]!).sort();

  /** f1–f4 reported uploaded under `prefix`, f5–f8 open multipart uploads there, held by the proxy. */
  const uploadsUnderWay = (cli: RunningCli, proxy: FaultProxy, prefix: string) => {
    const stdout = stdoutOf(cli);
    return async () => {
      const done = reportedDone(stdout());
      const open = (await openMultipartUploads(client, bucket)).map((u) => u.Key).sort();
      return done.length === DONE.length && open.length === HELD.length && proxy.stats.faults >= HELD.length
        ? { done, open, keys: await keysUnder(client, bucket, prefix) }
        : undefined;
    };
  };

  /** The interrupted command's one line: no job summary, no failed files. */
  function expectInterrupted(result: CliResult, signal: NodeJS.Signals): void {
    expect(result.stderr, describeResult(result)).toBe(`s3xfer: error: interrupted (${signal}); nothing was left behind\n`);
  }

  it('Ctrl-C during cp --recursive s3://… DIR: exits 130, says it was interrupted, no failures, no temp files', async () => {
    const dir = join(work, 'download');
    const { cli, proxy } = await startHeld(['cp', '--recursive', `s3://${bucket}/tree/`, dir, '--no-progress']);
    const stdout = stdoutOf(cli);
    const { evidence, result } = await interruptOnce(cli, 'f1–f4 downloaded and f5–f8 under way', async () => {
      const done = reportedDone(stdout());
      const temps = await leftoverTempFiles(dir).catch(() => []);
      return done.length === DONE.length && temps.length === HELD.length && proxy.stats.faults >= HELD.length ? { done, temps } : undefined;
    });

    expect(evidence.done).toEqual(DONE);
    expectExitCode(result, 130);
    expectInterrupted(result, 'SIGINT');
    expectNoNoise(result.stderr);
    // The files done before the signal are reported as done, and only they.
    const lines = result.stdout.split('\n').filter(Boolean);
    expect(lines.map((line) => line.match(/^download: s3:\/\/\S+\/(f\d\.bin) → /)?.[1]).sort()).toEqual(DONE);
    expect(await leftoverTempFiles(dir), 'the temp files must be removed').toEqual([]);
    expect((await readdir(dir)).sort()).toEqual(DONE);
    for (const name of DONE) expect(await sha256File(join(dir, name))).toBe(shas.get(name));
  });

  it('Ctrl-C during cp --recursive DIR s3://…: exits 130, aborts the multipart uploads, stores only whole files', async () => {
    const { cli, proxy } = await startHeld(['cp', '--recursive', tree, `s3://${bucket}/up/`, '--no-progress']);
    const { evidence, result } = await interruptOnce(
      cli,
      'f1–f4 uploaded and f5–f8 multipart uploads open',
      uploadsUnderWay(cli, proxy, 'up/'),
    );

    expect(evidence.done).toEqual(DONE);
    expect(evidence.open).toEqual(HELD.map((name) => `up/${name}`));
    expect(evidence.keys).toEqual(DONE);
    expectExitCode(result, 130);
    expectInterrupted(result, 'SIGINT');
    expectNoNoise(result.stderr);
    expect(await openMultipartUploads(client, bucket), 'the multipart uploads must be aborted').toEqual([]);
    expect((await keysUnder(client, bucket, 'up/')).sort()).toEqual(DONE);
  });

  it('SIGTERM during sync DIR s3://… --json: exits 143, the summary says 143 and interrupted', async () => {
    const { cli, proxy } = await startHeld(['sync', tree, `s3://${bucket}/sync/`, '--json']);
    const { result } = await interruptOnce(
      cli,
      'f1–f4 uploaded and f5–f8 multipart uploads open',
      uploadsUnderWay(cli, proxy, 'sync/'),
      'SIGTERM',
    );

    expectExitCode(result, 143);
    const records = result.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const summary = records.at(-1)!;
    expect(summary, describeResult(result)).toMatchObject({
      type: 'summary',
      success: false,
      exitCode: 143,
      transferred: DONE.length,
      error: { code: 'Aborted', message: 'interrupted (SIGTERM); nothing was left behind' },
    });
    expect(JSON.parse(result.stderr.trim())).toMatchObject({
      success: false,
      exitCode: 143,
      error: 'interrupted (SIGTERM); nothing was left behind',
    });
    expect(await openMultipartUploads(client, bucket), 'the multipart uploads must be aborted').toEqual([]);
    expect((await keysUnder(client, bucket, 'sync/')).sort()).toEqual(DONE);
  });
});
