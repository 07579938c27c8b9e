#!/usr/bin/env node
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// The end-to-end demo: start the local S3 server (Ceph RGW), create a bucket, upload a generated
// 256 MiB file with the s3xfer CLI (progress shown), download it again, and verify the bytes.
// Run it with `npm run demo` (which builds first). DEMO_SIZE=64MiB changes the size.
import { CreateBucketCommand } from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { createS3Client, parseSize, formatBytes } = await import('../dist/index.js');
const size = parseSize(process.env.DEMO_SIZE ?? '256MiB');

const step = (text) => console.log(`\n▶ ${text}`);

step('starting the local S3 server (Ceph RADOS Gateway on 127.0.0.1; installs it on first use)');
const serverEnv = Object.fromEntries(
  execFileSync('bash', [join(root, 'scripts/s3-server.sh'), 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .map((line) => line.split(/=(.*)/s).slice(0, 2)),
);
const env = {
  ...process.env,
  AWS_ENDPOINT_URL: serverEnv.S3_ENDPOINT,
  AWS_ACCESS_KEY_ID: serverEnv.AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY: serverEnv.AWS_SECRET_ACCESS_KEY,
  AWS_REGION: serverEnv.AWS_REGION,
};
console.log(`  endpoint ${serverEnv.S3_ENDPOINT}`);

const bucket = 's3xfer-demo';
step(`creating bucket ${bucket}`);
const client = createS3Client({
  endpoint: env.AWS_ENDPOINT_URL,
  region: env.AWS_REGION,
  credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
});
await client.send(new CreateBucketCommand({ Bucket: bucket })).catch((error) => {
  if (error.name !== 'BucketAlreadyOwnedByYou' && error.name !== 'BucketAlreadyExists') throw error;
});

const dir = await mkdtemp(join(tmpdir(), 's3xfer-demo-'));
try {
  const source = join(dir, 'demo.bin');
  step(`generating ${formatBytes(size)} of random data in ${source}`);
  const handle = await open(source, 'w');
  for (let written = 0; written < size; written += 1024 * 1024) {
    await handle.write(randomBytes(Math.min(1024 * 1024, size - written)));
  }
  await handle.close();

  const cli = (...args) => {
    console.log(`  $ s3xfer ${args.join(' ')}`);
    const run = spawnSync(process.execPath, [join(root, 'bin/s3xfer.js'), ...args], { env, stdio: 'inherit' });
    if (run.status !== 0) throw new Error(`s3xfer ${args[0]} exited with ${run.status ?? run.signal}`);
  };
  step('uploading with the CLI');
  cli('cp', source, `s3://${bucket}/demo/demo.bin`);
  const copy = join(dir, 'demo-downloaded.bin');
  step('downloading it again');
  cli('cp', `s3://${bucket}/demo/demo.bin`, copy);

  step('verifying');
  const [a, b] = await Promise.all([sha256(source), sha256(copy)]);
  console.log(`  sha256 uploaded   ${a}\n  sha256 downloaded ${b}`);
  if (a !== b) throw new Error('the downloaded file differs from the uploaded one');
  console.log('\n✔ demo passed: the round trip is byte-for-byte identical');
} finally {
  await rm(dir, { recursive: true, force: true });
}

async function sha256(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}
