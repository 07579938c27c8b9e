/**
 * The executable's V8 code cache (bin/s3xfer.js): the first run saves the compiled CLI in the
 * user's cache directory, later runs start from it, and nothing about the cache can make a
 * command fail or run code of another build.
 */
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
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
/** The start of the names the executable gives this build's caches (a hash of the Node flags follows). */
const buildPrefix = () =>
  `cli-${createHash('sha256')
    .update(readFileSync(join(REPO_ROOT, 'dist', 'cli', 's3xfer.cjs')))
    .digest('hex')
    .slice(0, 24)}-`;
/** The name of this build's cache for a run without Node flags. */
const cacheName = () => `${buildPrefix()}${createHash('sha256').update('\0').digest('hex').slice(0, 16)}${tag}`;
/** Uploads a small file through the CLI, which must work whatever the cache holds. */
async function upload(env: NodeJS.ProcessEnv, key: string): Promise<void> {
  const file = join(ws.work, `${key}.txt`);
  writeFileSync(file, `bytes of ${key}\n`);
  const result = await runCli(['cp', file, `s3://${ws.bucket}/${key}`, '--no-progress'], { env });
  expect(result.code, describeResult(result)).toBe(0);
  const head = await ws.client.send(new HeadObjectCommand({ Bucket: ws.bucket, Key: key }));
  expect(head.ContentLength).toBe(statSync(file).size);
}
const asRoot = (context: { skip: (condition: boolean, note: string) => void }) =>
  context.skip(process.getuid?.() !== 0, 'needs root to start the CLI as another user');

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

  it('that is not a cache (garbage) is replaced, and the transfer runs as without one', async () => {
    const { home, dir } = freshCacheHome();
    mkdirSync(dir, { mode: 0o700 });
    const garbage = Buffer.alloc(64 * 1024, 0x5a);
    writeFileSync(join(dir, cacheName()), garbage, { mode: 0o600 });

    await upload(cliEnv({ XDG_CACHE_HOME: home }), 'garbage-cache');

    const rewritten = readFileSync(join(dir, cacheName()));
    expect(rewritten.equals(garbage)).toBe(false);
    expect(rewritten.length).toBeGreaterThan(100_000);
  });

  it('whose data was damaged after it was saved is never given to V8 (it would crash): it is replaced', async () => {
    const { home, dir } = freshCacheHome();
    await upload(cliEnv({ XDG_CACHE_HOME: home }), 'before-damage');
    const good = readFileSync(join(dir, cacheName()));
    const damaged = Buffer.from(good);
    for (let i = good.length >> 1; i < (good.length >> 1) + 4096; i++) damaged[i] = damaged[i]! ^ 0xff; // the header stays intact
    writeFileSync(join(dir, cacheName()), damaged);

    await upload(cliEnv({ XDG_CACHE_HOME: home }), 'after-damage');
    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));

    expect(readFileSync(join(dir, cacheName())).equals(damaged)).toBe(false);
  });

  it('saved by a small command (--version) is saved again by the first transfer, which compiles far more, and then left alone', async () => {
    const { home, dir } = freshCacheHome();
    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));
    const small = statSync(join(dir, cacheName()));

    await upload(cliEnv({ XDG_CACHE_HOME: home }), 'grows-1');
    const full = statSync(join(dir, cacheName()));
    expect(full.ino).not.toBe(small.ino);
    expect(full.size).toBeGreaterThan(small.size * 1.5);

    await upload(cliEnv({ XDG_CACHE_HOME: home }), 'grows-2');
    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));
    expect(statSync(join(dir, cacheName())).ino).toBe(full.ino);
  });

  it('in a directory others may write is neither read nor written', async () => {
    const { home, dir } = freshCacheHome();
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o777);
    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('planted as a symlink is not followed: its target is left alone', async () => {
    const { home, dir } = freshCacheHome();
    mkdirSync(dir, { mode: 0o700 });
    const target = join(ws.work, 'symlink-target');
    writeFileSync(target, 'not a cache', { mode: 0o600 });
    symlinkSync(target, join(dir, cacheName()));

    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));

    expect(readFileSync(target, 'utf8')).toBe('not a cache');
    expect(lstatSync(join(dir, cacheName())).isFile()).toBe(true); // replaced by the new cache, by rename
  });

  it('needs no home directory: a user without one runs s3xfer, without a cache (as a uid with no passwd entry)', async (context) => {
    asRoot(context);
    const { HOME: _home, ...env } = cliEnv();
    const result = await runCli(['--version'], { env, uid: 54_321, gid: 54_321 });
    expect(result.code, describeResult(result)).toBe(0);
    expect(result.stdout.trim()).toBe(version);
  });

  it('is never written into the working directory (an empty HOME, a relative XDG_CACHE_HOME)', async () => {
    const cwd = join(ws.work, 'cwd-empty-home');
    mkdirSync(cwd);
    for (const env of [cliEnv({ HOME: '' }), cliEnv({ XDG_CACHE_HOME: 'relative-cache' })]) {
      const result = await runCli(['--version'], { env, cwd });
      expect(result.code, describeResult(result)).toBe(0);
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("of other builds: the two saved last are kept (two versions run in turn), older ones removed; another Node version's kept", async () => {
    const { home, dir } = freshCacheHome();
    mkdirSync(dir, { mode: 0o700 });
    const other = (digit: string) => `cli-${digit.repeat(24)}-${'0'.repeat(16)}${tag}`;
    const otherNode = `cli-${'0'.repeat(24)}-${'0'.repeat(16)}-v18.0.0-${process.arch}.v8cache`;
    const now = Date.now() / 1000;
    for (const [index, name] of [other('1'), other('2'), other('3'), otherNode].entries()) {
      writeFileSync(join(dir, name), 'old', { mode: 0o600 });
      utimesSync(join(dir, name), now - 3600 * (index + 1), now - 3600 * (index + 1)); // 1 saved last, 3 first
    }

    await s3xferVersion(cliEnv({ XDG_CACHE_HOME: home }));

    expect(readdirSync(dir).sort()).toEqual([cacheName(), other('1'), other('2'), otherNode].sort());
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
