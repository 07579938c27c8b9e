// Measuring one process: wall time, CPU and peak RSS through /usr/bin/time; the CPU the Ceph
// daemons and the rest of the machine used meanwhile, from /proc.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { childEnv, runText } from './util.mjs';

export const TIME = '/usr/bin/time';
const CLK_TCK = Number(runText('getconf', ['CLK_TCK']) ?? 100) || 100;
const SERVER_COMMS = { radosgw: 'radosgw', 'ceph-osd': 'osd', 'ceph-mon': 'mon' };

/** The transfer running now (for Ctrl-C: its process group is stopped before the clean-up). */
export const current = { child: undefined, closed: undefined, stopped: false };

/** Total and idle jiffies of the whole machine (first line of /proc/stat). */
function machineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { total: f.reduce((a, b) => a + b, 0), idle: f[3] + (f[4] ?? 0) };
  } catch {
    return undefined;
  }
}

/** CPU seconds used so far by every process, by pid: { pid: { comm, cpuS } } (read from /proc). */
function processCpu() {
  const out = {};
  let pids = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[pid] = { comm, cpuS: (Number(fields[11]) + Number(fields[12])) / CLK_TCK }; // utime, stime
    } catch {
      // the process went away meanwhile
    }
  }
  return out;
}

/** CPU seconds used so far by the local Ceph daemons, by daemon kind. */
function serverCpu() {
  const out = {};
  for (const { comm, cpuS } of Object.values(processCpu())) {
    const name = SERVER_COMMS[comm];
    if (name) out[name] = (out[name] ?? 0) + cpuS;
  }
  return out;
}

/**
 * How busy the machine is before the bench starts: the non-idle share of all cores over
 * `seconds`, and the processes that used the most CPU meanwhile.
 */
export async function sampleLoad(seconds = 2) {
  const cpu0 = machineCpu();
  const procs0 = processCpu();
  await sleep(seconds * 1000);
  const cpu1 = machineCpu();
  const procs1 = processCpu();
  const busy = cpu0 && cpu1 ? 1 - (cpu1.idle - cpu0.idle) / Math.max(1, cpu1.total - cpu0.total) : undefined;
  const top = Object.entries(procs1)
    .map(([pid, p]) => ({ pid: Number(pid), comm: p.comm, cpuShare: (p.cpuS - (procs0[pid]?.cpuS ?? 0)) / seconds }))
    .filter((p) => p.cpuShare >= 0.02 && p.pid !== process.pid)
    .sort((a, b) => b.cpuShare - a.cpuShare)
    .slice(0, 5)
    .map((p) => ({ ...p, cpuShare: +p.cpuShare.toFixed(2) }));
  return { busy, top, loadavg: os.loadavg().map((x) => +x.toFixed(2)) };
}

/**
 * Runs `argv` under `/usr/bin/time -f '%e %U %S %M'` in its own process group, with `env` added
 * to the bench's environment ('' removes a variable). Resolves with the measurements, or with
 * `{ failed: true, code, output }` when the command exits non-zero.
 */
export async function measure(argv, env, workDir) {
  if (current.stopped) throw new Error('interrupted: no new transfer');
  const timeFile = join(workDir, `time-${randomBytes(4).toString('hex')}.txt`);
  const cpu0 = machineCpu();
  const server0 = serverCpu();
  const t0 = process.hrtime.bigint();
  const { code, output } = await new Promise((resolveRun, rejectRun) => {
    // cwd: the temp dir, so that no .env file of the work tree is read by the CLI.
    // detached: its own process group, so that a clean-up can stop the tool and not only `time`.
    const child = spawn(TIME, ['-o', timeFile, '-f', '%e %U %S %M', ...argv], {
      env: childEnv(env),
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
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = machineCpu();
  const server1 = serverCpu();
  const text = await readFile(timeFile, 'utf8').catch(() => '');
  await unlink(timeFile).catch(() => {});
  if (code !== 0) return { failed: true, code, output: output.trim(), wallS };
  const [, user, sys, maxRssKiB] = (text.trim().split('\n').pop() ?? '').split(/\s+/).map(Number);
  if (![user, sys, maxRssKiB].every(Number.isFinite)) throw new Error(`could not read ${TIME}'s output: "${text.trim()}"`);
  const serverCpuS = {};
  for (const k of Object.keys(server1)) serverCpuS[k] = +(server1[k] - (server0[k] ?? 0)).toFixed(2);
  const machineBusy = cpu0 && cpu1 ? 1 - (cpu1.idle - cpu0.idle) / Math.max(1, cpu1.total - cpu0.total) : undefined;
  // CPU seconds the machine spent beyond the client and the Ceph daemons: loopback softirq,
  // kernel threads (writeback), and anything else running meanwhile (a source of noise).
  const busyS = cpu0 && cpu1 ? (cpu1.total - cpu0.total - (cpu1.idle - cpu0.idle)) / CLK_TCK : undefined;
  const serverSum = Object.values(serverCpuS).reduce((a, b) => a + b, 0);
  const otherCpuS = busyS === undefined ? undefined : +Math.max(0, busyS - user - sys - serverSum).toFixed(2);
  return { wallS, userS: user, sysS: sys, cpuS: user + sys, peakRssMiB: maxRssKiB / 1024, serverCpuS, otherCpuS, machineBusy };
}

export function machineInfo() {
  const cpus = os.cpus();
  let osName;
  try {
    osName = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
  } catch {}
  return {
    cpuModel: cpus[0]?.model,
    cores: cpus.length,
    memGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
    kernel: os.release(),
    os: osName,
    node: process.version,
  };
}
