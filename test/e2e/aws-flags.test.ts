/**
 * End-to-end: flags of `aws s3` that scripts carry over (`--no-sign-request`, `--page-size`,
 * `--cli-read-timeout`, `--cli-connect-timeout`, `--expires`, `--website-redirect`,
 * `--no-guess-mime-type`), run by the built CLI against the real S3 server.
 */

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, PutBucketAclCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, isGetObject, startFaultProxy } from '../helpers/fault-proxy.js';
import { tempDir } from '../helpers/files.js';
import { cliEnv, listKeys, s3Server } from '../helpers/s3.js';
import { expectExitCode } from './expect-cli.js';
import { type CliOptions, closeCliWorkspace, describeResult, openCliWorkspace, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('aws-flags'));
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

afterAll(async () => {
  await closeCliWorkspace({ client, bucket, work });
});

function s3xfer(args: string[], options: Partial<CliOptions> = {}) {
  return runCli(args, { env: cliEnv(), cwd: work, ...options });
}

/** The environment of a machine with no credentials at all (no keys, no profile files). */
function noCredentials(): NodeJS.ProcessEnv {
  const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...env } = cliEnv();
  return env;
}

const errorLines = (stderr: string) => stderr.split('\n').filter((line) => line.startsWith('s3xfer: error: '));

describe('--no-sign-request: public objects without credentials', () => {
  beforeAll(async () => {
    await client.send(new PutBucketAclCommand({ Bucket: bucket, ACL: 'public-read' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'public/data.txt', Body: 'open data\n', ACL: 'public-read' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'private/secret.txt', Body: 'secret\n' }));
  });

  it('downloads a public-read object and lists a public-read bucket, where the same commands without it have no credentials (253)', async () => {
    const target = join(await tempDir('s3xfer-anon-'), 'data.txt');

    const signed = await s3xfer(['cp', `s3://${bucket}/public/data.txt`, target], { env: noCredentials() });
    expectExitCode(signed, 253);
    expect(errorLines(signed.stderr)).toEqual([expect.stringContaining('no AWS credentials found')]);

    const unsigned = await s3xfer(['cp', `s3://${bucket}/public/data.txt`, target, '--no-sign-request'], { env: noCredentials() });
    expectExitCode(unsigned, 0);
    expect(await readFile(target, 'utf8')).toBe('open data\n');

    const listing = await s3xfer(['ls', '--recursive', `s3://${bucket}/`, '--no-sign-request'], { env: noCredentials() });
    expectExitCode(listing, 0);
    expect(listing.stdout).toMatch(/ public\/data\.txt$/m);
  });

  it('a private object: exit 1, "access denied", no file and no temp file left', async () => {
    const dir = await tempDir('s3xfer-anon-denied-');

    const result = await s3xfer(['cp', `s3://${bucket}/private/secret.txt`, join(dir, 'secret.txt'), '--no-sign-request'], {
      env: noCredentials(),
    });

    expectExitCode(result, 1);
    expect(errorLines(result.stderr)).toEqual([
      `s3xfer: error: access denied to s3://${bucket}/private/secret.txt (AccessDenied, HTTP 403)`,
    ]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('even with credentials at hand, the requests go unsigned: an upload to a bucket only its owner may write is refused', async () => {
    await writeFile(join(work, 'up.txt'), 'up');

    const result = await s3xfer(['cp', 'up.txt', `s3://${bucket}/anon/up.txt`, '--no-sign-request']);

    expectExitCode(result, 1);
    expect(errorLines(result.stderr)).toEqual([expect.stringMatching(/access denied .*\(AccessDenied, HTTP 403\)$/)]);
    expect(await listKeys(client, bucket)).not.toContain('anon/up.txt');
  });
});

describe('--page-size N: keys per listing request', () => {
  beforeAll(async () => {
    for (let i = 0; i < 5; i++) await client.send(new PutObjectCommand({ Bucket: bucket, Key: `paged/k${i}.txt`, Body: `${i}` }));
  });

  /** The ListObjectsV2 requests `proxy` saw, as their max-keys (undefined when not sent). */
  const listRequests = () =>
    proxy!.log
      .filter((entry) => entry.method === 'GET' && new URLSearchParams(entry.query).get('list-type') === '2')
      .map((entry) => new URLSearchParams(entry.query).get('max-keys'));

  it.each([
    ['ls --recursive', (url: string) => ['ls', '--recursive', url]],
    ['cp --recursive (download)', (url: string, dir: string) => ['cp', '--recursive', url, dir]],
    ['sync (download)', (url: string, dir: string) => ['sync', url, dir]],
    ['rm --recursive --dryrun', (url: string) => ['rm', '--recursive', '--dryrun', url]],
  ])('%s with --page-size 2 lists 5 keys in 3 requests of max-keys=2; without it, one request', async (_name, argv) => {
    proxy = await startFaultProxy({ upstream: s3Server().endpoint, rules: [] });
    const env = cliEnv({ AWS_ENDPOINT_URL: proxy.url });
    const dir = await tempDir('s3xfer-paged-');

    const paged = await s3xfer([...argv(`s3://${bucket}/paged/`, join(dir, 'a')), '--page-size', '2'], { env });
    expectExitCode(paged, 0);
    expect(listRequests(), describeResult(paged)).toEqual(['2', '2', '2']);

    proxy.stats.reset();
    const whole = await s3xfer(argv(`s3://${bucket}/paged/`, join(dir, 'b')), { env });
    expectExitCode(whole, 0);
    expect(listRequests()).toEqual([null]);
    expect(paged.stdout.split('\n').length).toBe(whole.stdout.split('\n').length);
  });
  it('run --page-size 2: the lines of the batch list with it', async () => {
    proxy = await startFaultProxy({ upstream: s3Server().endpoint, rules: [] });
    await writeFile(join(work, 'paged.txt'), `ls --recursive s3://${bucket}/paged/\nrm --recursive --dryrun s3://${bucket}/paged/\n`);

    const result = await s3xfer(['run', 'paged.txt', '--page-size', '2'], { env: cliEnv({ AWS_ENDPOINT_URL: proxy.url }) });

    expectExitCode(result, 0);
    expect(listRequests(), describeResult(result)).toEqual(['2', '2', '2', '2', '2', '2']);
  });
});

describe('--cli-read-timeout (seconds)', () => {
  it('--cli-read-timeout 1: a GET the store stops answering fails after 1 s per attempt, not 60 s, leaving no file', async () => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'slow/obj.txt', Body: 'slow' }));
    proxy = await startFaultProxy({ upstream: s3Server().endpoint, rules: [{ match: isGetObject, fault: { type: 'stall', ms: 30_000 } }] });
    const dir = await tempDir('s3xfer-read-timeout-');

    const started = performance.now();
    const result = await s3xfer(
      ['cp', `s3://${bucket}/slow/obj.txt`, join(dir, 'obj.txt'), '--cli-read-timeout', '1', '--max-attempts', '2'],
      {
        env: cliEnv({ AWS_ENDPOINT_URL: proxy.url }),
      },
    );

    expectExitCode(result, 1);
    expect(errorLines(result.stderr), describeResult(result)).toEqual([expect.stringMatching(/time(d)? ?out/i)]);
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(proxy.log.filter((entry) => entry.method === 'GET')).toHaveLength(2);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('object settings: --expires, --website-redirect, --no-guess-mime-type', () => {
  const head = (key: string) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));

  it('--expires and --website-redirect are stored on the object', async () => {
    await writeFile(join(work, 'page.html'), '<p>moved</p>');

    const result = await s3xfer([
      'cp',
      'page.html',
      `s3://${bucket}/site/page.html`,
      '--expires',
      '2027-01-31T12:00:00Z',
      '--website-redirect',
      '/new.html',
    ]);

    expectExitCode(result, 0);
    const stored = await head('site/page.html');
    expect(stored.ExpiresString).toBe('Sun, 31 Jan 2027 12:00:00 GMT');
    expect(stored.WebsiteRedirectLocation).toBe('/new.html');
    expect(stored.ContentType).toBe('text/html');
  });

  it('--no-guess-mime-type: an .html file is stored as application/octet-stream, in one PUT, in parts and in a directory job', async () => {
    await writeFile(join(work, 'plain.html'), '<p>plain</p>');
    await writeFile(join(work, 'big.html'), Buffer.alloc(6 * 1024 * 1024, 'a'));

    const one = await s3xfer(['cp', 'plain.html', `s3://${bucket}/noguess/plain.html`, '--no-guess-mime-type']);
    const parts = await s3xfer([
      'cp',
      'big.html',
      `s3://${bucket}/noguess/big.html`,
      '--no-guess-mime-type',
      '--multipart-threshold',
      '5MiB',
      '--part-size',
      '5MiB',
    ]);
    const tree = await s3xfer([
      'cp',
      '--recursive',
      '--exclude',
      '*',
      '--include',
      'plain.html',
      '.',
      `s3://${bucket}/noguess-tree/`,
      '--no-guess-mime-type',
    ]);

    for (const result of [one, parts, tree]) expectExitCode(result, 0);
    expect((await head('noguess/big.html')).ETag).toMatch(/-2"$/);
    for (const key of ['noguess/plain.html', 'noguess/big.html', 'noguess-tree/plain.html']) {
      expect((await head(key)).ContentType, key).toBe('application/octet-stream');
    }
  });

  it('a file of no known type gets application/octet-stream whatever its size (the store would say binary/octet-stream for a multipart upload)', async () => {
    await writeFile(join(work, 'big.unknownext'), Buffer.alloc(6 * 1024 * 1024, 'b'));

    const result = await s3xfer([
      'cp',
      'big.unknownext',
      `s3://${bucket}/typeless/big.unknownext`,
      '--multipart-threshold',
      '5MiB',
      '--part-size',
      '5MiB',
    ]);

    expectExitCode(result, 0);
    expect((await head('typeless/big.unknownext')).ContentType).toBe('application/octet-stream');
  });

  it('--expires without a zone is UTC, whatever the zone of the machine', async () => {
    await writeFile(join(work, 'zone.txt'), 'z');

    const result = await s3xfer(['cp', 'zone.txt', `s3://${bucket}/zone.txt`, '--expires', '2027-01-31T12:00'], {
      env: cliEnv({ TZ: 'America/New_York' }),
    });

    expectExitCode(result, 0);
    expect((await head('zone.txt')).ExpiresString).toBe('Sun, 31 Jan 2027 12:00:00 GMT');
  });

  it.each([
    [['cp', '--expires', '2027-01-31'], '--expires'],
    [['cp', '--recursive', '--website-redirect', '/x'], '--website-redirect'],
    [['sync', '--no-guess-mime-type'], '--no-guess-mime-type'],
  ])('%j on a download is refused as an upload-only setting, named as typed (exit 2), nothing made', async ([command, ...flags], named) => {
    const dir = await tempDir('s3xfer-upload-flag-down-');
    const source = command === 'cp' && !flags.includes('--recursive') ? `s3://${bucket}/site/page.html` : `s3://${bucket}/site/`;

    const result = await s3xfer([command!, source, join(dir, 'out'), ...flags]);

    expectExitCode(result, 2);
    expect(errorLines(result.stderr)).toEqual([`s3xfer: error: ${named}: object settings apply to uploads only`]);
    expect(await readdir(dir)).toEqual([]);
  });
});
