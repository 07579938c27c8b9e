/**
 * End-to-end: the CLI on the networks CI has. A forward proxy on 127.0.0.1 (HTTP_PROXY, its
 * lower-case form, and NO_PROXY to bypass it), and an HTTPS endpoint on 127.0.0.1 whose certificate
 * a private CA made by the test signed: refused without the CA (exit 1, one line), accepted with
 * `--ca-bundle FILE`, with `AWS_CA_BUNDLE`, and with `--no-verify-ssl` (which warns). The servers
 * are test/helpers/network.ts's; both forward to the test Ceph only.
 */

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MiB, randomFile, sha256File } from '../helpers/files.js';
import { makeTestCertificates, startForwardProxy, startTlsTerminator, type TestCertificates, type TestServer } from '../helpers/network.js';
import { cliEnv, listKeys, s3Server } from '../helpers/s3.js';
import { expectExitCode, expectFailure, expectNoNoise } from './expect-cli.js';
import { type CliResult, closeCliWorkspace, describeResult, openCliWorkspace, runCli } from './run-cli.js';

let client: S3Client;
let bucket: string;
let work: string;
let certificates: TestCertificates;
let proxy: TestServer;
let tls: TestServer;

beforeAll(async () => {
  ({ client, bucket, work } = await openCliWorkspace('net'));
  await writeFile(join(work, 'small.txt'), 'through the network\n');
  await randomFile(work, 'twelve.bin', 12 * MiB);
  certificates = makeTestCertificates(work);
  proxy = await startForwardProxy();
  tls = await startTlsTerminator(s3Server().endpoint, certificates);
});

afterAll(async () => {
  await proxy?.close();
  await tls?.close();
  await closeCliWorkspace({ client, bucket, work });
});

beforeEach(() => {
  proxy.seen.length = 0;
  tls.seen.length = 0;
});

const s3xfer = (args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> =>
  runCli(args, { env: cliEnv(extraEnv), cwd: work });
const url = (key: string) => `s3://${bucket}/${key}`;
const endpoint = () => s3Server().endpoint; // http://127.0.0.1:7480

/** Exit 0 with a result line and nothing on stderr. */
function expectDone(result: CliResult): void {
  expectExitCode(result, 0);
  expect(result.stderr, describeResult(result)).toBe('');
  expect(result.stdout).toMatch(/^(upload|download): /);
}

describe('through a forward proxy on 127.0.0.1', () => {
  it('HTTP_PROXY: every request of an upload (in parts) and a download goes through the proxy', async () => {
    const env = { HTTP_PROXY: proxy.url };
    expectDone(await s3xfer(['cp', 'twelve.bin', url('proxy/twelve.bin'), '--part-size', '5MiB', '--multipart-threshold', '5MiB'], env));
    expectDone(await s3xfer(['cp', url('proxy/twelve.bin'), 'twelve.copy'], env));
    expect(await sha256File(join(work, 'twelve.copy'))).toBe(await sha256File(join(work, 'twelve.bin')));

    const base = `${endpoint()}/${bucket}/proxy/twelve.bin`;
    expect(proxy.seen.filter((line) => line.startsWith(`POST ${base}?uploads`))).toHaveLength(1);
    expect(proxy.seen.filter((line) => line.startsWith(`PUT ${base}?`) && line.includes('partNumber='))).toHaveLength(3);
    expect(proxy.seen.some((line) => line.startsWith(`GET ${base}`))).toBe(true);
    // Nothing bypassed it: every request line is an absolute URI to the endpoint.
    expect(
      proxy.seen.every((line) => line.split(' ')[1]!.startsWith(`${endpoint()}/`)),
      proxy.seen.join('\n'),
    ).toBe(true);
  });

  it('lower-case http_proxy works the same; ls and rm go through it too', async () => {
    const env = { http_proxy: proxy.url };
    expectDone(await s3xfer(['cp', 'small.txt', url('proxy/lower.txt')], env));
    const listed = await s3xfer(['ls', url('proxy/')], env);
    expectExitCode(listed, 0);
    expect(listed.stdout).toContain('lower.txt');
    expectExitCode(await s3xfer(['rm', url('proxy/lower.txt')], env), 0);
    // Request lines carry the SDK's query (`?x-id=PutObject`, the listing's parameters).
    const at = `${endpoint()}/${bucket}/`;
    expect(proxy.seen.map((line) => line.replace(/\?.*$/, ''))).toEqual([
      `PUT ${at}proxy/lower.txt`,
      `GET ${at}`,
      `DELETE ${at}proxy/lower.txt`,
    ]);
    expect(proxy.seen[1]).toContain('list-type=2');
  });

  it('NO_PROXY naming the endpoint bypasses the proxy: it sees nothing, the transfer works', async () => {
    expectDone(await s3xfer(['cp', 'small.txt', url('proxy/bypass.txt')], { HTTP_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' }));
    expect(proxy.seen).toEqual([]);
    expect(await listKeys(client, bucket)).toContain('proxy/bypass.txt');
  });

  it('HTTPS_PROXY alone does not apply to an http endpoint', async () => {
    expectDone(await s3xfer(['cp', 'small.txt', url('proxy/https-only.txt')], { HTTPS_PROXY: proxy.url }));
    expect(proxy.seen).toEqual([]);
  });
});

describe('an HTTPS endpoint on 127.0.0.1 signed by a private CA', () => {
  const tlsArgs = () => ['--endpoint-url', tls.url];

  it('without the CA: exit 1, one line that says the certificate could not be verified, nothing sent', async () => {
    const result = await s3xfer(['cp', 'small.txt', url('tls/refused.txt'), ...tlsArgs()]);
    expectFailure(result, 1, `${url('tls/refused.txt')}: unable to verify the first certificate`);
    expect(tls.seen).toEqual([]);
    expect(await listKeys(client, bucket)).not.toContain('tls/refused.txt');
  });

  it('with another CA as --ca-bundle: still refused (the bundle replaces the default roots)', async () => {
    expectFailure(
      await s3xfer(['cp', 'small.txt', url('tls/other.txt'), ...tlsArgs(), '--ca-bundle', certificates.otherCaFile]),
      1,
      /certificate/i,
    );
    expect(tls.seen).toEqual([]);
  });

  it('--ca-bundle FILE: uploads (in parts) and downloads', async () => {
    const ca = ['--ca-bundle', certificates.caFile];
    expectDone(
      await s3xfer([
        'cp',
        'twelve.bin',
        url('tls/twelve.bin'),
        ...tlsArgs(),
        ...ca,
        '--part-size',
        '5MiB',
        '--multipart-threshold',
        '5MiB',
      ]),
    );
    expectDone(await s3xfer(['cp', url('tls/twelve.bin'), 'tls-twelve.copy', ...tlsArgs(), ...ca]));
    expect(await sha256File(join(work, 'tls-twelve.copy'))).toBe(await sha256File(join(work, 'twelve.bin')));
    expect(tls.seen.filter((line) => /^PUT .*twelve\.bin\?.*partNumber=/.test(line))).toHaveLength(3);
  });

  it('AWS_CA_BUNDLE: the same without a flag, for ls too', async () => {
    const env = { AWS_CA_BUNDLE: certificates.caFile };
    expectDone(await s3xfer(['cp', 'small.txt', url('tls/env.txt'), ...tlsArgs()], env));
    const listed = await s3xfer(['ls', url('tls/'), ...tlsArgs()], env);
    expectExitCode(listed, 0);
    expect(listed.stdout).toContain('env.txt');
    expect(tls.seen.length).toBeGreaterThanOrEqual(2);
  });

  it('--no-verify-ssl: works, with a warning on stderr', async () => {
    const result = await s3xfer(['cp', 'small.txt', url('tls/no-verify.txt'), ...tlsArgs(), '--no-verify-ssl']);
    expectExitCode(result, 0);
    expect(result.stderr).toBe('s3xfer: warning: --no-verify-ssl: HTTPS certificates are not checked\n');
    expectNoNoise(result.stderr);
    expect(tls.seen.filter((line) => line.startsWith(`PUT /${bucket}/tls/no-verify.txt`))).toHaveLength(1);
  });

  it('through the proxy (HTTPS_PROXY) with the CA: a CONNECT tunnel, nothing in clear at the proxy', async () => {
    const env = { HTTPS_PROXY: proxy.url, AWS_CA_BUNDLE: certificates.caFile };
    expectDone(await s3xfer(['cp', 'small.txt', url('tls/tunnel.txt'), ...tlsArgs()], env));
    expect(proxy.seen).toEqual([`CONNECT 127.0.0.1:${new URL(tls.url).port}`]);
    expect(tls.seen.filter((line) => line.startsWith(`PUT /${bucket}/tls/tunnel.txt`))).toHaveLength(1);
  });
});
