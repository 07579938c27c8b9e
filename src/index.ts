/**
 * s3xfer — upload and download files to and from S3 and S3-compatible stores.
 *
 * ```ts
 * import { createS3Client, uploadFile, downloadFile } from 's3xfer';
 * const s3 = createS3Client({ endpoint: 'http://127.0.0.1:7480' });
 * await uploadFile(s3, 'test.txt', 'my-bucket', 'test.txt');
 * await downloadFile(s3, 'my-bucket', 'test.txt', 'test_downloaded.txt');
 * ```
 */
export { createS3Client, FALLBACK_REGION, type S3ClientOptions } from './client.js';
export {
  DEFAULT_TRANSFER_CONFIG,
  formatBytes,
  parseSize,
  resolveTransferConfig,
  S3_LIMITS,
  type TransferConfig,
} from './config.js';
export {
  CredentialsError,
  type ErrorContext,
  IntegrityError,
  LocalFileError,
  NetworkError,
  S3ServiceError,
  S3xferError,
  TransferAbortedError,
  UsageError,
} from './errors.js';
export type { Direction, TransferInfo, TransferProgress, TransferResult, TransferSubscriber } from './events.js';
export { formatS3Url, type LocalLocation, type Location, parseLocation, parseS3Url, type S3Location } from './location.js';
export { type DownloadExtraArgs, type DownloadOptions, downloadFile } from './transfer/download.js';
export type { CommonTransferOptions } from './transfer/transfer-context.js';
export { type UploadExtraArgs, type UploadOptions, uploadFile } from './transfer/upload.js';
