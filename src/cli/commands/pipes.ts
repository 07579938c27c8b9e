import { fstatSync } from 'node:fs';
import { parseSize } from '../../config.js';
import { LocalFileError, UsageError } from '../../errors.js';
import { parseLocation, type S3Location } from '../../location.js';
import type { CommandContext } from '../command.js';
import { EXIT } from '../exit-codes.js';
import { type GlobalArgs, refuseUploadFlags, type UploadArgs, uploadExtraArgsFrom } from '../options.js';

/** The operands and flags of a `cp` that streams through stdin or stdout. */
export interface StreamCopyArgs extends UploadArgs, GlobalArgs {
  source: string;
  destination?: string;
  recursive?: boolean;
  expectedSize?: string;
  dryrun?: boolean;
  include?: unknown;
  exclude?: unknown;
  shard?: string;
}

/**
 * Whether an operand is `-` (stdin as a source, stdout as a destination). yargs turns a lone `-`
 * positional into `""`, so an empty operand counts when argv holds a lone `-`; a literal empty
 * argument stays a missing file name.
 */
export function isStreamOperand(operand: string | undefined, argv: string[]): boolean {
  return operand === '-' || (operand === '' && argv.includes('-'));
}

/**
 * `cp - s3://bucket/key` (upload from stdin) and `cp s3://bucket/key -` (download to stdout).
 * With stdout carrying the object's bytes, every line s3xfer prints — the result, progress, and
 * with --json the JSON records — goes to stderr. A reader that goes away early (`| head -c 100`)
 * ends the command quietly with exit code 141, as a process killed by SIGPIPE.
 */
export async function copyStream(
  args: StreamCopyArgs,
  direction: 'upload' | 'download',
  context: CommandContext,
): Promise<number | undefined> {
  if (args.recursive) throw new UsageError('--recursive copies directories and prefixes, not stdin or stdout ("-")', 'BadUsage');
  // A stream cannot be planned without being read: never run a "dry run" that sends.
  if (args.dryrun) throw new UsageError('--dryrun does not go with stdin or stdout ("-"): a stream is sent as it is read', 'BadUsage');
  if (args.include || args.exclude || args.shard) {
    throw new UsageError('--include, --exclude and --shard go with --recursive (or sync), not stdin or stdout ("-")', 'BadUsage');
  }
  if (direction === 'upload') {
    const to = streamEnd(args.destination ?? '', 'stdin ("-") uploads to an s3://bucket/key destination');
    if (to.key === '' || to.key.endsWith('/')) {
      throw new UsageError(
        `s3://${to.bucket}/${to.key}: a stream from stdin has no file name, so give the object's full key, e.g. s3://${to.bucket}/${to.key}name`,
        'MissingKey',
      );
    }
    const expectedSize = args.expectedSize === undefined ? undefined : parseSize(args.expectedSize, '--expected-size');
    assertStdinReadable();
    const manager = await context.manager();
    // stdin is read here and nowhere else; the library takes any Readable.
    await manager.uploadStream(process.stdin, to.bucket, to.key, { extraArgs: uploadExtraArgsFrom(args), expectedSize });
    return undefined;
  }

  if (args.expectedSize !== undefined)
    throw new UsageError('--expected-size goes with uploads from stdin (cp - s3://bucket/key)', 'BadUsage');
  refuseUploadFlags(args);
  const from = streamEnd(args.source, 'downloads to stdout ("-") take an s3://bucket/key source');
  try {
    // The manager's reporter writes to stderr here: main saw stdoutIsData.
    const manager = await context.manager();
    // stdout is not ended: the process may still write to it (nothing does, but it is not ours to close).
    await manager.downloadToStream(from.bucket, from.key, context.streams.stdout, { end: false });
    return undefined;
  } catch (error) {
    // The reader went away (`| head`): what it read was what it wanted, so no error text.
    if (error instanceof LocalFileError && error.code === 'EPIPE') return EXIT.brokenPipe;
    throw error;
  }
}

function streamEnd(operand: string, message: string): S3Location {
  const location = parseLocation(operand);
  if (location.kind !== 's3') throw new UsageError(`${message} (got "${operand}")`, 'NoS3Url');
  return location;
}

/**
 * Refuses a stdin that is a directory (`< somedir`): Node reads it as an empty stream, which would
 * store an empty object and exit 0. (A closed stdin cannot be told from `< /dev/null`: Node opens
 * /dev/null in its place.)
 */
function assertStdinReadable(): void {
  let isDirectory = false;
  try {
    isDirectory = fstatSync(0).isDirectory();
  } catch {
    // not a file descriptor fstat can look at: reading it says what is wrong
  }
  if (isDirectory) {
    throw new LocalFileError('stdin ("-") is a directory: redirect a file or a pipe into it', 'EISDIR', { source: '-', isSource: true });
  }
}
