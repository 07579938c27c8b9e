import { UsageError } from '../../errors.js';
import { parseLocation } from '../../location.js';
import type { CliCommand } from '../command.js';
import { type UploadArgs, withTreeOptions, withUploadOptions } from '../options.js';
import { FILTER_OPTIONS, finishTree, treeOptionsFrom } from './tree.js';

interface SyncArgs extends UploadArgs {
  source: string;
  destination: string;
  delete?: boolean;
  sizeOnly?: boolean;
  exactTimestamps?: boolean;
  dryrun?: boolean;
  followSymlinks?: boolean;
  shard?: string;
}

/** `s3xfer sync SRC DST`: transfer what is missing or differs; `--delete` removes what the source lacks. */
export const syncCommand: CliCommand = {
  command: 'sync <source> <destination>',
  describe: 'Make a prefix match a directory, or a directory match a prefix (what is missing or differs)',
  builder: (yargs) =>
    withTreeOptions(withUploadOptions(yargs))
      .options(FILTER_OPTIONS)
      .positional('source', { type: 'string', demandOption: true })
      .positional('destination', { type: 'string', demandOption: true })
      .option('delete', { type: 'boolean', default: false, describe: 'Delete files or objects the source lacks' })
      .option('size-only', { type: 'boolean', default: false, describe: 'Compare sizes only' })
      .option('exact-timestamps', { type: 'boolean', default: false, describe: 'Downloads: copy when the times differ at all' }),
  async run(raw, context) {
    const args = raw as unknown as SyncArgs;
    if (args.sizeOnly && args.exactTimestamps)
      throw new UsageError('--size-only and --exact-timestamps cannot be used together', 'ConflictingFlags');
    const { syncTree } = await import('../../directory/tree-jobs.js');
    const source = parseLocation(args.source);
    const options = treeOptionsFrom(args, source, context);
    const manager = await context.manager();
    const job = syncTree(manager, source, parseLocation(args.destination), {
      ...options,
      mode: args.sizeOnly ? 'size-only' : args.exactTimestamps ? 'exact-timestamps' : 'size-and-mtime',
      deleteExtra: args.delete ?? false,
    });
    return finishTree(context, job);
  },
};
