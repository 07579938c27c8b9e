/**
 * The storage model under the directory commands (`cp --recursive`, `sync`, `ls`, `rm`): one
 * listing record for local files and S3 objects, listings in S3 key order on both sides, batch
 * deletes, key safety for downloads, aws-CLI filters and the sync comparison.
 */
export { type DeleteFailure, type DeleteObjectsOptions, type DeleteResult, deleteObjects, MAX_DELETE_BATCH } from './delete-objects.js';
export type {
  LocalEntryInfo,
  LocalListingEntry,
  PrefixEntry,
  S3EntryInfo,
  S3ListingEntry,
  SkipCode,
  SkippedEntry,
  StorageEntry,
} from './entries.js';
export { createFilter, type FilterRule, type PathFilter } from './filters.js';
export {
  compareKeys,
  createPrefixConflictDetector,
  isTempFileName,
  type LocalPathOptions,
  type LocalPathResult,
  localPathForKey,
  TEMP_FILE_SUFFIX,
  tempFileName,
} from './keys.js';
export { type ListLocationOptions, listLocation } from './list-location.js';
export { type ListLocalOptions, listLocal } from './local-listing.js';
export { type BucketEntry, type ListBucketsOptions, type ListS3Options, listBuckets, listS3 } from './s3-listing.js';
export {
  type CompareOptions,
  compareListings,
  type SyncDecision,
  type SyncDirection,
  type SyncMode,
  type SyncReason,
} from './sync-compare.js';
