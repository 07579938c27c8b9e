/**
 * The `--json` stream's schema, pinned: every record type with the exact set of keys it may carry
 * and the type of each, as README's "One NDJSON stream" table describes them. Used by the e2e tests
 * that parse the CLI's stdout line by line (json-output, run, ci-output).
 */
import { expect } from 'vitest';
import { type CliResult, describeResult } from './run-cli.js';

/** One JSON record of the stream. */
export type JsonRecord = Record<string, unknown> & { type: string };

/** Checks one value; returns what was wrong, or undefined. */
type Check = (value: unknown) => string | undefined;

const is =
  (what: string, test: (value: unknown) => boolean): Check =>
  (value) =>
    test(value) ? undefined : `expected ${what}, got ${JSON.stringify(value)}`;

const str = is('a string', (v) => typeof v === 'string');
const nonEmpty = is('a non-empty string', (v) => typeof v === 'string' && v !== '');
const count = is('a whole number ≥ 0', (v) => Number.isInteger(v) && (v as number) >= 0);
const positive = is('a whole number ≥ 1', (v) => Number.isInteger(v) && (v as number) >= 1);
const seconds = is('a number of seconds ≥ 0', (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0);
const bool = is('a boolean', (v) => typeof v === 'boolean');
const isoDate = is('an ISO 8601 date', (v) => typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v));
const etag = is('a quoted ETag', (v) => typeof v === 'string' && /^"[0-9a-f]{32}(-\d+)?"$/.test(v));
const strings = is('an array of strings', (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'));
const exactly = (expected: unknown): Check => is(JSON.stringify(expected), (v) => v === expected);
const oneOf = (...values: unknown[]): Check => is(`one of ${JSON.stringify(values)}`, (v) => values.includes(v));
/** `{ code, message }`, nothing else. */
const dryRunCounts = is(
  'the counts of a dry run ({ transfers, bytes, deletes })',
  (v) =>
    typeof v === 'object' &&
    v !== null &&
    Object.keys(v).sort().join() === 'bytes,deletes,transfers' &&
    Object.values(v).every((n) => Number.isInteger(n) && (n as number) >= 0),
);
const errorObject: Check = (value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `expected {code, message}, got ${JSON.stringify(value)}`;
  const keys = Object.keys(value).sort().join(',');
  if (keys !== 'code,message') return `expected exactly the keys code, message; got ${keys}`;
  const { code, message } = value as { code: unknown; message: unknown };
  return nonEmpty(code) ?? nonEmpty(message);
};

/** Keys a record must have, and keys it may have; nothing else is allowed. */
interface RecordSchema {
  required: Record<string, Check>;
  optional?: Record<string, Check>;
}

const TRANSFER_OPERATION = oneOf('upload', 'download');

/**
 * The schema of every record type. `transfer` and `delete` have a success and a failure shape,
 * told apart by `success`.
 */
export const RECORD_SCHEMAS = {
  'transfer/ok': {
    required: {
      type: exactly('transfer'),
      operation: TRANSFER_OPERATION,
      success: exactly(true),
      source: nonEmpty,
      destination: nonEmpty,
      bucket: nonEmpty,
      key: str,
      bytes: count,
      parts: positive,
      multipart: bool,
      seconds,
    },
    optional: {
      etag,
      verified: oneOf('md5-etag', 'multipart-etag', 'crc64nvme', 'crc32', 'crc32c', 'sha256', false),
      versionId: nonEmpty,
      warnings: strings,
    },
  },
  'transfer/failed': {
    required: {
      type: exactly('transfer'),
      operation: TRANSFER_OPERATION,
      success: exactly(false),
      source: nonEmpty,
      destination: nonEmpty,
      error: errorObject,
    },
    optional: { bytes: count },
  },
  skip: { required: { type: exactly('skip'), source: nonEmpty, code: nonEmpty, reason: nonEmpty, message: nonEmpty } },
  plan: {
    required: {
      type: exactly('plan'),
      operation: oneOf('upload', 'download', 'delete', 'mkdir'),
      dryrun: exactly(true),
      destination: nonEmpty,
      success: exactly(true),
    },
    optional: { source: nonEmpty },
  },
  'delete/ok': {
    required: {
      type: exactly('delete'),
      operation: exactly('delete'),
      dryrun: exactly(false),
      destination: nonEmpty,
      success: exactly(true),
    },
  },
  'delete/failed': {
    required: {
      type: exactly('delete'),
      operation: exactly('delete'),
      dryrun: exactly(false),
      destination: nonEmpty,
      success: exactly(false),
      error: errorObject,
    },
  },
  object: {
    required: { type: exactly('object'), bucket: nonEmpty, key: nonEmpty, size: count, lastModified: isoDate },
    optional: { etag },
  },
  prefix: { required: { type: exactly('prefix'), bucket: nonEmpty, prefix: nonEmpty } },
  bucket: { required: { type: exactly('bucket'), name: nonEmpty }, optional: { created: isoDate } },
  total: { required: { type: exactly('total'), objects: count, bytes: count } },
  warning: { required: { type: exactly('warning'), message: nonEmpty } },
  error: {
    required: {
      type: exactly('error'),
      operation: exactly('run'),
      line: positive,
      command: nonEmpty,
      success: exactly(false),
      error: errorObject,
    },
  },
  summary: {
    required: {
      type: exactly('summary'),
      success: bool,
      exitCode: count,
      transferred: count,
      failed: count,
      bytes: count,
      skipped: count,
      deleted: count,
      deleteFailed: count,
      unchanged: count,
      seconds,
    },
    optional: { error: errorObject, dryRun: dryRunCounts },
  },
} satisfies Record<string, RecordSchema>;

/** The error that ended a command, as one JSON object on stderr. */
const STDERR_ERROR_SCHEMA: RecordSchema = {
  required: { success: exactly(false), error: nonEmpty, code: nonEmpty, exitCode: positive },
  optional: { stack: nonEmpty },
};

/** The schema a record must follow, by its `type` (and `success`). */
export function schemaNameOf(record: Record<string, unknown>): keyof typeof RECORD_SCHEMAS | undefined {
  const type = record.type;
  if (type === 'transfer' || type === 'delete') return `${type}/${record.success === false ? 'failed' : 'ok'}`;
  return typeof type === 'string' && type in RECORD_SCHEMAS ? (type as keyof typeof RECORD_SCHEMAS) : undefined;
}

/** What is wrong with `record` under `schema`, one problem a line (empty when nothing is). */
function problemsOf(record: Record<string, unknown>, schema: RecordSchema): string[] {
  const problems: string[] = [];
  const allowed = { ...schema.required, ...schema.optional };
  for (const key of Object.keys(schema.required)) if (!(key in record)) problems.push(`missing key "${key}"`);
  for (const [key, value] of Object.entries(record)) {
    const check = allowed[key];
    if (!check) problems.push(`unexpected key "${key}"`);
    else {
      const wrong = check(value);
      if (wrong) problems.push(`"${key}": ${wrong}`);
    }
  }
  return problems;
}

/** Fails unless `record` follows the schema of its type exactly (keys and value types). */
export function expectValidRecord(record: Record<string, unknown>, context = ''): asserts record is JsonRecord {
  const name = schemaNameOf(record);
  expect(name, `a record of unknown type: ${JSON.stringify(record)}${context}`).toBeDefined();
  expect(problemsOf(record, RECORD_SCHEMAS[name!]), `${JSON.stringify(record)}${context}`).toEqual([]);
}

/**
 * Parses an NDJSON text line by line: every line one JSON object (no blank line, no other text,
 * a final newline), each following its type's schema. Returns the records.
 */
export function parseRecords(text: string, context = ''): JsonRecord[] {
  if (text === '') return [];
  expect(text.endsWith('\n'), `the stream must end with a newline${context}`).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line, index) => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        throw new Error(`line ${index + 1} is not JSON: ${JSON.stringify(line)}${context}`);
      }
      expect(typeof value === 'object' && value !== null && !Array.isArray(value), `line ${index + 1} is not a JSON object: ${line}`).toBe(
        true,
      );
      expectValidRecord(value as Record<string, unknown>, context);
      return value as JsonRecord;
    });
}

/**
 * The records of a `--json` run (stdout, or stderr for `cp s3://… -`): all valid, exactly one
 * summary and it is the last line, with `exitCode` equal to the process's exit code and `success`
 * true exactly when that is 0. Returns the records before the summary, and the summary.
 */
export function jsonStream(result: CliResult, stream: 'stdout' | 'stderr' = 'stdout'): { records: JsonRecord[]; summary: JsonRecord } {
  const context = `\n${describeResult(result)}`;
  const all = parseRecords(result[stream], context);
  expect(all.length, `no records${context}`).toBeGreaterThan(0);
  const summary = all.at(-1)!;
  expect(summary.type, `the last line must be the summary${context}`).toBe('summary');
  expect(
    all.filter((r) => r.type === 'summary'),
    `exactly one summary${context}`,
  ).toHaveLength(1);
  expect(summary.exitCode, `the summary's exitCode${context}`).toBe(result.code);
  expect(summary.success, `the summary's success${context}`).toBe(result.code === 0);
  return { records: all.slice(0, -1), summary };
}

/**
 * The error that ended a `--json` command: exactly one line on stderr, one JSON object with
 * `success: false`, `error`, `code` and `exitCode` (the process's). Returns it.
 */
export function jsonStderrError(result: CliResult): { success: false; error: string; code: string; exitCode: number } {
  const context = `\n${describeResult(result)}`;
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  expect(lines, `stderr should be one JSON error object${context}`).toHaveLength(1);
  const value = JSON.parse(lines[0]!) as Record<string, unknown>;
  expect(problemsOf(value, STDERR_ERROR_SCHEMA), `${lines[0]}${context}`).toEqual([]);
  expect(value.exitCode).toBe(result.code);
  return value as { success: false; error: string; code: string; exitCode: number };
}

/** The records of one type. */
export const ofType = (records: JsonRecord[], type: string) => records.filter((r) => r.type === type);
