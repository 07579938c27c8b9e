import { parseS3Url } from '../../location.js';
import type { CliCommand } from '../command.js';
import { EXIT } from '../exit-codes.js';

interface LsArgs {
  path?: string;
  recursive?: boolean;
  humanReadable?: boolean;
  summarize?: boolean;
}

/** `2024-01-31 12:00:00`, local time, as the aws CLI prints it. */
function timestamp(ms: number | undefined): string {
  if (ms === undefined) return ''.padEnd(19);
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/**
 * `s3xfer ls`: buckets; `ls s3://bucket[/prefix]`: objects and common prefixes under the prefix
 * (names relative to its last `/`), or with `--recursive` every key. Same columns as `aws s3 ls`.
 * Names go to the reporter as they are: it escapes their control characters (a key may have a
 * line break or an ESC), `--json` keeps them exact.
 */
export const lsCommand: CliCommand = {
  command: 'ls [path]',
  describe: 'List buckets, or the objects and prefixes under s3://bucket/prefix',
  builder: (yargs) =>
    yargs
      .positional('path', { type: 'string', describe: 's3://bucket[/prefix]' })
      .option('recursive', { alias: 'r', type: 'boolean', default: false, describe: 'Every key under the prefix, not one level' })
      .option('human-readable', { type: 'boolean', default: false, describe: 'Sizes as KiB, MiB, GiB' })
      .option('summarize', { type: 'boolean', default: false, describe: 'Print the number of objects and their total size' }),
  async run(raw, context) {
    const args = raw as unknown as LsArgs;
    const { reporter } = context;
    const { listBuckets, listS3 } = await import('../../storage/s3-listing.js');
    const client = await context.client();
    if (!args.path) {
      for (const bucket of await listBuckets(client, { signal: context.abortSignal })) {
        reporter.output({
          text: `${timestamp(bucket.createdMs)} ${bucket.name}`,
          json: {
            type: 'bucket',
            name: bucket.name,
            ...(bucket.createdMs ? { created: new Date(bucket.createdMs).toISOString() } : {}),
          },
        });
      }
      return undefined;
    }
    const location = parseS3Url(args.path);
    const size = (bytes: number) => (args.humanReadable ? humanReadableSize(bytes) : String(bytes)).padStart(10);
    // Names are shown relative to the prefix's last '/', as the aws CLI does (`ls s3://b/ph` shows `photos/`).
    const shownFrom = args.recursive ? 0 : location.key.lastIndexOf('/') + 1;
    let objects = 0;
    let prefixes = 0;
    let bytes = 0;
    const listing = listS3(client, location.bucket, location.key, {
      signal: context.abortSignal,
      pageSize: context.pageSize,
      ...(args.recursive ? {} : { delimiter: '/', prefixesFirst: true }),
    });
    for await (const entry of listing) {
      const key = entry.s3!.key;
      if (entry.kind === 'prefix') {
        prefixes++;
        reporter.output({
          text: `${''.padStart(27)}PRE ${key.slice(shownFrom)}`,
          json: { type: 'prefix', bucket: location.bucket, prefix: key },
        });
        continue;
      }
      objects++;
      bytes += entry.size;
      reporter.output({
        text: `${timestamp(entry.mtimeMs)} ${size(entry.size)} ${key.slice(shownFrom)}`,
        json: {
          type: 'object',
          bucket: location.bucket,
          key,
          size: entry.size,
          lastModified: new Date(entry.mtimeMs).toISOString(),
          etag: entry.etag,
        },
      });
    }
    if (args.summarize) {
      reporter.output({
        // Three lines (a blank one first), as the aws CLI prints them: each is made printable on its own.
        text: ['', `Total Objects: ${objects}`, `   Total Size: ${args.humanReadable ? humanReadableSize(bytes) : bytes}`],
        json: { type: 'total', objects, bytes },
      });
    }
    // As the aws CLI: a key or prefix that matches nothing is exit 1 (`s3xfer ls s3://b/k && …`
    // tests that something is there); a whole bucket, even empty, is 0.
    if (location.key !== '' && objects + prefixes === 0) return EXIT.failed;
    return undefined;
  },
};

const HUMAN_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/**
 * A size as `aws s3 ls --human-readable` prints it, so that scripts reading either get the same
 * text: `1 Byte`, `10 Bytes`, then one decimal in the unit that keeps the number below 1024
 * (`1023.5 KiB`, `1.0 MiB`), rounded as Python's `%.1f` rounds (a tie to the even digit).
 */
export function humanReadableSize(bytes: number): string {
  if (bytes === 1) return '1 Byte';
  if (bytes < 1024) return `${bytes} Bytes`;
  let unit = 0;
  while (unit < HUMAN_UNITS.length - 1 && Math.round(bytes / 1024 ** (unit + 1)) >= 1024) unit++;
  return `${oneDecimal(bytes / 1024 ** (unit + 1))} ${HUMAN_UNITS[unit]}`;
}

/** `value` with one decimal as Python's `'%.1f'`: the exact value rounded, a tie (x.x5, exact in binary only as x.25 or x.75) to even. */
function oneDecimal(value: number): string {
  const tie = Number.isInteger(value * 4) && !Number.isInteger(value * 2);
  if (!tie) return value.toFixed(1);
  const down = Math.floor(value * 10);
  return ((down % 2 === 0 ? down : down + 1) / 10).toFixed(1);
}
