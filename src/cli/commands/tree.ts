import { parseShard } from '../../directory/shard.js';
import type { TreeEvents, TreeOptions, TreeSummary } from '../../directory/tree-jobs.js';
import { EndpointUnreachable } from '../../engine/stop-reasons.js';
import type { TransferManager } from '../../engine/transfer-manager.js';
import { type S3xferError, TransferAbortedError } from '../../errors.js';
import type { Location } from '../../location.js';
import type { CommandContext } from '../command.js';
import { EXIT } from '../exit-codes.js';
import { filterRulesFrom, refuseUploadFlags, TREE_OPTIONS, type UploadArgs, uploadExtraArgsFrom } from '../options.js';
import type { Reporter } from '../reporters/reporter.js';

/**
 * `--include` and `--exclude` of cp, sync and rm: one pattern per flag (the rules are read from argv
 * in order, see `filterRulesFrom`). Without `nargs: 1`, yargs's array options would swallow the
 * operands after them (`cp -r --exclude '*' --include '*.txt' DIR s3://…`).
 */
export const FILTER_OPTIONS = {
  include: { ...TREE_OPTIONS.include, nargs: 1 },
  exclude: { ...TREE_OPTIONS.exclude, nargs: 1 },
} as const;

/** The flags cp --recursive and sync share. */
export interface TreeArgs extends UploadArgs {
  dryrun?: boolean;
  followSymlinks?: boolean;
  shard?: string;
}

/** The options of a directory job from its flags: filters in argv order, shard, events for the reporter. */
export function treeOptionsFrom(args: TreeArgs, source: Location, context: CommandContext): TreeOptions {
  // Object settings on a download are refused, as on a one-file download.
  if (source.kind === 's3') refuseUploadFlags(args);
  const dryRun = args.dryrun ?? false;
  return {
    filters: filterRulesFrom(context.argv),
    followSymlinks: args.followSymlinks,
    ...(args.shard === undefined ? {} : { shard: parseShard(args.shard) }),
    dryRun,
    extraArgs: uploadExtraArgsFrom(args),
    guessContentType: args.guessMimeType ?? true,
    pageSize: context.pageSize,
    events: treeEvents(context.reporter, dryRun),
  };
}

/** Job events rendered by the reporter: skips as warnings, planned changes and deletes as records. */
export function treeEvents(reporter: Reporter, dryRun: boolean): TreeEvents {
  return {
    onSkip: (item) =>
      reporter.warn(`skipped ${item.path}: ${item.reason}`, { type: 'skip', source: item.path, code: item.code, reason: item.reason }),
    onPlanned: (change) =>
      reporter.output({
        text: `${dryRun ? '(dryrun) ' : ''}${change.action}: ${change.source ? `${change.source} → ` : ''}${change.destination}`,
        json: {
          type: dryRun ? 'plan' : change.action,
          operation: change.action,
          dryrun: dryRun,
          ...(change.source ? { source: change.source } : {}),
          destination: change.destination,
          success: true,
        },
      }),
    onDeleteFailed: (target, error) =>
      reporter.failure(`delete ${target}: ${error.message}`, {
        type: 'delete',
        operation: 'delete',
        dryrun: false,
        destination: target,
        code: error.code,
      }),
    // The reporter has the failed transfer's record already (its onFailed): this is the text line.
    onTransferFailed: (source, destination, error) =>
      reporter.failure(
        `${source.startsWith('s3://') ? 'download' : 'upload'} ${source} → ${destination}: ${reasonOf(error, source, destination)}`,
      ),
  };
}

/** An error's message without the name the line already gives (`s3://b/k: the server answered …`). */
function reasonOf(error: S3xferError, ...names: string[]): string {
  for (const name of names) if (error.message.startsWith(`${name}: `)) return error.message.slice(name.length + 2);
  return error.message;
}

/**
 * The transfers an unreachable endpoint made the manager cancel have no line of their own (nor do
 * those Ctrl-C cancels): one line says why, and how many.
 */
export function reportEndpointStop(reporter: Reporter, manager: TransferManager, failed: Array<{ error: S3xferError }>): void {
  if (!(manager.signal.reason instanceof EndpointUnreachable)) return;
  const cancelled = failed.filter((failure) => failure.error instanceof TransferAbortedError).length;
  if (cancelled === 0) return;
  reporter.failure(
    `stopped: the S3 endpoint cannot be reached; ${cancelled} other ${cancelled === 1 ? 'transfer' : 'transfers'} cancelled`,
  );
}

/**
 * Runs a job to its end even when it throws (Ctrl-C, a listing error): every transfer already
 * submitted finishes or cleans up before the command exits. Then the aws CLI's exit codes: 1 when
 * anything failed, 2 when something was skipped, else 0.
 *
 * A job stopped by Ctrl-C or SIGTERM was interrupted, however it ended (its listing cut short,
 * or its last transfers cancelled): it throws the abort, for which `main` exits 130 or 143 with
 * its one line, as a single transfer does. The transfers the signal cancelled are not failures
 * of their own, and the job's summary, which would count them as failed, is not printed.
 */
export async function finishTree(context: CommandContext, job: Promise<TreeSummary>): Promise<number> {
  let outcome: { summary: TreeSummary } | { error: unknown };
  try {
    outcome = { summary: await job };
  } catch (error) {
    outcome = { error };
  }
  // A lone command waits for everything it started; a line of `run` shares the manager, and its
  // job has waited for its own transfers.
  if (!context.batch) await (await context.manager()).drain();
  if (context.abortSignal.aborted) {
    const error = 'error' in outcome ? outcome.error : undefined;
    throw error instanceof TransferAbortedError ? error : new TransferAbortedError({ cause: error ?? context.abortSignal.reason });
  }
  if ('error' in outcome) throw outcome.error;
  const { summary } = outcome;
  // A line of `run` shares the manager: the batch says it once, at its end.
  if (!context.batch) reportEndpointStop(context.reporter, await context.manager(), summary.failed);
  context.reporter.summary({ ...summary, failed: summary.failed.length });
  if (summary.failed.length > 0 || summary.deleteFailed > 0) return EXIT.failed;
  return summary.skipped > 0 ? EXIT.usage : EXIT.ok;
}
