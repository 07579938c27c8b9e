import type { S3Client } from '@aws-sdk/client-s3';
import type { TransferConfig } from './config.js';
import { type DownloadTransferOptions, TransferManager, type UploadTransferOptions } from './engine/transfer-manager.js';
import type { TransferResult } from './events.js';

/** Options of {@link uploadFile}. */
export interface UploadOptions extends UploadTransferOptions {
  /** Part sizes, threshold and concurrency; see {@link TransferConfig} for the defaults. */
  config?: Partial<TransferConfig>;
}

/** Options of {@link downloadFile}. */
export interface DownloadOptions extends DownloadTransferOptions {
  /** Part sizes, threshold and concurrency; see {@link TransferConfig} for the defaults. */
  config?: Partial<TransferConfig>;
}

/**
 * Uploads a local file to `s3://bucket/key` — the port of boto3's
 * `s3.upload_file(filename, bucket, key)`, run on a one-transfer {@link TransferManager}. Below
 * `multipartThreshold` one PutObject signed with its SHA-256; at or above it a multipart upload with
 * `concurrency` parts in flight, each read from its file offset and signed with its SHA-256. A
 * failed or aborted multipart upload is always aborted on the server: no orphaned parts.
 * @throws {S3xferError} a typed error: UsageError, LocalFileError, S3ServiceError, NetworkError,
 *   CredentialsError, IntegrityError or TransferAbortedError.
 */
export async function uploadFile(
  client: S3Client,
  filename: string,
  bucket: string,
  key: string,
  options: UploadOptions = {},
): Promise<TransferResult> {
  const { config, ...transfer } = options;
  return new TransferManager(client, { config }).upload(filename, bucket, key, transfer);
}

/**
 * Downloads `s3://bucket/key` to a local file — the port of boto3's
 * `s3.download_file(bucket, key, filename)`, run on a one-transfer {@link TransferManager}.
 * HeadObject gives size and ETag; below `multipartThreshold` one streamed GET (checked against an
 * MD5 ETag), at or above it ranged GETs pinned to the ETag with If-Match. Bytes go to a temp file
 * beside the destination, renamed over it only when complete; on failure the temp file is
 * removed and an existing destination is left as it was.
 * @param filename a file path, or an existing directory to receive the key's base name.
 * @throws {S3xferError} a typed error: UsageError, LocalFileError, S3ServiceError, NetworkError,
 *   CredentialsError, IntegrityError or TransferAbortedError.
 */
export async function downloadFile(
  client: S3Client,
  bucket: string,
  key: string,
  filename: string,
  options: DownloadOptions = {},
): Promise<TransferResult> {
  const { config, ...transfer } = options;
  return new TransferManager(client, { config }).download(bucket, key, filename, transfer);
}
