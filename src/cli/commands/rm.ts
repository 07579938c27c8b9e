import { UsageError } from '../../errors.js';
import { formatS3Url, parseS3Url } from '../../location.js';
import type { CliCommand } from '../command.js';
import { EXIT } from '../exit-codes.js';
import { filterRulesFrom, TREE_OPTIONS } from '../options.js';
import { FILTER_OPTIONS, treeEvents } from './tree.js';

interface RmArgs {
  target: string;
  recursive?: boolean;
  dryrun?: boolean;
  include?: string[];
  exclude?: string[];
}

/** `s3xfer rm s3://bucket/key` or `rm --recursive s3://bucket/prefix/`: DeleteObjects in batches of 1,000. */
export const rmCommand: CliCommand = {
  command: 'rm <target>',
  describe: 'Delete an object, or with --recursive every object under a prefix',
  builder: (yargs) =>
    yargs
      .positional('target', { type: 'string', demandOption: true })
      .option('recursive', { alias: 'r', type: 'boolean', default: false, describe: 'Delete every object under the prefix' })
      .options({ ...FILTER_OPTIONS, dryrun: TREE_OPTIONS.dryrun }),
  async run(raw, context) {
    const args = raw as unknown as RmArgs;
    const target = parseS3Url(args.target);
    const rules = filterRulesFrom(context.argv);
    if (!args.recursive) {
      if (target.key === '' || target.key.endsWith('/')) {
        throw new UsageError(`${args.target} is a prefix: give --recursive to delete every object under it`, 'PrefixWithoutRecursive');
      }
      if (rules.length > 0) throw new UsageError('--include and --exclude go with --recursive', 'BadUsage');
    }
    const { removeObjects } = await import('../../directory/remove-objects.js');
    const dryRun = args.dryrun ?? false;
    const events = treeEvents(context.reporter, dryRun);
    const client = await context.client();
    const started = performance.now();
    const summary = await removeObjects(client, target.bucket, target.key, {
      recursive: args.recursive ?? false,
      filters: rules,
      dryRun,
      pageSize: context.pageSize,
      signal: context.abortSignal,
      onDeleted: (key) => events.onPlanned?.({ action: 'delete', destination: formatS3Url(target.bucket, key) }),
      onError: (key, error) => events.onDeleteFailed?.(formatS3Url(target.bucket, key), error),
    });
    if (args.recursive) {
      context.reporter.summary({
        transferred: 0,
        bytes: 0,
        failed: 0,
        skipped: 0,
        unchanged: 0,
        seconds: (performance.now() - started) / 1000,
        ...summary,
      });
    }
    return summary.deleteFailed > 0 ? EXIT.failed : EXIT.ok;
  },
};
