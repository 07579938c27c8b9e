/**
 * End-to-end: every way a command can go wrong, through the built CLI against the real S3 server.
 * Each case checks the exit code (2: the command cannot run as given; 1: the transfer failed), a
 * single `s3xfer: error: ` line on stderr that says what is wrong, and that nothing was left behind:
 * no object, no open multipart upload, no `*.s3xfer-part` temp file, no partial destination.
 */

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DeleteBucketPolicyCommand, HeadObjectCommand, PutBucketPolicyCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { type FaultProxy, isGetObject, startFaultProxy } from '../helpers/fault-proxy.js';
import { leftoverTempFiles, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { cliEnv, listKeys, openMultipartUploads, s3Server } from '../helpers/s3.js';
import { expectExitCode, expectFailure } from './expect-cli.js';
import { type CliOptions, closeCliWorkspace, describeResult, openCliWorkspace, runCli } from './run-cli.js';

/** The uid/gid of `nobody`, for running the CLI without root's power to read any file. */
const NOBODY = 65534;

let client: S3Client;
let bucket: string;
let work: string;
/** A small readable file to upload. */
let smallFile: string;
/** An object that exists, for downloads. */
const existingKey = 'existing/object.bin';
const existingBody = randomBytes(3000);

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('err'));
  smallFile = await randomFile(work, 'small.bin', 1000);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: existingKey, Body: existingBody }));
});

afterAll(async () => {
  if (bucket) await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket })).catch(() => {});
  await closeCliWorkspace({ client, bucket, work });
});

/** Runs the CLI in the work directory with the test server's settings (plus `env` overrides). */
function s3xfer(args: string[], options: Partial<CliOptions> & { extraEnv?: Record<string, string> } = {}) {
  const { extraEnv, ...rest } = options;
  return runCli(args, { env: cliEnv(extraEnv), cwd: work, ...rest });
}

/** A fresh, empty directory for one download's destination. */
async function freshDir(name: string): Promise<string> {
  const dir = join(work, `${name}-${randomBytes(3).toString('hex')}`);
  await mkdir(dir);
  return dir;
}

/** The upload left nothing in the bucket: the key is absent and no multipart upload is open. */
async function expectNothingUploaded(key: string): Promise<void> {
  expect(await listKeys(client, bucket)).not.toContain(key);
  expect(await openMultipartUploads(client, bucket)).toEqual([]);
}

/** The download left nothing: the directory holds exactly `expected` (no temp files, no partial destination). */
async function expectDirContains(dir: string, expected: string[]): Promise<void> {
  expect(await leftoverTempFiles(dir)).toEqual([]);
  expect((await readdir(dir)).sort()).toEqual([...expected].sort());
}

/** No test may create objects other than the ones it asserts on; every failure must leave the bucket unchanged. */
let keysBefore: string[];
beforeEach(async () => {
  if (client && bucket) keysBefore = await listKeys(client, bucket);
});

async function expectBucketUnchanged(): Promise<void> {
  expect(await listKeys(client, bucket)).toEqual(keysBefore);
  expect(await openMultipartUploads(client, bucket)).toEqual([]);
}

describe('local source problems exit 2', () => {
  it('a missing source file: "no such file or directory", naming the path', async () => {
    const missing = join(work, 'does-not-exist.bin');

    const result = await s3xfer(['cp', missing, `s3://${bucket}/missing-source.bin`]);

    expectFailure(result, 2, missing, 'no such file or directory');
    await expectNothingUploaded('missing-source.bin');
    await expectBucketUnchanged();
  });

  it('a source that is a directory: "is a directory"', async () => {
    const dir = await freshDir('a-directory');

    const result = await s3xfer(['cp', dir, `s3://${bucket}/directory-source.bin`]);

    expectFailure(result, 2, dir, 'is a directory', 'cp --recursive');
    await expectNothingUploaded('directory-source.bin');
    await expectBucketUnchanged();
  });

  it('a source that is a socket or a device: "not a regular file"', async () => {
    const socketPath = join(await freshDir('a-socket'), 'listening.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const [socket, device] = await Promise.all([
      s3xfer(['cp', socketPath, `s3://${bucket}/socket-source.bin`]),
      s3xfer(['cp', '/dev/null', `s3://${bucket}/device-source.bin`]),
    ]);

    expectFailure(socket, 2, socketPath, 'not a regular file');
    expectFailure(device, 2, '/dev/null', 'not a regular file');
    await expectNothingUploaded('socket-source.bin');
    await expectNothingUploaded('device-source.bin');
    await expectBucketUnchanged();
  });

  it('an unreadable source file (mode 000, run as nobody): "permission denied"', async (context) => {
    // Root reads any file whatever its mode, so the CLI runs as nobody (uid/gid 65534) here.
    context.skip(process.getuid?.() !== 0, 'needs root to start the CLI as another user (as root, mode 000 does not stop reads)');
    // Its own temp dir (the work dir is 0700), traversable by nobody: only the file's mode may stop the read.
    const dir = await tempDir('s3xfer-e2e-nobody-');
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await chmod(dir, 0o755);
    const locked = join(dir, 'locked.bin');
    await writeFile(locked, 'secret bytes');
    await chmod(locked, 0o000);
    const readable = join(dir, 'readable.bin');
    await writeFile(readable, 'public bytes');
    await chmod(readable, 0o644);
    const asNobody = { uid: NOBODY, gid: NOBODY, cwd: dir };

    // Preconditions: nobody can run the CLI at all (the repository and node_modules are readable
    // by others) and can upload a readable file from the same directory.
    const version = await s3xfer(['--version'], asNobody);
    expect(
      version.code,
      `the CLI cannot run as nobody; make ${work} and the repository readable by others\n${describeResult(version)}`,
    ).toBe(0);
    const control = await s3xfer(['cp', readable, `s3://${bucket}/readable-by-nobody.bin`], asNobody);
    expectExitCode(control, 0);
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'readable-by-nobody.bin' }));
    keysBefore = await listKeys(client, bucket);

    const result = await s3xfer(['cp', locked, `s3://${bucket}/unreadable-source.bin`], asNobody);

    expectFailure(result, 2, locked, 'permission denied');
    await expectNothingUploaded('unreadable-source.bin');
    await expectBucketUnchanged();
  });
});

describe('malformed operands exit 2', () => {
  it.each([
    { url: 's3://', says: 'the bucket name is missing' },
    { url: 's3:///key', says: 'the bucket name is missing' },
    { url: 's3://ab/key', says: '"ab" is not a valid bucket name' },
  ])('upload to $url: "$says"', async ({ url, says }) => {
    const result = await s3xfer(['cp', smallFile, url]);

    expectFailure(result, 2, `invalid S3 URL "${url}"`, says);
    await expectBucketUnchanged();
  });

  it.each([
    { url: 's3://', says: 'the bucket name is missing' },
    { url: 's3:///key', says: 'the bucket name is missing' },
    { url: 's3://ab/key', says: '"ab" is not a valid bucket name' },
  ])('download from $url: "$says", and no file is created', async ({ url, says }) => {
    const dir = await freshDir('malformed');

    const result = await s3xfer(['cp', url, join(dir, 'out.bin')]);

    expectFailure(result, 2, `invalid S3 URL "${url}"`, says);
    await expectDirContains(dir, []);
  });

  it('two local operands: one of them must be an s3:// URL', async () => {
    const dir = await freshDir('both-local');
    const target = join(dir, 'copy.bin');

    const result = await s3xfer(['cp', smallFile, target]);

    expectFailure(result, 2, 'must be an s3://bucket/key URL');
    await expectDirContains(dir, []);
  });

  it('two S3 operands: copying from S3 to S3 is not supported', async () => {
    const result = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, `s3://${bucket}/copy-of-existing.bin`]);

    expectFailure(result, 2, 'from S3 to S3', 'not supported');
    await expectBucketUnchanged();
  });

  it('download of a key ending in "/" names no object', async () => {
    const dir = await freshDir('slash-key');

    const result = await s3xfer(['download', `s3://${bucket}/existing/`, `${dir}/`]);

    expectFailure(result, 2, `s3://${bucket}/existing/`, 'names no object');
    await expectDirContains(dir, []);
  });
});

describe('missing bucket or key exits 1', () => {
  const missingBucket = `s3xfer-e2e-missing-${randomBytes(4).toString('hex')}`;

  it('upload to a bucket that does not exist: says the bucket does not exist', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${missingBucket}/key.bin`]);

    expectFailure(result, 1, `bucket "${missingBucket}" does not exist`);
    await expectBucketUnchanged();
  });

  it('download from a bucket that does not exist: says the bucket does not exist, no file created', async () => {
    const dir = await freshDir('missing-bucket');

    const result = await s3xfer(['cp', `s3://${missingBucket}/key.bin`, join(dir, 'key.bin')]);

    expectFailure(result, 1, `bucket "${missingBucket}" does not exist`);
    await expectDirContains(dir, []);
  });

  it('download of a key that does not exist: says the object does not exist, no file created', async () => {
    const dir = await freshDir('missing-key');

    const result = await s3xfer(['cp', `s3://${bucket}/no/such/key.bin`, join(dir, 'key.bin')]);

    expectFailure(result, 1, `s3://${bucket}/no/such/key.bin does not exist`);
    await expectDirContains(dir, []);
  });

  it('download of a key that does not exist leaves an existing destination file as it was', async () => {
    const dir = await freshDir('missing-key-existing-dest');
    const target = join(dir, 'keep.txt');
    await writeFile(target, 'keep me\n');

    const result = await s3xfer(['cp', `s3://${bucket}/no/such/key.bin`, target]);

    expectFailure(result, 1, 'does not exist');
    await expectDirContains(dir, ['keep.txt']);
    expect(await readFile(target, 'utf8')).toBe('keep me\n');
  });
});

describe('access denied by a bucket policy exits 1', () => {
  // A bucket policy with an explicit Deny on denied/* for every principal. An explicit Deny beats
  // any Allow, including the bucket owner's implicit rights; Ceph RGW evaluates bucket policies for
  // the owner too (checked: GET/HEAD/PUT of denied/* by the owner answer 403 AccessDenied), so the
  // test user really gets a 403 without a second user.
  const deniedKey = 'denied/secret.bin';

  beforeAll(async () => {
    // Written before the policy, so the download below fails on access, not on a missing key.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: deniedKey, Body: 'secret' }));
    await client.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Deny', Principal: '*', Action: ['s3:GetObject', 's3:PutObject'], Resource: [`arn:aws:s3:::${bucket}/denied/*`] },
          ],
        }),
      }),
    );
  });

  afterAll(async () => {
    await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
  });

  it('upload to a denied key: "access denied", nothing stored', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/denied/new.bin`]);

    expectFailure(result, 1, `access denied to s3://${bucket}/denied/new.bin`);
    await expectNothingUploaded('denied/new.bin');
    await expectBucketUnchanged();
  });

  it('multipart upload to a denied key: "access denied", no multipart upload left open', async () => {
    const source = await randomFile(work, 'denied-multipart.bin', 11 * 1024 * 1024);

    const result = await s3xfer(['cp', source, `s3://${bucket}/denied/big.bin`, '--part-size', '5MiB', '--multipart-threshold', '5MiB']);

    expectFailure(result, 1, /access denied/);
    await expectNothingUploaded('denied/big.bin');
    await expectBucketUnchanged();
  });

  it('download of a denied key: "access denied", no file created', async () => {
    const dir = await freshDir('denied');

    const result = await s3xfer(['cp', `s3://${bucket}/${deniedKey}`, join(dir, 'secret.bin')]);

    expectFailure(result, 1, `access denied to s3://${bucket}/${deniedKey}`);
    await expectDirContains(dir, []);
  });
});

describe('bad credentials exit 253 (a configuration problem, as in the aws CLI)', () => {
  const cases = [
    {
      what: 'a wrong secret key',
      env: () => ({ AWS_SECRET_ACCESS_KEY: `${s3Server().secretAccessKey}-wrong` }),
      says: /request signature does not match.*SignatureDoesNotMatch/,
    },
    {
      what: 'an unknown access key',
      env: () => ({ AWS_ACCESS_KEY_ID: `unknown-${randomBytes(4).toString('hex')}` }),
      says: /access key ID is not known.*InvalidAccessKeyId/,
    },
  ];

  it.each(cases)('upload with $what: says so, nothing stored', async ({ env, says }) => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/bad-credentials.bin`], { extraEnv: env() });

    expectFailure(result, 253, says);
    await expectNothingUploaded('bad-credentials.bin');
    await expectBucketUnchanged();
  });

  it('a --profile wins over keys in the environment, quietly (as in botocore), and its keys are used', async () => {
    const home = await freshDir('profile-files');
    const server = s3Server();
    await writeFile(
      join(home, 'credentials'),
      `[good]\naws_access_key_id = ${server.accessKeyId}\naws_secret_access_key = ${server.secretAccessKey}\n`,
    );
    const extraEnv = {
      AWS_CONFIG_FILE: join(home, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'),
      AWS_SECRET_ACCESS_KEY: 'a-wrong-secret-in-the-environment',
    };
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/profile-wins.bin`, '--profile', 'good'], { extraEnv });

    expectExitCode(result, 0);
    expect(result.stderr).not.toMatch(/credential sources/i);
    await s3xfer(['rm', `s3://${bucket}/profile-wins.bin`]);
  });

  it('a --profile that is in no config file: says so in one line, nothing stored', async () => {
    const none = await freshDir('no-aws-files');
    const extraEnv = { AWS_CONFIG_FILE: join(none, 'config'), AWS_SHARED_CREDENTIALS_FILE: join(none, 'credentials') };
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/no-profile.bin`, '--profile', 'nosuch'], { extraEnv });

    expectFailure(
      result,
      253,
      /^s3xfer: error: the profile "nosuch" \(--profile\) is in neither ~\/\.aws\/config nor ~\/\.aws\/credentials$/m,
    );
    await expectNothingUploaded('no-profile.bin');
  });

  it.each(cases)('download with $what: says so, no file created', async ({ env, says }) => {
    const dir = await freshDir('bad-credentials');

    const result = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, join(dir, 'out.bin')], { extraEnv: env() });

    expectFailure(result, 253, says);
    await expectDirContains(dir, []);
  });
});

describe('endpoint problems', () => {
  it('upload to an unreachable endpoint exits 1: "cannot reach"', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/unreachable.bin`, '--endpoint-url', 'http://127.0.0.1:9']);

    expectFailure(result, 1, /cannot reach the S3 endpoint/, 'ECONNREFUSED');
    await expectBucketUnchanged();
  });

  it('download from an unreachable endpoint exits 1: "cannot reach", no file created', async () => {
    const dir = await freshDir('unreachable');

    const result = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, join(dir, 'out.bin'), '--endpoint-url', 'http://127.0.0.1:9']);

    expectFailure(result, 1, /cannot reach the S3 endpoint/);
    await expectDirContains(dir, []);
  });

  it.each(['not a url', 'ftp://127.0.0.1:7480', '127.0.0.1:7480'])(
    'an endpoint URL that is not http(s)://host (%j) exits 2',
    async (endpoint) => {
      const result = await s3xfer(['cp', smallFile, `s3://${bucket}/bad-endpoint.bin`, '--endpoint-url', endpoint]);

      expectFailure(result, 2, `invalid endpoint URL "${endpoint}"`);
      await expectBucketUnchanged();
    },
  );
});

describe('local destination directories (as aws s3 cp)', () => {
  let proxy: FaultProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it('missing directories of the destination are made: DIR/ and a/b/name', async () => {
    const dir = await freshDir('dest-parents');
    for (const target of [`${join(dir, 'new-dir')}/`, join(dir, 'a', 'b', 'out.bin')]) {
      const result = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, target]);
      expectExitCode(result, 0);
    }
    expect(await readFile(join(dir, 'new-dir', 'object.bin'))).toEqual(existingBody);
    expect(await readFile(join(dir, 'a', 'b', 'out.bin'))).toEqual(existingBody);
  });

  it('a file where a directory is needed: exit 1, "not a directory", the file unchanged', async () => {
    const dir = await freshDir('dest-file-in-way');
    await writeFile(join(dir, 'f.txt'), 'keep');
    for (const target of [`${join(dir, 'f.txt')}/`, join(dir, 'f.txt', 'deeper', 'out.bin')]) {
      const result = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, target]);
      expectFailure(result, 1, 'f.txt: not a directory (a file is in the way)');
    }
    expect(await readFile(join(dir, 'f.txt'), 'utf8')).toBe('keep');
    await expectDirContains(dir, ['f.txt']);
  });

  it('no directory is left by a download that fails: a missing key, or a GET refused after the HEAD', async () => {
    const dir = await freshDir('dest-parents-failed');
    const missing = await s3xfer(['cp', `s3://${bucket}/no/such/key.bin`, join(dir, 'x', 'y', 'out.bin')]);
    expectFailure(missing, 1, 'does not exist');
    proxy = await startFaultProxy({
      upstream: s3Server().endpoint,
      rules: [{ match: isGetObject, fault: { type: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } }],
    });
    const refused = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, join(dir, 'x', 'y', 'out.bin')], {
      extraEnv: { AWS_ENDPOINT_URL: proxy.url },
    });
    expectFailure(refused, 1, 'AccessDenied');
    expect(proxy.log.map((entry) => entry.method)).toEqual(['HEAD', 'GET']); // the directories were made in between
    await expectDirContains(dir, []);
  });
});

describe('bad flags exit 2', () => {
  it('--part-size 12XB: not a size', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/flags.bin`, '--part-size', '12XB']);

    expectFailure(result, 2, 'invalid --part-size "12XB"');
    await expectBucketUnchanged();
  });

  it('--concurrency 0: must be at least 1', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/flags.bin`, '--concurrency', '0']);

    expectFailure(result, 2, /concurrency/, /\b1\b/);
    await expectBucketUnchanged();
  });

  it('--concurrency abc: not a number (never "NaN")', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/flags.bin`, '--concurrency', 'abc']);

    const line = expectFailure(result, 2, 'invalid --concurrency: not a number: expected a whole number from 1 to 1000');
    expect(line).not.toContain('NaN');
    await expectBucketUnchanged();
  });

  it('--part-size 4MiB: below the 5 MiB minimum of S3', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/flags.bin`, '--part-size', '4MiB']);

    expectFailure(result, 2, /part size/, '5 MiB');
    await expectBucketUnchanged();
  });

  it('--part-size 4MiB on a download: refused the same way, no file created', async () => {
    const dir = await freshDir('small-part');

    const result = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, join(dir, 'out.bin'), '--part-size', '4MiB']);

    expectFailure(result, 2, /part size/, '5 MiB');
    await expectDirContains(dir, []);
  });

  it('an unknown flag: names it and points to --help', async () => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/flags.bin`, '--bogus-flag']);

    expectFailure(result, 2, /Unknown argument/, 'bogus-flag', 's3xfer --help');
    await expectBucketUnchanged();
  });

  it.each(['--bogus-flag', '--no-such-flag'])('an unknown flag (%s) is named once, as typed, not as a parser alias', async (flag) => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/flags.bin`, flag]);

    const line = expectFailure(result, 2, flag.replace(/^--/, ''));
    // yargs reports dashed flags twice (bogus-flag, bogusFlag) and strips a leading "no-"
    // (such-flag): names the user never typed.
    expect(line).not.toMatch(/bogusFlag|suchFlag|Unknown arguments/);
    await expectBucketUnchanged();
  });

  it.each([
    [['--page-size', '0'], 'invalid --page-size "0": expected a whole number from 1'],
    [['--page-size', '2.5'], 'invalid --page-size "2.5": expected a whole number from 1'],
    [['--page-size', 'ten'], 'invalid --page-size not a number: expected a whole number from 1'],
    [['--cli-read-timeout', '-1'], 'invalid --cli-read-timeout "-1": expected seconds from 0 (no limit) to 2147483'],
    [['--cli-read-timeout='], 'invalid --cli-read-timeout "": expected seconds from 0 (no limit) to 2147483'],
    [['--cli-connect-timeout', 'soon'], 'invalid --cli-connect-timeout "soon": expected seconds from 0 (no limit) to 2147483'],
    [['--cli-connect-timeout', '3000000'], 'invalid --cli-connect-timeout "3000000": expected seconds from 0 (no limit) to 2147483'],
    [['--expires', 'next week 5'], 'invalid --expires "next week 5": expected an ISO 8601 date and time'],
    [['--expires', ''], 'invalid --expires "": expected an ISO 8601 date and time'],
  ])('%j: one line naming the flag and what it takes, nothing uploaded', async (flags, message) => {
    const result = await s3xfer(['cp', smallFile, `s3://${bucket}/flags.bin`, ...flags]);

    expectFailure(result, 2, message);
    await expectBucketUnchanged();
  });

  it('--page-size 0 on ls and on rm --recursive: refused before any request (nothing deleted)', async () => {
    for (const argv of [
      ['ls', `s3://${bucket}/`],
      ['rm', '--recursive', `s3://${bucket}/`],
    ]) {
      const result = await s3xfer([...argv, '--page-size', '0']);
      expectFailure(result, 2, 'invalid --page-size "0"');
    }
    await expectBucketUnchanged();
  });

  it('no command at all: asks for one', async () => {
    const result = await s3xfer([]);

    expectFailure(result, 2, /give a command: cp, sync, ls, rm, run, upload or download/);
  });

  it('upload with an s3:// source (wrong direction for the command)', async () => {
    const dir = await freshDir('wrong-direction');

    const result = await s3xfer(['upload', `s3://${bucket}/${existingKey}`, join(dir, 'out.bin')]);

    expectFailure(result, 2, 'upload takes a local FILE');
    await expectDirContains(dir, []);
  });
});

describe('how errors are reported', () => {
  it('with --json the error is one JSON object on stderr; stdout has the failed transfer and the summary, nothing else', async () => {
    const dir = await freshDir('json-error');

    const result = await s3xfer(['cp', '--json', `s3://${bucket}/no/such/key.bin`, join(dir, 'out.bin')]);

    expectExitCode(result, 1);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines, describeResult(result)).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      success: false,
      code: 'NoSuchKey',
      exitCode: 1,
      error: expect.stringContaining('does not exist'),
    });
    const records = result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toEqual([
      expect.objectContaining({
        type: 'transfer',
        operation: 'download',
        success: false,
        error: expect.objectContaining({ code: 'NoSuchKey' }),
      }),
      expect.objectContaining({
        type: 'summary',
        success: false,
        exitCode: 1,
        failed: 1,
        error: expect.objectContaining({ code: 'NoSuchKey' }),
      }),
    ]);
    await expectDirContains(dir, []);
  });

  it('with --debug the error line is followed by a stack trace', async () => {
    const result = await s3xfer(['cp', smallFile, 's3://ab/key', '--debug']);

    expectExitCode(result, 2);
    const [first, ...rest] = result.stderr.trimEnd().split('\n');
    expect(first).toMatch(/^s3xfer: error: invalid S3 URL "s3:\/\/ab\/key"/);
    expect(rest.join('\n')).toMatch(/^\s+at .+/m);
  });

  it('a failed download leaves the destination directory byte-for-byte as it was', async () => {
    // The strongest form of "nothing left behind" for downloads: an existing file with the same
    // name as the one being downloaded survives a failed (here: denied by credentials) download.
    const dir = await freshDir('survivor');
    const target = join(dir, 'object.bin');
    await writeFile(target, 'previous version\n');
    const before = await sha256File(target);

    const result = await s3xfer(['cp', `s3://${bucket}/${existingKey}`, target], {
      extraEnv: { AWS_SECRET_ACCESS_KEY: 'definitely-wrong-secret' },
    });

    expectFailure(result, 253); // a credentials problem
    await expectDirContains(dir, ['object.bin']);
    expect(await sha256File(target)).toBe(before);
  });
});
