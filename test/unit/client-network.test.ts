import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetRequestHandler } from '../../src/get-handler.js';
import { CredentialsError, createS3Client, UsageError } from '../../src/index.js';
import { assertProfileExists, type ProxyOption, proxyForUrl, resolveCaBundle } from '../../src/network.js';
import { ProxyRoutingHandler } from '../../src/proxy-handler.js';
import { rm, tempDir } from '../helpers/files.js';
import { makeTestCertificates } from '../helpers/network.js';

const PROXY = 'http://proxy.corp:3128/';

describe('which proxy a request URL goes through', () => {
  const env = (vars: Record<string, string>): ProxyOption => ({ env: vars });

  it('HTTPS_PROXY serves https URLs, HTTP_PROXY http URLs', () => {
    const proxy = env({ HTTPS_PROXY: 'http://secure.corp:3128', HTTP_PROXY: 'http://plain.corp:3128' });
    expect(proxyForUrl('https://bucket.s3.eu-west-1.amazonaws.com/key', proxy)).toBe('http://secure.corp:3128/');
    expect(proxyForUrl('http://127.0.0.1:7480/bucket', proxy)).toBe('http://plain.corp:3128/');
    expect(proxyForUrl('http://127.0.0.1:7480/bucket', env({ HTTPS_PROXY: PROXY }))).toBeUndefined();
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ HTTP_PROXY: PROXY }))).toBeUndefined();
  });

  it('lower-case variables work and win over upper-case ones; an empty lower-case one turns the proxy off', () => {
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ https_proxy: PROXY }))).toBe(PROXY);
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' }))).toBe(
      'http://lower:1/',
    );
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ https_proxy: '', HTTPS_PROXY: 'http://upper:2' }))).toBeUndefined();
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ HTTPS_PROXY: PROXY, no_proxy: 's3.amazonaws.com' }))).toBeUndefined();
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ HTTPS_PROXY: PROXY, no_proxy: '', NO_PROXY: '*' }))).toBe(PROXY);
  });

  it('a proxy without a scheme is http:// (as botocore); https:// proxies and credentials are kept', () => {
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ HTTPS_PROXY: 'proxy.corp:3128' }))).toBe(PROXY);
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ HTTPS_PROXY: 'https://proxy.corp' }))).toBe('https://proxy.corp/');
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ HTTPS_PROXY: 'http://me:s%40cret@proxy.corp:3128' }))).toBe(
      'http://me:s%40cret@proxy.corp:3128/',
    );
  });

  it('ALL_PROXY is not used (nor by the aws CLI)', () => {
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ ALL_PROXY: PROXY, all_proxy: PROXY }))).toBeUndefined();
  });

  describe('NO_PROXY', () => {
    const bypassed = (url: string, noProxy: string) =>
      proxyForUrl(url, env({ HTTPS_PROXY: PROXY, HTTP_PROXY: PROXY, NO_PROXY: noProxy })) === undefined;

    it('a domain matches itself and every subdomain (virtual-hosted buckets), with or without a leading . or *.', () => {
      for (const entry of ['amazonaws.com', '.amazonaws.com', '*.amazonaws.com', 'AMAZONAWS.COM']) {
        expect(bypassed('https://my-bucket.s3.eu-west-1.amazonaws.com/key', entry)).toBe(true);
        expect(bypassed('https://s3.amazonaws.com/bucket/key', entry)).toBe(true);
        expect(bypassed('https://amazonaws.com/', entry)).toBe(true);
        expect(bypassed('https://notamazonaws.com/', entry)).toBe(false);
        expect(bypassed('https://amazonaws.com.evil.example/', entry)).toBe(false);
      }
      expect(bypassed('https://s3.amazonaws.com/', 's3.eu-west-1.amazonaws.com')).toBe(false);
      expect(bypassed('https://Bucket.S3.AmazonAWS.com./', 'amazonaws.com')).toBe(true);
    });

    it('lists split on commas and spaces, blanks ignored', () => {
      const list = ' localhost , example.org  internal.corp,,';
      expect(bypassed('https://s3.internal.corp/', list)).toBe(true);
      expect(bypassed('https://example.org/', list)).toBe(true);
      expect(bypassed('http://localhost:9000/', list)).toBe(true);
      expect(bypassed('https://s3.amazonaws.com/', list)).toBe(false);
    });

    it('an entry with a port matches that port only; default ports count', () => {
      expect(bypassed('https://minio.corp:9000/', 'minio.corp:9000')).toBe(true);
      expect(bypassed('https://minio.corp/', 'minio.corp:9000')).toBe(false);
      expect(bypassed('https://minio.corp:9001/', 'minio.corp:9000')).toBe(false);
      expect(bypassed('https://minio.corp/', 'minio.corp:443')).toBe(true);
      expect(bypassed('http://minio.corp/', 'minio.corp:80')).toBe(true);
      expect(bypassed('https://minio.corp/', 'minio.corp:80')).toBe(false);
      expect(bypassed('https://bucket.minio.corp:9000/', '.minio.corp:9000')).toBe(true);
    });

    it('IP addresses match exactly, CIDR blocks by range, never as name suffixes', () => {
      expect(bypassed('http://127.0.0.1:7480/', '127.0.0.1')).toBe(true);
      expect(bypassed('http://127.0.0.10:7480/', '127.0.0.1')).toBe(false);
      expect(bypassed('http://127.0.0.1:7480/', '127.0.0.1:7480')).toBe(true);
      expect(bypassed('http://127.0.0.1:7481/', '127.0.0.1:7480')).toBe(false);
      expect(bypassed('https://10.20.30.40/', '10.0.0.0/8')).toBe(true);
      expect(bypassed('https://11.0.0.1/', '10.0.0.0/8')).toBe(false);
      expect(bypassed('https://ten.corp/', '10.0.0.0/8')).toBe(false);
      expect(bypassed('https://1.10.0.0.1.nip.example/', '10.0.0.1')).toBe(false);
    });

    it('IPv6 addresses and blocks, bracketed or not', () => {
      expect(bypassed('http://[::1]:7480/', '::1')).toBe(true);
      expect(bypassed('http://[::1]:7480/', '[::1]')).toBe(true);
      expect(bypassed('http://[::1]:7480/', '[::1]:7480')).toBe(true);
      expect(bypassed('http://[::1]:7481/', '[::1]:7480')).toBe(false);
      expect(bypassed('https://[fd00::12]/', 'fd00::/8')).toBe(true);
      expect(bypassed('https://[fe80::1]/', 'fd00::/8')).toBe(false);
    });

    it('* alone, anywhere in the list, bypasses every proxy', () => {
      expect(bypassed('https://s3.amazonaws.com/', '*')).toBe(true);
      expect(bypassed('https://s3.amazonaws.com/', 'localhost, *')).toBe(true);
    });

    it('malformed entries are skipped, not fatal', () => {
      expect(bypassed('https://s3.amazonaws.com/', 'http://x/y, 10.0.0.0/99, a:b:c, s3.amazonaws.com')).toBe(true);
      expect(bypassed('https://s3.amazonaws.com/', 'http://x/y, 10.0.0.0/99')).toBe(false);
    });
  });

  it('{ url, noProxy } names one proxy for http and https alike', () => {
    const proxy: ProxyOption = { url: 'http://proxy.corp:3128', noProxy: '.internal' };
    expect(proxyForUrl('https://s3.amazonaws.com/', proxy)).toBe(PROXY);
    expect(proxyForUrl('http://127.0.0.1:7480/', proxy)).toBe(PROXY);
    expect(proxyForUrl('http://s3.internal/', proxy)).toBeUndefined();
  });

  it('no option, false, or no proxy variable: direct', () => {
    expect(proxyForUrl('https://s3.amazonaws.com/', undefined)).toBeUndefined();
    expect(proxyForUrl('https://s3.amazonaws.com/', false)).toBeUndefined();
    expect(proxyForUrl('https://s3.amazonaws.com/', env({ NO_PROXY: 'x', PATH: '/bin' }))).toBeUndefined();
  });
});

describe('createS3Client network options', () => {
  it('without a proxy that could apply, the SDK handler itself under the GETs (no routing layer, no proxy code)', () => {
    const inner = (client: ReturnType<typeof createS3Client>) => (client.config.requestHandler as unknown as GetRequestHandler).inner;
    for (const proxy of [undefined, false, { env: {} }, { env: { NO_PROXY: '*' } }] as const) {
      expect(createS3Client({ proxy }).config.requestHandler).toBeInstanceOf(GetRequestHandler);
      expect(inner(createS3Client({ proxy }))).toBeInstanceOf(NodeHttpHandler);
    }
    expect(inner(createS3Client({ proxy: { env: { HTTPS_PROXY: PROXY } } }))).toBeInstanceOf(ProxyRoutingHandler);
  });

  it('rejects malformed or unsupported proxies, naming the variable', () => {
    const fails = (proxy: ProxyOption) => () => createS3Client({ proxy });
    expect(fails({ env: { HTTPS_PROXY: 'socks5://127.0.0.1:1080' } })).toThrow(
      new UsageError('unsupported proxy scheme "socks5:" in HTTPS_PROXY: only http:// and https:// proxies are supported', 'InvalidProxy'),
    );
    expect(fails({ env: { http_proxy: 'http://[bad' } })).toThrow(/invalid proxy URL in http_proxy/);
    expect(fails({ url: 'http://:3128' })).toThrow(/invalid proxy URL in proxy\.url/);
    expect(fails({ url: '' })).toThrow(UsageError);
    expect(fails({} as ProxyOption)).toThrow(/invalid proxy option/);
  });

  it('never puts proxy credentials in a message', () => {
    expect(() => createS3Client({ proxy: { env: { HTTPS_PROXY: 'ftp://me:secret@proxy' } } })).toThrow(/^(?!.*secret)/);
  });

  describe('CA bundle', () => {
    let dir: string;
    let caFile: string;
    beforeAll(async () => {
      dir = await tempDir();
      caFile = makeTestCertificates(dir).caFile;
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it('accepts a PEM file, and verifySsl: false', () => {
      expect(() => createS3Client({ endpoint: 'https://127.0.0.1:8443', caBundle: caFile })).not.toThrow();
      expect(() => createS3Client({ endpoint: 'https://127.0.0.1:8443', verifySsl: false })).not.toThrow();
    });

    it('a missing bundle, or a directory, is a UsageError naming the file', () => {
      const missing = join(dir, 'missing.pem');
      const thrown = (caBundle: string) => {
        try {
          createS3Client({ caBundle });
        } catch (error) {
          return error;
        }
      };
      expect(thrown(missing)).toBeInstanceOf(UsageError);
      expect(thrown(missing)).toMatchObject({ message: `cannot read CA bundle ${missing}: no such file`, code: 'ENOENT', source: missing });
      expect(thrown(dir)).toMatchObject({ message: `cannot read CA bundle ${dir}: is a directory`, code: 'EISDIR' });
    });

    it('a file without a valid PEM certificate is refused now, not at the first request', async () => {
      const text = join(dir, 'not-pem.txt');
      await writeFile(text, 'hello\n');
      expect(() => createS3Client({ caBundle: text })).toThrow(`CA bundle ${text} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
      const broken = join(dir, 'broken.pem');
      const pem = await readFile(caFile, 'utf8');
      await writeFile(broken, `${pem}-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n`);
      expect(() => createS3Client({ caBundle: broken })).toThrow(`CA bundle ${broken}: certificate 2 is not valid PEM`);
    });
  });
});

describe('resolveCaBundle: the CA bundle the aws CLI would use', () => {
  let dir: string;
  let config: string;
  let n = 0;
  beforeAll(async () => {
    dir = await tempDir();
    await mkdir(join(dir, 'home'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** A fresh config file each time: the SDK's loader caches files by path. */
  async function files(configText: string, credentialsText = ''): Promise<Record<string, string>> {
    n++;
    config = join(dir, `config-${n}`);
    const credentials = join(dir, `credentials-${n}`);
    await writeFile(config, configText);
    await writeFile(credentials, credentialsText);
    return { AWS_CONFIG_FILE: config, AWS_SHARED_CREDENTIALS_FILE: credentials, HOME: join(dir, 'home') };
  }

  const CONFIG =
    '[default]\nca_bundle = /etc/corp/default.pem\n\n[profile work]\nca_bundle = ~/certs/work.pem\nregion = eu-west-1\n\n[profile none]\nregion = us-east-1\n';

  it("the profile's ca_bundle: default, AWS_PROFILE, or the one named; ~/ is the home directory", async () => {
    const env = await files(CONFIG);
    expect(await resolveCaBundle({ env })).toBe('/etc/corp/default.pem');
    expect(await resolveCaBundle({ env: { ...env, AWS_PROFILE: 'work' } })).toBe(join(dir, 'home', 'certs', 'work.pem'));
    expect(await resolveCaBundle({ profile: 'work', env: { ...env, AWS_PROFILE: 'none' } })).toBe(join(dir, 'home', 'certs', 'work.pem'));
    expect(await resolveCaBundle({ profile: 'none', env })).toBeUndefined();
    expect(await resolveCaBundle({ profile: 'unknown', env })).toBeUndefined();
  });

  it('AWS_CA_BUNDLE wins over the profile', async () => {
    const env = await files(CONFIG);
    expect(await resolveCaBundle({ profile: 'work', env: { ...env, AWS_CA_BUNDLE: '/tmp/env.pem' } })).toBe('/tmp/env.pem');
    expect(await resolveCaBundle({ env: { ...env, AWS_CA_BUNDLE: '' } })).toBe('/etc/corp/default.pem');
  });

  it('the credentials file overrides the config file, as in botocore', async () => {
    const env = await files(CONFIG, '[work]\nca_bundle = /etc/corp/from-credentials.pem\n');
    expect(await resolveCaBundle({ profile: 'work', env })).toBe('/etc/corp/from-credentials.pem');
  });

  it('a profile named on purpose must exist in one of the files (the aws CLI: "could not be found"); none named, nothing to check', async () => {
    const env = await files(CONFIG, '[keys-only]\naws_access_key_id = A\n');
    await assertProfileExists({ profile: 'work', env });
    await assertProfileExists({ profile: 'keys-only', env });
    await assertProfileExists({ env });
    await assertProfileExists({ env: { ...env, AWS_PROFILE: 'none' } });
    const missing = await assertProfileExists({ profile: 'nosuch', env }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(CredentialsError);
    expect(missing).toMatchObject({
      code: 'ProfileNotFound',
      message: 'the profile "nosuch" (--profile) is in neither ~/.aws/config nor ~/.aws/credentials',
    });
    const fromEnv = await assertProfileExists({ env: { ...env, AWS_PROFILE: 'typo' } }).catch((e: unknown) => e);
    expect(fromEnv).toMatchObject({
      code: 'ProfileNotFound',
      message: 'the profile "typo" (AWS_PROFILE) is in neither ~/.aws/config nor ~/.aws/credentials',
    });
  });

  it('no files, no variable: undefined', async () => {
    const env = { AWS_CONFIG_FILE: join(dir, 'absent'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'absent-too'), HOME: join(dir, 'home') };
    expect(await resolveCaBundle({ env })).toBeUndefined();
  });
});
