import type { Writable } from 'node:stream';
import type { TransferSubscriber } from '../../events.js';

/** A record a command prints as its result: a listed object, a planned change, a deletion. */
export interface OutputRecord {
  /**
   * The line people read (stdout), or several lines. Names go in as they are: the reporter makes
   * each line printable (`printable` in format.ts), so a name's control characters are escaped.
   */
  text: string | readonly string[];
  /** The same as one JSON object (`--json`). */
  json: Record<string, unknown>;
}

/** The end of a job of many transfers. */
export interface JobSummaryView {
  transferred: number;
  bytes: number;
  failed: number;
  skipped: number;
  deleted: number;
  deleteFailed: number;
  unchanged: number;
  seconds: number;
  /** A `--dryrun` job's would-be transfers, their bytes, and deletions (nothing was changed). */
  dryRun?: { transfers: number; bytes: number; deletes: number };
}

/**
 * How the CLI shows what happens: a transfer subscriber, plus result records, warnings, failures
 * of single items in a job, a job summary and the error that ends the command.
 */
export interface Reporter extends TransferSubscriber {
  /** A result record: text on stdout, or one JSON object per line with --json. */
  output(record: OutputRecord): void;
  /** Something skipped or odd, the job goes on (stderr; a JSON record with --json). */
  warn(message: string, record?: Record<string, unknown>): void;
  /** One item of a job failed, the job goes on (stderr; a JSON record with --json). */
  failure(message: string, record?: Record<string, unknown>): void;
  /** The last word of a job of many transfers. */
  summary(summary: JobSummaryView): void;
  /** Reports the error that ends the command (one line, or a JSON object). */
  error(message: string, details: { code: string; exitCode: number; stack?: string }): void;
  /** The command is over, with this exit code (the JSON stream's last record). */
  finish?(exitCode: number): void;
  /** Stops spinners and timers. */
  close(): void;
}

export interface ReporterStreams {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
}

export type ReporterKind = 'tty' | 'plain' | 'json' | 'quiet' | 'errors';

/**
 * Picks a reporter: --json, --quiet, a terminal (ora), or plain lines for CI logs. A terminal
 * that reports 0 columns (a pseudo-terminal nobody sized, as `script` or some CI runners make)
 * gets plain lines: ora would divide by its width and redraw forever.
 */
export function reporterKind(
  flags: { json: boolean; quiet: boolean; onlyShowErrors?: boolean },
  streams: ReporterStreams,
  env: NodeJS.ProcessEnv,
): ReporterKind {
  if (flags.json) return 'json';
  if (flags.quiet) return 'quiet';
  if (flags.onlyShowErrors) return 'errors';
  const { isTTY, columns } = streams.stderr;
  return isTTY && columns !== 0 && env.CI !== 'true' && env.TERM !== 'dumb' ? 'tty' : 'plain';
}

/** Builds the reporter; ora is loaded only for terminals. */
export async function createReporter(kind: ReporterKind, streams: ReporterStreams, options: { progress: boolean }): Promise<Reporter> {
  switch (kind) {
    case 'tty':
      return new (await import('./tty-reporter.js')).TtyReporter(streams, options.progress);
    case 'json':
      return new (await import('./json-reporter.js')).JsonReporter(streams);
    case 'quiet':
      return new (await import('./plain-reporter.js')).PlainReporter(streams, { progress: false, results: false, warnings: false });
    case 'errors':
      return new (await import('./plain-reporter.js')).PlainReporter(streams, { progress: false, results: false });
    case 'plain':
      return new (await import('./plain-reporter.js')).PlainReporter(streams, { progress: options.progress, results: true });
  }
}
