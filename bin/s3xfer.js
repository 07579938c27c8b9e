#!/usr/bin/env node
// The s3xfer executable. It runs the bundled CLI (dist/cli/s3xfer.cjs, scripts/build-cli.mjs)
// with start-up settings that belong to the executable, not to the library:
//
// - V8's heap growth. Node reads sockets into a fresh 64 KiB buffer each time, and on a small heap
//   that churn of external memory starts a full collection every ~30 MiB received; letting the
//   heap grow faster cuts those from ~10–30 to ~3 per GiB downloaded (BENCHMARKS.md, "Where the
//   CPU goes").
// - When V8 optimises. A function is recompiled by TurboFan, V8's optimising compiler, once it has
//   run for an "interrupt budget" of bytecode; 8 times V8's default (66 KiB) leaves the compiler
//   only the functions a transfer runs most. A command lasts seconds, and V8's compiler threads
//   had spent ~0.86 CPU s of a 2,000-file download optimising code that ran for a moment; with
//   the larger budget that download takes 0.79x the user CPU, and no case got slower
//   (BENCHMARKS.md, "When V8 optimises").
// - A V8 code cache of the bundle. Compiling the CLI and the SDK is most of a small command's
//   start-up, and Node 20 has no compile cache of its own (module.enableCompileCache is Node 22).
//   A run without a usable cache compiles as usual and, when it ends, saves V8's code for every
//   function it ran in the user's cache directory (env-paths: ~/.cache/s3xfer on Linux); later
//   runs start from it, ~0.1 s sooner (BENCHMARKS.md, "Start-up"). A run that compiled much more
//   than the cache holds (the first `cp` after a `--version`) saves it again.
//
// What the cache must never do is run code it should not, or stop s3xfer from running:
// - its name has a hash of the bundle, of the Node flags and the Node version, so another build or
//   another Node never reads it (V8 checks only the source's length, its own version and flags);
// - it is used only from a directory and file of the user's own that nobody else can write, is
//   read without following a symlink, and carries a CRC-32 of V8's data, checked before V8 sees it
//   (V8 does not check it, and damaged data can crash the process);
// - it is written to a new file (never through a symlink), synced, then renamed into place;
// - any failure (no home directory, a read-only one, a full disk) only costs the time.
// NODE_DISABLE_COMPILE_CACHE=1 turns it off, as it does Node 22's.
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getHeapCodeStatistics, setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { crc32 } from 'node:zlib';

setFlagsFromString('--heap-growing-percent=400');
setFlagsFromString('--interrupt-budget=540672');

const MAGIC = Buffer.from('s3xfer-v8-cache-1\n');
const HEADER = MAGIC.length + 4 + 8; // magic, CRC-32 of the data, compiledBytes() when it was saved
const KEPT_OTHER_BUILDS = 2;

const bundle = fileURLToPath(new URL('../dist/cli/s3xfer.cjs', import.meta.url));
const { script, cache, savedCompiled } = await compile();
if (cache) {
  process.once('exit', () => {
    if (script.cachedDataRejected !== false || compiledBytes() > savedCompiled * 1.25) cache.write(script);
  });
}

const cjsModule = { exports: {} };
script.runInThisContext()(cjsModule.exports, createRequire(bundle), cjsModule, bundle, dirname(bundle));

/**
 * Compiles the bundle, with the code cache when there is one. The file's bytes (1.4 MiB) and the
 * cache's data (2 MiB) are needed only here, and nothing keeps them once it returns: the 1 GiB
 * upload peaked ~1.3 MiB lower (3 pairs) than with both kept for the whole run.
 */
async function compile() {
  const bytes = readFileSync(bundle);
  const cache = await codeCache(bytes);
  const saved = cache?.read();
  const script = new Script(Module.wrap(bytes.toString('utf8')), { filename: bundle, cachedData: saved?.data });
  return { script, cache, savedCompiled: saved?.compiled };
}

/** Bytes of compiled code in the heap: how much of the CLI this run compiled or read from the cache. */
function compiledBytes() {
  return getHeapCodeStatistics().bytecode_and_metadata_size;
}

/** This bundle's code cache, or undefined when it is turned off or has no safe place. */
async function codeCache(bundleBytes) {
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  let dir;
  try {
    // Loaded here, not at the top: env-paths asks for the home directory as it loads, and a
    // user without one (an arbitrary uid in a container) must still be able to run s3xfer.
    const { default: envPaths } = await import('env-paths');
    dir = envPaths('s3xfer', { suffix: '' }).cache;
  } catch {
    return undefined;
  }
  if (!isAbsolute(dir)) return undefined; // an empty HOME or a relative XDG_CACHE_HOME: not the working directory
  const digest = (...parts) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
  const build = `cli-${createHash('sha256').update(bundleBytes).digest('hex').slice(0, 24)}-`;
  const tag = `-${process.version}-${process.arch}.v8cache`;
  const name = `${build}${digest(process.execArgv.join(' '), process.env.NODE_OPTIONS ?? '')}${tag}`;
  const file = join(dir, name);
  return {
    read() {
      if (!privateTo(dir, lstatSync)) return undefined;
      let fd;
      try {
        fd = openSync(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
        if (!privateTo(fd, fstatSync, 'file')) return undefined;
        const content = readFileSync(fd);
        if (content.length <= HEADER || !content.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
        const data = content.subarray(HEADER);
        if (content.readUInt32LE(MAGIC.length) !== crc32(data)) return undefined;
        return { data, compiled: content.readDoubleLE(MAGIC.length + 4) };
      } catch {
        return undefined;
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    },
    /** Saves the code compiled so far: a new file, synced, renamed over the old one. */
    write(compiled) {
      let temp;
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        if (!privateTo(dir, lstatSync)) return;
        const data = compiled.createCachedData();
        const header = Buffer.alloc(HEADER);
        MAGIC.copy(header);
        header.writeUInt32LE(crc32(data), MAGIC.length);
        header.writeDoubleLE(compiledBytes(), MAGIC.length + 4);
        temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
        const fd = openSync(temp, 'wx', 0o600);
        try {
          writeSync(fd, header);
          writeSync(fd, data);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(temp, file);
        temp = undefined;
        // Other builds' caches for this Node: the two saved last stay (two installed versions run
        // in turn must not replace each other's every time), older ones go; so do the temp files
        // of runs that died.
        const entries = readdirSync(dir).map((entry) => ({ entry, mtimeMs: lstatSync(join(dir, entry)).mtimeMs }));
        const others = entries
          .filter(({ entry }) => entry.startsWith('cli-') && entry.endsWith(tag) && !entry.startsWith(build))
          .sort((a, b) => b.mtimeMs - a.mtimeMs);
        const orphans = entries.filter(({ entry, mtimeMs }) => entry.endsWith('.tmp') && Date.now() - mtimeMs > 3_600_000);
        for (const { entry } of [...others.slice(KEPT_OTHER_BUILDS), ...orphans]) rmSync(join(dir, entry), { force: true });
      } catch {
        if (temp) rmSync(temp, { force: true });
      }
    },
  };
}

/**
 * True when `target` (a path or an open file) is a directory or regular file (`kind`) that
 * belongs to this user and that nobody else may write; on systems without uids, when it exists.
 */
function privateTo(target, stat, kind = 'directory') {
  try {
    const info = stat(target);
    if (!(kind === 'directory' ? info.isDirectory() : info.isFile())) return false;
    if (typeof process.getuid !== 'function') return true;
    return info.uid === process.getuid() && (info.mode & 0o022) === 0;
  } catch {
    return false;
  }
}
