// What a tool verifies, found out rather than assumed: the tool talks to the server through a
// loopback proxy that flips one bit in the first request body (upload) or response body
// (download) big enough to hold it. A tool that verifies what it moved either fails or retries
// and ends with the right bytes; one that does not exits 0 with the wrong bytes.
// Used for s3xfer, whose code changes under the bench; the other tools' answers are fixed (tools.mjs).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { measure } from './measure.mjs';
import { VERIFIED } from './tools.mjs';
import { childEnv } from './util.mjs';

const MIN_BODY = 256; // bodies smaller than this are left alone (error XML, tiny requests)

/** A Transform that flips the lowest bit of byte `at` of the stream, then calls onFlip. */
function flipAt(at, onFlip) {
  let seen = 0;
  let done = false;
  return new Transform({
    transform(chunk, _encoding, callback) {
      if (!done && seen + chunk.length > at) {
        chunk = Buffer.from(chunk);
        chunk[at - seen] ^= 0x01;
        done = true;
        onFlip();
      }
      seen += chunk.length;
      callback(null, chunk);
    },
  });
}

/** A loopback HTTP proxy to `endpoint` that corrupts one body when armed. */
export async function startFaultProxy(endpoint) {
  const target = new URL(endpoint);
  const agent = new http.Agent({ keepAlive: true });
  const state = { armed: undefined, flip: undefined };
  const server = http.createServer((req, res) => {
    // Expect is not signed: drop it, so that the body is forwarded as it arrives (this server
    // has already answered 100 Continue to the client).
    const { expect: _expect, ...headers } = req.headers;
    const length = Number(req.headers['content-length'] ?? 0);
    const corruptRequest = state.armed === 'upload' && !state.flip && req.method === 'PUT' && length >= MIN_BODY;
    if (corruptRequest) state.flip = { method: req.method, url: req.url, headers: req.headers, flipped: false };
    const upstream = http.request(
      { host: target.hostname, port: target.port || 80, method: req.method, path: req.url, headers, agent },
      (response) => {
        const size = Number(response.headers['content-length'] ?? 0);
        const corruptResponse =
          state.armed === 'download' && !state.flip && req.method === 'GET' && [200, 206].includes(response.statusCode) && size >= MIN_BODY;
        if (corruptResponse) state.flip = { method: req.method, url: req.url, headers: req.headers, flipped: false };
        if (corruptRequest) {
          state.flip.status = response.statusCode;
          let text = '';
          response.on('data', (d) => {
            text = (text + d).slice(0, 2000);
          });
          response.on('end', () => {
            state.flip.errorCode = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
          });
        }
        res.writeHead(response.statusCode, response.headers);
        const body = corruptResponse ? response.pipe(flipAt(Math.min(100, size >> 1), () => (state.flip.flipped = true))) : response;
        body.pipe(res);
      },
    );
    upstream.on('error', (e) => res.destroy(e));
    res.on('close', () => upstream.destroy());
    const body = corruptRequest ? req.pipe(flipAt(Math.min(100, length >> 1), () => (state.flip.flipped = true))) : req;
    body.pipe(upstream);
  });
  await new Promise((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    arm(direction) {
      state.armed = direction;
      state.flip = undefined;
    },
    /** What was corrupted since arm(): { method, url, headers, flipped, status?, errorCode? }. */
    take() {
      const flip = state.flip;
      state.armed = undefined;
      state.flip = undefined;
      return flip;
    },
    close() {
      agent.destroy();
      server.closeAllConnections?.();
      return new Promise((r) => server.close(r));
    },
  };
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/**
 * Runs `tool` once per direction on a file of `size` random bytes through the proxy, with one
 * flipped bit, and says what caught it. `object` (for the download) is written by `seeder`.
 * Returns { upload: { verified, detail }, download: { verified, detail } }.
 */
export async function probeTool(tool, { proxy, admin, bucket, workDir, seeder, size, file, fileSha, key }) {
  // Not spawnSync: the proxy runs on this process's event loop.
  const run = async (direction, local) => {
    proxy.arm(direction);
    const m = await measure(tool.argv({ kind: 'file', direction, local, bucket, key, endpoint: proxy.endpoint }), tool.env, workDir);
    return { code: m.failed ? m.code : 0, output: (m.output ?? '').split('\n').pop(), flip: proxy.take() };
  };
  const result = {};

  // Upload: did the server refuse the corrupted body (and the tool fail, or retry correctly)?
  const up = await run('upload', file);
  const stored = await admin.get(bucket, key).catch(() => undefined);
  const storedOk = stored !== undefined && sha256(stored) === fileSha;
  if (!up.flip?.flipped) result.upload = { verified: undefined, detail: `nothing corrupted (exit ${up.code})` };
  else if (up.code === 0 && !storedOk) result.upload = { verified: VERIFIED.none, detail: 'exit 0, stored object corrupt' };
  else {
    // Name what the request carried: the server reports only the first check that failed.
    const md5 = 'content-md5' in up.flip.headers;
    const sha = /^[0-9a-f]{64}$/i.test(up.flip.headers['x-amz-content-sha256'] ?? '');
    const named = md5 && sha ? VERIFIED.serverBoth : md5 ? VERIFIED.serverMd5 : sha ? VERIFIED.serverSha : undefined;
    result.upload = {
      verified: named ?? `server (${up.flip.errorCode ?? up.flip.status})`,
      detail: `server answered ${up.flip.status} ${up.flip.errorCode ?? ''}; tool ${up.code === 0 ? 'retried, stored object correct' : `failed (exit ${up.code}): ${up.output}`}`,
    };
  }

  // Download: did the tool notice the corrupted response? The object is written by the seeder.
  const seed = seeder.argv({ kind: 'file', direction: 'upload', local: file, bucket, key });
  spawnSync(seed[0], seed.slice(1), { env: childEnv(seeder.env), cwd: workDir });
  const head = await admin.head(bucket, key);
  const copy = join(workDir, `probe-${tool.name}-${size}.bin`);
  const down = await run('download', copy);
  let copyOk = false;
  try {
    copyOk = sha256(readFileSync(copy)) === fileSha;
  } catch {}
  rmSync(copy, { force: true });
  if (!down.flip?.flipped) result.download = { verified: undefined, detail: `nothing corrupted (exit ${down.code})` };
  else if (down.code === 0 && !copyOk) result.download = { verified: VERIFIED.size, detail: 'exit 0, downloaded file corrupt' };
  else {
    const plain = /^"?[0-9a-f]{32}"?$/i.test(head.etag ?? '');
    result.download = {
      verified: plain ? VERIFIED.md5Etag : /-\d+"?$/.test(head.etag ?? '') ? VERIFIED.partsEtag : 'yes (digest)',
      detail: `tool ${down.code === 0 ? 'retried, file correct' : `failed (exit ${down.code}): ${down.output}`}`,
    };
  }
  await admin.empty(bucket, key);
  return result;
}
