import { basename } from 'node:path';
import { UsageError } from './errors.js';

/** An object in a bucket. `key` may be empty (bucket only) or end with `/` (a prefix). */
export interface S3Location {
  kind: 's3';
  bucket: string;
  key: string;
}

/** A path on this machine. */
export interface LocalLocation {
  kind: 'local';
  path: string;
}

export type Location = S3Location | LocalLocation;

const S3_SCHEME = 's3://';

/** True when the text names an S3 location (`s3://…`). */
export function isS3Url(text: string): boolean {
  return text.toLowerCase().startsWith(S3_SCHEME);
}

/**
 * Parses `s3://bucket/key`. The key is taken verbatim (no URL decoding), as the aws CLI does.
 * @throws {UsageError} for a missing bucket or an invalid bucket name.
 */
export function parseS3Url(text: string): S3Location {
  if (!isS3Url(text)) throw new UsageError(`invalid S3 URL "${text}": expected s3://bucket/key`, 'InvalidS3Url');
  const rest = text.slice(S3_SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const key = slash === -1 ? '' : rest.slice(slash + 1);
  if (bucket === '') throw new UsageError(`invalid S3 URL "${text}": the bucket name is missing`, 'InvalidS3Url');
  // Rules common to AWS and S3-compatible stores: 3–63 characters of letters, digits, dots,
  // hyphens and underscores (some stores allow legacy upper-case and '_' names).
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$/.test(bucket)) {
    throw new UsageError(
      `invalid S3 URL "${text}": "${bucket}" is not a valid bucket name (3–63 letters, digits, dots or hyphens)`,
      'InvalidS3Url',
    );
  }
  return { kind: 's3', bucket, key };
}

/** Classifies a command-line operand. */
export function parseLocation(text: string): Location {
  return isS3Url(text) ? parseS3Url(text) : { kind: 'local', path: text };
}

/** Formats a location back to `s3://bucket/key`. */
export function formatS3Url(bucket: string, key: string): string {
  return `${S3_SCHEME}${bucket}/${key}`;
}

/**
 * The key an upload of `filePath` to `destination` writes: the key itself, or, when the key is
 * empty or ends with `/`, the prefix followed by the file's base name (as `aws s3 cp` does).
 */
export function uploadKey(destination: S3Location, filePath: string): string {
  if (destination.key === '' || destination.key.endsWith('/')) return destination.key + basename(filePath);
  return destination.key;
}

/**
 * The local file name an object is saved under when the destination is a directory: the key's last
 * segment. Keys whose last segment is empty, `.` or `..` cannot name a file and are refused.
 * @throws {UsageError}
 */
export function keyBaseName(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  if (name === '' || name === '.' || name === '..' || name.includes('\0')) {
    throw new UsageError(`the key "${key}" does not end in a usable file name; give a destination file name`, 'UnsafeKey');
  }
  return name;
}

/**
 * A key taken as a directory, as `cp --recursive`, `sync` and `rm --recursive` take it: `a/b` and
 * `a/b/` both mean `a/b/` (never the keys `a/bc` or `a/b.txt`); `''` is the whole bucket.
 */
export function directoryPrefix(key: string): string {
  return key === '' || key.endsWith('/') ? key : `${key}/`;
}
