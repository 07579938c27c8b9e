import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandContext } from '../../src/cli/command.js';
import { lsCommand } from '../../src/cli/commands/ls.js';
import { describeTransfer, printable, printableStack, resultLine } from '../../src/cli/reporters/format.js';
import { GithubActionsReporter } from '../../src/cli/reporters/github-actions.js';
import { JobProgress } from '../../src/cli/reporters/job-progress.js';
import { JsonReporter } from '../../src/cli/reporters/json-reporter.js';
import { PlainReporter } from '../../src/cli/reporters/plain-reporter.js';
import type { Reporter, ReporterStreams } from '../../src/cli/reporters/reporter.js';
import { TtyReporter } from '../../src/cli/reporters/tty-reporter.js';
import type { TransferInfo, TransferResult } from '../../src/index.js';

/**
 * Object keys and file names may hold control characters. Every line people read (plain, terminal
 * and GitHub Actions output, `ls`) shows them escaped — one line stays one line, a key cannot send
 * a terminal escape sequence or start a workflow command — while `--json` keeps the exact names.
 */

/** Hostile names and how they must read. */
const HOSTILE = [
  {
    label: 'a line break and a workflow command',
    name: 'gh/a\n::error title=pwned::injected',
    shown: 'gh/a\\n::error title=pwned::injected',
  },
  {
    label: 'ESC sequences (colour, window title, clear screen)',
    name: 'red\x1b[31m\x1b]0;title\x07\x1b[2J.bin',
    shown: 'red\\x1b[31m\\x1b]0;title\\x07\\x1b[2J.bin',
  },
  { label: 'a carriage return that would overwrite the line', name: 'evil\rupload: ok.bin', shown: 'evil\\rupload: ok.bin' },
  { label: 'U+2028 (a line separator) before a workflow command', name: 'para\u2028::warning::x', shown: 'para\\u2028::warning::x' },
  { label: 'a C1 CSI, NEL, DEL, TAB and NUL', name: 'c1\x9b31m\x85\x7f\t\0.bin', shown: 'c1\\x9b31m\\x85\\x7f\\t\\x00.bin' },
  { label: 'a bidi override (U+202E) and isolate (U+2066)', name: 'invoice\u202etxt.exe\u2066', shown: 'invoice\\u202etxt.exe\\u2066' },
];

/** Names that print exactly as they are. */
const ORDINARY = [
  'café/crème brûlée.txt',
  'cafe\u0301/NFD.txt', // an "e" and a combining acute accent
  '日本/データ.bin',
  'emoji/🎉👨‍👩‍👧.bin', // a family: three people joined by U+200D
  'C:\\data\\a.bin', // backslashes stay as they are
  'with space/100%/a+b#c?.txt',
];

/** Any character `printable` escapes; line breaks between lines are checked apart. */
const RAW = /[\p{Cc}\p{Zl}\p{Zp}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

function capture(tty = false) {
  const stream = Object.assign(new PassThrough(), tty ? { isTTY: true, columns: 120 } : {});
  let text = '';
  stream.on('data', (chunk) => (text += String(chunk)));
  return { stream, text: () => text };
}

/** The lines of a stream's text, which must end in a line break. */
function linesOf(text: string): string[] {
  if (text === '') return [];
  expect(text.endsWith('\n')).toBe(true);
  return text.slice(0, -1).split('\n');
}

/** Each line free of raw control characters; no workflow command but the tool's own annotations. */
function expectPrintable(lines: string[]): void {
  for (const line of lines) {
    expect(line, JSON.stringify(line)).not.toMatch(RAW);
    if (line.trimStart().startsWith('::')) expect(line).toMatch(/^::(error|warning) title=s3xfer::/);
  }
}

function transferOf(name: string): TransferInfo {
  return { direction: 'upload', source: name, destination: `s3://b/${name}`, totalBytes: 3 };
}

function resultOf(name: string, warnings?: string[]): TransferResult {
  return {
    direction: 'upload',
    source: name,
    destination: `s3://b/${name}`,
    bucket: 'b',
    key: name,
    bytes: 3,
    parts: 1,
    multipart: false,
    seconds: 1,
    ...(warnings ? { warnings } : {}),
  };
}

/**
 * What a job prints about `name`, with the calls the commands make (tree.ts, ls.ts, main.ts): a
 * transfer queued, making progress and done with a warning; an `ls` line; a skipped file; a failed
 * transfer and a failed delete; the summary; the error that ends the command (with a stack).
 */
function drive(reporter: Reporter, name: string): void {
  const transfer = transferOf(name);
  const url = `s3://b/${name}`;
  reporter.onQueued?.(transfer);
  reporter.onProgress?.({ transfer, bytesDelta: 3, bytesDone: 3 });
  reporter.onDone?.(resultOf(name, [`${url}: not verified (no checksum to compare)`]));
  reporter.output({ text: `2024-01-31 12:00:00          3 ${name}`, json: { type: 'object', bucket: 'b', key: name, size: 3 } });
  reporter.output({ text: `(dryrun) upload: ${name} → ${url}`, json: { type: 'plan', source: name, destination: url } });
  reporter.warn(`skipped ${name}: is a FIFO (named pipe)`, { type: 'skip', source: name, code: 'SpecialFile', reason: 'is a FIFO' });
  const error = Object.assign(new Error(`${url} does not exist (NoSuchKey, HTTP 404)`), { code: 'NoSuchKey' });
  reporter.onFailed?.(transfer, error);
  reporter.failure(`upload ${name} → ${url}: ${error.message}`);
  reporter.failure(`delete ${url}: access denied`, { type: 'delete', destination: url, code: 'AccessDenied' });
  reporter.summary({ transferred: 1, bytes: 3, failed: 1, skipped: 1, deleted: 0, deleteFailed: 1, unchanged: 0, seconds: 1 });
  const stack = `NoSuchKey: ${error.message}\n    at send (client.js:1:1)\n    at main (main.js:2:2)\ncaused by: Error: ${name}\n    at x (x.js:3:3)`;
  reporter.error(error.message, { code: 'NoSuchKey', exitCode: 1, stack });
  reporter.finish?.(1);
  reporter.close();
}

/** The lines a plain reporter prints for {@link drive} (tty prints the same minus the progress line). */
const LINES_PER_DRIVE = {
  stdout: 3, // the result line, the two records
  stderr: 12, // a progress line, two warnings, two failures, the summary, the error and its stack's five lines
};

const summaryDir = mkdtempSync(join(tmpdir(), 's3xfer-printable-'));
afterAll(() => rmSync(summaryDir, { recursive: true, force: true }));

describe('printable: the one escaping rule of the human-readable output', () => {
  it.each(HOSTILE)('escapes $label visibly', ({ name, shown }) => {
    expect(printable(name)).toBe(shown);
    expect(printable(name)).not.toMatch(RAW);
  });

  it('escapes every C0 and C1 control, DEL, U+2028/U+2029 and the bidi controls, and lone surrogates', () => {
    const controls = [
      ...Array.from({ length: 0x20 }, (_, i) => i),
      ...Array.from({ length: 0x21 }, (_, i) => 0x7f + i),
      0x2028,
      0x2029,
      0x061c,
      0x200e,
      0x200f,
      0x202a,
      0x202b,
      0x202c,
      0x202d,
      0x202e,
      0x2066,
      0x2067,
      0x2068,
      0x2069,
      0xd800,
      0xdfff,
    ];
    for (const code of controls) {
      const escaped = printable(`<${String.fromCharCode(code)}>`);
      expect(escaped, `U+${code.toString(16)}`).toMatch(/^<\\(n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4})>$/);
      expect(escaped).not.toMatch(RAW);
    }
    expect(printable('\x1b')).toBe('\\x1b');
    expect(printable('\u2028\u2029\ud800')).toBe('\\u2028\\u2029\\ud800');
  });

  it.each(ORDINARY)('leaves %s as it is', (name) => {
    expect(printable(name)).toBe(name);
  });

  it('breaks up "##[", which the GitHub runner takes anywhere in a line for a legacy command', () => {
    expect(printable('x##[error]pwned ##[warning]y')).toBe('x#\\x23[error]pwned #\\x23[warning]y');
    expect(printable(printable('##[group]'))).toBe('#\\x23[group]');
    expect(printable('#[a] ## [b]')).toBe('#[a] ## [b]');
  });

  it('leaves a backslash as it is, so that escaping twice changes nothing', () => {
    for (const { name } of HOSTILE) expect(printable(printable(name))).toBe(printable(name));
    expect(printable('a\\nb')).toBe('a\\nb');
  });

  it('the names in result and progress lines are escaped', () => {
    const { name, shown } = HOSTILE[0]!;
    expect(resultLine(resultOf(name))).toBe(`upload: ${shown} → s3://b/${shown}  3 B in 1.0 s (3 B/s)`);
    expect(describeTransfer(transferOf(name))).toBe(`upload ${shown} → s3://b/${shown}`);
    const job = new JobProgress(); // the text of the terminal's spinner and of the plain progress lines
    job.onQueued(transferOf(name));
    expect(job.text()).toMatch(new RegExp(`^upload ${escapeRegExp(shown)} → s3://b/${escapeRegExp(shown)}  `));
  });

  it('a stack (--debug) keeps its frames on lines of their own, and a line break of the message escaped', () => {
    const stack = 'Error: s3://b/a\n::error::x does not exist\n    at f (a.js:1:1)\ncaused by: Error: \x1b[2J\n    at g (b.js:2:2)';
    expect(printableStack(stack).split('\n')).toEqual([
      'Error: s3://b/a\\n::error::x does not exist',
      '    at f (a.js:1:1)',
      'caused by: Error: \\x1b[2J',
      '    at g (b.js:2:2)',
    ]);
  });
});

describe.each([
  {
    kind: 'plain (CI logs)',
    make: (streams: ReporterStreams) => new PlainReporter(streams, { progress: true, results: true, intervalMs: 0 }, () => 1e9),
    lines: LINES_PER_DRIVE,
  },
  {
    kind: 'tty (terminal, results without the spinner)',
    make: (streams: ReporterStreams) => new TtyReporter(streams, false),
    lines: { stdout: LINES_PER_DRIVE.stdout, stderr: LINES_PER_DRIVE.stderr - 1 },
  },
  {
    kind: 'github-actions (over plain lines; annotations on stdout)',
    make: (streams: ReporterStreams) =>
      new GithubActionsReporter(
        new PlainReporter(streams, { progress: true, results: true, intervalMs: 0 }, () => 1e9),
        streams.stdout as NodeJS.WritableStream,
        { command: 'cp --recursive tree s3://b/', summaryFile: join(summaryDir, 'summary.md') },
      ),
    // Annotations: the done transfer's warning, the skip, the failed transfer, the failed delete
    // (the failed transfer's text line and the final error repeat the failed transfer's annotation).
    lines: { stdout: LINES_PER_DRIVE.stdout + 4, stderr: LINES_PER_DRIVE.stderr },
  },
])('$kind reporter', ({ make, lines }) => {
  it.each(HOSTILE)('with $label: one line per line, no raw control character, the name recognisable', ({ name, shown }) => {
    const out = capture();
    const err = capture(true);
    drive(make({ stdout: out.stream, stderr: err.stream }), name);

    const stdout = linesOf(out.text());
    const stderr = linesOf(err.text());
    expectPrintable(stdout);
    expectPrintable(stderr);
    expect(stdout).toHaveLength(lines.stdout);
    expect(stderr).toHaveLength(lines.stderr);
    expect(stdout).toContain(`upload: ${shown} → s3://b/${shown}  3 B in 1.0 s (3 B/s)`);
    expect(stdout).toContain(`2024-01-31 12:00:00          3 ${shown}`);
    expect(stdout).toContain(`(dryrun) upload: ${shown} → s3://b/${shown}`);
    expect(stderr).toContain(`s3xfer: warning: skipped ${shown}: is a FIFO (named pipe)`);
    expect(stderr).toContain(`s3xfer: warning: s3://b/${shown}: not verified (no checksum to compare)`);
    expect(stderr).toContain(`s3xfer: error: upload ${shown} → s3://b/${shown}: s3://b/${shown} does not exist (NoSuchKey, HTTP 404)`);
    expect(stderr).toContain(`s3xfer: error: s3://b/${shown} does not exist (NoSuchKey, HTTP 404)`);
    expect(stderr).toContain(`caused by: Error: ${shown}`);
  });

  it.each(ORDINARY)('prints %s unchanged', (name) => {
    const out = capture();
    const err = capture(true);
    drive(make({ stdout: out.stream, stderr: err.stream }), name);
    expect(linesOf(out.text())).toContain(`upload: ${name} → s3://b/${name}  3 B in 1.0 s (3 B/s)`);
    expect(linesOf(out.text())).toContain(`2024-01-31 12:00:00          3 ${name}`);
    expect(linesOf(err.text())).toContain(`s3xfer: warning: skipped ${name}: is a FIFO (named pipe)`);
  });
});

describe('github-actions reporter', () => {
  it('annotations and the step summary show the escaped name; "%" is still escaped for the runner', () => {
    const summaryFile = join(summaryDir, 'gh.md');
    const out = capture();
    const name = 'gh/100%\n::error title=pwned::injected\x1b[31m';
    const reporter = new GithubActionsReporter(
      new PlainReporter({ stdout: out.stream, stderr: out.stream }, { progress: false, results: true }),
      out.stream,
      { command: `cp s3://b/${name} never.bin`, summaryFile },
    );
    const error = Object.assign(new Error(`s3://b/${name} does not exist`), { code: 'NoSuchKey' });
    reporter.onFailed(transferOf(name), error);
    reporter.failure(`upload ${name} → s3://b/${name}: ${error.message}`);
    reporter.error(error.message, { code: 'NoSuchKey', exitCode: 1 });
    reporter.finish(1);

    const lines = linesOf(out.text());
    expectPrintable(lines);
    const shown = 'gh/100%25\\n::error title=pwned::injected\\x1b[31m';
    expect(lines.filter((line) => line.startsWith('::'))).toEqual([
      `::error title=s3xfer::upload ${shown} → s3://b/${shown}: s3://b/${shown} does not exist`,
    ]);
    const summary = readFileSync(summaryFile, 'utf8');
    expectPrintable(summary.split('\n'));
    const shownInMarkdown = 'gh/100%\\n::error title=pwned::injected\\x1b[31m';
    expect(summary.split('\n')).toContain(`### s3xfer cp s3://b/${shownInMarkdown} never.bin`);
    expect(summary.split('\n')).toContain(
      `- upload ${shownInMarkdown} → s3://b/${shownInMarkdown}: s3://b/${shownInMarkdown} does not exist`,
    );
  });
});

describe('the JSON reporter keeps the exact names', () => {
  it.each([...HOSTILE, ...ORDINARY.map((name) => ({ label: printable(name), name }))])('$label', ({ name }) => {
    const out = capture();
    const err = capture();
    drive(new JsonReporter({ stdout: out.stream, stderr: err.stream }), name);
    const records = linesOf(out.text()).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.map((r) => r.type)).toEqual(['transfer', 'object', 'plan', 'skip', 'transfer', 'delete', 'summary']);
    expect(records[0]).toMatchObject({ source: name, key: name, destination: `s3://b/${name}`, warnings: [expect.stringContaining(name)] });
    expect(records[1]).toMatchObject({ key: name });
    expect(records[2]).toMatchObject({ source: name });
    expect(records[3]).toMatchObject({ source: name, message: `skipped ${name}: is a FIFO (named pipe)` });
    expect(records[4]).toMatchObject({ source: name, success: false });
    expect(JSON.parse(err.text())).toMatchObject({ error: `s3://b/${name} does not exist (NoSuchKey, HTTP 404)` });
  });
});

describe('ls', () => {
  const s3 = mockClient(S3Client);
  afterAll(() => s3.restore());

  async function ls(args: Record<string, unknown>, reporter: Reporter): Promise<void> {
    const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const context = { reporter, abortSignal: new AbortController().signal, client: async () => client } as unknown as CommandContext;
    await lsCommand.run(args, context);
  }

  const keys = HOSTILE.map(({ name }) => `dir/${name}`);
  const prefix = 'dir/sub\n::error::x\x1b[2J/';
  const lastModified = new Date('2024-01-31T12:00:00Z');
  s3.on(ListObjectsV2Command).resolves({
    Contents: [...keys, ...ORDINARY.map((name) => `dir/${name}`)].map((Key) => ({ Key, Size: 3, LastModified: lastModified, ETag: '"e"' })),
    CommonPrefixes: [{ Prefix: prefix }],
    IsTruncated: false,
  });

  it('prints one line per object and prefix, names escaped, and the --summarize lines as before', async () => {
    const out = capture();
    const err = capture();
    await ls(
      { path: 's3://bkt/dir/', summarize: true },
      new PlainReporter({ stdout: out.stream, stderr: err.stream }, { progress: false, results: true }),
    );
    const lines = linesOf(out.text());
    expectPrintable(lines);
    const count = HOSTILE.length + ORDINARY.length;
    expect(lines).toHaveLength(count + 1 + 3);
    for (const { shown } of HOSTILE)
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^\\S+ \\S+ {10}3 ${escapeRegExp(shown)}$`)));
    for (const name of ORDINARY) expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^\\S+ \\S+ {10}3 ${escapeRegExp(name)}$`)));
    expect(lines).toContain(`${''.padStart(27)}PRE sub\\n::error::x\\x1b[2J/`);
    expect(out.text().endsWith(`\nTotal Objects: ${count}\n   Total Size: ${3 * count}\n`)).toBe(true);
    expect(lines.slice(-3)).toEqual(['', `Total Objects: ${count}`, `   Total Size: ${3 * count}`]);
    expect(err.text()).toBe('');
  });

  it('with --json the keys and the prefix are exact', async () => {
    const out = capture();
    await ls({ path: 's3://bkt/dir/', summarize: true }, new JsonReporter({ stdout: out.stream, stderr: capture().stream }));
    const records = linesOf(out.text()).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.filter((r) => r.type === 'prefix').map((r) => r.prefix)).toEqual([prefix]);
    expect(records.filter((r) => r.type === 'object').map((r) => r.key)).toEqual(expect.arrayContaining(keys));
    expect(records.find((r) => r.type === 'total')).toEqual({
      type: 'total',
      objects: HOSTILE.length + ORDINARY.length,
      bytes: 3 * (HOSTILE.length + ORDINARY.length),
    });
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
