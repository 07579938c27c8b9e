// Bundles the CLI (src/cli/main.ts and everything it imports, the AWS SDK included) into a few ESM
// files under dist/cli/bundle/, which bin/s3xfer.js runs. A few files instead of hundreds of
// CommonJS modules cut a small upload's start-up by about a fifth on Node 20, which has no module
// compile cache (BENCHMARKS.md, "Start-up"). Code splitting keeps what the CLI imports lazily
// (the SDK, ora) out of the entry chunk, so --help and --version do not parse it. The library
// (dist/index.js) stays tsc's unbundled output.
import { readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

rmSync('dist/cli/bundle', { recursive: true, force: true }); // no stale chunks from earlier builds
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: 'dist/cli/bundle',
  entryNames: 's3xfer',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies call require() for Node built-ins; ESM has no require of its own.
  banner: { js: "import { createRequire as __s3xferRequire } from 'node:module'; const require = __s3xferRequire(import.meta.url);" },
  legalComments: 'none',
  define: { __S3XFER_VERSION__: JSON.stringify(version) },
  logLevel: 'warning',
});
