import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressMeter, progressText, resultLine } from '../../src/cli/reporters/format.js';
import { JobProgress } from '../../src/cli/reporters/job-progress.js';
import { JsonReporter } from '../../src/cli/reporters/json-reporter.js';
import { PlainReporter } from '../../src/cli/reporters/plain-reporter.js';
import { reporterKind } from '../../src/cli/reporters/reporter.js';
import type { TransferInfo, TransferResult } from '../../src/index.js';

const GiB = 1024 ** 3;
const result: TransferResult = {
  direction: 'upload',
  source: './a.bin',
  destination: 's3://b/a.bin',
  bucket: 'b',
  key: 'a.bin',
  bytes: GiB,
  parts: 128,
  multipart: true,
  seconds: 5.2,
  etag: '"x-128"',
};

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk) => (text += String(chunk)));
  return { stream, text: () => text };
}

describe('resultLine', () => {
  it('says what moved where, how much, how fast', () => {
    expect(resultLine(result)).toBe('upload: ./a.bin → s3://b/a.bin  1.0 GiB in 5.2 s (196.9 MiB/s)');
  });
});

describe('ProgressMeter and progressText', () => {
  it('computes the rate over the recent window and an ETA', () => {
    let now = 0;
    const meter = new ProgressMeter(3000, () => now);
    const transfer: TransferInfo = { direction: 'download', source: 's3://b/k', destination: 'k', totalBytes: 100 * 1024 * 1024 };
    for (let i = 1; i <= 10; i++) {
      now = i * 1000;
      meter.add(5 * 1024 * 1024);
    }
    expect(meter.rate()).toBeCloseTo(5 * 1024 * 1024, -3);
    expect(progressText(transfer.totalBytes, meter)).toBe('50.0 MiB / 100.0 MiB (50%)  5.0 MiB/s  ETA 10s');
  });
});

describe('JobProgress', () => {
  it('shows the total as "?" while a transfer of unknown size (stdin) is under way, and counts its bytes once it ends', () => {
    const job = new JobProgress(new ProgressMeter(3000, () => 0));
    const file: TransferInfo = { direction: 'upload', source: 'a', destination: 's3://b/a', totalBytes: 1024 };
    const stdin: TransferInfo = { direction: 'upload', source: '-', destination: 's3://b/piped' };
    job.onQueued(file);
    job.onQueued(stdin);
    job.onProgress({ transfer: stdin, bytesDelta: 3 * 1024 * 1024, bytesDone: 3 * 1024 * 1024 });
    expect(job.text()).toMatch(/^0\/2 files {2}3\.0 MiB \/ \? {2}/);
    job.onDone({ ...result, source: '-', destination: 's3://b/piped', bytes: 3 * 1024 * 1024 });
    expect(job.text()).toMatch(/^1\/2 files {2}3\.0 MiB \/ 3\.0 MiB \(99%\)/);
  });
});

describe('PlainReporter (CI logs)', () => {
  it('prints progress at most once per interval on stderr and the result on stdout', () => {
    let now = 0;
    const out = capture();
    const err = capture();
    const reporter = new PlainReporter(
      { stdout: out.stream, stderr: err.stream },
      { progress: true, results: true, intervalMs: 5000 },
      () => now,
    );
    const transfer: TransferInfo = { direction: 'upload', source: 'a', destination: 's3://b/a', totalBytes: 1000 };
    reporter.onQueued(transfer);
    for (let t = 0; t <= 12_000; t += 500) {
      now = t;
      reporter.onProgress({ transfer, bytesDelta: 10, bytesDone: 0 });
    }
    reporter.onDone({ ...result, bytes: 1000 });
    expect(err.text().trim().split('\n')).toHaveLength(2); // at 5 s and at 10 s
    expect(err.text()).toMatch(/^upload a → s3:\/\/b\/a {2}\d/);
    expect(out.text()).toBe(`${resultLine({ ...result, bytes: 1000 })}\n`);
  });

  it('in quiet mode prints only errors', () => {
    const out = capture();
    const err = capture();
    const reporter = new PlainReporter({ stdout: out.stream, stderr: err.stream }, { progress: false, results: false });
    reporter.onDone(result);
    reporter.error('bucket "b" does not exist', { stack: undefined });
    expect(out.text()).toBe('');
    expect(err.text()).toBe('s3xfer: error: bucket "b" does not exist\n');
  });
});

describe('JsonReporter', () => {
  it('writes one JSON object per result on stdout and the error as JSON on stderr', () => {
    const out = capture();
    const err = capture();
    const reporter = new JsonReporter({ stdout: out.stream, stderr: err.stream });
    reporter.onDone(result);
    reporter.error('nope', { code: 'NoSuchKey', exitCode: 1 });
    expect(JSON.parse(out.text())).toMatchObject({ operation: 'upload', success: true, source: './a.bin', bytes: GiB, etag: '"x-128"' });
    expect(JSON.parse(err.text())).toEqual({ success: false, error: 'nope', code: 'NoSuchKey', exitCode: 1 });
  });
});

describe('reporterKind', () => {
  const tty = { stdout: new PassThrough(), stderr: Object.assign(new PassThrough(), { isTTY: true }) };
  it('uses a spinner only on a terminal outside CI', () => {
    expect(reporterKind({ json: false, quiet: false }, tty, {})).toBe('tty');
    expect(reporterKind({ json: false, quiet: false }, tty, { CI: 'true' })).toBe('plain');
    expect(reporterKind({ json: false, quiet: false }, { stdout: new PassThrough(), stderr: new PassThrough() }, {})).toBe('plain');
    expect(reporterKind({ json: true, quiet: false }, tty, {})).toBe('json');
    expect(reporterKind({ json: false, quiet: true }, tty, {})).toBe('quiet');
  });

  it('uses plain lines on a terminal of 0 columns (an unsized pseudo-terminal), where ora would redraw forever', () => {
    const unsized = { stdout: new PassThrough(), stderr: Object.assign(new PassThrough(), { isTTY: true, columns: 0 }) };
    expect(reporterKind({ json: false, quiet: false }, unsized, {})).toBe('plain');
    const sized = { stdout: new PassThrough(), stderr: Object.assign(new PassThrough(), { isTTY: true, columns: 120 }) };
    expect(reporterKind({ json: false, quiet: false }, sized, {})).toBe('tty');
  });
});
