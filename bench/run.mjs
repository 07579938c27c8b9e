#!/usr/bin/env node
// bench/run.mjs — `npm run bench`: one big random file (default 1 GiB) up and down against the
// local S3 server with the s3xfer CLI and, for comparison, the aws CLI and rclone on the same
// server; several interleaved runs; medians of MiB/s, CPU seconds and peak RSS. Plain Node ESM,
// no build step of its own (it runs the built CLI, bin/s3xfer.js → dist/).
//
//   node bench/run.mjs [--size 1GiB] [--runs 5] [--no-peers] [--tools s3xfer,aws,rclone]
//                      [--no-startup] [--startup-runs 10] [--no-warmup] [--help]
//
// Environment (flags win):
//   BENCH_SIZE=1GiB        size of the random file (B, KiB, MiB, GiB; K/M/G and KB/MB/GB are binary too)
//   BENCH_RUNS=5           interleaved runs
//   BENCH_PEERS=0          s3xfer only (no aws CLI, no rclone)
//   BENCH_TOOLS=…          comma list out of s3xfer,aws,rclone
//   BENCH_STARTUP=0        skip the start-up measurements (--version, 1 KiB upload)
//   BENCH_STARTUP_RUNS=10  runs per start-up command
//   BENCH_WARMUP=0         skip the unrecorded 64 MiB warm-up round
//   BENCH_TMPDIR=/path     where the file and the downloads go (default: the OS temp dir)
//   S3_ENDPOINT + AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_REGION]: use that server
//                          instead of starting scripts/s3-server.sh (then no `gc` between runs)
//
// Each transfer is a fresh process run under `/usr/bin/time -f '%e %U %S %M'`: user+sys CPU and
// peak RSS are the child's own (with anything it forks). Between transfers: `sync`; between runs:
// the run's objects are deleted and `scripts/s3-server.sh gc` reclaims their space. Raw results
// go to bench/results/<timestamp>.json. Everything made (temp dir, objects, bucket) is removed at
// the end, also after a failure or Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin', 's3xfer.js');
const SERVER_SCRIPT = join(ROOT, 'scripts', 's3-server.sh');
const TIME = '/usr/bin/time';
const MiB = 1024 * 1024;
const ALL_TOOLS = ['s3xfer', 'aws', 'rclone'];
/** The concurrency every tool is asked for: s3xfer's and the aws CLI's defaults. */
const CONCURRENCY = 10;
const PART_MIB = 8;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// ---------------------------------------------------------------------------------------------
// Options

function usage() {
  const head = readFileSync(fileURLToPath(import.meta.url), 'utf8')
    .split('\n')
    .slice(1, 30);
  return head
    .filter((l) => l.startsWith('//'))
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
}

function parseArgs(argv, env) {
  const opts = {
    size: env.BENCH_SIZE ?? '1GiB',
    runs: env.BENCH_RUNS ?? '5',
    peers: !['0', 'false', 'no', 'off'].includes(String(env.BENCH_PEERS ?? '1').toLowerCase()),
    tools: env.BENCH_TOOLS,
    startup: !['0', 'false', 'no', 'off'].includes(String(env.BENCH_STARTUP ?? '1').toLowerCase()),
    startupRuns: env.BENCH_STARTUP_RUNS ?? '10',
    warmup: !['0', 'false', 'no', 'off'].includes(String(env.BENCH_WARMUP ?? '1').toLowerCase()),
    tmpdir: env.BENCH_TMPDIR || os.tmpdir(),
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? die(`${flag} needs a value`);
    switch (flag) {
      case '--size':
        opts.size = value();
        break;
      case '--runs':
        opts.runs = value();
        break;
      case '--tools':
        opts.tools = value();
        break;
      case '--peers':
        opts.peers = true;
        break;
      case '--no-peers':
        opts.peers = false;
        break;
      case '--startup':
        opts.startup = true;
        break;
      case '--no-startup':
        opts.startup = false;
        break;
      case '--startup-runs':
        opts.startupRuns = value();
        break;
      case '--warmup':
        opts.warmup = true;
        break;
      case '--no-warmup':
        opts.warmup = false;
        break;
      case '--tmpdir':
        opts.tmpdir = value();
        break;
      case '-h':
      case '--help':
        console.log(usage());
        return process.exit(0);
      default:
        die(`unknown argument "${argv[i]}" (see --help)`);
    }
  }
  opts.size = parseSize(opts.size);
  opts.runs = positiveInt(opts.runs, 'runs');
  opts.startupRuns = positiveInt(opts.startupRuns, 'startup runs');
  const tools = opts.tools
    ? String(opts.tools)
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)
    : opts.peers
      ? ALL_TOOLS
      : ['s3xfer'];
  for (const t of tools) if (!ALL_TOOLS.includes(t)) die(`unknown tool "${t}": choose from ${ALL_TOOLS.join(', ')}`);
  opts.tools = tools;
  return opts;
}

/** `1GiB`, `256MiB`, `256M`, `512MB`, `1073741824` → bytes (all units binary, like the aws CLI). */
export function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(String(text));
  if (!m) die(`invalid size "${text}": expected e.g. 1GiB, 256MiB, 1073741824`);
  const power = { b: 0, k: 1, m: 2, g: 3, t: 4 }[(m[2] ?? 'b')[0].toLowerCase()];
  const bytes = Math.round(Number(m[1]) * 1024 ** power);
  if (!(bytes > 0)) die(`invalid size "${text}": must be more than 0 bytes`);
  return bytes;
}

function positiveInt(text, what) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) die(`invalid ${what} "${text}": expected a whole number ≥ 1`);
  return n;
}

function die(message) {
  console.error(`bench: ${message}`);
  process.exit(2);
}

const log = (...args) => console.error('bench:', ...args);

// ---------------------------------------------------------------------------------------------
// Small helpers

function which(cmd) {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() || undefined : undefined;
}

function runText(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

/** Total and idle jiffies of the whole machine (first line of /proc/stat). */
function machineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { total: f.reduce((a, b) => a + b, 0), idle: f[3] + (f[4] ?? 0) };
  } catch {
    return undefined;
  }
}

const CLK_TCK = Number(runText('getconf', ['CLK_TCK']) ?? 100) || 100;
const SERVER_COMMS = { radosgw: 'radosgw', 'ceph-osd': 'osd', 'ceph-mon': 'mon' };

/** CPU seconds used so far by the local Ceph daemons (read from /proc; nothing is signalled). */
function serverCpu() {
  const out = {};
  let pids = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      const name = SERVER_COMMS[comm];
      if (!name) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = (out[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
    } catch {
      // the process went away meanwhile
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The server and the bucket

async function startServer() {
  if (process.env.S3_ENDPOINT) {
    const { S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } = process.env;
    if (!AWS_ACCESS_KEY_ID || !AWS_SECRET_ACCESS_KEY) die('S3_ENDPOINT is set: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be too');
    const url = new URL(S3_ENDPOINT);
    if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(url.hostname)) {
      log(`warning: S3_ENDPOINT ${S3_ENDPOINT} is not on loopback; the figures will include that network`);
    }
    return {
      managed: false,
      env: { S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION: process.env.AWS_REGION || 'us-east-1' },
    };
  }
  log('starting the local server: bash scripts/s3-server.sh start');
  const r = spawnSync('bash', [SERVER_SCRIPT, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) die(`scripts/s3-server.sh start failed (exit ${r.status})`);
  const env = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  for (const k of ['S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
    if (!env[k]) die(`scripts/s3-server.sh start printed no ${k}= line`);
  }
  env.AWS_REGION ||= 'us-east-1';
  return { managed: true, env };
}

function serverGc(server) {
  if (!server.managed) return;
  const r = spawnSync('bash', [SERVER_SCRIPT, 'gc'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) log(`warning: scripts/s3-server.sh gc failed: ${r.stderr.trim().split('\n').pop()}`);
}

async function s3Admin(env) {
  const s3 = await import('@aws-sdk/client-s3');
  const client = new s3.S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    async createBucket(bucket) {
      await client.send(new s3.CreateBucketCommand({ Bucket: bucket }));
    },
    /** Deletes every object (under `prefix`) and aborts unfinished multipart uploads. */
    async emptyBucket(bucket, prefix = '') {
      for (;;) {
        const list = await client.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined }));
        const keys = (list.Contents ?? []).map((o) => ({ Key: o.Key }));
        if (keys.length === 0) break;
        await client.send(new s3.DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
        if (!list.IsTruncated) break;
      }
      const uploads = await client.send(new s3.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix || undefined }));
      for (const u of uploads.Uploads ?? []) {
        await client.send(new s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId })).catch(() => {});
      }
    },
    async deleteBucket(bucket) {
      await this.emptyBucket(bucket);
      await client.send(new s3.DeleteBucketCommand({ Bucket: bucket }));
    },
    destroy: () => client.destroy(),
  };
}

// ---------------------------------------------------------------------------------------------
// The tools

/** Command lines of one tool; `env` is added to the bench's environment for each child. */
function defineTools(names, server, workDir) {
  const ep = server.env.S3_ENDPOINT;
  const baseEnv = {
    AWS_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY,
    AWS_REGION: server.env.AWS_REGION,
    AWS_DEFAULT_REGION: server.env.AWS_REGION,
  };
  const tools = {};
  const skipped = {};

  if (names.includes('s3xfer')) {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) die('dist/ is missing: run `npm run build` first (or `npm run bench`)');
    tools.s3xfer = {
      name: 's3xfer',
      version: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
      env: baseEnv,
      settings: `defaults: concurrency ${CONCURRENCY}, ${PART_MIB} MiB parts, ${PART_MIB} MiB multipart threshold, --no-progress`,
      cmd: (src, dst) => [process.execPath, CLI, 'cp', src, dst, '--endpoint-url', ep, '--no-progress'],
      url: (bucket, key) => `s3://${bucket}/${key}`,
    };
  }

  if (names.includes('aws')) {
    // Run the aws script itself, not pyenv's shim (whose bash + pyenv calls would be timed too).
    const shim = which('aws');
    const real = (which('pyenv') && runText('pyenv', ['which', 'aws'])) || shim;
    if (!real) {
      skipped.aws = 'aws CLI not found on PATH';
    } else {
      const configFile = join(workDir, 'aws-config');
      const config =
        '[default]\n' +
        `region = ${server.env.AWS_REGION}\n` +
        's3 =\n' +
        `  max_concurrent_requests = ${CONCURRENCY}\n` +
        `  multipart_chunksize = ${PART_MIB}MB\n` +
        `  multipart_threshold = ${PART_MIB}MB\n`;
      tools.aws = {
        name: 'aws',
        version: runText(real, ['--version'], { env: { ...process.env, ...baseEnv } }) ?? '?',
        env: { ...baseEnv, AWS_CONFIG_FILE: configFile, AWS_SHARED_CREDENTIALS_FILE: join(workDir, 'aws-credentials-none') },
        settings: `max_concurrent_requests ${CONCURRENCY}, multipart_chunksize ${PART_MIB}MB, multipart_threshold ${PART_MIB}MB (its defaults, set explicitly), --no-progress --only-show-errors; botocore's default checksums`,
        setup: () => writeFile(configFile, config),
        cmd: (src, dst) => [real, 's3', 'cp', src, dst, '--endpoint-url', ep, '--no-progress', '--only-show-errors'],
        url: (bucket, key) => `s3://${bucket}/${key}`,
      };
    }
  }

  if (names.includes('rclone')) {
    const bin = which('rclone');
    if (!bin) {
      skipped.rclone = 'rclone not found (apt-get install -y rclone)';
    } else {
      const env = {
        RCLONE_CONFIG_BENCH_TYPE: 's3',
        RCLONE_CONFIG_BENCH_PROVIDER: 'Ceph',
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY,
        RCLONE_CONFIG_BENCH_ENDPOINT: ep,
        RCLONE_CONFIG_BENCH_REGION: server.env.AWS_REGION,
        AWS_CA_BUNDLE: '', // rclone's S3 backend fails with "unable to load custom CA bundle" when it is set
      };
      const upload = ['--s3-upload-concurrency', String(CONCURRENCY), '--s3-chunk-size', `${PART_MIB}M`];
      // rclone splits a download into at most `streams` equal ranges, fewer when size/cutoff is smaller.
      const download = ['--multi-thread-streams', String(CONCURRENCY), '--multi-thread-cutoff', '64M'];
      tools.rclone = {
        name: 'rclone',
        version: (runText(bin, ['version']) ?? '?').split('\n')[0],
        env,
        settings: `upload ${upload.join(' ')}; download ${download.join(' ')}; --ignore-times --config /dev/null; otherwise defaults (MD5 of the file stored as metadata on upload and checked on download)`,
        cmd: (src, dst) => {
          const up = !src.startsWith('bench:');
          return [bin, 'copyto', src, dst, ...(up ? upload : download), '--ignore-times', '--config', '/dev/null', '-q'];
        },
        url: (bucket, key) => `bench:${bucket}/${key}`,
      };
    }
  }
  return { tools, skipped };
}

/** Runs one command under /usr/bin/time; returns wall, user, sys, peak RSS and server CPU. */
async function measure(argv, extraEnv, workDir) {
  const timeFile = join(workDir, `time-${randomBytes(4).toString('hex')}.txt`);
  const env = { ...process.env, ...extraEnv };
  for (const [k, v] of Object.entries(extraEnv)) if (v === '') delete env[k];
  const cpu0 = machineCpu();
  const server0 = serverCpu();
  const t0 = process.hrtime.bigint();
  const { code, output } = await new Promise((resolveRun, rejectRun) => {
    // cwd: the temp dir, so that no .env file of the work tree is read by the CLI.
    // Own process group (detached), so that a clean-up can stop the tool and not only `time`.
    const child = spawn(TIME, ['-o', timeFile, '-f', '%e %U %S %M', ...argv], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: workDir,
      detached: true,
    });
    current.child = child;
    current.closed = new Promise((r) => child.once('close', r));
    let output = '';
    const keep = (d) => {
      output = (output + d).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', rejectRun);
    child.on('close', (c) => {
      current.child = undefined;
      resolveRun({ code: c, output });
    });
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = machineCpu();
  const server1 = serverCpu();
  const text = await readFile(timeFile, 'utf8').catch(() => '');
  await unlink(timeFile).catch(() => {});
  if (code !== 0) throw new Error(`command failed (exit ${code}): ${argv.join(' ')}\n${output.trim()}`);
  const last = text.trim().split('\n').pop() ?? '';
  const [, user, sys, maxRssKiB] = last.split(/\s+/).map(Number);
  if (![user, sys, maxRssKiB].every(Number.isFinite)) throw new Error(`could not read ${TIME}'s output: "${text.trim()}"`);
  const server = {};
  for (const k of Object.keys(server1)) server[k] = +(server1[k] - (server0[k] ?? 0)).toFixed(2);
  const busy = cpu0 && cpu1 ? 1 - (cpu1.idle - cpu0.idle) / Math.max(1, cpu1.total - cpu0.total) : undefined;
  // CPU seconds the machine spent beyond the client and the Ceph daemons: loopback softirq,
  // kernel threads (writeback), and anything else running meanwhile (a source of noise).
  const busyS = cpu0 && cpu1 ? (cpu1.total - cpu0.total - (cpu1.idle - cpu0.idle)) / CLK_TCK : undefined;
  const serverSum = Object.values(server).reduce((a, b) => a + b, 0);
  const otherCpuS = busyS === undefined ? undefined : +Math.max(0, busyS - user - sys - serverSum).toFixed(2);
  return {
    wallS: wall,
    userS: user,
    sysS: sys,
    cpuS: user + sys,
    peakRssMiB: maxRssKiB / 1024,
    serverCpuS: server,
    otherCpuS,
    machineBusy: busy,
  };
}

const current = { child: undefined, closed: undefined, interrupted: undefined };

// ---------------------------------------------------------------------------------------------
// Files

/** Writes `size` random bytes to `path`; returns the sha256. */
async function makeRandomFile(path, size) {
  const handle = await open(path, 'w');
  const hash = createHash('sha256');
  const buf = Buffer.alloc(Math.min(8 * MiB, size));
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(buf.length, size - done);
      const chunk = buf.subarray(0, n);
      randomFillSync(chunk);
      hash.update(chunk);
      await handle.write(chunk, 0, n, done);
      done += n;
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

function sha256File(path) {
  return new Promise((resolveHash, rejectHash) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 * MiB })
      .on('data', (d) => hash.update(d))
      .on('error', rejectHash)
      .on('end', () => resolveHash(hash.digest('hex')));
  });
}

const sync = () => spawnSync('sync');

// ---------------------------------------------------------------------------------------------
// The benchmark

/** One upload then one download of `file` with `tool`; checks the copy; returns both records. */
async function roundTrip(tool, { file, sha, size, bucket, key, workDir, run }) {
  const records = [];
  const remote = tool.url(bucket, key);
  sync();
  const up = await measure(tool.cmd(file, remote), tool.env, workDir);
  records.push({ tool: tool.name, direction: 'upload', run, bytes: size, ...up, mibps: size / MiB / up.wallS });
  const copy = join(workDir, `download-${tool.name}-${run}.bin`);
  sync();
  const down = await measure(tool.cmd(remote, copy), tool.env, workDir);
  const gotSha = await sha256File(copy);
  await unlink(copy);
  if (gotSha !== sha) throw new Error(`${tool.name}: the downloaded copy differs (sha256 ${gotSha}, expected ${sha})`);
  records.push({ tool: tool.name, direction: 'download', run, bytes: size, ...down, mibps: size / MiB / down.wallS, verified: true });
  return records;
}

function summarize(records, toolNames) {
  const rows = [];
  for (const direction of ['upload', 'download']) {
    for (const tool of toolNames) {
      const rs = records.filter((r) => r.tool === tool && r.direction === direction);
      if (rs.length === 0) continue;
      const mibps = rs.map((r) => r.mibps);
      const serverKeys = [...new Set(rs.flatMap((r) => Object.keys(r.serverCpuS)))];
      rows.push({
        tool,
        direction,
        runs: rs.length,
        medianMiBps: median(mibps),
        minMiBps: Math.min(...mibps),
        maxMiBps: Math.max(...mibps),
        medianWallS: median(rs.map((r) => r.wallS)),
        medianCpuS: median(rs.map((r) => r.cpuS)),
        medianUserS: median(rs.map((r) => r.userS)),
        medianSysS: median(rs.map((r) => r.sysS)),
        medianPeakRssMiB: median(rs.map((r) => r.peakRssMiB)),
        maxPeakRssMiB: Math.max(...rs.map((r) => r.peakRssMiB)),
        medianServerCpuS: Object.fromEntries(serverKeys.map((k) => [k, median(rs.map((r) => r.serverCpuS[k] ?? 0))])),
        medianMachineBusy: median(rs.map((r) => r.machineBusy ?? NaN)),
        medianOtherCpuS: median(rs.map((r) => r.otherCpuS ?? NaN)),
      });
    }
  }
  const ratios = [];
  for (const direction of ['upload', 'download']) {
    const mine = rows.find((r) => r.tool === 's3xfer' && r.direction === direction);
    const peers = rows.filter((r) => r.tool !== 's3xfer' && r.direction === direction);
    if (!mine || peers.length === 0) continue;
    const best = peers.reduce((a, b) => (b.medianMiBps > a.medianMiBps ? b : a));
    ratios.push({
      direction,
      bestPeer: best.tool,
      throughputRatio: mine.medianMiBps / best.medianMiBps,
      cpuRatio: mine.medianCpuS / best.medianCpuS,
      rssRatio: mine.medianPeakRssMiB / best.medianPeakRssMiB,
      perPeer: Object.fromEntries(
        peers.map((p) => [p.tool, { throughputRatio: mine.medianMiBps / p.medianMiBps, cpuRatio: mine.medianCpuS / p.medianCpuS }]),
      ),
    });
  }
  return { rows, ratios };
}

function printTable(summary, size, runs) {
  const lines = [];
  lines.push(`Median of ${runs} interleaved run(s), ${fmtSize(size)} file (range = min–max of the runs):`);
  lines.push('');
  lines.push(
    '| tool | direction | MiB/s (median) | MiB/s (min–max) | CPU s (user+sys) | peak RSS MiB | server CPU s (rgw+osd) | rest CPU s | machine busy |',
  );
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of summary.rows) {
    const srv = (r.medianServerCpuS.radosgw ?? NaN) + (r.medianServerCpuS.osd ?? NaN);
    lines.push(
      `| ${r.tool} | ${r.direction} | ${fmt(r.medianMiBps)} | ${fmt(r.minMiBps)}–${fmt(r.maxMiBps)} | ${fmt(r.medianCpuS, 2)} | ${fmt(r.medianPeakRssMiB, 0)} | ${fmt(srv, 1)} | ${fmt(r.medianOtherCpuS, 1)} | ${Number.isFinite(r.medianMachineBusy) ? `${fmt(r.medianMachineBusy * 100, 0)}%` : '–'} |`,
    );
  }
  if (summary.ratios.length) {
    lines.push('');
    for (const q of summary.ratios) {
      const others = Object.entries(q.perPeer)
        .map(([t, v]) => `${t} ${fmt(v.throughputRatio, 2)}×`)
        .join(', ');
      lines.push(
        `s3xfer ${q.direction}: ${fmt(q.throughputRatio, 2)}× the throughput of the best peer (${q.bestPeer}), ${fmt(q.cpuRatio, 2)}× its CPU, ${fmt(q.rssRatio, 2)}× its peak RSS  [vs each: ${others}]`,
      );
    }
  }
  console.log(lines.join('\n'));
}

function fmtSize(bytes) {
  if (bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB} MiB`;
  return `${bytes} B`;
}

// ---------------------------------------------------------------------------------------------
// Start-up: --version and a 1 KiB upload

async function startup(tools, { bucket, workDir, runs }) {
  const small = join(workDir, 'one-kib.bin');
  await writeFile(small, randomBytes(1024));
  const commands = [];
  if (tools.s3xfer) commands.push({ label: 's3xfer --version', tool: tools.s3xfer, argv: [process.execPath, CLI, '--version'] });
  if (tools.aws) commands.push({ label: 'aws --version', tool: tools.aws, argv: [tools.aws.cmd('', '')[0], '--version'] });
  for (const t of Object.values(tools)) {
    commands.push({ label: `${t.name} 1 KiB upload`, tool: t, argv: t.cmd(small, t.url(bucket, `startup/${t.name}.bin`)) });
  }
  const hyperfine = which('hyperfine');
  const results = [];
  for (const c of commands) {
    const env = { ...process.env, ...c.tool.env };
    for (const [k, v] of Object.entries(c.tool.env)) if (v === '') delete env[k];
    if (hyperfine && c.argv.every((a) => !/\s|["'\\]/.test(a))) {
      const out = join(workDir, 'hyperfine.json');
      const r = spawnSync(
        hyperfine,
        ['-N', '--warmup', '2', '--runs', String(runs), '--export-json', out, '--style', 'none', c.argv.join(' ')],
        {
          env,
          cwd: workDir,
          encoding: 'utf8',
        },
      );
      if (r.status !== 0) throw new Error(`hyperfine failed for ${c.label}: ${r.stderr}`);
      const h = JSON.parse(await readFile(out, 'utf8')).results[0];
      results.push({
        label: c.label,
        method: 'hyperfine -N --warmup 2',
        runs,
        medianS: h.median,
        minS: h.min,
        maxS: h.max,
        meanS: h.mean,
        stddevS: h.stddev,
        userS: h.user,
        systemS: h.system,
      });
    } else {
      const times = [];
      const cpu = [];
      for (let i = 0; i < runs + 2; i++) {
        const m = await measure(c.argv, c.tool.env, workDir);
        if (i >= 2) {
          times.push(m.wallS);
          cpu.push(m.cpuS);
        }
      }
      results.push({
        label: c.label,
        method: 'own loop under /usr/bin/time, 2 warm-ups',
        runs,
        medianS: median(times),
        minS: Math.min(...times),
        maxS: Math.max(...times),
        medianCpuS: median(cpu),
      });
    }
    log(`start-up ${c.label}: median ${fmt(results.at(-1).medianS * 1000, 0)} ms`);
  }
  const lines = [
    '',
    `Start-up (median of ${runs} runs; wall ms):`,
    '',
    '| command | median ms | min–max ms | CPU ms (user+sys, mean) |',
    '| --- | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const cpuMs = r.userS !== undefined ? (r.userS + r.systemS) * 1000 : (r.medianCpuS ?? NaN) * 1000;
    lines.push(`| ${r.label} | ${fmt(r.medianS * 1000, 0)} | ${fmt(r.minS * 1000, 0)}–${fmt(r.maxS * 1000, 0)} | ${fmt(cpuMs, 0)} |`);
  }
  console.log(lines.join('\n'));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Main

function machineInfo() {
  const cpus = os.cpus();
  const osRelease = (() => {
    try {
      return /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    } catch {
      return undefined;
    }
  })();
  return {
    cpuModel: cpus[0]?.model,
    cores: cpus.length,
    memGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
    kernel: os.release(),
    os: osRelease,
    node: process.version,
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

function ensureTime() {
  if (existsSync(TIME)) return;
  if (process.getuid?.() === 0 && which('apt-get')) {
    log(`${TIME} is missing: installing the Debian package "time"`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['install', '-y', '-q', 'time'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (!existsSync(TIME)) {
      spawnSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
      spawnSync('apt-get', ['install', '-y', '-q', 'time'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    }
  }
  if (!existsSync(TIME)) die(`${TIME} is needed for CPU time and peak RSS: apt-get install time`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2), process.env);
  const machine = machineInfo(); // load average before the bench adds its own
  ensureTime();
  const server = await startServer();
  const workDir = await mkdtemp(join(opts.tmpdir, 's3xfer-bench-'));
  const bucket = `s3xfer-bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  let admin;
  let bucketMade = false;
  let interrupted;
  const cleanup = async () => {
    if (current.child?.pid) {
      try {
        process.kill(-current.child.pid, 'SIGTERM'); // the transfer's process group: time and the tool
      } catch {}
      await Promise.race([current.closed, new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    if (bucketMade) {
      await admin.deleteBucket(bucket).then(
        () => log(`deleted bucket ${bucket}`),
        (e) => log(`warning: could not delete bucket ${bucket}: ${e.message ?? e}`),
      );
      bucketMade = false;
      serverGc(server);
    }
    admin?.destroy();
    await rm(workDir, { recursive: true, force: true });
  };
  const onSignal = (signal) => {
    if (interrupted) process.exit(130);
    interrupted = current.interrupted = signal;
    log(`${signal}: cleaning up`);
    cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    admin = await s3Admin(server.env);
    await admin.createBucket(bucket);
    bucketMade = true;
    const { tools, skipped } = defineTools(opts.tools, server, workDir);
    for (const [t, why] of Object.entries(skipped)) log(`skipping ${t}: ${why}`);
    for (const t of Object.values(tools)) await t.setup?.();
    const order = ALL_TOOLS.filter((t) => tools[t]);
    if (order.length === 0) die('no tool to run');

    const file = join(workDir, 'random.bin');
    log(`writing ${fmtSize(opts.size)} of random bytes to ${file}`);
    const sha = await makeRandomFile(file, opts.size);

    if (opts.warmup) {
      const warm = join(workDir, 'warm.bin');
      const warmSize = Math.min(opts.size, 64 * MiB);
      const warmSha = await makeRandomFile(warm, warmSize);
      log(`warm-up (not recorded): ${fmtSize(warmSize)} up and down with ${order.join(', ')}`);
      for (const t of order)
        await roundTrip(tools[t], { file: warm, sha: warmSha, size: warmSize, bucket, key: `warmup/${t}.bin`, workDir, run: 0 });
      await unlink(warm);
      await admin.emptyBucket(bucket, 'warmup/');
      serverGc(server);
    }

    const records = [];
    for (let run = 1; run <= opts.runs; run++) {
      // Rotate who goes first, so no tool always follows the gc or always runs last.
      const rotated = order.map((_, i) => order[(i + run - 1) % order.length]);
      for (const t of rotated) {
        const pair = await roundTrip(tools[t], { file, sha, size: opts.size, bucket, key: `run-${run}/${t}.bin`, workDir, run });
        records.push(...pair);
        log(
          `run ${run}/${opts.runs} ${t.padEnd(6)} up ${fmt(pair[0].mibps)} MiB/s (${fmt(pair[0].cpuS, 2)} CPU s, ${fmt(pair[0].peakRssMiB, 0)} MiB), down ${fmt(pair[1].mibps)} MiB/s (${fmt(pair[1].cpuS, 2)} CPU s, ${fmt(pair[1].peakRssMiB, 0)} MiB)`,
        );
      }
      await admin.emptyBucket(bucket, `run-${run}/`);
      serverGc(server);
    }

    const summary = summarize(records, order);
    console.log('');
    printTable(summary, opts.size, opts.runs);
    const startupResults = opts.startup ? await startup(tools, { bucket, workDir, runs: opts.startupRuns }) : undefined;

    const git = {
      commit: runText('git', ['rev-parse', 'HEAD'], { cwd: ROOT }),
      dirtyFiles: (runText('git', ['status', '--porcelain'], { cwd: ROOT }) ?? '').split('\n').filter(Boolean).length,
    };
    const report = {
      date: new Date().toISOString(),
      machine,
      git,
      server: { endpoint: server.env.S3_ENDPOINT, startedByBench: server.managed },
      size: opts.size,
      runs: opts.runs,
      tools: Object.fromEntries(
        Object.values(tools).map((t) => [
          t.name,
          { version: t.version, settings: t.settings, example: t.cmd('FILE', t.url('BUCKET', 'KEY')).join(' ') },
        ]),
      ),
      skipped,
      summary,
      startup: startupResults,
      transfers: records,
    };
    const resultsDir = join(ROOT, 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    const out = join(resultsDir, `${report.date.replace(/[:.]/g, '-')}.json`);
    await writeFile(out, JSON.stringify(report, null, 2) + '\n');
    log(`raw results: ${out}`);
  } finally {
    if (!interrupted) await cleanup();
  }
}

main().catch((error) => {
  if (current.interrupted) return; // the signal handler cleans up and sets the exit code
  console.error(`bench: FAILED: ${error?.stack ?? error}`);
  process.exitCode = 1;
});
