// The S3 server (the local Ceph RGW of scripts/s3-server.sh, or S3_ENDPOINT) and the bench's own
// admin client for its bucket: create, list, check, empty, delete. Not timed.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { die, log } from './util.mjs';

export function connectServer(root) {
  const script = join(root, 'scripts', 's3-server.sh');
  if (process.env.S3_ENDPOINT) {
    const { S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } = process.env;
    if (!AWS_ACCESS_KEY_ID || !AWS_SECRET_ACCESS_KEY) die('S3_ENDPOINT is set: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be too');
    const url = new URL(S3_ENDPOINT);
    if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(url.hostname)) {
      log(`warning: S3_ENDPOINT ${S3_ENDPOINT} is not on loopback; the figures will include that network`);
    }
    const env = { S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION: process.env.AWS_REGION || 'us-east-1' };
    return { managed: false, env, gc() {} };
  }
  // `start` reuses a running cluster (it never restarts a healthy one) and prints its credentials.
  log('connecting to the local server: bash scripts/s3-server.sh start');
  const r = spawnSync('bash', [script, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) die(`scripts/s3-server.sh start failed (exit ${r.status})`);
  const env = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  for (const k of ['S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
    if (!env[k]) die(`scripts/s3-server.sh start printed no ${k}= line`);
  }
  env.AWS_REGION ||= 'us-east-1';
  return {
    managed: true,
    env,
    /** Reclaims the space of deleted objects now, so that one round's deletions do not slow the next. */
    gc() {
      const g = spawnSync('bash', [script, 'gc'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
      if (g.status !== 0) log(`warning: scripts/s3-server.sh gc failed: ${g.stderr.trim().split('\n').pop()}`);
    },
  };
}

export async function adminClient(env) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // the SDK's warning about Node 20
  const s3 = await import('@aws-sdk/client-s3');
  const client = new s3.S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const send = (Command, input) => client.send(new Command(input));
  const admin = {
    createBucket: (bucket) => send(s3.CreateBucketCommand, { Bucket: bucket }),
    /** Every object under `prefix`: [{ key, size }]. */
    async list(bucket, prefix) {
      const out = [];
      let token;
      do {
        const page = await send(s3.ListObjectsV2Command, { Bucket: bucket, Prefix: prefix, ContinuationToken: token });
        for (const o of page.Contents ?? []) out.push({ key: o.Key, size: o.Size });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    /** ETag, size and user metadata of one object. */
    async head(bucket, key) {
      const h = await send(s3.HeadObjectCommand, { Bucket: bucket, Key: key });
      return { etag: h.ETag, size: h.ContentLength, metadata: h.Metadata ?? {} };
    },
    /** The bytes of one (small) object. */
    async get(bucket, key) {
      const r = await send(s3.GetObjectCommand, { Bucket: bucket, Key: key });
      return Buffer.from(await r.Body.transformToByteArray());
    },
    /** Deletes every object under `prefix` and aborts its unfinished multipart uploads. */
    async empty(bucket, prefix = '') {
      for (;;) {
        const page = await send(s3.ListObjectsV2Command, { Bucket: bucket, Prefix: prefix || undefined });
        const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key }));
        if (keys.length === 0) break;
        await send(s3.DeleteObjectsCommand, { Bucket: bucket, Delete: { Objects: keys, Quiet: true } });
      }
      const uploads = await send(s3.ListMultipartUploadsCommand, { Bucket: bucket, Prefix: prefix || undefined });
      for (const u of uploads.Uploads ?? []) {
        await send(s3.AbortMultipartUploadCommand, { Bucket: bucket, Key: u.Key, UploadId: u.UploadId }).catch(() => {});
      }
    },
    async deleteBucket(bucket) {
      await admin.empty(bucket);
      await send(s3.DeleteBucketCommand, { Bucket: bucket });
    },
    destroy: () => client.destroy(),
  };
  return admin;
}
