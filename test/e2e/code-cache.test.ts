/**
 * The executable's V8 code cache (bin/s3xfer.js): the first run saves the compiled CLI in the
 * user's cache directory, later runs start from it, and nothing about the cache can make a
 * command fail or run code of another build.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv } from '../helpers/s3.js';
import { type CliWorkspace, closeCliWorkspace, describeResult, openCliWorkspace, REPO_ROOT, runCli } from './run-cli.js';

let ws: CliWorkspace;
beforeAll(async () => {
  ws = await openCliWorkspace('code-cache');
});
afterAll(() => closeCliWorkspace(ws));

const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const tag = `-${process.version}-${process.arch}.v8cache`;
/** The file name the executable gives this build's cache. */
const cacheName = () =>
  `cli-${createHash('sha256')
    .update(readFileSync(join(REPO_ROOT, 'dist', 'cli', 's3xfer.cjs')))
    .digest('hex')
    .slice(0, 24)}${tag}`;

let n = 0;
/** A cache home of its own (XDG_CACHE_HOME), so that the user's cache is left alone. */
function freshCacheHome(): { home: string; dir: string } {
  const home = join(ws.work, `cache-home-${++n}`);
  mkdirSync(home);
  return { home, dir: join(home, 's3xfer') };
}

async function s3xferVersion(env: NodeJS.ProcessEnv) {
  const result = await runCli(['--version'], { env });
  expect(result.code, describeResult(result)).toBe(0);
  expect(result.stdout.trim()).toBe(version);
  expect(result.stderr).toBe('');
}

describe('the code cache of the CLI', () => {
  it('is saved by the first run (a private file named by the build and the Node version) and used, not rewritten, by the next', async () => {
    const { home, dir } = freshCacheHome();
    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));

    expect(readdirSync(dir)).toEqual([cacheName()]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const saved = statSync(join(dir, cacheName()));
    expect(saved.mode & 0o777).toBe(0o600);
    expect(saved.size).toBeGreaterThan(100_000);

    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));
    // A cache V8 accepted is left as it is; one it refused (or none) is written anew, by rename.
    const after = statSync(join(dir, cacheName()));
    expect([after.ino, after.mtimeMs]).toEqual([saved.ino, saved.mtimeMs]);
  });

  it('that V8 refuses (damaged) is replaced, and the transfer runs as without one', async () => {
    const { home, dir } = freshCacheHome();
    mkdirSync(dir, { mode: 0o700 });
    const garbage = Buffer.alloc(64 * 1024, 0x5a);
    writeFileSync(join(dir, cacheName()), garbage);
    const file = join(ws.work, 'cached.txt');
    writeFileSync(file, 'bytes through a CLI started from a damaged cache\n');

    const result = await runCli(['cp', file, `s3://${ws.bucket}/cached.txt`, '--no-progress'], { env: cliEnv({ XDG_CACHE_HOME: home }) });

    expect(result.code, describeResult(result)).toBe(0);
    const head = await ws.client.send(new HeadObjectCommand({ Bucket: ws.bucket, Key: 'cached.txt' }));
    expect(head.ContentLength).toBe(statSync(file).size);
    const rewritten = readFileSync(join(dir, cacheName()));
    expect(rewritten.equals(garbage)).toBe(false);
    expect(rewritten.length).toBeGreaterThan(100_000);
  });

  it("of an earlier build is removed when this build's is saved; another Node version's is kept", async () => {
    const { home, dir } = freshCacheHome();
    mkdirSync(dir, { mode: 0o700 });
    const older = `cli-${'0'.repeat(24)}${tag}`;
    const otherNode = `cli-${'0'.repeat(24)}-v18.0.0-${process.arch}.v8cache`;
    writeFileSync(join(dir, older), 'old');
    writeFileSync(join(dir, otherNode), 'other');

    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));

    expect(readdirSync(dir).sort()).toEqual([cacheName(), otherNode].sort());
  });

  it('is not written with NODE_DISABLE_COMPILE_CACHE set', async () => {
    const { home, dir } = freshCacheHome();
    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home, NODE_DISABLE_COMPILE_CACHE: '1' }));
    expect(() => statSync(dir)).toThrow(/ENOENT/);
  });

  it('is skipped, silently, when the cache directory cannot be made', async () => {
    const notADirectory = join(ws.work, 'cache-home-is-a-file');
    writeFileSync(notADirectory, '');
    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: notADirectory }));
    expect(statSync(notADirectory).size).toBe(0);
  });
});
