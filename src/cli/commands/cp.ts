import type { PlannedChange } from '../../directory/tree-jobs.js';
import { UsageError } from '../../errors.js';
import { formatS3Url, type Location, parseLocation, uploadKey } from '../../location.js';
import { resolveDownloadPath } from '../../sinks/download-file.js';
import { openSourceFile } from '../../sources/file-source.js';
import type { CliCommand, CommandContext } from '../command.js';
import {
  refuseUploadFlags,
  type UploadArgs,
  uploadExtraArgsFrom,
  withStreamOptions,
  withTreeOptions,
  withUploadOptions,
} from '../options.js';
import { copyStream, isStreamOperand, type StreamCopyArgs } from './pipes.js';
import { FILTER_OPTIONS, finishTree, treeEvents, treeOptionsFrom } from './tree.js';

/** Which way a command may move bytes: `cp` decides from its operands. */
type Expected = 'upload' | 'download' | 'either';

interface TransferArgs extends UploadArgs {
  source: string;
  destination?: string;
  recursive?: boolean;
  dryrun?: boolean;
  followSymlinks?: boolean;
  shard?: string;
  include?: string[];
  exclude?: string[];
  expectedSize?: string;
}

/**
 * `cp SRC DST`, `upload FILE s3://…`, `download s3://… [FILE]`: works out the direction from
 * which operand is an `s3://` URL and runs one transfer.
 */
async function runTransfer(args: TransferArgs, expected: Expected, context: CommandContext): Promise<number | undefined> {
  const source = args.source;
  const destination = args.destination ?? '.';
  const fromStdin = isStreamOperand(source, context.argv);
  const toStdout = isStreamOperand(args.destination, context.argv);
  if (fromStdin && toStdout) throw new UsageError('"-" can be the source (stdin) or the destination (stdout), not both', 'BadUsage');
  if (fromStdin || toStdout) {
    const direction = fromStdin ? 'upload' : 'download';
    if (expected !== 'either' && expected !== direction) {
      throw new UsageError(
        fromStdin
          ? 'download writes to stdout ("-"), it does not read stdin: use upload - s3://bucket/key, or cp'
          : 'upload reads stdin ("-"), it does not write to stdout: use download s3://bucket/key -, or cp',
        'WrongDirection',
      );
    }
    return copyStream(args as StreamCopyArgs, direction, context);
  }
  if (args.expectedSize !== undefined)
    throw new UsageError('--expected-size goes with uploads from stdin (cp - s3://bucket/key)', 'BadUsage');
  if (args.recursive) return copyRecursive(args, context);
  if (args.include || args.exclude || args.shard) {
    throw new UsageError('--include, --exclude and --shard go with --recursive (or sync)', 'BadUsage');
  }
  if ([source, destination].some((operand) => operand === '')) throw new UsageError('no file name given', 'MissingFile');
  const from = parseLocation(source);
  const to = parseLocation(destination);
  const direction = directionOf(from, to, source, destination);
  if (expected !== 'either' && expected !== direction) {
    throw new UsageError(
      expected === 'upload'
        ? `upload takes a local FILE and an s3://bucket/key destination (got "${source}" "${destination}")`
        : `download takes an s3://bucket/key source and a local FILE (got "${source}" "${destination}")`,
      'WrongDirection',
    );
  }
  if (direction === 'download') refuseUploadFlags(args);
  const extraArgs = uploadExtraArgsFrom(args);
  if (args.dryrun) return planTransfer(from, to, context);
  const manager = await context.manager();
  if (from.kind === 'local' && to.kind === 's3') {
    await manager.upload(from.path, to.bucket, uploadKey(to, from.path), { extraArgs, guessContentType: args.guessMimeType ?? true });
  } else if (from.kind === 's3' && to.kind === 'local') {
    // As `aws s3 cp`: missing directories of the destination are made.
    await manager.download(from.bucket, from.key, to.path, { makeDirectories: true });
  }
  return undefined;
}

/**
 * `cp FILE s3://… --dryrun` (and back), as `aws s3 cp --dryrun`: the line the copy would print,
 * nothing sent or written. An upload's source is opened as the copy would open it (a missing or
 * unreadable file fails the same way); a download's destination is resolved, not made.
 */
async function planTransfer(from: Location, to: Location, context: CommandContext): Promise<undefined> {
  let change: PlannedChange;
  if (from.kind === 'local' && to.kind === 's3') {
    const source = await openSourceFile(from.path);
    await source.handle.close();
    change = { action: 'upload', source: from.path, destination: formatS3Url(to.bucket, uploadKey(to, from.path)) };
  } else if (from.kind === 's3' && to.kind === 'local') {
    const destination = await resolveDownloadPath(to.path, from.key, true);
    change = { action: 'download', source: formatS3Url(from.bucket, from.key), destination };
  } else {
    return undefined;
  }
  treeEvents(context.reporter, true).onPlanned?.(change);
  return undefined;
}

/** `cp --recursive DIR s3://bucket/prefix/` or `cp --recursive s3://bucket/prefix/ DIR`. */
async function copyRecursive(args: TransferArgs, context: CommandContext): Promise<number> {
  const { copyTree } = await import('../../directory/tree-jobs.js');
  const source = parseLocation(args.source);
  const options = treeOptionsFrom(args, source, context);
  const manager = await context.manager();
  const job = copyTree(manager, source, parseLocation(args.destination ?? '.'), options);
  return finishTree(context, job);
}

function directionOf(from: Location, to: Location, source: string, destination: string): 'upload' | 'download' {
  if (from.kind === 'local' && to.kind === 's3') return 'upload';
  if (from.kind === 's3' && to.kind === 'local') return 'download';
  if (from.kind === 's3')
    throw new UsageError(`copying from S3 to S3 ("${source}" → "${destination}") is not supported yet`, 'Unsupported');
  throw new UsageError(`one of "${source}" and "${destination}" must be an s3://bucket/key URL`, 'NoS3Url');
}

const operands = (yargs: Parameters<CliCommand['builder']>[0], destinationRequired: boolean) =>
  withTreeOptions(
    withUploadOptions(
      withStreamOptions(
        yargs
          .positional('source', { type: 'string', demandOption: true })
          .positional('destination', { type: 'string', demandOption: destinationRequired })
          .option('recursive', {
            alias: 'r',
            type: 'boolean',
            describe: 'Copy every file under a directory, or every object under a prefix',
          }),
      ),
    ),
  ).options(FILTER_OPTIONS);

/** `s3xfer cp SRC DST` */
export const cpCommand: CliCommand = {
  command: 'cp <source> <destination>',
  describe: 'Copy a file to s3://bucket/key or an object to a file; with --recursive, a directory to a prefix or back',
  builder: (yargs) => operands(yargs, true),
  stdoutIsData: (args, argv) =>
    isStreamOperand(args.destination as string | undefined, argv) && !isStreamOperand(args.source as string, argv),
  run: (args, context) => runTransfer(args as unknown as TransferArgs, 'either', context),
};

/** `s3xfer upload FILE s3://bucket/key` */
export const uploadCommand: CliCommand = {
  command: 'upload <source> <destination>',
  describe: 'Upload FILE to s3://bucket/key (or s3://bucket/prefix/)',
  builder: (yargs) => operands(yargs, true),
  run: (args, context) => runTransfer(args as unknown as TransferArgs, 'upload', context),
};

/** `s3xfer download s3://bucket/key [FILE]` */
export const downloadCommand: CliCommand = {
  command: 'download <source> [destination]',
  describe: "Download s3://bucket/key to FILE (default: the key's name in the current directory)",
  // Upload flags are accepted here only to be refused with a clear message.
  builder: (yargs) => operands(yargs, false),
  stdoutIsData: (args, argv) => isStreamOperand(args.destination as string | undefined, argv),
  run: (args, context) => runTransfer(args as unknown as TransferArgs, 'download', context),
};
