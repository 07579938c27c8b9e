import type { S3Client } from '@aws-sdk/client-s3';
import type { Argv } from 'yargs';
import type { TransferConfig } from '../config.js';
import type { TransferManager } from '../engine/transfer-manager.js';
import type { Reporter, ReporterStreams } from './reporters/reporter.js';

/** What every command gets from `main`: the parsed config, a client on demand, a reporter, Ctrl-C. */
export interface CommandContext {
  /** The transfer config from the global flags, already validated. */
  config: TransferConfig;
  /** Builds the S3 client from the global flags and environment (once; loads the SDK lazily). */
  client(): Promise<S3Client>;
  /** Renders the command's events and results. */
  reporter: Reporter;
  /** Aborted by SIGINT/SIGTERM. */
  abortSignal: AbortSignal;
  env: NodeJS.ProcessEnv;
  streams: ReporterStreams;
  /** The raw arguments (for flags whose relative order matters: --include/--exclude). */
  argv: string[];
  /**
   * The command's transfer manager, built once from the client, the config, the reporter and
   * Ctrl-C: every transfer of the command (and of every line of `run`) shares its request pool.
   */
  manager(): Promise<TransferManager>;
  /** True for the lines of `run`: the job summary is the batch's, printed once at the end. */
  batch?: boolean;
  /** Keys per listing request, from the global `--page-size` (the lines of `run` have the batch's). */
  pageSize?: number;
}

/**
 * One CLI command: its yargs shape and the function that runs it. Commands import the library
 * lazily inside `run`, so that `--help` does not load the SDK.
 */
export interface CliCommand {
  /** The yargs command string, e.g. `cp <source> <destination>`. */
  command: string;
  describe: string;
  builder: (yargs: Argv) => Argv;
  /**
   * Whether stdout carries data for these arguments (`cp s3://… -`): then everything the command
   * prints, `--json` records included, goes to stderr. Default: no.
   */
  stdoutIsData?(args: Record<string, unknown>, argv: string[]): boolean;
  /**
   * Runs the command. Resolves to an exit code for outcomes that are not one error (1: some
   * transfers failed, 2: some files skipped), or throws a typed error that `main` maps.
   */
  run(args: Record<string, unknown>, context: CommandContext): Promise<number | undefined>;
}
