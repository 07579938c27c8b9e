import { describe, expect, it } from 'vitest';
import type { Shard, TransferResult, TreeOptions, VerificationMethod, VerifyMode } from '../../src/index.js';
import * as s3xfer from '../../src/index.js';

// The package's entry point gives a user every name its documented fields need: these lines only
// type-check (npm run lint) while the types are exported.
describe("the library's exports", () => {
  it('the types of documented fields: TransferResult.verified, TransferConfig.verify, TreeOptions.shard', () => {
    const verified: TransferResult['verified'] = 'multipart-etag' satisfies VerificationMethod;
    const verify: VerifyMode = 'require';
    const shard: Shard = s3xfer.parseShard('2/4');
    const options: TreeOptions = { shard };
    expect([verified, verify, options.shard]).toEqual(['multipart-etag', 'require', { index: 1, count: 4 }]);
  });

  it('the functions and classes the README names', () => {
    for (const name of [
      'createS3Client',
      'uploadFile',
      'downloadFile',
      'TransferManager',
      'copyTree',
      'syncTree',
      'removeObjects',
      'listS3',
      'listLocal',
      'parseShard',
      'parseSize',
      'S3xferError',
      'UsageError',
      'LocalFileError',
      'S3ServiceError',
      'NetworkError',
      'CredentialsError',
      'IntegrityError',
      'TransferAbortedError',
    ]) {
      expect(typeof (s3xfer as Record<string, unknown>)[name], name).toBe('function');
    }
  });
});
