import { setMaxListeners } from 'node:events';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { S3Client } from '@aws-sdk/client-s3';
import { hideBin } from 'yargs/helpers';
import { resolveTransferConfig } from '../config.js';
import type { TransferManager } from '../engine/transfer-manager.js';
import { S3xferError, TransferAbortedError, UsageError } from '../errors.js';
import type { CliCommand, CommandContext } from './command.js';
import { COMMANDS } from './commands/index.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import {
  checkTimeoutFlags,
  clientOptionsFrom,
  type GlobalArgs,
  pageSizeFrom,
  transferConfigFrom,
  unknownFlags,
  withGlobalOptions,
} from './options.js';
import { createParser, parserMessage } from './parser.js';
import { createReporter, type Reporter, type ReporterStreams, reporterKind } from './reporters/reporter.js';

/** Set by scripts/build-cli.mjs in the bundle; tsc's output reads package.json instead. */
declare const __S3XFER_VERSION__: string | undefined;
const version =
  typeof __S3XFER_VERSION__ === 'string'
    ? __S3XFER_VERSION__
    : (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/**
 * The CLI entry: wires yargs, signals and exit codes, and gives each command its context. The
 * only place that reads process.env/argv, handles signals, or sets the exit code.
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv, streams: ReporterStreams): Promise<number> {
  // The SDK's six-line Node-version notice is for SDK maintainers' users, not for a CLI's output.
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

  // A closed pipe (`s3xfer … | head -0`) must not crash the CLI with a stack trace.
  for (const stream of [streams.stdout, streams.stderr]) stream.on('error', () => {});

  const abort = new AbortController();
  // Every line of a `run` batch (its ls, rm, transfers) listens to it: more than Node's 10 is normal.
  setMaxListeners(0, abort.signal);
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      // A second Ctrl-C: leave now, and say what the clean-up the first one began may not have finished.
      const exitCode = signal === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
      const message =
        `interrupted again (${signal}): left before the clean-up ended; multipart uploads being aborted may remain ` +
        '(`aws s3api list-multipart-uploads --bucket BUCKET`), and temp files (`.*.s3xfer-part`) beside downloads';
      if (reporter) {
        reporter.error(message, { code: 'Interrupted', exitCode });
        reporter.finish?.(exitCode);
      } else streams.stderr.write(`s3xfer: error: ${message}\n`);
      process.exit(exitCode);
    }
    signalled = signal;
    abort.abort(new Error(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let reporter: Reporter | undefined;
  let exitCode: number = EXIT.ok;
  let debug = argv.includes('--debug');
  let json = argv.includes('--json');
  try {
    loadDotEnv();
    const execute = async (command: CliCommand, args: GlobalArgs & Record<string, unknown>) => {
      debug = args.debug;
      json = args.json;
      // Validated before anything runs: a bad value is a usage error, never a failed transfer.
      const config = resolveTransferConfig(transferConfigFrom(args));
      const pageSize = pageSizeFrom(args);
      checkTimeoutFlags(args);
      // With the object on stdout (`cp s3://… -`), everything printed goes to stderr, JSON included.
      const output = command.stdoutIsData?.(args, argv) ? { stdout: streams.stderr, stderr: streams.stderr } : streams;
      reporter = await createReporter(reporterKind(args, streams, env), output, { progress: args.progress });
      if (args.verifySsl === false) reporter.warn('--no-verify-ssl: HTTPS certificates are not checked');
      if (env.GITHUB_ACTIONS === 'true') {
        const { GithubActionsReporter } = await import('./reporters/github-actions.js');
        // Annotations need a line of their own: on stdout unless it carries JSON or data.
        const annotations = args.json || output.stdout === streams.stderr ? streams.stderr : streams.stdout;
        reporter = new GithubActionsReporter(reporter, annotations, { command: argv.join(' '), summaryFile: env.GITHUB_STEP_SUMMARY });
      }

      let client: Promise<S3Client> | undefined;
      let manager: Promise<TransferManager> | undefined;
      const context: CommandContext = {
        config,
        reporter,
        abortSignal: abort.signal,
        env,
        streams,
        argv,
        pageSize,
        client: () => {
          client ??= (async () => {
            const { createS3Client } = await import('../client.js');
            const { assertProfileExists, resolveCaBundle } = await import('../network.js');
            await assertProfileExists({ profile: args.profile, env });
            // An explicit --profile wins over keys in the environment, quietly, as in botocore (which
            // drops its environment provider when a profile is given). The SDK picks the profile too,
            // but prints a nine-line warning first.
            if (args.profile) for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) delete env[name];
            const caBundle = args.caBundle || (await resolveCaBundle({ profile: args.profile, env }));
            return createS3Client(clientOptionsFrom(args, env, config, caBundle));
          })();
          return client;
        },
        manager: () => {
          manager ??= (async () => {
            const { TransferManager } = await import('../engine/transfer-manager.js');
            return new TransferManager(await context.client(), { config, subscribers: [context.reporter], abortSignal: abort.signal });
          })();
          return manager;
        },
      };
      exitCode = (await command.run(args, context)) ?? EXIT.ok;
    };
    let cli = withGlobalOptions(createParser(argv))
      .scriptName('s3xfer')
      .usage('$0 <command> [options]\n\nUpload and download files to and from S3 and S3-compatible stores.');
    for (const command of COMMANDS) {
      cli = cli.command(command.command, command.describe, command.builder as never, (args) => execute(command, args as never));
    }
    await cli
      .example('$0 cp ./a.bin s3://bucket/a.bin', 'upload a file')
      .example('$0 cp s3://bucket/a.bin ./copy.bin', 'download an object')
      .example('$0 run commands.txt', 'run one command per line through one engine')
      .example('$0 upload ./a.bin s3://bucket/backups/ --endpoint-url http://127.0.0.1:7480', 'upload to a prefix on a local store')
      .epilogue(
        'Exit codes: 0 ok, 1 transfer failed, 2 bad usage or unreadable source, 130 interrupted (SIGINT), 143 terminated (SIGTERM).',
      )
      .demandCommand(1, 'give a command: cp, sync, ls, rm, run, upload or download')
      .strict()
      .version(version)
      .help()
      .alias('h', 'help')
      .wrap(Math.min(110, process.stdout.columns || 100))
      .fail((message, error) => {
        const unknown = unknownFlags(argv);
        throw (
          error ??
          new UsageError(
            unknown.length ? `Unknown argument${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}` : parserMessage(message),
            'BadUsage',
          )
        );
      })
      .parseAsync();
    reporter?.finish?.(exitCode);
    return exitCode;
  } catch (error) {
    const failure =
      error instanceof S3xferError ? error : new S3xferError(String((error as Error)?.message ?? error), 'Internal', { cause: error });
    const exitCode = exitCodeFor(failure, signalled);
    const message =
      exitCode === EXIT.interrupted || exitCode === EXIT.terminated
        ? `interrupted (${signalled ?? 'aborted'}); ${(failure instanceof TransferAbortedError && failure.unfinished) || 'nothing was left behind'}`
        : failure.message;
    const details = { code: failure.code, exitCode, ...(debug ? { stack: stackOf(error) } : {}) };
    const fallback = json ? 'json' : 'plain';
    const last = reporter ?? (await createReporter(fallback, streams, { progress: false }));
    last.error(exitCode === EXIT.usage && failure.code === 'BadUsage' ? `${message} (see s3xfer --help)` : message, details);
    last.finish?.(exitCode);
    return exitCode;
  } finally {
    reporter?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Reads ./.env when present; variables already set in the environment win. */
function loadDotEnv(): void {
  const info = statSync('.env', { throwIfNoEntry: false });
  if (!info) return;
  if (!info.isFile()) throw new UsageError('.env: not a file (s3xfer reads ./.env for settings)', 'BadDotEnv');
  try {
    process.loadEnvFile('.env');
  } catch (error) {
    throw new UsageError(`.env: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, 'BadDotEnv', {
      cause: error,
    });
  }
}

function stackOf(error: unknown): string {
  const parts: string[] = [];
  for (let e = error as Error | undefined; e; e = e.cause as Error | undefined) parts.push(e.stack ?? String(e));
  return parts.join('\ncaused by: ');
}

// Not a top-level await: the CLI bundle is a CommonJS script (scripts/build-cli.mjs). Should main()
// never settle (the event loop empties first), the process must not exit 0 as if it had worked.
let settled = false;
process.exitCode = EXIT.failed;
process.once('exit', (code) => {
  if (!settled && code === EXIT.failed) process.stderr.write('s3xfer: error: internal error: the command stopped before it finished\n');
});
void main(hideBin(process.argv), process.env, { stdout: process.stdout, stderr: process.stderr }).then((code) => {
  settled = true;
  process.exitCode = code;
});
