#!/usr/bin/env node
// bench/run.mjs — `npm run bench`: the benchmark of record. s3xfer against the aws CLI, rclone (at
// its defaults, and as rclone-tuned with 10 streams and transfers) and a single-request curl, on
// the local S3 server, in the same run: each transfer a fresh process, tools interleaved and
// rotated, medians of the runs.
// Plain Node ESM, no build step of its own: it runs a copy of the built CLI (dist/cli/s3xfer.cjs).
//
//   node bench/run.mjs [--cases big,medium,tiny,tree-small,tree-big] [--runs 3]
//                      [--tools s3xfer,aws,rclone,rclone-tuned,curl] [--no-peers]
//                      [--size CASE=SIZE]... [--no-warmup] [--no-probe] [--tmpdir DIR] [--help]
//
// Cases (default: all but huge):
//   big         1 GiB file, upload and download          medium  64 MiB file, upload and download
//   tiny        1 KiB upload: start-up + one request (at least 10 runs)
//   tree-small  2,000 files × 8 KiB in 20 dirs, `cp --recursive` up and down (aws), `copy` (rclone)
//   tree-big    1 GiB in 100 files (10 dirs), up and down: compare with big
//   huge        4 GiB file up and down, s3xfer only: its peak RSS (opt-in: --cases huge)
// s3xfer's tree cells read "n/a (not implemented)" while `s3xfer cp --help` has no --recursive
// (or the command exits 2); the other tools still run, so the cells light up when it lands.
//
// Sizes: --size big=64MiB, --size medium=8MiB, --size tree-small=200x8KiB:20 (COUNTxSIZE:DIRS),
//   --size tree-big=64MiB/100:10 (TOTAL/COUNT:DIRS); a bare --size 64MiB sets big.
//
// Environment (flags win):
//   BENCH_CASES=…  BENCH_RUNS=3  BENCH_TOOLS=…  BENCH_PEERS=0 (s3xfer only)  BENCH_WARMUP=0
//   BENCH_PROBE=0 (no bit-flip probe of what s3xfer verifies: its cells then say what 9e2274a did)
//   BENCH_SIZES=big=64MiB,medium=8MiB   BENCH_SIZE=64MiB (big's size)   BENCH_TMPDIR=/path
//   BENCH_RCLONE_TUNED='--multi-thread-streams 10 --transfers 10' (rclone-tuned's flags)
//   S3_ENDPOINT + AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_REGION]: use that server
//     instead of scripts/s3-server.sh (then no `gc` between rounds)
//
// Needs /usr/bin/time (package `time`), the aws CLI, rclone and curl; as root, missing Debian
// packages are installed with apt-get (time, rclone; awscli, which is v2, if no aws is on PATH).
// Download objects are uploaded once per case with the aws CLI, so every tool reads the same
// boto-written objects. Between transfers: `sync`; after each case of each run: its uploads are
// deleted and `scripts/s3-server.sh gc` runs. Prints a Markdown table on stdout (progress on
// stderr); raw results go to bench/results/<timestamp>.json. Everything it makes (bucket, objects,
// temp dir) is removed at the end, also after a failure or Ctrl-C.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASES, checkDownload, checkUpload, DEFAULT_CASES, describe, layout, makeData } from './lib/cases.mjs';
import { current, machineInfo, measure, sampleLoad, TIME } from './lib/measure.mjs';
import { probeTool, startFaultProxy } from './lib/probe.mjs';
import { markdown, summarize } from './lib/report.mjs';
import { adminClient, connectServer } from './lib/s3.mjs';
import { setUpTools, TOOL_NAMES } from './lib/tools.mjs';
import { aptInstall, die, fmt, isOff, log, MiB, positiveInt, runText } from './lib/util.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** A seeded download object is written by the first of these that is available. */
const SEEDERS = ['aws', 'rclone', 's3xfer'];
const WARMUP_BYTES = 16 * MiB;
/** Set by SIGINT/SIGTERM: the handler cleans up and exits. */
const state = { interrupted: undefined };

// ---------------------------------------------------------------------------------------------
// Options

function usage() {
  const lines = readFileSync(fileURLToPath(import.meta.url), 'utf8')
    .split('\n')
    .slice(1);
  return lines
    .slice(
      0,
      lines.findIndex((l) => !l.startsWith('//')),
    )
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
}

const list = (text) =>
  String(text)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function parseArgs(argv, env) {
  const opts = {
    cases: env.BENCH_CASES ?? DEFAULT_CASES.join(','),
    runs: env.BENCH_RUNS ?? '3',
    tools: env.BENCH_TOOLS ?? (isOff(env.BENCH_PEERS ?? '1') ? 's3xfer' : TOOL_NAMES.join(',')),
    sizes: [...(env.BENCH_SIZE ? [env.BENCH_SIZE] : []), ...list(env.BENCH_SIZES ?? '')],
    warmup: !isOff(env.BENCH_WARMUP ?? '1'),
    probe: !isOff(env.BENCH_PROBE ?? '1'),
    tmpdir: env.BENCH_TMPDIR || os.tmpdir(),
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? die(`${flag} needs a value`);
    switch (flag) {
      case '--cases':
        opts.cases = value();
        break;
      case '--runs':
        opts.runs = value();
        break;
      case '--tools':
        opts.tools = value();
        break;
      case '--no-peers':
        opts.tools = 's3xfer';
        break;
      case '--size':
      case '--sizes':
        opts.sizes.push(...list(value()));
        break;
      case '--warmup':
        opts.warmup = true;
        break;
      case '--no-warmup':
        opts.warmup = false;
        break;
      case '--no-probe':
        opts.probe = false;
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
  opts.runs = positiveInt(opts.runs, 'runs');
  opts.cases = list(opts.cases);
  for (const c of opts.cases)
    if (!CASES.some((x) => x.id === c)) die(`unknown case "${c}": choose from ${CASES.map((x) => x.id).join(', ')}`);
  opts.tools = list(opts.tools);
  for (const t of opts.tools) if (!TOOL_NAMES.includes(t)) die(`unknown tool "${t}": choose from ${TOOL_NAMES.join(', ')}`);
  const sizes = {};
  for (const s of opts.sizes) {
    const [id, text] = s.includes('=') ? s.split(/=(.*)/s, 2) : ['big', s];
    if (!CASES.some((x) => x.id === id)) die(`--size ${s}: unknown case "${id}"`);
    sizes[id] = text;
  }
  opts.sizes = sizes;
  for (const def of CASES.filter((c) => opts.cases.includes(c.id))) {
    try {
      layout(def, sizes[def.id] ?? def.size);
    } catch (e) {
      die(e.message); // now, before anything is made that would need cleaning up
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// The plan: which case runs with which tools, how often, and what each cell verifies

function makePlan(opts, tools, dataDir) {
  const plan = {
    cases: [],
    status: {},
    verified: {},
    baselines: Object.values(tools)
      .filter((t) => t.baseline)
      .map((t) => t.name),
    notes: Object.values(tools)
      .map((t) => t.note)
      .filter(Boolean),
  };
  for (const id of opts.cases) {
    const def = CASES.find((c) => c.id === id);
    const files = layout(def, opts.sizes[id] ?? def.size); // checked by parseArgs
    const local = join(dataDir, id);
    const caseTools = TOOL_NAMES.filter((t) => tools[t] && (def.tools ?? TOOL_NAMES).includes(t) && tools[t].unsupported(def.kind) !== '–');
    plan.cases.push({
      id,
      kind: def.kind,
      about: def.about,
      directions: def.directions,
      files,
      bytes: files.reduce((a, f) => a + f.size, 0),
      objectSize: Math.max(...files.map((f) => f.size)),
      shape: describe(files, def.kind),
      runs: Math.max(opts.runs, def.minRuns ?? 0),
      tools: caseTools,
      local: def.kind === 'file' ? join(local, files[0].rel) : local,
      dataDir: local,
    });
    for (const t of caseTools) {
      const why = tools[t].unsupported(def.kind);
      for (const d of def.directions) if (why) plan.status[`${id}/${d}/${t}`] = why;
    }
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseArgs(process.argv.slice(2), process.env);
  log('sampling the machine load for 2 s before starting');
  const loadBefore = await sampleLoad(2); // before the bench adds its own
  if (!aptInstall(['time'], () => existsSync(TIME))) die(`${TIME} is needed for CPU time and peak RSS: apt-get install -y time`);
  const server = connectServer(ROOT);
  const workDir = await mkdtemp(join(opts.tmpdir, 's3xfer-bench-'));
  const bucket = `s3xfer-bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  let admin;
  let bucketMade = false;
  const cleanup = async () => {
    current.stopped = true;
    if (current.child?.pid) {
      try {
        process.kill(-current.child.pid, 'SIGTERM'); // the transfer's process group: time and the tool
      } catch {}
      await Promise.race([current.closed, new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    if (bucketMade) {
      bucketMade = false;
      await admin.deleteBucket(bucket).then(
        () => log(`deleted bucket ${bucket}`),
        (e) => log(`warning: could not delete bucket ${bucket}: ${e.message ?? e}`),
      );
      server.gc();
    }
    admin?.destroy();
    await rm(workDir, { recursive: true, force: true });
  };
  const onSignal = (signal) => {
    if (state.interrupted) process.exit(130);
    state.interrupted = signal;
    log(`${signal}: cleaning up`);
    cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    admin = await adminClient(server.env);
    await admin.createBucket(bucket);
    bucketMade = true;
    const { tools, skipped } = await setUpTools(opts.tools, { root: ROOT, server, workDir });
    for (const [t, why] of Object.entries(skipped)) log(`skipping ${t}: ${why}`);
    if (Object.keys(tools).length === 0) throw new Error('no tool to run');
    const dataDir = join(workDir, 'data');
    const downloads = join(workDir, 'downloads');
    await mkdir(downloads, { recursive: true });
    const plan = makePlan(opts, tools, dataDir);
    for (const c of plan.cases) {
      log(`case ${c.id}: writing ${c.shape} of random bytes`);
      await makeData(c.dataDir, c.files);
    }

    /** One transfer: measured, then its result checked (not timed). Returns the record. */
    const transfer = async (tool, c, direction, run, key) => {
      const tree = c.kind === 'tree';
      const local = direction === 'upload' ? c.local : join(downloads, `${c.id}-${tool.name}-${run}${tree ? '' : '.bin'}`);
      if (direction === 'download' && tree) await mkdir(local, { recursive: true });
      spawnSync('sync');
      const m = await measure(tool.argv({ kind: c.kind, direction, local, bucket, key }), tool.env, workDir);
      let problem;
      if (!m.failed && direction === 'upload') problem = await checkUpload(admin, bucket, tree ? key : key.replace(/[^/]*$/, ''), c.files);
      if (!m.failed && direction === 'download') problem = await checkDownload(local, c.files, c.kind);
      if (direction === 'download') await rm(local, { recursive: true, force: true });
      if (problem) return { ...m, failed: true, code: 0, output: `wrong result: ${problem}` };
      return m;
    };
    const keyOf = (c, prefix) => `${prefix}/${c.id}/${c.kind === 'tree' ? '' : c.files[0].rel}`;

    // Seeds: each download case's objects, written once by one tool (the aws CLI if there).
    const seeder = SEEDERS.map((t) => tools[t]).find(Boolean);
    const seeds = {};
    for (const c of plan.cases.filter((x) => x.directions.includes('download'))) {
      if (!seeder) throw new Error('no tool to upload the objects of the download cases');
      log(`case ${c.id}: uploading the download object(s) once with ${seeder.name}`);
      const m = await transfer(seeder, c, 'upload', 0, keyOf(c, 'seed'));
      if (m.failed) throw new Error(`seeding ${c.id} with ${seeder.name} failed: ${m.output}`);
      seeds[c.id] = { by: seeder.name, wallS: m.wallS, ...(await admin.head(bucket, `seed/${c.id}/${c.files[0].rel}`)) };
    }
    // What s3xfer verifies: probed with one flipped bit per direction and shape (probe.mjs).
    const probes = {};
    if (opts.probe && seeder) {
      const probed = Object.values(tools).filter((t) => t.probeSizes);
      const proxy = probed.length ? await startFaultProxy(server.env.S3_ENDPOINT) : undefined;
      try {
        for (const tool of probed) {
          probes[tool.name] = {};
          for (const [shape, size] of Object.entries(tool.probeSizes)) {
            const files = [{ rel: `${shape}.bin`, size }];
            await makeData(join(dataDir, 'probe'), files);
            probes[tool.name][shape] = await probeTool(tool, {
              proxy,
              admin,
              bucket,
              workDir,
              seeder,
              size,
              file: join(dataDir, 'probe', files[0].rel),
              fileSha: files[0].sha256,
              key: `probe/${tool.name}/${shape}.bin`,
            });
            for (const [d, r] of Object.entries(probes[tool.name][shape])) {
              log(`probe ${tool.name} ${shape} ${d} (${size} B, one bit flipped): ${r.verified ?? 'inconclusive'} — ${r.detail}`);
            }
          }
        }
      } finally {
        await proxy?.close();
        await rm(join(dataDir, 'probe'), { recursive: true, force: true });
      }
    }
    for (const c of plan.cases) {
      for (const d of c.directions) {
        for (const t of c.tools) {
          const op = { kind: c.kind, direction: d, objectSize: c.objectSize, seed: seeds[c.id], probes: probes[t] };
          plan.verified[`${c.id}/${d}/${t}`] = tools[t].verified(op);
        }
      }
    }

    if (opts.warmup) {
      // Unrecorded: loads each tool's code into the page cache, opens the server's connections.
      const warm = { id: 'warmup', kind: 'file', files: [{ rel: 'warm.bin', size: WARMUP_BYTES }] };
      warm.dataDir = join(dataDir, 'warmup');
      warm.local = join(warm.dataDir, 'warm.bin');
      await makeData(warm.dataDir, warm.files);
      const warmTools = [...new Set(plan.cases.flatMap((c) => c.tools))];
      log(`warm-up (not recorded): 16 MiB up and down with ${warmTools.join(', ')}`);
      for (const t of warmTools) {
        for (const d of ['upload', 'download']) {
          const m = await transfer(tools[t], warm, d, 0, `warmup/${t}/warm.bin`);
          if (m.failed) log(`warning: warm-up ${d} with ${t} failed: ${m.output.split('\n').pop()}`);
        }
      }
      await admin.empty(bucket, 'warmup/');
      await rm(warm.dataDir, { recursive: true, force: true });
      server.gc();
    }

    // The rounds: in run r, each case (while r ≤ its runs) with every tool, rotated by r.
    const records = [];
    const totalRuns = Math.max(...plan.cases.map((c) => c.runs));
    for (let run = 1; run <= totalRuns; run++) {
      for (const c of plan.cases.filter((x) => run <= x.runs)) {
        const order = c.tools.map((_, i) => c.tools[(i + run - 1) % c.tools.length]);
        for (const direction of c.directions) {
          for (const t of order) {
            const cell = `${c.id}/${direction}/${t}`;
            if (plan.status[cell]) continue;
            const key = direction === 'upload' ? keyOf(c, `up/r${run}/${t}`) : keyOf(c, 'seed');
            const m = await transfer(tools[t], c, direction, run, key);
            const head = `run ${run}/${c.runs} ${c.id} ${direction} ${t}:`;
            if (m.failed && t === 's3xfer' && c.kind === 'tree' && m.code === 2) {
              plan.status[cell] = 'n/a (not implemented)'; // a usage error: the command is not there yet
              log(`${head} exit 2 (usage): marked n/a (not implemented): ${m.output.split('\n').pop()}`);
              continue;
            }
            records.push({ case: c.id, direction, tool: t, run, bytes: c.bytes, files: c.files.length, ...m });
            if (m.failed) log(`${head} FAILED (exit ${m.code}): ${m.output.slice(-600)}`);
            else {
              const rate = c.bytes >= MiB ? ` (${fmt(c.bytes / MiB / m.wallS)} MiB/s)` : '';
              log(`${head} ${fmt(m.wallS, 2)} s${rate}, ${fmt(m.cpuS, 2)} CPU s, ${fmt(m.peakRssMiB, 0)} MiB RSS`);
            }
          }
        }
        await admin.empty(bucket, `up/r${run}/`);
        spawnSync('sync');
        server.gc();
      }
    }

    const date = new Date().toISOString();
    const file = `${date.replace(/[:.]/g, '-')}.json`;
    const rows = summarize(records, plan);
    const meta = {
      date,
      file,
      runs: opts.runs,
      machine: machineInfo(),
      loadBefore,
      loadAfter: os.loadavg().map((x) => +x.toFixed(2)),
      tools: Object.fromEntries(Object.values(tools).map((t) => [t.name, { name: t.name, version: t.version, settings: t.settings }])),
      seededBy: Object.keys(seeds).length ? seeder.name : undefined,
    };
    const md = markdown({ rows, plan, meta });
    const report = {
      ...meta,
      git: {
        commit: runText('git', ['rev-parse', 'HEAD'], { cwd: ROOT }),
        dirtyFiles: (runText('git', ['status', '--porcelain'], { cwd: ROOT }) ?? '').split('\n').filter(Boolean).length,
      },
      server: { endpoint: server.env.S3_ENDPOINT, managed: server.managed },
      options: opts,
      tools: Object.fromEntries(
        Object.values(tools).map((t) => [
          t.name,
          {
            ...meta.tools[t.name],
            example: t.argv({ kind: 'file', direction: 'upload', local: 'FILE', bucket: 'BUCKET', key: 'KEY' }).join(' '),
          },
        ]),
      ),
      skipped,
      cases: plan.cases.map(({ files, local, dataDir: _d, ...c }) => ({ ...c, files: files.length })),
      seeds,
      probes,
      status: plan.status,
      verified: plan.verified,
      rows,
      transfers: records,
      markdown: md,
    };
    const resultsDir = join(ROOT, 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, file), JSON.stringify(report, null, 2) + '\n');
    console.log(md);
    log(`raw results: bench/results/${file}`);
    if (records.some((r) => r.failed)) process.exitCode = 1;
  } finally {
    if (!state.interrupted) await cleanup();
  }
}

main().catch((error) => {
  if (state.interrupted) return; // the signal handler cleans up and sets the exit code
  console.error(`bench: FAILED: ${error?.stack ?? error}`);
  process.exitCode = 1;
});
