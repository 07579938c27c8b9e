#!/usr/bin/env node
// The s3xfer executable. It runs the bundled CLI (dist/cli/s3xfer.cjs, scripts/build-cli.mjs)
// with two start-up settings that belong to the executable, not to the library:
//
// - V8's heap growth. Node reads sockets into a fresh 64 KiB buffer each time, and on a small heap
//   that churn of external memory starts a full collection every ~30 MiB received; letting the
//   heap grow faster cuts those from ~10–30 to ~3 per GiB downloaded (BENCHMARKS.md, "Where the
//   CPU goes").
// - A V8 code cache of the bundle. Compiling the CLI and the SDK is most of a small command's
//   start-up, and Node 20 has no compile cache of its own (module.enableCompileCache is Node 22).
//   The first run compiles as usual and, when it ends, saves V8's code for every function it ran
//   in the user's cache directory (env-paths: ~/.cache/s3xfer on Linux); later runs start from
//   it, ~90 ms sooner (BENCHMARKS.md, "Start-up"). The cache file is named by a hash of the
//   bundle and the Node version, so a rebuilt or upgraded s3xfer never runs stale code; V8 itself
//   refuses a cache made by another V8 or with other flags. NODE_DISABLE_COMPILE_CACHE=1 turns it
//   off, as it does Node 22's. Any failure to read or write the cache only costs the time.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import envPaths from 'env-paths';

setFlagsFromString('--heap-growing-percent=400');

const bundle = fileURLToPath(new URL('../dist/cli/s3xfer.cjs', import.meta.url));
const bytes = readFileSync(bundle);
const cache = codeCache(bytes);
const source = bytes.toString('utf8');
const script = new Script(Module.wrap(source), { filename: bundle, cachedData: cache?.read() });
if (cache && script.cachedDataRejected !== false) process.once('exit', () => cache.write(script));

const cjsModule = { exports: {} };
script.runInThisContext()(cjsModule.exports, createRequire(bundle), cjsModule, bundle, dirname(bundle));

/** Where this bundle's code cache lives, or undefined when it is turned off. */
function codeCache(bytes) {
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  const dir = envPaths('s3xfer', { suffix: '' }).cache;
  const tag = `-${process.version}-${process.arch}.v8cache`;
  const name = `cli-${createHash('sha256').update(bytes).digest('hex').slice(0, 24)}${tag}`;
  const file = join(dir, name);
  return {
    read() {
      try {
        return readFileSync(file);
      } catch {
        return undefined;
      }
    },
    /** Saves the code compiled so far (write then rename: readers never see half a file). */
    write(compiled) {
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const temp = `${file}.${process.pid}.tmp`;
        writeFileSync(temp, compiled.createCachedData(), { mode: 0o600 });
        renameSync(temp, file);
        // Older builds' caches for this Node: never read again.
        for (const other of readdirSync(dir)) {
          if (other !== name && other.startsWith('cli-') && other.endsWith(tag)) rmSync(join(dir, other), { force: true });
        }
      } catch {
        // A read-only or missing home directory: run without a cache.
      }
    },
  };
}
