/**
 * End-to-end: how the CLI finds its settings (region fallback, .env, endpoint variables), and the
 * operands it refuses because they mean streaming.
 */

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, randomFile, rm, sha256File, tempDir } from '../helpers/files.js';
import { cliEnv, listKeys, s3Server } from '../helpers/s3.js';
import { expectExitCode, expectFailure, expectNoNoise } from './expect-cli.js';
import { closeCliWorkspace, describeResult, openCliWorkspace, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
let file: string;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('env'));
  file = await randomFile(work, 'file.bin', 4096);
});
afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

describe('settings', () => {
  it('works with no region configured anywhere (falls back to us-east-1)', async () => {
    const { AWS_REGION: _omitted, ...env } = cliEnv();
    const result = await runCli(['cp', file, `s3://${bucket}/no-region.bin`], { env, cwd: work });
    expectExitCode(result, 0);
    expect(await listKeys(client, bucket)).toContain('no-region.bin');
  });

  it('reads credentials and the endpoint from a .env file in the working directory', async () => {
    const s3 = s3Server();
    const dir = await tempDir('s3xfer-e2e-dotenv-');
    await writeFile(
      join(dir, '.env'),
      `AWS_ENDPOINT_URL=${s3.endpoint}\nAWS_ACCESS_KEY_ID=${s3.accessKeyId}\nAWS_SECRET_ACCESS_KEY=${s3.secretAccessKey}\n`,
    );
    const env = { PATH: process.env.PATH, HOME: dir, AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent' };
    const result = await runCli(['cp', file, `s3://${bucket}/dotenv.bin`], { env, cwd: dir });
    expectExitCode(result, 0);
    const back = join(dir, 'back.bin');
    expectExitCode(await runCli(['cp', `s3://${bucket}/dotenv.bin`, back], { env, cwd: dir }), 0);
    expect(await sha256File(back)).toBe(await sha256File(file));
    await rm(dir, { recursive: true, force: true });
  });

  it('lets the environment win over .env', async () => {
    const dir = await tempDir('s3xfer-e2e-dotenv-');
    await writeFile(join(dir, '.env'), 'AWS_SECRET_ACCESS_KEY=wrong-secret\n');
    const result = await runCli(['cp', file, `s3://${bucket}/env-wins.bin`], { env: cliEnv(), cwd: dir });
    expect(result.code, describeResult(result)).toBe(0);
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a .env that is not a file, with exit 2', async () => {
    const dir = await tempDir('s3xfer-e2e-dotenv-');
    await mkdir(join(dir, '.env'));
    const result = await runCli(['cp', file, `s3://${bucket}/never.bin`], { env: cliEnv(), cwd: dir });
    expectFailure(result, 2, '.env: not a file');
    expect(await listKeys(client, bucket)).not.toContain('never.bin');
    await rm(dir, { recursive: true, force: true });
  });

  it('prefers AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL', async () => {
    const env = cliEnv({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_ENDPOINT_URL_S3: s3Server().endpoint });
    expectExitCode(await runCli(['cp', file, `s3://${bucket}/s3-specific.bin`], { env, cwd: work }), 0);
  });
});

describe('many parts in flight', () => {
  it('print no Node warnings (one abort listener per transfer, not per request)', async () => {
    const big = await randomFile(work, 'many-parts.bin', 96 * MiB);
    const flags = ['--concurrency', '16', '--part-size', '5MiB', '--no-progress'];
    const up = await runCli(['cp', big, `s3://${bucket}/many-parts.bin`, ...flags], { env: cliEnv(), cwd: work });
    expectExitCode(up, 0);
    expectNoNoise(up.stderr);
    const down = await runCli(['cp', `s3://${bucket}/many-parts.bin`, join(work, 'many-parts.out'), ...flags], {
      env: cliEnv(),
      cwd: work,
    });
    expectExitCode(down, 0);
    expectNoNoise(down.stderr);
    expect(await sha256File(join(work, 'many-parts.out'))).toBe(await sha256File(big));
  });
});

describe('flags', () => {
  it('a repeated flag takes its last value', async () => {
    const result = await runCli(
      ['cp', file, `s3://${bucket}/repeated.bin`, '--metadata', 'a=1', '--metadata', 'b=2', '--part-size', '4MiB', '--part-size', '5MiB'],
      {
        env: cliEnv(),
        cwd: work,
      },
    );
    expectExitCode(result, 0);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'repeated.bin' }));
    expect(head.Metadata).toEqual({ b: '2' });
  });

  it('refuses non-ASCII header values with exit 2 instead of a signature error', async () => {
    const result = await runCli(['cp', file, `s3://${bucket}/non-ascii.bin`, '--metadata', 'owner=Zoë'], { env: cliEnv(), cwd: work });
    expectFailure(result, 2, 'only printable ASCII');
    expect(await listKeys(client, bucket)).not.toContain('non-ascii.bin');
  });

  it('a bare --sse (or --sse=) asks for AES256, as the aws CLI: never an unencrypted upload that exits 0', async () => {
    for (const flag of [['--sse'], ['--sse=']]) {
      const result = await runCli(['cp', file, `s3://${bucket}/bare-sse.bin`, ...flag], { env: cliEnv(), cwd: work });
      // This Ceph refuses SSE-S3 over plain http: the request carried the header.
      expectFailure(result, 1, 'InvalidRequest');
      expect(await listKeys(client, bucket)).not.toContain('bare-sse.bin');
    }
  });

  it.each([
    ['--sse', 'AES-256', '"AES256", "aws:kms", "aws:kms:dsse"'],
    ['--acl', 'public', '"private", "public-read"'],
  ])('refuses %s %s with exit 2 and the values it takes, one line, before sending anything', async (flag, value, choices) => {
    const result = await runCli(['cp', file, `s3://${bucket}/bad-choice.bin`, flag, value], { env: cliEnv(), cwd: work });
    const line = expectFailure(result, 2, `Argument: ${flag.slice(2)}, Given: "${value}", Choices: ${choices}`);
    expect(line).toMatch(/^s3xfer: error: Invalid values: Argument: /);
    expect(await listKeys(client, bucket)).not.toContain('bad-choice.bin');
  });

  it.each([
    ['cp', ['--content-type', 'text/plain']],
    ['download', ['--sse', 'AES256', '--acl', 'private']],
  ])('refuses upload-only flags on a download (%s) with exit 2', async (command, flags) => {
    const result = await runCli([command, `s3://${bucket}/no-region.bin`, join(work, 'never.bin'), ...flags], { env: cliEnv(), cwd: work });
    expectFailure(result, 2, flags[0]!, 'apply to uploads only');
  });
});

// "-" is stdin or stdout (test/e2e/pipes.test.ts); an empty operand is still no file name.
describe('an empty operand is refused, not taken as stdin or stdout', () => {
  it.each([
    ['an upload from ""', ['cp', '', 's3://bucket-x/key']],
    ['a download to ""', ['cp', 's3://bucket-x/key', '']],
  ])('%s exits 2', async (_name, args) => {
    const result = await runCli(args, { env: cliEnv(), cwd: work });
    expectFailure(result, 2, 'no file name given');
  });
});
