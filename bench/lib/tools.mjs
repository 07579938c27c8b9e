// The tools: how each is found (or installed), configured and invoked, and what it verifies of
// the bytes it moves. Every tool runs at its defaults; only rclone-tuned adds flags.
//
// A tool is { name, version, settings, env, argv(op), unsupported(kind), verified(op) } where
//   op = { kind: 'file' | 'tree' | 'batch', direction: 'upload' | 'download', local, bucket, key,
//          objectSize, seed }  (for a tree, `key` is a prefix ending in '/'; `objectSize` is
//          the size of one object; `seed` is HeadObject of a download's source object). A batch
//          uploads every file of the directory `local` to the prefix of `key` (its first file's
//          key), one command per file: s3xfer as one `s3xfer run FILE` process, the others as a
//          bash loop of one process per file, as a user's script would run them.
import { cpSync, existsSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { aptInstall, childEnv, KiB, MiB, parseSize, runText, which } from './util.mjs';

export const TOOL_NAMES = ['s3xfer', 'aws', 'rclone', 'rclone-tuned', 'curl'];

/** rclone-tuned's flags: rclone's concurrency matched to s3xfer's 10 (env BENCH_RCLONE_TUNED). */
export const RCLONE_TUNED_FLAGS = '--multi-thread-streams 10 --transfers 10';

// What "verified bytes?" says. An upload is verified when the server checks a digest of the body
// the tool sent; a download when the tool checks a digest of what it received.
export const VERIFIED = {
  serverMd5: 'server MD5',
  serverSha: 'server SHA-256',
  serverBoth: 'server MD5 + SHA-256',
  md5Etag: 'MD5 vs ETag',
  md5Meta: 'MD5 vs metadata',
  partsEtag: 'part MD5s vs ETag',
  size: 'size only',
  none: 'no',
};
export const VERIFIED_LEGEND = [
  '**server MD5**: the tool sends Content-MD5, and the server refuses a body that does not match it (BadDigest).',
  "**server SHA-256**: the SigV4 signature covers the body's SHA-256 (x-amz-content-sha256), and the server refuses a body that does not match it. " +
    'botocore signs bodies this way over plain http; the CRC32 it also sends (x-amz-checksum-crc32) is ignored by this Ceph 16 server, which accepts a wrong one.',
  '**server MD5 + SHA-256**: both, on every request of the upload (rclone sends Content-MD5 with each part and signs it).',
  "**MD5 vs ETag / metadata**: the tool hashes what it received and compares it with the object's plain ETag (single-part objects), or with the MD5 rclone stores as X-Amz-Meta-Md5chksum.",
  "**part MD5s vs ETag**: the tool computes the multipart ETag of what it received (the MD5 of the parts' MD5s, for the part size the object was uploaded with) and compares it with the object's `…-N` ETag.",
  '**size only**: no digest is checked, only lengths. An object uploaded in parts has an ETag that is not an MD5 (`…-N`), and this server sends no x-amz-checksum-* headers, so botocore skips its response check.',
  '**no**: nothing is checked (curl sends UNSIGNED-PAYLOAD).',
  "s3xfer's cells are measured at the start of each bench: a loopback proxy flips one bit in the first body of an upload and of a download (one small file, one in parts), and the cell says what caught it. " +
    "The other tools' cells follow from their code and versions; the same probe confirmed every one of them on 2026-11-24 (64 KiB, 16 MiB, 260 MiB).",
];

const plainEtag = (seed) => /^"?[0-9a-f]{32}"?$/i.test(seed?.etag ?? '');

/** Finds and prepares every tool in `names`; returns { tools: {name: tool}, skipped: {name: why} }. */
export async function setUpTools(names, ctx) {
  const tools = {};
  const skipped = {};
  for (const name of names) {
    const made = await FACTORIES[name](ctx);
    if (typeof made === 'string') skipped[name] = made;
    else tools[name] = { name, ...made };
  }
  return { tools, skipped };
}

const FACTORIES = {
  async s3xfer({ root, server, workDir }) {
    const bundle = join(root, 'dist', 'cli', 's3xfer.cjs');
    if (!existsSync(bundle)) return 'dist/ is missing: run `npm run build` first (or `npm run bench`)';
    // A copy of the built CLI as it is now, so that a rebuild in the work tree during the bench
    // neither breaks a transfer nor mixes two builds in one table. Its first run (the `--help`
    // below) writes V8's code cache of the bundle, as a user's first run does; the timed runs use it.
    const snapshot = join(workDir, 's3xfer');
    cpSync(bundle, join(snapshot, 'dist', 'cli', 's3xfer.cjs'));
    cpSync(join(root, 'bin'), join(snapshot, 'bin'), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(snapshot, 'node_modules'));
    const cli = join(snapshot, 'bin', 's3xfer.js');
    const env = { ...credentials(server), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    const help = runText(process.execPath, [cli, 'cp', '--help'], { env: childEnv(env) }) ?? '';
    // Its defaults, as its help states them: they decide single-part or multipart.
    const defaultOf = (flag, fallback) => {
      const m = new RegExp(`${flag}\\b[^\\n]*\\[default ([^\\]]+)\\]`).exec(help);
      try {
        return parseSize(m?.[1] ?? fallback);
      } catch {
        return parseSize(fallback);
      }
    };
    const threshold = defaultOf('--multipart-threshold', '8MiB');
    const partSize = defaultOf('--part-size', '8MiB');
    const recursive = /--recursive\b/.test(help);
    const batch = /^\s*s3xfer run\b/m.test(runText(process.execPath, [cli, '--help'], { env: childEnv(env) }) ?? '');
    let batches = 0;
    /** 'single' (one PUT or GET) or 'parts' (multipart upload, ranged GETs), as s3xfer decides. */
    const shapeOf = (direction, objectSize) => {
      const parts =
        direction === 'upload' ? !(objectSize < threshold || objectSize <= partSize) : objectSize >= threshold && objectSize > partSize;
      return parts ? 'parts' : 'single';
    };
    const commit = runText('git', ['rev-parse', '--short', 'HEAD'], { cwd: root });
    const dirty = (runText('git', ['status', '--porcelain', '--', 'src', 'scripts', 'package.json'], { cwd: root }) ?? '')
      .split('\n')
      .filter(Boolean);
    const built = statSync(bundle).mtime.toISOString().slice(0, 16).replace('T', ' ');
    return {
      version:
        `${runText(process.execPath, [cli, '--version'], { env: childEnv(env) }) ?? '?'}, built ${built} UTC from commit ${commit ?? '?'}` +
        (dirty.length ? ` + ${dirty.length} uncommitted file(s) in src/, scripts/ or package.json` : ''),
      settings: `defaults (concurrency 10, ${partSize / MiB} MiB parts, ${threshold / MiB} MiB multipart threshold); \`--no-progress\``,
      env,
      argv: (op) =>
        op.kind === 'batch'
          ? // One process for the whole batch: `cp FILE s3://…` lines in a command file.
            [
              process.execPath,
              cli,
              'run',
              writeCommandFile(join(workDir, `batch-${++batches}.txt`), op),
              '--endpoint-url',
              op.endpoint ?? server.env.S3_ENDPOINT,
              '--no-progress',
            ]
          : [
              process.execPath,
              cli,
              'cp',
              ...(op.kind === 'tree' ? ['--recursive'] : []),
              ...fromTo(op, s3Url(op)),
              '--endpoint-url',
              op.endpoint ?? server.env.S3_ENDPOINT,
              '--no-progress',
            ],
      // Until `cp --recursive` (`run`) lands, the tree (batch) cells say so (and a run that exits 2 says so too).
      unsupported: (kind) => ((kind === 'tree' && !recursive) || (kind === 'batch' && !batch) ? 'n/a (not implemented)' : undefined),
      // Its code changes under the bench: what it verifies is probed (probe.mjs) for one object of
      // each shape it makes, single request or parts. Without a probe (--no-probe): what 9e2274a did.
      probeSizes: { single: 64 * KiB, parts: threshold + partSize },
      verified({ direction, objectSize, seed, probes }) {
        const shape = shapeOf(direction, objectSize);
        const probed = probes?.[shape]?.[direction]?.verified;
        if (probed) return probed;
        if (direction === 'upload') return shape === 'single' ? VERIFIED.serverBoth : VERIFIED.serverSha;
        return shape === 'single' && plainEtag(seed) ? VERIFIED.md5Etag : VERIFIED.size;
      },
    };
  },

  async aws({ server, workDir }) {
    const found = () => which('aws');
    if (!aptInstall(['awscli'], found)) return 'aws CLI not found: install it (pip install awscli, or apt-get install -y awscli)';
    // Run the aws script itself, not pyenv's shim (whose bash and pyenv calls would be timed too).
    const bin = (which('pyenv') && runText('pyenv', ['which', 'aws'])) || found();
    const configFile = join(workDir, 'aws-config');
    // No settings of its own: the defaults (10 requests, 8 MB parts and threshold); only a
    // region, so that a ~/.aws/config cannot change anything.
    await writeFile(configFile, `[default]\nregion = ${server.env.AWS_REGION}\n`);
    const env = { ...credentials(server), AWS_CONFIG_FILE: configFile, AWS_SHARED_CREDENTIALS_FILE: join(workDir, 'no-credentials') };
    const https = server.env.S3_ENDPOINT.startsWith('https:');
    return {
      version: runText(bin, ['--version'], { env: childEnv(env) }) ?? '?',
      settings: 'defaults (10 requests, 8 MB parts and threshold; botocore default checksums); `--no-progress --only-show-errors`',
      env,
      argv: (op) => {
        const flags = ['--endpoint-url', op.endpoint ?? server.env.S3_ENDPOINT, '--no-progress', '--only-show-errors'];
        if (op.kind === 'batch') return shellLoop(op, [bin, 's3', 'cp'], `s3://${op.bucket}/${prefixOf(op)}`, flags);
        return [bin, 's3', 'cp', ...(op.kind === 'tree' ? ['--recursive'] : []), ...fromTo(op, s3Url(op)), ...flags];
      },
      unsupported: () => undefined,
      // Over http botocore signs every body's SHA-256; over https it sends a CRC32 trailer instead.
      verified: ({ direction }) =>
        direction === 'download' ? VERIFIED.size : https ? 'CRC32 (if the server checks it)' : VERIFIED.serverSha,
    };
  },

  rclone: (ctx) => rclone(ctx, []),
  'rclone-tuned': (ctx) => rclone(ctx, (process.env.BENCH_RCLONE_TUNED ?? RCLONE_TUNED_FLAGS).split(/\s+/).filter(Boolean)),

  async curl({ server, workDir }) {
    const bin = which('curl');
    if (!bin) return 'curl not found';
    const config = join(workDir, 'curl.conf'); // the keys stay off the command line
    const { AWS_ACCESS_KEY_ID: id, AWS_SECRET_ACCESS_KEY: secret, AWS_REGION: region } = server.env;
    await writeFile(config, `user = "${id}:${secret}"\naws-sigv4 = "aws:amz:${region}:s3"\n`, { mode: 0o600 });
    return {
      version: (runText(bin, ['--version']) ?? '?').split('\n')[0].split(' ').slice(0, 2).join(' '),
      settings: 'one request (a PUT or a GET) with `--aws-sigv4`, `x-amz-content-sha256: UNSIGNED-PAYLOAD`',
      env: {},
      argv: (op) => {
        const url = `${(op.endpoint ?? server.env.S3_ENDPOINT).replace(/\/$/, '')}/${op.bucket}/${op.key.split('/').map(encodeURIComponent).join('/')}`;
        const io = op.direction === 'upload' ? ['-T', op.local] : ['-o', op.local];
        return [bin, '-sS', '-f', '-K', config, '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', ...io, url];
      },
      unsupported: (kind) => (kind === 'tree' || kind === 'batch' ? '–' : undefined),
      baseline: true,
      verified: ({ direction }) => (direction === 'upload' ? VERIFIED.none : VERIFIED.size),
    };
  },
};

/** rclone at its defaults, plus `flags` (rclone-tuned). Its remote is set up in environment variables. */
async function rclone({ server }, flags) {
  const found = () => which('rclone');
  if (!aptInstall(['rclone'], found)) return 'rclone not found: apt-get update && apt-get install -y rclone';
  const bin = found();
  const env = {
    RCLONE_CONFIG: '/dev/null', // no config file: the remote "bench" is all in RCLONE_CONFIG_BENCH_*
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Ceph',
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_BENCH_ENDPOINT: server.env.S3_ENDPOINT,
    RCLONE_CONFIG_BENCH_REGION: server.env.AWS_REGION,
    AWS_CA_BUNDLE: '', // when set, rclone's S3 backend fails with "unable to load custom CA bundle"
  };
  const uploadCutoff = 200 * MiB; // rclone's default --s3-upload-cutoff: below it, one PUT
  const version = (runText(bin, ['version']) ?? '?').split('\n')[0];
  const minor = Number(/v1\.(\d+)/.exec(version)?.[1] ?? 99);
  return {
    version,
    // Before 1.64, one file's download gets at most size ÷ --multi-thread-cutoff streams and its
    // upload --s3-upload-concurrency parts in flight, whatever --multi-thread-streams says.
    note:
      flags.length && minor < 64
        ? `rclone-tuned: in rclone ${version.replace(/^rclone /, '')}, one file's download gets min(--multi-thread-streams, size ÷ --multi-thread-cutoff (250 MiB)) ranged streams (4 for 1 GiB, 1 for 64 MiB) and its upload --s3-upload-concurrency (4) parts in flight, so \`${flags.join(' ')}\` changes only the tree cases (--transfers); \`BENCH_RCLONE_TUNED='--transfers 10 --s3-upload-concurrency 10 --multi-thread-streams 10 --multi-thread-cutoff 64M'\` would match 10 on single files too.`
        : undefined,
    settings: flags.length
      ? `defaults + \`${flags.join(' ')}\``
      : 'defaults (4 transfers, 4 upload parts and 4 download streams in flight, 5 MiB parts)',
    env,
    argv: (op) => {
      const remote = `bench:${op.bucket}/${op.key}`.replace(/\/$/, '');
      const endpoint = op.endpoint ? ['--s3-endpoint', op.endpoint] : [];
      if (op.kind === 'batch') return shellLoop(op, [bin, 'copyto'], `bench:${op.bucket}/${prefixOf(op)}`, ['-q', ...flags, ...endpoint]);
      return [bin, op.kind === 'tree' ? 'copy' : 'copyto', ...fromTo(op, remote), '-q', ...flags, ...endpoint];
    },
    unsupported: () => undefined,
    verified({ direction, objectSize, seed }) {
      if (direction === 'upload') return objectSize < uploadCutoff ? VERIFIED.serverMd5 : VERIFIED.serverBoth;
      if (plainEtag(seed)) return VERIFIED.md5Etag;
      return seed?.metadata?.md5chksum ? VERIFIED.md5Meta : VERIFIED.size;
    },
  };
}

const credentials = (server) => ({
  AWS_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY,
  AWS_REGION: server.env.AWS_REGION,
  AWS_DEFAULT_REGION: server.env.AWS_REGION,
});

const s3Url = (op) => `s3://${op.bucket}/${op.key}`;

/** A batch's key prefix: its first file's key without the name. */
const prefixOf = (op) => op.key.replace(/[^/]*$/, '');

/** The files of a batch, sorted (what a shell's `"$DIR"/*` gives). */
const batchFiles = (op) => readdirSync(op.local).sort();

/** `text` as one shell word (single-quoted). */
const shellWord = (text) => `'${String(text).replace(/'/g, "'\\''")}'`;

/** Writes s3xfer's command file for a batch (one `cp FILE s3://bucket/prefix/FILE` a line); returns its path. */
function writeCommandFile(path, op) {
  const lines = batchFiles(op).map(
    (name) => `cp ${shellWord(join(op.local, name))} ${shellWord(`s3://${op.bucket}/${prefixOf(op)}${name}`)}`,
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/**
 * A batch as a user's shell loop runs it: `for f in DIR/*; do TOOL… "$f" DEST/<name> FLAGS || exit 1; done`,
 * one process per file, one after another; the loop is what is timed.
 */
function shellLoop(op, command, destination, flags) {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash script, its ${…} are bash's
  const script = 'dir=$1 dest=$2 k=$3; shift 3; for f in "$dir"/*; do "${@:1:k}" "$f" "$dest${f##*/}" "${@:k+1}" || exit 1; done';
  return ['bash', '-c', script, 'bash', op.local, destination, String(command.length), ...command, ...flags];
}

/** [source, destination] of a transfer between op.local and `remote`. */
const fromTo = (op, remote) => (op.direction === 'upload' ? [op.local, remote] : [remote, op.local]);
