import type { S3Client } from '@aws-sdk/client-s3';
import { UsageError } from '../errors.js';
import type { Location } from '../location.js';
import type { LocalListingEntry, S3ListingEntry } from './entries.js';
import { type ListLocalOptions, listLocal } from './local-listing.js';
import { type ListS3Options, listS3 } from './s3-listing.js';

/** Options of {@link listLocation}: those of `listLocal` and `listS3`, each used on its side. */
export interface ListLocationOptions extends ListLocalOptions, ListS3Options {
  /** The client for S3 locations. Required for them; unused for local ones. */
  client?: S3Client;
}

/**
 * Lists a local directory ({@link listLocal}) or everything under an S3 prefix ({@link listS3})
 * behind one call, so directory commands need not branch on where bytes live. Both yield
 * {@link StorageEntry} records in the same key order, relative to the location.
 * @throws {UsageError} (`NoClient`) for an S3 location without `client`; otherwise what the listing throws.
 */
export function listLocation(location: Location, options: ListLocationOptions = {}): AsyncGenerator<LocalListingEntry | S3ListingEntry> {
  if (location.kind === 'local') return listLocal(location.path, options);
  if (options.client === undefined) throw new UsageError('listing an S3 location needs an S3 client', 'NoClient');
  return listS3(options.client, location.bucket, location.key, options);
}
