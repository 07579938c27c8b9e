import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../../src/client.js';
import { sendS3 } from '../../src/engine/direct-send.js';
import { observeThrottling } from '../../src/engine/throttle.js';
import { type ReceivedRequest, type ScriptedEndpoint, type ScriptedHandler, startScriptedEndpoint } from '../helpers/scripted-endpoint.js';

// sendS3 sends GetObject, PutObject and UploadPart as one direct attempt (the client's signer,
// protocol and request handler, without the SDK's middleware pipeline), and everything else, and
// every retry, through client.send. A scripted endpoint on loopback records what arrives. The SDK
// marks every request it sends with `amz-sdk-invocation-id`; a direct attempt has none: that
// header tells which route a request took.
let handler: ScriptedHandler;
let scripted: ScriptedEndpoint;
let endpoint: string;
let requests: ReceivedRequest[];

beforeAll(async () => {
  scripted = await startScriptedEndpoint((req, res, body) => handler(req, res, body));
  endpoint = scripted.url;
  requests = scripted.requests;
});
afterAll(() => scripted.close());
afterEach(() => {
  requests.length = 0;
});

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };
const client = (options: Parameters<typeof createS3Client>[0] = {}) =>
  createS3Client({ endpoint, region: 'us-east-1', credentials, maxAttempts: 3, ...options });
/** For a request that must fail: an answer is a test failure. */
const noAnswer = (output: unknown): never => {
  throw new Error(`expected a failure, got an answer: ${JSON.stringify(output)}`);
};
const viaSdk = (r: ReceivedRequest) => r.headers['amz-sdk-invocation-id'] !== undefined;

const ok: ScriptedHandler = (req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-length': 5, etag: '"e"', 'last-modified': 'Tue, 24 Nov 2026 10:00:00 GMT', 'x-amz-meta-colour': 'blue' });
    return res.end('hello');
  }
  res.writeHead(200, { etag: '"put-etag"' });
  res.end();
};

function s3Error(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/xml', ...headers });
  res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>m</Message></Error>`);
}

async function text(output: GetObjectCommandOutput): Promise<string> {
  return Buffer.from(await output.Body!.transformToByteArray()).toString();
}

/**
 * The headers a request is signed with, and their values, but for those that change each time
 * (the SDK's invocation headers, the date).
 */
function signedHeaders(r: ReceivedRequest): Record<string, string | string[] | undefined> {
  const names = /SignedHeaders=([^,]+)/.exec(String(r.headers.authorization))![1]!.split(';');
  const kept = names.filter((n) => !n.startsWith('amz-sdk-') && n !== 'x-amz-date');
  return Object.fromEntries(kept.map((n) => [n, r.headers[n]]));
}

describe('the direct first attempt', () => {
  it('sends GetObject as the SDK would (same URL, same signed headers) and parses the answer the same way', async () => {
    handler = ok;
    const c = client();
    const input = { Bucket: 'bkt', Key: 'dir/a b+c%.txt', Range: 'bytes=0-4' };
    const direct = await sendS3<GetObjectCommandOutput>(c, new GetObjectCommand(input));
    const sdk = await c.send(new GetObjectCommand(input));
    expect(requests.map(viaSdk)).toEqual([false, true]);
    expect(requests[0]!.url).toBe(requests[1]!.url);
    expect(requests[0]!.url).toBe('/bkt/dir/a%20b%2Bc%25.txt?x-id=GetObject');
    expect(signedHeaders(requests[0]!)).toEqual(signedHeaders(requests[1]!));
    expect(await text(direct)).toBe('hello');
    await text(sdk);
    const fields = (o: GetObjectCommandOutput) => [o.ETag, o.ContentLength, o.LastModified?.toISOString(), o.Metadata];
    expect(fields(direct)).toEqual(fields(sdk));
    expect(fields(direct)).toEqual(['"e"', 5, '2026-11-24T10:00:00.000Z', { colour: 'blue' }]);
  });

  it('sends PutObject and UploadPart with the payload hash it is given, signed, and the same headers as the SDK', async () => {
    handler = ok;
    const c = client();
    const body = Buffer.from('some bytes');
    const sha256 = createHash('sha256').update(body).digest('hex');
    const put = { Bucket: 'bkt', Key: 'k', Body: body, ContentLength: body.length, ContentType: 'text/plain', Metadata: { a: '1' } };
    const output = await sendS3<{ ETag?: string }>(c, new PutObjectCommand(put), { payloadSha256: sha256 });
    await c.send(new PutObjectCommand(put));
    const part = { Bucket: 'bkt', Key: 'k', UploadId: 'u1', PartNumber: 3, Body: body, ContentLength: body.length };
    await sendS3(c, new UploadPartCommand(part), { payloadSha256: sha256 });
    await c.send(new UploadPartCommand(part));
    expect(output.ETag).toBe('"put-etag"');
    expect(requests.map(viaSdk)).toEqual([false, true, false, true]);
    expect(requests.every((r) => r.body.equals(body))).toBe(true);
    expect(requests[0]!.headers['x-amz-content-sha256']).toBe(sha256);
    expect(signedHeaders(requests[0]!)).toEqual(signedHeaders(requests[1]!));
    expect(requests[2]!.url).toBe('/bkt/k?partNumber=3&uploadId=u1&x-id=UploadPart');
    expect(requests[2]!.url).toBe(requests[3]!.url);
    expect(signedHeaders(requests[2]!)).toEqual(signedHeaders(requests[3]!));
  });

  it('sends HeadObject as the SDK would, and a 404 without a body is the same typed error', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': 1234, etag: '"abc-2"', 'x-amz-meta-s3xfer-part-size': '8388608' });
      res.end();
    };
    const c = client();
    const input = { Bucket: 'bkt', Key: 'k', PartNumber: 2, ChecksumMode: 'ENABLED' as const };
    const direct = await sendS3<HeadObjectCommandOutput>(c, new HeadObjectCommand(input));
    const sdk = await c.send(new HeadObjectCommand(input));
    expect(requests.map(viaSdk)).toEqual([false, true]);
    expect(requests[0]!.url).toBe(requests[1]!.url);
    expect(signedHeaders(requests[0]!)).toEqual(signedHeaders(requests[1]!));
    const fields = (o: HeadObjectCommandOutput) => [o.ContentLength, o.ETag, o.Metadata];
    expect(fields(direct)).toEqual(fields(sdk));
    expect(fields(direct)).toEqual([1234, '"abc-2"', { 's3xfer-part-size': '8388608' }]);
    handler = (_req, res) => {
      res.writeHead(404);
      res.end();
    };
    const directError = await sendS3(c, new HeadObjectCommand(input)).catch((e: unknown) => e);
    const sdkError = await c.send(new HeadObjectCommand(input)).catch((e: unknown) => e);
    expect(requests.slice(2).map(viaSdk)).toEqual([false, true]);
    expect((directError as Error).name).toBe((sdkError as Error).name);
    expect(directError).toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });

  it('carries the user agent the SDK would send, the app id of the client’s config included', async () => {
    handler = ok;
    const before = process.env.AWS_SDK_UA_APP_ID;
    process.env.AWS_SDK_UA_APP_ID = 'ci-pipeline-7';
    try {
      const c = client();
      await sendS3(c, new HeadObjectCommand({ Bucket: 'bkt', Key: 'k' }));
      await sendS3(c, new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'five!' }));
      await c.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    } finally {
      if (before === undefined) delete process.env.AWS_SDK_UA_APP_ID;
      else process.env.AWS_SDK_UA_APP_ID = before;
    }
    expect(requests.map(viaSdk)).toEqual([false, false, true]);
    // The same sections but the metrics of the features a request used (`m/…`: the SDK's retry loop).
    const agent = (r: ReceivedRequest) => String(r.headers['user-agent']).replace(/ m\/\S+/, '');
    expect(agent(requests[0]!)).toMatch(/^aws-sdk-js\/\S+ .* api\/s3#\S+ app\/ci-pipeline-7$/);
    expect(requests.map(agent)).toEqual([agent(requests[2]!), agent(requests[2]!), agent(requests[2]!)]);
    expect(requests.map((r) => r.headers['x-amz-user-agent'])).toEqual(Array(3).fill(requests[2]!.headers['x-amz-user-agent']));
  });

  it('in AWS Lambda, carries the invocation’s X-Amzn-Trace-Id as the SDK does, read per request', async () => {
    handler = ok;
    const names = ['AWS_LAMBDA_FUNCTION_NAME', '_X_AMZN_TRACE_ID'] as const;
    const before = names.map((name) => process.env[name]);
    const c = client();
    try {
      await sendS3(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
      process.env.AWS_LAMBDA_FUNCTION_NAME = 'resize-images';
      process.env._X_AMZN_TRACE_ID = 'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1';
      await sendS3(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
      await c.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
      process.env._X_AMZN_TRACE_ID = 'Root=1-00000000-000000000000000000000002;Sampled=0';
      await sendS3(c, new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'five!' }));
    } finally {
      names.forEach((name, i) => {
        if (before[i] === undefined) delete process.env[name];
        else process.env[name] = before[i];
      });
    }
    expect(requests.map(viaSdk)).toEqual([false, false, true, false]);
    expect(requests.map((r) => r.headers['x-amzn-trace-id'])).toEqual([
      undefined,
      'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1',
      'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1',
      'Root=1-00000000-000000000000000000000002;Sampled=0',
    ]);
  });

  it('gives a body of known length its Content-Length when the input has none, signed, as the SDK does', async () => {
    handler = ok;
    await sendS3(client(), new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'five!' }));
    expect(requests.map(viaSdk)).toEqual([false]);
    expect(signedHeaders(requests[0]!)['content-length']).toBe('5');
    expect(requests[0]!.headers['transfer-encoding']).toBeUndefined();
  });
});

describe('requests that go through the SDK instead', () => {
  it('when the command has input the SDK rewrites (SSE-C keys)', async () => {
    handler = ok;
    const key = Buffer.alloc(32, 1).toString('base64');
    await sendS3(client(), new GetObjectCommand({ Bucket: 'bkt', Key: 'k', SSECustomerAlgorithm: 'AES256', SSECustomerKey: key }));
    expect(requests.map(viaSdk)).toEqual([true]);
  });

  it('when flexible checksums are on', async () => {
    handler = ok;
    await sendS3(client({ flexibleChecksums: true }), new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(requests.map(viaSdk)).toEqual([true]);
  });

  it('when the client has middleware of its own, also added after its first request', async () => {
    handler = ok;
    const c = client();
    await sendS3(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    c.middlewareStack.add(
      (next) => (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-custom'] = 'yes';
        return next(args);
      },
      { step: 'build', name: 'customHeader' },
    );
    await sendS3(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(requests.map(viaSdk)).toEqual([false, true]);
    expect(requests[1]!.headers['x-custom']).toBe('yes');
  });

  it('when the client was not built by createS3Client', async () => {
    handler = ok;
    const own = new S3Client({ endpoint, region: 'us-east-1', credentials, forcePathStyle: true });
    await sendS3(own, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(requests.map(viaSdk)).toEqual([true]);
  });

  it('for other commands', async () => {
    handler = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    await sendS3(client(), new DeleteObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(requests.map(viaSdk)).toEqual([true]);
  });
});

describe('a failed direct attempt is the first of the request’s attempts', () => {
  it('a transient error (503) is retried by the SDK, within maxAttempts', async () => {
    handler = (_req, res) => s3Error(res, 503, 'SlowDown');
    const failure = await sendS3(client(), new GetObjectCommand({ Bucket: 'bkt', Key: 'k' })).catch((e: unknown) => e);
    expect((failure as Error).name).toBe('SlowDown');
    expect(requests.map(viaSdk)).toEqual([false, true, true]); // maxAttempts 3
  });

  it('a transient error followed by an answer: two requests, the answer returned', async () => {
    let calls = 0;
    handler = (req, res) => (++calls === 1 ? s3Error(res, 500, 'InternalError') : ok(req, res, Buffer.alloc(0)));
    const output = await sendS3<GetObjectCommandOutput>(client(), new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(await text(output)).toBe('hello');
    expect(requests.map(viaSdk)).toEqual([false, true]);
  });

  it('a broken connection is retried by the SDK', async () => {
    let calls = 0;
    handler = (req, res) => (++calls === 1 ? res.socket?.destroy() : ok(req, res, Buffer.alloc(0)));
    const output = await sendS3<GetObjectCommandOutput>(client(), new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(await text(output)).toBe('hello');
    expect(requests.map(viaSdk)).toEqual([false, true]);
  });

  it('a client error (404, 403) is thrown at once, typed as the SDK types it', async () => {
    handler = (_req, res) => s3Error(res, 404, 'NoSuchKey');
    const missing = await sendS3(client(), new GetObjectCommand({ Bucket: 'bkt', Key: 'k' })).catch((e: unknown) => e);
    expect(missing).toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    handler = (_req, res) => s3Error(res, 403, 'AccessDenied');
    const denied = await sendS3(client(), new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'x' })).catch((e: unknown) => e);
    expect(denied).toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    expect(requests.map(viaSdk)).toEqual([false, false]);
  });

  it('a redirect is left to the SDK, and that bucket’s requests go through the SDK from then on', async () => {
    handler = (_req, res) => s3Error(res, 301, 'PermanentRedirect', { 'x-amz-bucket-region': 'eu-west-1' });
    const c = client();
    await sendS3(c, new GetObjectCommand({ Bucket: 'moved', Key: 'k' })).catch(() => {});
    await sendS3(c, new GetObjectCommand({ Bucket: 'moved', Key: 'k' })).catch(() => {});
    handler = ok;
    await sendS3(c, new GetObjectCommand({ Bucket: 'other', Key: 'k' }));
    expect(requests.map((r) => [r.url.replace('?x-id=GetObject', ''), viaSdk(r)])).toEqual([
      ['/moved/k', false],
      ['/moved/k', true],
      ['/moved/k', true],
      ['/other/k', false],
    ]);
  });

  it('a 200 whose body is an S3 error is the 503 it is: retried, and thrown as the SDK throws it (PutObject, UploadPart)', {
    timeout: 20_000,
  }, async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>m</Message></Error>');
    };
    const c = client({ maxAttempts: 2 }); // one back-off each
    const part = { Bucket: 'bkt', Key: 'k', UploadId: 'u1', PartNumber: 1, Body: 'five!' };
    for (const command of [new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'five!' }), new UploadPartCommand(part)]) {
      requests.length = 0;
      const direct = await sendS3(c, command).then(noAnswer, (e: unknown) => e as Error & { $metadata: object });
      expect(requests.map(viaSdk)).toEqual([false, true]);
      const sdk = await c.send(command as PutObjectCommand).then(noAnswer, (e: unknown) => e as Error & { $metadata: object });
      expect(direct).toBeInstanceOf(Error);
      expect([direct.name, direct.$metadata]).toMatchObject([sdk.name, { httpStatusCode: 503, attempts: 2 }]);
    }
  });

  it('an Expires header that is not a date is kept as ExpiresString, as the SDK keeps it (GetObject, HeadObject)', async () => {
    handler = (req, res) => {
      res.writeHead(200, { 'content-length': 5, etag: '"e"', expires: 'when pigs fly' });
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    };
    const c = client();
    const get = await sendS3<GetObjectCommandOutput>(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(await text(get)).toBe('hello');
    const head = await sendS3<HeadObjectCommandOutput>(c, new HeadObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    const sdk = await c.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    expect(requests.map(viaSdk)).toEqual([false, false, true]);
    for (const output of [get, head, sdk]) expect([output.Expires, output.ExpiresString]).toEqual([undefined, 'when pigs fly']);
  });

  it('a transient error then one more that ends the attempts counts both in the error, as the SDK counts its own', async () => {
    handler = (_req, res) => s3Error(res, 503, 'SlowDown');
    const c = client({ maxAttempts: 2 });
    const direct = await sendS3(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' })).then(
      noAnswer,
      (e: unknown) => e as { $metadata: object },
    );
    expect(requests.map(viaSdk)).toEqual([false, true]);
    expect(direct.$metadata).toMatchObject({ httpStatusCode: 503, attempts: 2 });
  });

  it('a 2xx answer it cannot parse fails as the SDK fails, and frees its connection at once', { timeout: 15_000 }, async () => {
    const body = Buffer.alloc(4 * 1024 * 1024, 1); // more than the socket buffers: unread, it holds the connection
    handler = (req, res) => {
      if (!req.url?.startsWith('/bkt/bad')) return ok(req, res, Buffer.alloc(0));
      res.writeHead(200, { 'content-length': body.length, 'last-modified': 'not a date' });
      res.end(body);
    };
    const c = client({ maxSockets: 1 }); // one connection, idle timeout 60 s: a leaked one hangs the next request
    const direct = await sendS3(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'bad' })).then(noAnswer, (e: unknown) => e as Error);
    expect(direct.message).toBe('Invalid RFC7231 date-time value not a date.');
    expect(await text(await sendS3<GetObjectCommandOutput>(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'good' })))).toBe('hello');
    expect(requests.map(viaSdk)).toEqual([false, false]);
  });

  it('a request without credentials fails with the SDK’s error, and nothing is sent', async () => {
    handler = ok;
    const missing = Object.assign(new Error('no credentials here'), { name: 'CredentialsProviderError' });
    const c = createS3Client({ endpoint, region: 'us-east-1', credentials: () => Promise.reject(missing) });
    const direct = await sendS3(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' })).catch((e: unknown) => e);
    const sdk = await c.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'k' })).catch((e: unknown) => e);
    expect(direct).toBe(missing);
    expect(sdk).toBe(missing);
    expect(requests).toEqual([]);
  });

  it('a cancelled attempt is not retried', async () => {
    const controller = new AbortController();
    handler = () => controller.abort(); // never answers
    const failure = await sendS3(client(), new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }), { abortSignal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect((failure as Error).name).toBe('AbortError');
    expect(requests).toHaveLength(1);
  });

  it('a transfer cancelled while its retry waits sends nothing more', async () => {
    const controller = new AbortController();
    handler = (_req, res) => {
      s3Error(res, 503, 'SlowDown');
      setTimeout(() => controller.abort(), 20); // during the back-off before the SDK's retry
    };
    const failure = await sendS3(client(), new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }), { abortSignal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect((failure as Error).name).toBe('AbortError');
    expect(requests.map(viaSdk)).toEqual([false]);
  });

  it('the throttle observer sees direct attempts', async () => {
    let calls = 0;
    handler = (req, res) => (++calls === 1 ? s3Error(res, 503, 'SlowDown') : ok(req, res, Buffer.alloc(0)));
    const c = client();
    const seen: string[] = [];
    observeThrottling(c, { throttled: () => seen.push('throttled'), answered: () => seen.push('answered') } as never);
    await text(await sendS3<GetObjectCommandOutput>(c, new GetObjectCommand({ Bucket: 'bkt', Key: 'k' })));
    expect(requests.map(viaSdk)).toEqual([false, true]);
    expect(seen).toEqual(['throttled', 'answered']);
  });
});
