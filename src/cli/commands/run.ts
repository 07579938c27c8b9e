import { createReadStream, fstatSync } from 'node:fs';
import { createInterface } from 'node:readline';
import pLimit from 'p-limit';
import { parse as parseShell } from 'shell-quote';
import { LocalFileError, S3xferError, TransferAbortedError, UsageError } from '../../errors.js';
import type { CliCommand, CommandContext } from '../command.js';
import { EXIT, exitCodeFor, worseExit } from '../exit-codes.js';
import { createParser, parserMessage } from '../parser.js';
import type { Reporter } from '../reporters/reporter.js';
import { reportEndpointStop } from './tree.js';

interface RunArgs {
  file: string;
}

/** Lines of a batch run at once: enough to keep the pool full with one-object commands. */
const LINES_AT_ONCE = 64;

/**
 * `s3xfer run FILE` (or `-` for stdin): one command per line (`cp a.txt s3://b/a.txt`,
 * `rm s3://b/old`, …, as s5cmd's `run`), all through one client and one transfer manager, so
 * start-up and connections are paid once. Lines run concurrently; blank lines and `#` comments
 * are skipped. The exit code is the worst of the lines' (1 any failed, 2 bad line or skipped).
 */
export const runCommand: CliCommand = {
  command: 'run <file>',
  describe: 'Run the commands in FILE (or - for stdin), one per line, through one engine',
  builder: (y) => y.positional('file', { type: 'string', demandOption: true, describe: 'a file of commands, or - for stdin' }),
  async run(raw, context) {
    const args = raw as unknown as RunArgs;
    // yargs turns a lone "-" into "".
    const fromStdin = args.file === '-' || (args.file === '' && context.argv.includes('-'));
    const input = fromStdin ? process.stdin : await openCommandFile(args.file);
    const { BATCH_COMMANDS } = await import('./index.js');
    // The lines' own job summaries are folded into the batch's, printed once at the end.
    const totals = { skipped: 0, deleted: 0, deleteFailed: 0, unchanged: 0 };
    const lines: CommandContext = { ...context, reporter: lineReporter(context.reporter, totals), batch: true };
    const limit = pLimit(LINES_AT_ONCE);
    const pending = new Set<Promise<void>>();
    let worst: number = EXIT.ok;
    let lineNumber = 0;
    const started = performance.now();
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      lineNumber++;
      const text = line.trim();
      if (text === '' || text.startsWith('#')) continue;
      if (context.abortSignal.aborted) break;
      const number = lineNumber;
      const job = limit(() => runLine(text, number, BATCH_COMMANDS, lines)).then((code) => {
        worst = worseExit(worst, code);
      });
      pending.add(job);
      void job.finally(() => pending.delete(job));
      // Back-pressure: a million-line file is read as the lines are done.
      if (limit.pendingCount > LINES_AT_ONCE * 4) await Promise.race(pending);
    }
    await Promise.all(pending);
    const manager = await context.manager();
    const summary = await manager.drain();
    if (context.abortSignal.aborted) throw new TransferAbortedError({ operation: 'run' });
    reportEndpointStop(context.reporter, manager, summary.failed);
    context.reporter.summary({
      transferred: summary.succeeded,
      bytes: summary.bytes,
      failed: summary.failed.length,
      ...totals,
      seconds: (performance.now() - started) / 1000,
    });
    return worst;
  },
};

/** Runs one line as a command on the shared context; its failure is reported, not thrown. */
async function runLine(text: string, number: number, commands: CliCommand[], context: CommandContext): Promise<number> {
  let argv: string[];
  try {
    argv = lineArguments(text, number);
  } catch (error) {
    context.reporter.failure((error as Error).message, { type: 'error', operation: 'run', line: number, command: text, code: 'BadLine' });
    return EXIT.usage;
  }
  let code: number = EXIT.ok;
  try {
    let parser = createParser(argv)
      .strict()
      .help(false)
      .version(false)
      .demandCommand(1, 'give a command')
      .fail((message, error) => {
        throw error ?? new UsageError(parserMessage(message), 'BadUsage');
      });
    for (const command of commands) {
      parser = parser.command(command.command, command.describe, command.builder as never, async (args) => {
        code = (await command.run(args as never, { ...context, argv })) ?? EXIT.ok;
      });
    }
    await parser.parseAsync();
    return code;
  } catch (error) {
    const failure =
      error instanceof S3xferError ? error : new S3xferError(String((error as Error)?.message ?? error), 'Internal', { cause: error });
    const exit = exitCodeFor(failure);
    // A line cancelled by Ctrl-C or by the engine (see reportEndpointStop) has no line of its own.
    if (!(failure instanceof TransferAbortedError)) {
      context.reporter.failure(`line ${number}: ${failure.message}`, {
        type: 'error',
        operation: 'run',
        line: number,
        command: text,
        code: failure.code,
      });
    }
    return exit;
  }
}

/**
 * The reporter the lines of a batch print through: everything goes to `inner`, but a line's job
 * summary (`cp --recursive`, `sync`, `rm --recursive`) is not printed: what it counts that the
 * batch's transfer manager does not (skips, deletions, unchanged files) is added to `totals`.
 */
function lineReporter(inner: Reporter, totals: { skipped: number; deleted: number; deleteFailed: number; unchanged: number }): Reporter {
  return {
    onQueued: (transfer) => inner.onQueued?.(transfer),
    onProgress: (progress) => inner.onProgress?.(progress),
    onDone: (result) => inner.onDone?.(result),
    onFailed: (transfer, error) => inner.onFailed?.(transfer, error),
    output(record) {
      if (record.json.type === 'delete') totals.deleted++;
      inner.output(record);
    },
    warn(message, record) {
      if (record?.type === 'skip') totals.skipped++;
      inner.warn(message, record);
    },
    failure(message, record) {
      if (record?.type === 'delete') totals.deleteFailed++;
      inner.failure(message, record);
    },
    summary(summary) {
      totals.unchanged += summary.unchanged;
    },
    error: (message, details) => inner.error(message, details),
    finish: (exitCode) => inner.finish?.(exitCode),
    close: () => inner.close(),
  };
}

/**
 * A line's words as a shell would split them (quotes, escapes, a `# comment` after a space); no
 * variables, globs or operators: a line that would mean something else to a shell is refused,
 * never run as something it does not say.
 */
function lineArguments(text: string, number: number): string[] {
  const bad = (why: string) => new UsageError(`line ${number}: ${why}: ${text}`, 'BadLine');
  if (unclosedQuote(text)) throw bad('a quote is not closed');
  let words: ReturnType<typeof parseShell>;
  try {
    words = parseShell(text, (name) => {
      throw bad(`variables are not expanded ($${name}): put a $ of a name in single quotes`);
    });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw bad(String((error as Error)?.message ?? error));
  }
  // A trailing comment after a space is one; a `#` inside a word (`s3://b/k#1`) must be quoted.
  const last = words.at(-1);
  if (typeof last === 'object' && 'comment' in last && /\s#/.test(text.slice(0, text.length - last.comment.length))) words.pop();
  const strings = words.filter((w): w is string => typeof w === 'string');
  if (strings.length !== words.length) {
    throw bad("only plain words and quotes are allowed (no pipes, redirections or globs; quote a '#' inside a word)");
  }
  // A line cannot read the batch's stdin or write into its stdout, where the results go.
  if (strings.includes('-')) throw bad("'-' (stdin or stdout) cannot be used in a line of run");
  // `s3xfer cp …` and `cp …` both work.
  return strings[0] === 's3xfer' ? strings.slice(1) : strings;
}

/** Whether `text` ends inside a quote (shell-quote would split such a line silently). */
function unclosedQuote(text: string): boolean {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
    } else if (c === '\\') {
      i++; // an escaped character, outside single quotes
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
    }
  }
  return quote !== undefined;
}

async function openCommandFile(path: string) {
  const stream = createReadStream(path);
  const fail = (code: string) =>
    new LocalFileError(`${path}: cannot read the command file (${code})`, code, { source: path, isSource: true });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', (fd: number) => {
      // A directory opens, and fails only at the first read (with a raw EISDIR): say so now.
      if (fstatSync(fd).isDirectory()) {
        stream.destroy();
        reject(fail('EISDIR'));
      } else resolve();
    });
    stream.once('error', (error: NodeJS.ErrnoException) => reject(fail(error.code ?? 'EIO')));
  });
  return stream;
}
