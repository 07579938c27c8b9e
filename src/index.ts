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
  S3_LIMITS,
  formatBytes,
  parseSize,
  resolveTransferConfig,
  type TransferConfig,
} from './config.js';
export {
  CredentialsError,
  IntegrityError,
  LocalFileError,
  NetworkError,
  S3ServiceError,
  S3xferError,
  TransferAbortedError,
  UsageError,
  type ErrorContext,
} from './errors.js';
export type { Direction, TransferInfo, TransferProgress, TransferResult, TransferSubscriber } from './events.js';
export { formatS3Url, parseLocation, parseS3Url, type LocalLocation, type Location, type S3Location } from './location.js';
export { downloadFile, type DownloadExtraArgs, type DownloadOptions } from './transfer/download.js';
export { uploadFile, type UploadExtraArgs, type UploadOptions } from './transfer/upload.js';
export type { CommonTransferOptions } from './transfer/transfer-context.js';
