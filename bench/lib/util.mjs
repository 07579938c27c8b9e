// Small helpers shared by the bench modules: logging, sizes, statistics, processes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export const log = (...args) => console.error('bench:', ...args);

export function die(message) {
  console.error(`bench: ${message}`);
  process.exit(2);
}

/** `1GiB`, `256MiB`, `256M`, `512MB`, `8KiB`, `1073741824` → bytes (all units binary, like the aws CLI). */
export function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(String(text));
  if (!m) throw new Error(`invalid size "${text}": expected e.g. 1GiB, 64MiB, 8KiB, 1073741824`);
  const power = { b: 0, k: 1, m: 2, g: 3, t: 4 }[(m[2] ?? 'b')[0].toLowerCase()];
  const bytes = Math.round(Number(m[1]) * 1024 ** power);
  if (!(bytes > 0)) throw new Error(`invalid size "${text}": must be more than 0 bytes`);
  return bytes;
}

export function fmtSize(bytes) {
  for (const [unit, n] of [
    ['GiB', GiB],
    ['MiB', MiB],
    ['KiB', KiB],
  ]) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  return bytes >= MiB ? `${(bytes / MiB).toFixed(2)} MiB` : `${bytes} B`;
}

export function positiveInt(text, what) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) die(`invalid ${what} "${text}": expected a whole number ≥ 1`);
  return n;
}

export const isOff = (v) => ['0', 'false', 'no', 'off'].includes(String(v).toLowerCase());

export function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? Number.NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

/** Full path of a command on PATH, or undefined. */
export function which(cmd) {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() || undefined : undefined;
}

/** stdout of a command that succeeded (trimmed), else undefined. */
export function runText(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * Installs Debian packages when running as root (`apt-get update` once, then `apt-get install`),
 * so that `check()` becomes true; returns check()'s final answer. Never asks anything.
 */
let aptUpdated = false;
export function aptInstall(packages, check) {
  if (check()) return true;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args) => spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  log(`installing the Debian package(s) ${packages.join(' ')} (apt-get install -y)`);
  if (!aptUpdated) {
    apt(['update', '-q']);
    aptUpdated = true;
  }
  apt(['install', '-y', '-q', ...packages]);
  return check();
}

/** Sets `env[k] = v` for each entry, deleting the variable where v is '' (so a child never sees it). */
export function childEnv(extra) {
  const env = { ...process.env, ...extra };
  for (const [k, v] of Object.entries(extra)) if (v === '') delete env[k];
  return env;
}
