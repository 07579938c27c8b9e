import type { GetObjectCommandInput, PutObjectCommandInput } from '@aws-sdk/client-s3';
import { UsageError } from '../errors.js';

/** The object settings an upload may set (boto3's `ALLOWED_UPLOAD_ARGS` for `upload_file`). */
export const UPLOAD_EXTRA_ARGS = [
  'ACL',
  'BucketKeyEnabled',
  'CacheControl',
  'ContentDisposition',
  'ContentEncoding',
  'ContentLanguage',
  'ContentType',
  'ExpectedBucketOwner',
  'Expires',
  'GrantFullControl',
  'GrantRead',
  'GrantReadACP',
  'GrantWriteACP',
  'Metadata',
  'ObjectLockLegalHoldStatus',
  'ObjectLockMode',
  'ObjectLockRetainUntilDate',
  'RequestPayer',
  'SSECustomerAlgorithm',
  'SSECustomerKey',
  'SSECustomerKeyMD5',
  'SSEKMSEncryptionContext',
  'SSEKMSKeyId',
  'ServerSideEncryption',
  'StorageClass',
  'Tagging',
  'WebsiteRedirectLocation',
  'ChecksumAlgorithm',
] as const;

/** The settings a download may give (boto3's `ALLOWED_DOWNLOAD_ARGS`, as far as S3 has them). */
export const DOWNLOAD_EXTRA_ARGS = [
  'VersionId',
  'SSECustomerAlgorithm',
  'SSECustomerKey',
  'SSECustomerKeyMD5',
  'RequestPayer',
  'ExpectedBucketOwner',
] as const;

/** Object settings an upload may set. Content-Type is guessed from the file name when not given. */
export type UploadExtraArgs = Partial<Pick<PutObjectCommandInput, (typeof UPLOAD_EXTRA_ARGS)[number]>>;

/** Settings of a download: a version, SSE-C keys, requester pays, the expected owner. */
export type DownloadExtraArgs = Partial<Pick<GetObjectCommandInput, (typeof DOWNLOAD_EXTRA_ARGS)[number]>>;

/**
 * Refuses settings a transfer does not take, as boto3 refuses them (`ValueError: Invalid
 * extra_args key`): a misspelt `ContentTyp` or a `Bucket` would otherwise be dropped silently.
 * @throws {UsageError} code `InvalidExtraArgs`.
 */
export function checkExtraArgs(extraArgs: object, allowed: readonly string[], transfer: 'upload' | 'download'): void {
  for (const key of Object.keys(extraArgs)) {
    if ((extraArgs as Record<string, unknown>)[key] !== undefined && !allowed.includes(key)) {
      throw new UsageError(
        `invalid extraArgs key "${key}" for ${transfer === 'upload' ? 'an upload' : 'a download'}: it must be one of ${allowed.join(', ')}`,
        'InvalidExtraArgs',
      );
    }
  }
}
