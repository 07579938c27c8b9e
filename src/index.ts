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
  type VerifyMode,
} from './config.js';
export { type RemoveOptions, type RemoveSummary, removeObjects } from './directory/remove-objects.js';
export { parseShard, type Shard } from './directory/shard.js';
export {
  copyTree,
  type DryRunCounts,
  type PlannedChange,
  type SkippedItem,
  type SyncTreeOptions,
  syncTree,
  type TreeEvents,
  type TreeOptions,
  type TreeSummary,
} from './directory/tree-jobs.js';
export type { ByteRange, PartPlan } from './engine/part-plan.js';
export { planParts } from './engine/part-plan.js';
export type { TransferOptions } from './engine/transfer-context.js';
export {
  type DownloadTransferOptions,
  type FailurePolicy,
  TransferManager,
  type TransferManagerOptions,
  type TransferSummary,
  type UploadTransferOptions,
} from './engine/transfer-manager.js';
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
export type { Direction, TransferInfo, TransferProgress, TransferResult, TransferSubscriber, VerificationMethod } from './events.js';
export { type DownloadOptions, downloadFile, type UploadOptions, uploadFile } from './file-transfers.js';
export { formatS3Url, type LocalLocation, type Location, parseLocation, parseS3Url, type S3Location } from './location.js';
export { type Environment, type ProxyOption, proxyForUrl, resolveCaBundle } from './network.js';
export * from './storage/index.js';
export type { DownloadExtraArgs, KnownObject } from './transfer/download.js';
export type { StreamDownloadOptions } from './transfer/stream-download.js';
export { planStreamUpload, type StreamUploadOptions, type StreamUploadPlan } from './transfer/stream-upload.js';
export { PART_SIZE_METADATA, type UploadExtraArgs, type UploadedPart } from './transfer/upload.js';
