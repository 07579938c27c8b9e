import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_SLICE_BYTES } from '../../src/engine/direct-send.js';
import { createS3Client, type TransferProgress, uploadFile } from '../../src/index.js';
import { MiB, randomFile, rm, tempDir } from '../helpers/files.js';
import { type ScriptedEndpoint, type ScriptedHandler, startScriptedEndpoint } from '../helpers/scripted-endpoint.js';

// A progress bar must move while a body is on its way, not only once the store answers (boto3's
// Callback reports bytes as they are read): on a slow link the first ten parts of 8 MiB take
// seconds. Bytes of an attempt that fails are taken back, so the total never runs past the size.

let scripted: ScriptedEndpoint;
let handler: ScriptedHandler;
let dir: string;
let file: string;
const SIZE = 12 * MiB;

beforeAll(async () => {
  scripted = await startScriptedEndpoint((req, res, body) => handler(req, res, body));
  dir = await tempDir();
  file = await randomFile(dir, 'twelve.bin', SIZE);
});
afterAll(async () => {
  await scripted.close();
  await rm(dir, { recursive: true, force: true });
});

const ok: ScriptedHandler = (_req, res, body) => {
  res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"`, 'content-length': 0 });
  res.end();
};

async function upload(): Promise<TransferProgress[]> {
  const seen: TransferProgress[] = [];
  const client = createS3Client({ endpoint: scripted.url, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  // One PutObject (below the 16 MiB threshold): before this change, one report at its end.
  await uploadFile(client, file, 'bkt', 'k', { onProgress: (p) => seen.push({ ...p }) });
  return seen;
}

describe('upload progress', () => {
  it('moves as the body is sent: a 12 MiB PutObject reports in 2 MiB slices, and ends at its size', async () => {
    handler = ok;
    const seen = await upload();
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(seen[0]!.bytesDone).toBe(BODY_SLICE_BYTES);
    expect(seen.at(-1)!.bytesDone).toBe(SIZE);
    for (const [i, p] of seen.entries()) expect(p.bytesDone).toBe(seen.slice(0, i + 1).reduce((sum, q) => sum + q.bytesDelta, 0));
  });

  it('takes back the bytes of an attempt that failed: never past the size, and at the size in the end', async () => {
    let attempts = 0;
    handler = (req, res, body) => {
      if (++attempts === 1) {
        res.writeHead(500, { 'content-type': 'application/xml' });
        return void res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message></Message></Error>');
      }
      ok(req, res, body);
    };
    const seen = await upload();
    expect(attempts).toBe(2);
    expect(seen.some((p) => p.bytesDelta < 0)).toBe(true);
    expect(Math.max(...seen.map((p) => p.bytesDone))).toBe(SIZE);
    expect(seen.at(-1)!.bytesDone).toBe(SIZE);
  });
});
