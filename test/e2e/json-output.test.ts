/**
 * End-to-end: the `--json` NDJSON stream of every command, parsed line by line. Every line on
 * stdout must be one JSON object following the schema of its type (test/e2e/ndjson.ts pins the
 * exact keys and value types), nothing else may be on stdout, stderr stays empty on success and
 * holds one JSON error object when an error ends the command, and the last line is always the
 * summary, whose `exitCode` is the process's and whose counts match the records.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rm as remove, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteBucketPolicyCommand, PutBucketPolicyCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, randomFile } from '../helpers/files.js';
import { cliEnv } from '../helpers/s3.js';
import { exists, keysUnder as keysIn, putObjects as putIn, writeTree } from '../helpers/trees.js';
import { expectExitCode } from './expect-cli.js';
import { type JsonRecord, jsonStderrError, jsonStream, ofType } from './ndjson.js';
import { type CliResult, closeCliWorkspace, describeResult, openCliWorkspace, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('json'));
});

afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

/** Runs the CLI with --json in the work directory. */
const s3xfer = (args: string[]): Promise<CliResult> => runCli([...args, '--json'], { env: cliEnv(), cwd: work });
const url = (key: string) => `s3://${bucket}/${key}`;
const keysUnder = (prefix: string) => keysIn(client, bucket, prefix);
const md5Etag = (data: string | Uint8Array) => `"${createHash('md5').update(data).digest('hex')}"`;
const sorted = (values: unknown[]) => values.map(String).sort();

/** A successful --json run: exit `code`, nothing on stderr, a valid stream. */
function ok(result: CliResult, code = 0) {
  expectExitCode(result, code);
  expect(result.stderr, describeResult(result)).toBe('');
  return jsonStream(result);
}

const ZERO = { transferred: 0, failed: 0, bytes: 0, skipped: 0, deleted: 0, deleteFailed: 0, unchanged: 0 };

describe('cp', () => {
  it('an upload and a download: one transfer record each, then the summary (single request and multipart)', async () => {
    const text = 'hello, json\n';
    await writeFile(join(work, 'small.txt'), text);
    await randomFile(work, 'six.bin', 6 * MiB);
    const six = await readFile(join(work, 'six.bin'));
    const parts = ['--part-size', '5MiB', '--multipart-threshold', '5MiB'];

    const up = ok(await s3xfer(['cp', 'small.txt', url('cp/small.txt')]));
    expect(up.records).toEqual([
      expect.objectContaining({
        type: 'transfer',
        operation: 'upload',
        success: true,
        source: 'small.txt',
        destination: url('cp/small.txt'),
        bucket,
        key: 'cp/small.txt',
        bytes: text.length,
        parts: 1,
        multipart: false,
        etag: md5Etag(text),
      }),
    ]);
    expect(up.summary).toMatchObject({ ...ZERO, transferred: 1, bytes: text.length });

    const upParts = ok(await s3xfer(['cp', 'six.bin', url('cp/six.bin'), ...parts]));
    expect(upParts.records).toEqual([expect.objectContaining({ operation: 'upload', bytes: 6 * MiB, parts: 2, multipart: true })]);
    expect(upParts.records[0]!.etag).toMatch(/-2"$/);

    const down = ok(await s3xfer(['cp', url('cp/small.txt'), 'small.copy']));
    expect(down.records).toEqual([
      expect.objectContaining({
        type: 'transfer',
        operation: 'download',
        success: true,
        source: url('cp/small.txt'),
        destination: 'small.copy',
        bytes: text.length,
        verified: 'md5-etag',
        etag: md5Etag(text),
      }),
    ]);
    expect(down.summary).toMatchObject({ ...ZERO, transferred: 1, bytes: text.length });
    expect(await readFile(join(work, 'small.copy'), 'utf8')).toBe(text);

    const downParts = ok(await s3xfer(['cp', url('cp/six.bin'), 'six.copy', ...parts]));
    expect(downParts.records).toEqual([expect.objectContaining({ bytes: 6 * MiB, parts: 2, multipart: true, verified: 'multipart-etag' })]);
    expect((await readFile(join(work, 'six.copy'))).equals(six)).toBe(true);
  });

  it('a failed transfer: a failed transfer record and the summary on stdout, the error as JSON on stderr (exit 1)', async () => {
    const result = await s3xfer(['cp', url('cp/no-such-key'), 'missing.out']);
    expectExitCode(result, 1);
    const { records, summary } = jsonStream(result);
    expect(records).toEqual([
      {
        type: 'transfer',
        operation: 'download',
        success: false,
        source: url('cp/no-such-key'),
        destination: 'missing.out',
        error: { code: 'NoSuchKey', message: expect.stringContaining('does not exist') },
      },
    ]);
    expect(summary).toMatchObject({ ...ZERO, failed: 1, error: { code: 'NoSuchKey', message: expect.any(String) } });
    expect(jsonStderrError(result)).toMatchObject({
      code: 'NoSuchKey',
      exitCode: 1,
      error: (summary.error as { message: string }).message,
    });
    expect(await exists(join(work, 'missing.out'))).toBe(false);
  });

  it('a command that fails before any transfer still ends stdout with the summary: a missing source (2), bad usage (2)', async () => {
    const missing = await s3xfer(['cp', 'no-such-file.txt', url('cp/x')]);
    expectExitCode(missing, 2);
    const m = jsonStream(missing);
    expect(m.records).toEqual([
      expect.objectContaining({
        type: 'transfer',
        operation: 'upload',
        success: false,
        error: expect.objectContaining({ code: 'ENOENT' }),
      }),
    ]);
    expect(m.summary).toMatchObject({ failed: 1, error: { code: 'ENOENT' } });
    expect(jsonStderrError(missing).code).toBe('ENOENT');

    const usage = await s3xfer(['cp', '--no-such-flag', 'small.txt', url('cp/x')]);
    expectExitCode(usage, 2);
    const u = jsonStream(usage);
    expect(u.records).toEqual([]);
    expect(u.summary).toMatchObject({ ...ZERO, error: { code: 'BadUsage', message: expect.stringContaining('--no-such-flag') } });
    expect(jsonStderrError(usage).code).toBe('BadUsage');
  });

  it('cp s3://… - puts every record on stderr: stdout carries only the object', async () => {
    await putIn(client, bucket, { 'cp/stdout.txt': 'to stdout\n' });
    const result = await s3xfer(['cp', url('cp/stdout.txt'), '-']);
    expectExitCode(result, 0);
    expect(result.stdout).toBe('to stdout\n');
    const { records, summary } = jsonStream(result, 'stderr');
    expect(records).toEqual([expect.objectContaining({ type: 'transfer', operation: 'download', destination: '-', bytes: 10 })]);
    expect(summary).toMatchObject({ transferred: 1, bytes: 10 });
  });
});

describe('directory commands', () => {
  const tree = { 'a.txt': 'a', 'sub/b.txt': 'bb', 'sub/deeper/c.txt': 'ccc' };
  const treeBytes = Object.values(tree).join('').length;

  beforeAll(async () => {
    await writeTree(join(work, 'tree'), tree);
    await writeTree(join(work, 'fifo-tree'), { 'one.txt': '1', 'two.txt': '22' });
    execFileSync('mkfifo', [join(work, 'fifo-tree', 'pipe')]);
  });

  it('cp --recursive: a transfer record per file each way; the summary counts files and bytes', async () => {
    const up = ok(await s3xfer(['cp', '--recursive', 'tree', url('tree/')]));
    expect(up.records.every((r) => r.type === 'transfer' && r.operation === 'upload' && r.success)).toBe(true);
    expect(sorted(up.records.map((r) => r.destination))).toEqual(sorted(Object.keys(tree).map((k) => url(`tree/${k}`))));
    expect(up.summary).toMatchObject({ ...ZERO, transferred: 3, bytes: 6 });

    const down = ok(await s3xfer(['cp', '--recursive', url('tree/'), 'tree-copy']));
    expect(sorted(down.records.map((r) => `${r.operation} ${r.source}`))).toEqual(
      sorted(Object.keys(tree).map((k) => `download ${url(`tree/${k}`)}`)),
    );
    expect(down.records.every((r) => r.verified === 'md5-etag')).toBe(true);
    expect(down.summary).toMatchObject({ ...ZERO, transferred: 3, bytes: 6 });
  });

  it('sync: a skip record for a FIFO (exit 2); unchanged files counted; --delete gives delete records', async () => {
    const first = ok(await s3xfer(['sync', 'fifo-tree', url('sync/')]), 2);
    expect(ofType(first.records, 'skip')).toEqual([
      {
        type: 'skip',
        source: join('fifo-tree', 'pipe'),
        code: 'SpecialFile',
        reason: 'is a FIFO (named pipe)',
        message: `skipped ${join('fifo-tree', 'pipe')}: is a FIFO (named pipe)`,
      },
    ]);
    expect(sorted(ofType(first.records, 'transfer').map((r) => r.key))).toEqual(['sync/one.txt', 'sync/two.txt']);
    expect(first.records).toHaveLength(3);
    expect(first.summary).toMatchObject({ ...ZERO, transferred: 2, bytes: 3, skipped: 1 });

    await remove(join(work, 'fifo-tree', 'one.txt'));
    const second = ok(await s3xfer(['sync', '--delete', 'fifo-tree', url('sync/')]), 2);
    expect(ofType(second.records, 'delete')).toEqual([
      { type: 'delete', operation: 'delete', dryrun: false, destination: url('sync/one.txt'), success: true },
    ]);
    expect(ofType(second.records, 'transfer')).toEqual([]);
    expect(second.summary).toMatchObject({ ...ZERO, skipped: 1, deleted: 1, unchanged: 1 });
    expect(await keysUnder('sync/')).toEqual(['two.txt']);
  });

  it('--dryrun gives plan records and changes nothing: cp --recursive, sync --delete, rm --recursive', async () => {
    await putIn(client, bucket, { 'dry/old.txt': 'old' });

    const cp = ok(await s3xfer(['cp', '--recursive', '--dryrun', 'tree', url('dry/')]));
    expect(cp.records.every((r) => r.type === 'plan' && r.operation === 'upload')).toBe(true);
    expect(sorted(cp.records.map((r) => r.destination))).toEqual(sorted(Object.keys(tree).map((k) => url(`dry/${k}`))));
    expect(cp.summary).toMatchObject(ZERO);
    expect(cp.summary.dryRun).toEqual({ transfers: Object.keys(tree).length, bytes: treeBytes, deletes: 0 });

    const sync = ok(await s3xfer(['sync', '--delete', '--dryrun', 'tree', url('dry/')]));
    expect(sorted(sync.records.map((r) => `${r.type} ${r.operation} ${r.destination}`))).toEqual(
      sorted([...Object.keys(tree).map((k) => `plan upload ${url(`dry/${k}`)}`), `plan delete ${url('dry/old.txt')}`]),
    );
    expect(sync.summary).toMatchObject({ ...ZERO, dryRun: { transfers: Object.keys(tree).length, bytes: treeBytes, deletes: 1 } });

    const rmDry = ok(await s3xfer(['rm', '--recursive', '--dryrun', url('dry/')]));
    expect(rmDry.records).toEqual([{ type: 'plan', operation: 'delete', dryrun: true, destination: url('dry/old.txt'), success: true }]);
    expect(rmDry.summary).toMatchObject({ ...ZERO, dryRun: { transfers: 0, bytes: 0, deletes: 1 } });
    expect(await keysUnder('dry/')).toEqual(['old.txt']);
  });
});

describe('ls', () => {
  beforeAll(async () => {
    await putIn(client, bucket, { 'ls/top.txt': 'top', 'ls/dir/inner.txt': 'inner', 'ls/dir/deeper/x.txt': 'x' });
  });

  it('buckets: a bucket record each, ours among them', async () => {
    const { records, summary } = ok(await s3xfer(['ls']));
    expect(records.every((r) => r.type === 'bucket')).toBe(true);
    expect(records).toContainEqual({ type: 'bucket', name: bucket, created: expect.any(String) });
    expect(summary).toMatchObject(ZERO);
  });

  it('one level: object and prefix records; --recursive --summarize: every object and a total', async () => {
    const level = ok(await s3xfer(['ls', url('ls/')]));
    // In key order, as S3 lists them: `ls/dir/` before `ls/top.txt`.
    expect(level.records).toEqual([
      { type: 'prefix', bucket, prefix: 'ls/dir/' },
      { type: 'object', bucket, key: 'ls/top.txt', size: 3, lastModified: expect.any(String), etag: md5Etag('top') },
    ]);
    expect(Math.abs(Date.parse(level.records[1]!.lastModified as string) - Date.now())).toBeLessThan(10 * 60_000);

    const all = ok(await s3xfer(['ls', '--recursive', '--summarize', url('ls/')]));
    expect(all.records.map((r) => r.type)).toEqual(['object', 'object', 'object', 'total']);
    expect(all.records.slice(0, 3).map((r) => r.key)).toEqual(['ls/dir/deeper/x.txt', 'ls/dir/inner.txt', 'ls/top.txt']);
    expect(all.records[3]).toEqual({ type: 'total', objects: 3, bytes: 9 });
  });

  it('a missing bucket: only the summary on stdout (exit 254), the error as JSON on stderr', async () => {
    const result = await s3xfer(['ls', 's3://s3xfer-e2e-json-no-such-bucket/']);
    expectExitCode(result, 254);
    const { records, summary } = jsonStream(result);
    expect(records).toEqual([]);
    expect(summary).toMatchObject({ ...ZERO, error: { code: 'NoSuchBucket' } });
    expect(jsonStderrError(result).code).toBe('NoSuchBucket');
  });
});

describe('rm', () => {
  it('one key: a delete record, counted in the summary', async () => {
    await putIn(client, bucket, { 'rm/one.txt': '1', 'rm/other.txt': '2' });
    const { records, summary } = ok(await s3xfer(['rm', url('rm/one.txt')]));
    expect(records).toEqual([{ type: 'delete', operation: 'delete', dryrun: false, destination: url('rm/one.txt'), success: true }]);
    expect(summary).toMatchObject({ ...ZERO, deleted: 1 });
    expect(await keysUnder('rm/')).toEqual(['other.txt']);
  });

  it('--recursive: a delete record per key; a key the store refuses is a failed delete record (exit 1)', async () => {
    await putIn(client, bucket, { 'rmr/a': 'a', 'rmr/b/c': 'c', 'rmr/keep-me': 'k' });
    await client.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/rmr/keep-*` }],
        }),
      }),
    );
    let result: CliResult;
    try {
      result = await s3xfer(['rm', '--recursive', url('rmr/')]);
    } finally {
      await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    }
    expectExitCode(result, 1);
    const { records, summary } = jsonStream(result);
    expect(sorted(ofType(records, 'delete').map((r) => `${r.success} ${r.destination}`))).toEqual(
      sorted([`true ${url('rmr/a')}`, `true ${url('rmr/b/c')}`, `false ${url('rmr/keep-me')}`]),
    );
    expect(records.find((r) => r.success === false)).toEqual({
      type: 'delete',
      operation: 'delete',
      dryrun: false,
      destination: url('rmr/keep-me'),
      success: false,
      error: { code: 'AccessDenied', message: expect.stringContaining('keep-me') },
    });
    expect(records).toHaveLength(3);
    expect(summary).toMatchObject({ ...ZERO, deleted: 2, deleteFailed: 1 });
    expect(await keysUnder('rmr/')).toEqual(['keep-me']);
  });
});

describe('run', () => {
  it("the lines' records, an error record per bad line (with its number), and one summary for the batch", async () => {
    await putIn(client, bucket, { 'run/existing.txt': 'existing', 'run/doomed.txt': 'doomed' });
    await writeFile(join(work, 'run-up.txt'), 'up!');
    const lines = [
      `cp run-up.txt ${url('run/up.txt')}`,
      `cp ${url('run/existing.txt')} run-down.txt`,
      `rm ${url('run/doomed.txt')}`,
      '# a comment',
      `cp run-up.txt ${url('run/x')} | cat`,
      'cp one-operand-only',
    ];
    await writeFile(join(work, 'batch.txt'), `${lines.join('\n')}\n`);

    const result = await s3xfer(['run', 'batch.txt']);
    expectExitCode(result, 2);
    expect(result.stderr, describeResult(result)).toBe('');
    const { records, summary } = jsonStream(result);
    const byType = (type: string) => ofType(records, type);
    expect(sorted(byType('transfer').map((r) => `${r.operation} ${r.source} ${r.destination} ${r.success}`))).toEqual(
      sorted([`upload run-up.txt ${url('run/up.txt')} true`, `download ${url('run/existing.txt')} run-down.txt true`]),
    );
    expect(byType('delete')).toEqual([
      { type: 'delete', operation: 'delete', dryrun: false, destination: url('run/doomed.txt'), success: true },
    ]);
    const errors = byType('error').sort((a, b) => (a.line as number) - (b.line as number));
    expect(errors).toEqual([
      {
        type: 'error',
        operation: 'run',
        line: 5,
        command: lines[4],
        success: false,
        error: { code: 'BadLine', message: expect.stringMatching(/^line 5: only plain words/) },
      },
      {
        type: 'error',
        operation: 'run',
        line: 6,
        command: lines[5],
        success: false,
        error: { code: 'BadUsage', message: expect.stringMatching(/^line 6: /) },
      },
    ]);
    expect(records).toHaveLength(5);
    expect(summary).toMatchObject({ ...ZERO, transferred: 2, bytes: 3 + 8, deleted: 1 });
    expect(summary).not.toHaveProperty('error');
    expect(await readFile(join(work, 'run-down.txt'), 'utf8')).toBe('existing');
  });

  it('a failing line: its failed transfer record and an error record for the line (exit 1)', async () => {
    await writeFile(join(work, 'batch-fail.txt'), `cp ${url('run/not-there')} never.txt\ncp run-up.txt ${url('run/up2.txt')}\n`);
    const result = await s3xfer(['run', 'batch-fail.txt']);
    expectExitCode(result, 1);
    expect(result.stderr, describeResult(result)).toBe('');
    const { records, summary } = jsonStream(result);
    const failed = records.filter((r) => r.success === false);
    expect(failed).toEqual([
      expect.objectContaining({ type: 'transfer', operation: 'download', error: expect.objectContaining({ code: 'NoSuchKey' }) }),
      expect.objectContaining({ type: 'error', line: 1, error: expect.objectContaining({ code: 'NoSuchKey' }) }),
    ]);
    expect(ofType(records, 'transfer').filter((r: JsonRecord) => r.success)).toHaveLength(1);
    expect(summary).toMatchObject({ ...ZERO, transferred: 1, failed: 1, bytes: 3 });
  });
});
