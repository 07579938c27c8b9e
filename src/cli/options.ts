import type { Argv, Options } from 'yargs';
import type { S3ClientOptions } from '../client.js';
import { parseSize, type TransferConfig } from '../config.js';
import { UsageError } from '../errors.js';
import type { UploadExtraArgs } from '../transfer/upload.js';

/** Flags every command takes. */
const GLOBAL_OPTIONS = {
  'endpoint-url': {
    type: 'string',
    describe: 'S3-compatible endpoint, e.g. http://127.0.0.1:7480 [env: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL]',
  },
  region: { type: 'string', describe: 'Region to sign for [env: AWS_REGION, AWS_DEFAULT_REGION; default us-east-1]' },
  profile: { type: 'string', describe: 'Named profile from ~/.aws/config [env: AWS_PROFILE]' },
  'path-style': { type: 'boolean', describe: 'Address buckets as endpoint/bucket/key (default: on with --endpoint-url)' },
  'flexible-checksums': { type: 'boolean', describe: 'Send CRC32 checksum trailers (default: on for AWS, off with --endpoint-url)' },
  'part-size': { type: 'string', describe: 'Bytes per part, 5MiB–5GiB [default 8MiB]' },
  'multipart-threshold': { type: 'string', describe: 'Move files of at least this size in parts [default 16MiB]' },
  concurrency: { type: 'number', describe: 'Requests in flight at once, across all files and parts [default 10]' },
  'max-attempts': {
    type: 'number',
    describe: 'Attempts per request (throttling, 5xx, broken connections), the first included [default 5]',
  },
  verify: {
    type: 'string',
    describe: 'Check downloads: auto (what can be checked, with a warning otherwise), require (fail when it cannot), off [default auto]',
  },
  'ca-bundle': { type: 'string', describe: "PEM file of the CAs to trust for HTTPS [env: AWS_CA_BUNDLE; the profile's ca_bundle]" },
  'verify-ssl': { type: 'boolean', default: true, describe: 'Verify HTTPS certificates (--no-verify-ssl: do not; for tests only)' },
  'sign-request': {
    type: 'boolean',
    default: true,
    describe: 'Sign requests (--no-sign-request: send them unsigned and look up no credentials, for public buckets)',
  },
  'cli-connect-timeout': { type: 'string', describe: 'Seconds to wait for a connection; 0: no limit [default 10]' },
  'cli-read-timeout': {
    type: 'string',
    describe: 'Seconds a connection may stay silent mid-request before the attempt fails and is retried; 0: no limit [default 60]',
  },
  'page-size': {
    type: 'number',
    describe: 'Keys per listing request of ls, rm and cp --recursive, sync (stores give at most 1000) [default 1000]',
  },
  quiet: { alias: 'q', type: 'boolean', default: false, describe: 'Print errors only' },
  'only-show-errors': { type: 'boolean', default: false, describe: 'Print errors and warnings only (as the aws CLI)' },
  progress: { type: 'boolean', default: true, describe: 'Show progress (--no-progress: only the result line)' },
  json: { type: 'boolean', default: false, describe: 'Print results as JSON lines on stdout, errors as JSON on stderr' },
  debug: { type: 'boolean', default: false, describe: 'Print stack traces of errors' },
} as const satisfies Record<string, Options>;

/** Flags that set the uploaded object's properties. */
const UPLOAD_OPTIONS = {
  'content-type': { type: 'string', describe: 'Content-Type (default: guessed from the file name)' },
  'cache-control': { type: 'string', describe: 'Cache-Control header' },
  'content-disposition': { type: 'string', describe: 'Content-Disposition header' },
  'content-encoding': { type: 'string', describe: 'Content-Encoding header' },
  'content-language': { type: 'string', describe: 'Content-Language header' },
  expires: {
    type: 'string',
    describe:
      'Expires header: the date and time the object stops being cacheable (ISO 8601, UTC when no zone is given; an HTTP date; epoch seconds)',
  },
  'website-redirect': { type: 'string', describe: "Where a website bucket redirects this object's requests (/path or URL)" },
  'guess-mime-type': {
    type: 'boolean',
    describe: 'Content-Type from the file name (--no-guess-mime-type: application/octet-stream unless --content-type) [default: true]',
  },
  metadata: { type: 'string', describe: 'User metadata: key=value,key2=value2 or {"key":"value"}' },
  'storage-class': { type: 'string', describe: 'STANDARD, STANDARD_IA, GLACIER_IR, …' },
  sse: {
    type: 'string',
    describe: 'Server-side encryption: AES256 (also a bare --sse, as in the aws CLI), aws:kms or aws:kms:dsse',
    // A bare --sse asks for encryption (the aws CLI's AES256): never an upload without it.
    coerce: (value: string) => (value === '' ? 'AES256' : value),
    choices: ['AES256', 'aws:kms', 'aws:kms:dsse'],
  },
  'sse-kms-key-id': { type: 'string', describe: 'KMS key for --sse aws:kms' },
  acl: {
    type: 'string',
    describe: 'Canned ACL',
    choices: [
      'private',
      'public-read',
      'public-read-write',
      'authenticated-read',
      'aws-exec-read',
      'bucket-owner-read',
      'bucket-owner-full-control',
      'log-delivery-write',
    ],
  },
  'checksum-algorithm': {
    type: 'string',
    describe:
      'Store a checksum with the object for later downloads to check: CRC32, CRC32C, CRC64NVME, SHA256 or SHA1 (stores that support it)',
  },
} as const satisfies Record<string, Options>;

/** Flags of uploads from stdin (`cp - s3://bucket/key`). */
const STREAM_OPTIONS = {
  'expected-size': {
    type: 'string',
    describe:
      'Size, or an upper bound, of a stream from stdin: raises the part size so that it fits in 10,000 parts ' +
      '(needed above 10,000 × --part-size, 78 GiB by default)',
  },
} as const satisfies Record<string, Options>;

/** Adds the stdin-upload flags. */
export function withStreamOptions<T>(yargs: Argv<T>) {
  return yargs.options(STREAM_OPTIONS);
}

/** Flags of the directory commands (cp --recursive, sync, rm --recursive). */
export const TREE_OPTIONS = {
  include: { type: 'string', array: true, describe: 'Include paths matching this glob (after an --exclude; the last match wins)' },
  exclude: { type: 'string', array: true, describe: 'Exclude paths matching this glob (relative to the source directory or prefix)' },
  dryrun: { type: 'boolean', default: false, describe: 'Show what would be done, change nothing' },
  'follow-symlinks': { type: 'boolean', default: true, describe: 'Follow symlinks in local trees (--no-follow-symlinks: skip them)' },
  shard: { type: 'string', describe: 'K/N: only the K-th of N slices of the work, balanced by bytes (N CI jobs split one copy or sync)' },
} as const satisfies Record<string, Options>;

/** Adds the directory-command flags. */
export function withTreeOptions<T>(yargs: Argv<T>) {
  return yargs.options(TREE_OPTIONS);
}

/**
 * `--exclude`/`--include` rules in the order given on the command line (yargs keeps two separate
 * arrays; the aws CLI applies filters in order, the last match winning).
 */
export function filterRulesFrom(argv: string[]): Array<{ type: 'include' | 'exclude'; pattern: string }> {
  const rules: Array<{ type: 'include' | 'exclude'; pattern: string }> = [];
  const end = argv.indexOf('--');
  const tokens = end === -1 ? argv : argv.slice(0, end);
  for (let i = 0; i < tokens.length; i++) {
    const match = /^--(include|exclude)(?:=(.*))?$/s.exec(tokens[i]!);
    if (!match) continue;
    const pattern = match[2] ?? tokens[++i];
    if (pattern === undefined) throw new UsageError(`--${match[1]} needs a pattern`, 'BadUsage');
    rules.push({ type: match[1] as 'include' | 'exclude', pattern });
  }
  return rules;
}

/** Adds the global flags. */
export function withGlobalOptions<T>(yargs: Argv<T>) {
  return yargs.options(GLOBAL_OPTIONS);
}

/** Flags of single commands (named here so that unknown flags are reported as typed). */
export const COMMAND_FLAGS = {
  recursive: { alias: 'r', type: 'boolean' },
  delete: { type: 'boolean' },
  'size-only': { type: 'boolean' },
  'exact-timestamps': { type: 'boolean' },
  'human-readable': { type: 'boolean' },
  summarize: { type: 'boolean' },
} as const satisfies Record<string, Options>;

/** Adds the upload flags. */
export function withUploadOptions<T>(yargs: Argv<T>) {
  return yargs.options(UPLOAD_OPTIONS);
}

/**
 * The flags in `argv` that no command knows, as typed (yargs would report `--bogus-flag` twice,
 * as bogus-flag and bogusFlag, and `--no-such` as `such`).
 */
export function unknownFlags(argv: string[]): string[] {
  const all: Record<string, Options> = {
    ...GLOBAL_OPTIONS,
    ...UPLOAD_OPTIONS,
    ...STREAM_OPTIONS,
    ...TREE_OPTIONS,
    ...COMMAND_FLAGS,
    help: { alias: 'h', type: 'boolean' },
    version: { type: 'boolean' },
  };
  const known = new Set(Object.entries(all).flatMap(([name, o]) => [name, ...[o.alias ?? []].flat()]));
  const booleans = new Set(Object.keys(all).filter((name) => all[name]!.type === 'boolean'));
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end))
    .filter((token) => /^--?[A-Za-z]/.test(token))
    .map((token) => token.replace(/=.*$/s, ''))
    .filter((flag) => {
      const name = flag.replace(/^--?/, '');
      return !known.has(name) && !(name.startsWith('no-') && booleans.has(name.slice(3)));
    });
}

/** Parsed global flags (as yargs gives them). */
export interface GlobalArgs {
  endpointUrl?: string;
  region?: string;
  profile?: string;
  pathStyle?: boolean;
  flexibleChecksums?: boolean;
  partSize?: string;
  multipartThreshold?: string;
  concurrency?: number;
  maxAttempts?: number;
  verify?: 'auto' | 'require' | 'off';
  caBundle?: string;
  verifySsl: boolean;
  signRequest: boolean;
  cliConnectTimeout?: string;
  cliReadTimeout?: string;
  pageSize?: number;
  quiet: boolean;
  onlyShowErrors: boolean;
  progress: boolean;
  json: boolean;
  debug: boolean;
}

/** Parsed upload flags. */
export interface UploadArgs {
  contentType?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
  contentLanguage?: string;
  expires?: string;
  websiteRedirect?: string;
  guessMimeType?: boolean;
  metadata?: string;
  storageClass?: string;
  sse?: string;
  sseKmsKeyId?: string;
  acl?: string;
  checksumAlgorithm?: string;
}

/**
 * Client options from flags, then the standard AWS environment variables: endpoint, region,
 * proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) and the CA bundle (`--ca-bundle`, then
 * `AWS_CA_BUNDLE`, then the profile's `ca_bundle`, resolved by the caller).
 */
export function clientOptionsFrom(args: GlobalArgs, env: NodeJS.ProcessEnv, transfer: TransferConfig, caBundle?: string): S3ClientOptions {
  // createS3Client checks it (InvalidEndpoint).
  const endpoint = args.endpointUrl || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  return {
    endpoint,
    region: args.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
    profile: args.profile,
    forcePathStyle: args.pathStyle,
    flexibleChecksums: args.flexibleChecksums,
    maxAttempts: transfer.maxAttempts,
    maxSockets: Math.max(50, transfer.concurrency),
    proxy: { env },
    ...(caBundle ? { caBundle } : {}),
    verifySsl: args.verifySsl,
    unsigned: args.signRequest === false,
    connectionTimeoutMs: timeoutMs('--cli-connect-timeout', args.cliConnectTimeout),
    socketTimeoutMs: timeoutMs('--cli-read-timeout', args.cliReadTimeout),
  };
}

/**
 * Seconds from a timeout flag as milliseconds (`0`: no limit; a fraction is rounded up, so that
 * no positive value turns into "no limit"). An empty value (`--cli-read-timeout "$UNSET"`) is refused.
 * @throws {UsageError} code `InvalidTimeout`.
 */
function timeoutMs(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = /^\s*\d+(\.\d+)?\s*$/.test(text) ? Number(text) : Number.NaN;
  // Node's timers take at most 2^31 − 1 ms.
  if (!(seconds <= 2_147_483)) {
    throw new UsageError(`invalid ${flag} "${text}": expected seconds from 0 (no limit) to 2147483`, 'InvalidTimeout');
  }
  return Math.ceil(seconds * 1000);
}

/**
 * Checks the timeout flags, which are read only when a client is made, so that a bad value is
 * refused before anything runs, whatever the command (a `--dryrun` makes no client).
 * @throws {UsageError} code `InvalidTimeout`.
 */
export function checkTimeoutFlags(args: GlobalArgs): void {
  timeoutMs('--cli-connect-timeout', args.cliConnectTimeout);
  timeoutMs('--cli-read-timeout', args.cliReadTimeout);
}

/**
 * Keys per listing request from `--page-size`: a whole number from 1 (the aws CLI sets no upper
 * bound; stores answer at most 1,000 keys a page whatever is asked).
 * @throws {UsageError} code `InvalidPageSize`.
 */
export function pageSizeFrom(args: Pick<GlobalArgs, 'pageSize'>): number | undefined {
  const size = args.pageSize;
  if (size === undefined) return undefined;
  if (!Number.isInteger(size) || size < 1 || size > 2 ** 31 - 1) {
    const given = Number.isNaN(size) ? 'not a number' : `"${size}"`;
    throw new UsageError(`invalid --page-size ${given}: expected a whole number from 1`, 'InvalidPageSize');
  }
  return size;
}

/** Transfer sizes from flags (`8MiB`, `64MB`, `1GiB`, plain bytes). */
export function transferConfigFrom(args: GlobalArgs): Partial<TransferConfig> {
  if (args.concurrency !== undefined && !Number.isInteger(args.concurrency)) {
    // yargs reads a flag of type number that is not one as NaN: that is not what the user typed.
    const given = Number.isNaN(args.concurrency) ? 'invalid --concurrency: not a number' : `invalid --concurrency "${args.concurrency}"`;
    throw new UsageError(`${given}: expected a whole number from 1 to 1000`, 'InvalidConcurrency');
  }
  return {
    partSize: args.partSize === undefined ? undefined : parseSize(args.partSize, '--part-size'),
    multipartThreshold: args.multipartThreshold === undefined ? undefined : parseSize(args.multipartThreshold, '--multipart-threshold'),
    concurrency: args.concurrency,
    maxAttempts: args.maxAttempts,
    verify: args.verify,
  };
}

/** The upload-only flags present in parsed arguments, as `--name`. */
export function givenUploadFlags(args: object): string[] {
  return Object.keys(UPLOAD_OPTIONS)
    .filter((name) => (args as Record<string, unknown>)[name] !== undefined)
    .map((name) => ((args as Record<string, unknown>)[name] === false ? `--no-${name}` : `--${name}`));
}

/**
 * Object settings on a download are refused rather than ignored.
 * @throws {UsageError} code `UploadOnlyFlag`, naming the flags as typed.
 */
export function refuseUploadFlags(args: object): void {
  const flags = givenUploadFlags(args);
  if (flags.length > 0) throw new UsageError(`${flags.join(', ')}: object settings apply to uploads only`, 'UploadOnlyFlag');
}

/** Object properties from upload flags. */
export function uploadExtraArgsFrom(args: UploadArgs): UploadExtraArgs {
  const extra: UploadExtraArgs = {
    ContentType: headerValue('--content-type', args.contentType),
    CacheControl: headerValue('--cache-control', args.cacheControl),
    ContentDisposition: headerValue('--content-disposition', args.contentDisposition),
    ContentEncoding: headerValue('--content-encoding', args.contentEncoding),
    ContentLanguage: headerValue('--content-language', args.contentLanguage),
    Expires: args.expires === undefined ? undefined : parseExpires(args.expires),
    WebsiteRedirectLocation: headerValue('--website-redirect', args.websiteRedirect),
    Metadata: args.metadata === undefined ? undefined : parseMetadata(args.metadata),
    StorageClass: args.storageClass as UploadExtraArgs['StorageClass'],
    ServerSideEncryption: args.sse as UploadExtraArgs['ServerSideEncryption'],
    SSEKMSKeyId: args.sseKmsKeyId,
    ACL: args.acl as UploadExtraArgs['ACL'],
    ChecksumAlgorithm: checksumAlgorithmFrom(args.checksumAlgorithm),
  };
  return Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)) as UploadExtraArgs;
}

/** ISO 8601 as botocore takes it: a date, an optional time, an optional zone. */
const ISO_DATE_TIME = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?))?(Z|[+-]\d{2}:?\d{2})?$/i;
/** RFC 1123, the HTTP date: `Sun, 31 Jan 2027 12:00:00 GMT`. */
const HTTP_DATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * `--expires` as a Date, read as botocore reads a timestamp: ISO 8601 (without a zone: UTC, not
 * the machine's zone), an HTTP date, or seconds since the epoch. Anything else is refused (V8's
 * own parser would take "next week 5" as a date in 2001).
 * @throws {UsageError} code `InvalidExpires`.
 */
export function parseExpires(text: string): Date {
  const value = text.trim();
  let date = new Date(Number.NaN);
  const iso = ISO_DATE_TIME.exec(value);
  if (/^\d+$/.test(value)) date = new Date(Number(value) * 1000);
  else if (iso) {
    const [, day, time, zone] = iso;
    // `Date` rolls 2027-02-30 over to March: the day must exist as written.
    const midnight = new Date(`${day}T00:00:00Z`);
    if (!Number.isNaN(midnight.getTime()) && midnight.toISOString().slice(0, 10) === day) {
      date = new Date(`${day}T${time ?? '00:00:00'}${zone ?? 'Z'}`);
    }
  } else if (HTTP_DATE.test(value)) date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new UsageError(
      `invalid --expires "${text}": expected an ISO 8601 date and time (2027-01-31T12:00:00Z; UTC when no zone is given), an HTTP date or epoch seconds`,
      'InvalidExpires',
    );
  }
  return date;
}

/**
 * HTTP header values must be printable ASCII; anything else would only come back from the server
 * as a misleading signature error.
 */
function headerValue(flag: string, value: string | undefined): string | undefined {
  if (value !== undefined && !/^[\x20-\x7e]*$/.test(value)) {
    throw new UsageError(
      `invalid ${flag} value "${value}": only printable ASCII characters can be sent as an HTTP header`,
      'InvalidHeaderValue',
    );
  }
  return value;
}

/** `key=value,key2=value2` or the aws CLI's JSON `{"key":"value"}` → `{ key: 'value', … }`. @throws {UsageError} */
export function parseMetadata(text: string): Record<string, string> {
  const invalid = (why: string) => new UsageError(`invalid --metadata "${text}": ${why}`, 'InvalidMetadata');
  let pairs: Array<[string, unknown]>;
  if (text.trim().startsWith('{')) {
    // The aws CLI's JSON form: {"key":"value",…}.
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw invalid('not valid JSON');
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid('expected a JSON object of strings');
    pairs = Object.entries(parsed);
  } else {
    pairs = text
      .split(',')
      .filter((pair) => pair.trim() !== '')
      .map((pair) => {
        const eq = pair.indexOf('=');
        return eq <= 0 ? ['', pair] : [pair.slice(0, eq).trim(), pair.slice(eq + 1)];
      });
  }
  const entries = pairs.map(([name, value]) => {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) {
      throw invalid('expected key=value[,key=value…] or {"key":"value"} with token keys');
    }
    if (typeof value !== 'string') throw invalid(`the value of "${name}" is not a string`);
    return [name, headerValue(`--metadata ${name}`, value)!] as const;
  });
  if (entries.length === 0) throw invalid('expected key=value[,key=value…] or {"key":"value"}');
  return Object.fromEntries(entries);
}

/** `--checksum-algorithm`: the flexible checksums S3 stores (case-insensitive). */
function checksumAlgorithmFrom(value: string | undefined): UploadExtraArgs['ChecksumAlgorithm'] {
  if (value === undefined) return undefined;
  const algorithms = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA256', 'SHA1'];
  const upper = value.toUpperCase();
  if (!algorithms.includes(upper)) {
    throw new UsageError(`invalid --checksum-algorithm "${value}": expected one of ${algorithms.join(', ')}`, 'InvalidChecksumAlgorithm');
  }
  return upper as UploadExtraArgs['ChecksumAlgorithm'];
}
