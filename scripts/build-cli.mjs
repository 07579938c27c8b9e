// Bundles the CLI (src/cli/main.ts and everything it imports, the AWS SDK included) into one
// CommonJS file, dist/cli/s3xfer.cjs, which bin/s3xfer.js compiles with V8's code cache
// (BENCHMARKS.md, "Start-up"). One script rather than ESM chunks because Node 20 can attach a code
// cache only to a script (vm.Script); the code of lazily imported modules (the SDK's, ora's) still
// runs only when a command needs it (esbuild keeps those imports lazy inside the file). The library
// (dist/index.js) stays tsc's unbundled output.
import { readFileSync, rmSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { basename, dirname, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

// A script compiled with a code cache cannot run `import()` in Node 20 ("A dynamic import callback
// was not specified"), so every dynamic import left in the file must be one esbuild turns into a
// lazy require (a bundled module) or one rewritten here: a dependency's `import("node:http")` (or
// of an optional package) becomes a require of the same module, which loads it the same way.
const EXTERNAL_DYNAMIC_IMPORT = /\bimport\(\s*(["'])((?:node:)?[@a-z0-9_./-]+)\1\s*\)/g;
/** True for a package esbuild will bundle (it resolves, and is not one of Node's own modules). */
function bundled(name, importer) {
  if (isBuiltin(name)) return false;
  try {
    createRequire(importer).resolve(name);
    return true;
  } catch {
    return false; // an optional dependency that is not installed (proxy-agent-negotiate's kerberos)
  }
}
const dynamicImportsToRequire = {
  name: 'dynamic-imports-to-require',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/].*\.(?:m?js|cjs)$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!EXTERNAL_DYNAMIC_IMPORT.test(source)) return undefined;
      EXTERNAL_DYNAMIC_IMPORT.lastIndex = 0;
      const contents = source.replace(EXTERNAL_DYNAMIC_IMPORT, (call, quote, name) =>
        bundled(name, args.path) ? call : `Promise.resolve().then(() => __s3xferImportRequired(${quote}${name}${quote}))`,
      );
      return { contents, loader: 'js' };
    });
  },
};

// string-width builds an Intl.Segmenter and Unicode-set regexes when it is loaded (~15 ms for each
// of the two copies yargs and cliui import), for the layout of help text that most runs never
// print. Each import of it gets a stand-in that loads the real module (the same version the
// importer would have had) at its first call.
const LAZY = 'lazy-on-first-call';
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData === LAZY) return undefined;
      const real = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: LAZY });
      if (real.errors.length > 0) return { errors: real.errors };
      // A relative name: the bundle must not depend on the directory it was built in.
      return { path: relative(process.cwd(), real.path), namespace: LAZY };
    });
    b.onLoad({ filter: /.*/, namespace: LAZY }, (args) => ({
      contents: `let real;
export default function stringWidth(text, options) {
  real ??= require(${JSON.stringify(`./${basename(args.path)}`)}).default;
  return real(text, options);
}`,
      loader: 'js',
      resolveDir: resolve(dirname(args.path)),
    }));
  },
};

rmSync('dist/cli/bundle', { recursive: true, force: true }); // the ESM chunks of earlier builds
const result = await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli/s3xfer.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The SDK's ES modules, not its CommonJS builds: esbuild can drop the unused commands and
  // middleware of an ES module, not of a CommonJS one (a fifth less code to compile).
  mainFields: ['module', 'main'],
  // Node 20 has RegExp `v` (set notation); without this esbuild rewrites string-width's /…/v
  // literals into `new RegExp(…)` calls that build their Unicode sets at load (~16 ms).
  supported: { 'regexp-set-notation': true },
  // A dependency's ESM code may read import.meta.url (yargs does, to find its locales).
  define: { __S3XFER_VERSION__: JSON.stringify(version), 'import.meta.url': '__s3xferImportMetaUrl' },
  banner: {
    js: [
      // First, so that it stays the script's directive: the ES modules bundled here are strict code.
      "'use strict';",
      "var __s3xferImportMetaUrl = require('node:url').pathToFileURL(__filename).href;",
      'var __s3xferImportRequired = (name) => { const m = require(name); return m && m.__esModule ? m : Object.assign({ default: m }, m); };',
    ].join('\n'),
  },
  legalComments: 'none',
  // Whitespace and comments only (names stay, so stack traces still read): a third less source
  // for V8 to hash and keep at every start, and one-byte strings (two comments with arrows made
  // the whole 2 MB source a two-byte string): 6 MiB less peak memory for every command.
  minifyWhitespace: true,
  logLevel: 'warning',
  metafile: true,
  plugins: [dynamicImportsToRequire, lazyStringWidth],
});

const left = Object.values(result.metafile.outputs)
  .flatMap((output) => output.imports)
  .filter((entry) => entry.kind === 'dynamic-import' && entry.external);
if (left.length > 0) {
  throw new Error(`dynamic imports left in the CLI bundle (they fail under a code cache): ${left.map((e) => e.path).join(', ')}`);
}
