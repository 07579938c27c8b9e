import type { S3Client } from '@aws-sdk/client-s3';
import type { TransferConfig } from '../../config.js';
import { UsageError } from '../../errors.js';
import type { TransferResult, TransferSubscriber } from '../../events.js';
import { type Location, parseLocation, uploadKey } from '../../location.js';
import type { UploadExtraArgs } from '../../transfer/upload.js';

/** What a transfer command needs from the CLI around it. */
export interface TransferCommandContext {
  client: () => Promise<S3Client>;
  config: Partial<TransferConfig>;
  extraArgs: UploadExtraArgs;
  /** The upload-only flags given (`--content-type`, …), refused on downloads. */
  uploadFlags: string[];
  subscriber: TransferSubscriber;
  abortSignal: AbortSignal;
}

/** Which way a command may move bytes: `cp` decides from its operands. */
export type Expected = 'upload' | 'download' | 'either';

/**
 * `cp SRC DST`, `upload FILE s3://…`, `download s3://… [FILE]`: works out the direction from
 * which operand is an `s3://` URL and runs one transfer.
 */
export async function runTransfer(
  source: string,
  destination: string,
  expected: Expected,
  context: TransferCommandContext,
): Promise<TransferResult> {
  // yargs turns a lone "-" into "": both mean no file name here.
  if ([source, destination].some((operand) => operand === '' || operand === '-')) {
    throw new UsageError('no file name given: streaming through stdin/stdout ("-") is not supported yet', 'Unsupported');
  }
  const from = parseLocation(source);
  const to = parseLocation(destination);
  const direction = directionOf(from, to, source, destination);
  if (expected !== 'either' && expected !== direction) {
    throw new UsageError(
      expected === 'upload'
        ? `upload takes a local FILE and an s3://bucket/key destination (got "${source}" "${destination}")`
        : `download takes an s3://bucket/key source and a local FILE (got "${source}" "${destination}")`,
      'WrongDirection',
    );
  }
  if (direction === 'download' && context.uploadFlags.length > 0) {
    throw new UsageError(`${context.uploadFlags.join(', ')}: object settings apply to uploads only`, 'UploadOnlyFlag');
  }
  const { uploadFile, downloadFile } = await import('../../index.js');
  const common = { config: context.config, subscribers: [context.subscriber], abortSignal: context.abortSignal };
  if (from.kind === 'local' && to.kind === 's3') {
    return uploadFile(await context.client(), from.path, to.bucket, uploadKey(to, from.path), { ...common, extraArgs: context.extraArgs });
  }
  if (from.kind === 's3' && to.kind === 'local') {
    return downloadFile(await context.client(), from.bucket, from.key, to.path, common);
  }
  throw new Error('unreachable');
}

function directionOf(from: Location, to: Location, source: string, destination: string): 'upload' | 'download' {
  if (from.kind === 'local' && to.kind === 's3') return 'upload';
  if (from.kind === 's3' && to.kind === 'local') return 'download';
  if (from.kind === 's3')
    throw new UsageError(`copying from S3 to S3 ("${source}" → "${destination}") is not supported yet`, 'Unsupported');
  throw new UsageError(`one of "${source}" and "${destination}" must be an s3://bucket/key URL`, 'NoS3Url');
}
