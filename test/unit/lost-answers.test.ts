import { rm } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { uploadFile } from '../../src/index.js';
import { expectedMultipartEtag, selectStrayUploads } from '../../src/transfer/upload.js';
import { MiB, randomFile, tempDir } from '../helpers/files.js';

// Lost answers on a mocked store. The integration tests (test/integration/lost-answers.test.ts)
// run these paths against Ceph, whose part ETags are MD5s; the weaker proof for other part ETags
// (SSE-KMS, SSE-C) and the corners of the stray filter only a mocked store can show.

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const s3 = mockClient(client);
let dir: string;
let large: string;

beforeAll(async () => {
  dir = await tempDir();
  large = await randomFile(dir, 'big.bin', 20 * MiB + 5);
});
afterAll(() => rm(dir, { recursive: true, force: true }));
beforeEach(() => s3.reset());

/** A store that takes the three parts (ETags that are not MD5s) of the 20 MiB file. */
function mockMultipartSuccess() {
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'up-1' });
  s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }));
}

describe('uploadFile after a lost answer', () => {
  const gone = () => Object.assign(new Error(''), { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404, attempts: 2 } });

  it('accepts an object whose Complete retry met NoSuchUpload, when part ETags are not MD5s: same size, newer than the Create, upload gone', async () => {
    mockMultipartSuccess(); // part ETags "etag-N": not MD5s
    s3.on(CompleteMultipartUploadCommand).rejects(gone());
    s3.on(HeadObjectCommand).resolves({ ETag: '"kms-3"', ContentLength: 20 * MiB + 5, LastModified: new Date() });
    s3.on(ListMultipartUploadsCommand).resolves({ Uploads: [{ Key: 'big.bin.other', UploadId: 'up-1', Initiated: new Date() }] });
    s3.on(AbortMultipartUploadCommand).resolves({});

    const result = await uploadFile(client, large, 'bkt', 'big.bin');

    expect(result.etag).toBe('"kms-3"');
    expect(s3.commandCalls(ListMultipartUploadsCommand)[0]!.args[0].input).toMatchObject({ Bucket: 'bkt', Prefix: 'big.bin' });
    expect(s3.commandCalls(AbortMultipartUploadCommand)).toHaveLength(0);
  });

  it.each([
    ['our upload is still open', { Uploads: [{ Key: 'big.bin', UploadId: 'up-1', Initiated: new Date() }] }, new Date()],
    ['the object is older than our Create', { Uploads: [] }, new Date(Date.now() - 60_000)],
  ])('refuses it when %s, and aborts the upload', async (_, listing, lastModified) => {
    mockMultipartSuccess();
    s3.on(CompleteMultipartUploadCommand).rejects(gone());
    s3.on(HeadObjectCommand).resolves({ ETag: '"kms-3"', ContentLength: 20 * MiB + 5, LastModified: lastModified });
    s3.on(ListMultipartUploadsCommand).resolves(listing);
    s3.on(AbortMultipartUploadCommand).resolves({});

    await expect(uploadFile(client, large, 'bkt', 'big.bin')).rejects.toMatchObject({ code: 'NoSuchUpload' });
    expect(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input.UploadId)).toEqual(['up-1']);
  });

  it('does not look for the object after a first-attempt refusal of Complete', async () => {
    mockMultipartSuccess();
    s3.on(CompleteMultipartUploadCommand).rejects(
      Object.assign(new Error(''), { name: 'InvalidPart', $metadata: { httpStatusCode: 400, attempts: 1 } }),
    );
    s3.on(AbortMultipartUploadCommand).resolves({});
    await expect(uploadFile(client, large, 'bkt', 'big.bin')).rejects.toMatchObject({ code: 'InvalidPart' });
    expect(s3.commandCalls(HeadObjectCommand)).toHaveLength(0);
  });

  it('computes the multipart ETag from MD5 part ETags only', () => {
    // The ETag Ceph gave "hello" uploaded as one part.
    expect(expectedMultipartEtag([{ etag: '"5d41402abc4b2a76b9719d911017c592"' }])).toBe('62109206880d38a4010a98e11243924a-1');
    expect(expectedMultipartEtag([{ etag: '"etag-1"' }])).toBeUndefined();
    expect(expectedMultipartEtag([{ etag: '"5d41402abc4b2a76b9719d911017c592"' }], { ServerSideEncryption: 'aws:kms' })).toBeUndefined();
    expect(expectedMultipartEtag([{ etag: '"5d41402abc4b2a76b9719d911017c592"' }], { SSECustomerAlgorithm: 'AES256' })).toBeUndefined();
  });

  it('takes for strays only other uploads of exactly the key, by the same initiator, initiated within the window', () => {
    const at = (ms: number) => new Date(1_000_000 + ms);
    const me = { ID: 'me' };
    const uploads = [
      { Key: 'k', UploadId: 'stray', Initiated: at(500), Initiator: me },
      { Key: 'k', UploadId: 'ours', Initiated: at(900), Initiator: me },
      { Key: 'k', UploadId: 'before', Initiated: at(-1), Initiator: me },
      { Key: 'k', UploadId: 'after', Initiated: at(901), Initiator: me },
      { Key: 'k2', UploadId: 'longer-key', Initiated: at(500), Initiator: me },
      { Key: 'k', UploadId: 'someone-else', Initiated: at(500), Initiator: { ID: 'other' } },
      { Key: 'k', UploadId: 'no-time', Initiator: me },
    ];
    const filter = { key: 'k', earliest: at(0).getTime(), latest: at(900).getTime(), ownUploadId: 'ours', initiatorId: 'me' };
    expect(selectStrayUploads(uploads, filter).map((u) => u.UploadId)).toEqual(['stray']);
  });
});
