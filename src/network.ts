/**
 * Networks as CI has them: HTTP(S) proxies chosen per request URL the way the aws CLI and curl
 * choose them (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), and private certificate authorities
 * (`AWS_CA_BUNDLE`, a profile's `ca_bundle`, `--ca-bundle`). Nothing here reads `process.env`: the
 * caller hands the environment in. Cheap to load; the proxy agents themselves load only when a
 * request goes through a proxy (see proxy-handler.ts).
 */

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { loadSharedConfigFiles } from '@smithy/core/config';
import { CredentialsError, UsageError } from './errors.js';

/** Environment variables, as in `process.env` (the CLI passes that; tests pass their own). */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Which HTTP(S) proxy requests go through.
 * - `{ env }`: the proxy variables of this environment, as the aws CLI reads them: `HTTPS_PROXY`
 *   for https URLs, `HTTP_PROXY` for http URLs, `NO_PROXY` for the hosts that bypass them; the
 *   lower-case names win over the upper-case ones, and an empty value means none. A proxy given
 *   without a scheme is `http://`. `ALL_PROXY` is not used (nor by the aws CLI).
 * - `{ url, noProxy }`: one proxy for http and https URLs alike, with an optional `NO_PROXY`-style
 *   list of hosts that bypass it.
 * - `false` (or leaving the option out): no proxy.
 *
 * `NO_PROXY` is a list separated by commas or spaces of host names (`example.com` also matches
 * every subdomain; a leading `.` or `*.` changes nothing), IP addresses, CIDR blocks
 * (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port`; `*` alone bypasses every proxy.
 * The proxy URL may carry `user:password@` for basic proxy authentication. Proxies may be
 * `http://` (plain; https targets are tunnelled with CONNECT) or `https://` (TLS to the proxy).
 */
export type ProxyOption = { env: Environment } | { url: string; noProxy?: string } | false;

/** A request target, as the SDK's HttpRequest describes it. */
export interface RequestTarget {
  /** `http:` or `https:`. */
  protocol: string;
  /** Host name or IP address; IPv6 in brackets or not. */
  hostname: string;
  /** Port; the scheme's default when absent. */
  port?: number | undefined;
}

/** The compiled form of a {@link ProxyOption}: which proxy, if any, serves a request target. */
export interface ProxyRules {
  /** The proxy for this target, or undefined to connect directly. */
  proxyFor(target: RequestTarget): URL | undefined;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * Compiles a {@link ProxyOption} into rules, validating every proxy URL. Returns undefined when no
 * request can go through a proxy (no option, `false`, or no proxy variable set), so callers can
 * skip proxy support altogether.
 * @throws UsageError naming the variable or option when a proxy URL is malformed or not http(s).
 */
export function compileProxyRules(option: ProxyOption | undefined): ProxyRules | undefined {
  if (option === undefined || option === false) return undefined;
  let http: URL | undefined;
  let https: URL | undefined;
  let noProxy: string;
  if ('env' in option) {
    const env = option.env;
    http = parseProxyUrl(envValue(env, 'http_proxy'), envName(env, 'http_proxy'));
    https = parseProxyUrl(envValue(env, 'https_proxy'), envName(env, 'https_proxy'));
    noProxy = envValue(env, 'no_proxy');
  } else if ('url' in option && typeof option.url === 'string') {
    http = https = parseProxyUrl(option.url, 'proxy.url');
    if (http === undefined) throw new UsageError('invalid proxy "": expected http://host:port or https://host:port', 'InvalidProxy');
    noProxy = option.noProxy ?? '';
  } else {
    throw new UsageError('invalid proxy option: expected { env }, { url, noProxy } or false', 'InvalidProxy');
  }
  if (http === undefined && https === undefined) return undefined;
  const bypass = compileNoProxy(noProxy);
  const proxies: Record<string, URL | undefined> = { 'http:': http, 'https:': https };
  return {
    proxyFor(target) {
      const proxy = proxies[target.protocol];
      if (proxy === undefined) return undefined;
      const host = normalizeHost(target.hostname);
      if (host === undefined) return proxy;
      return bypass(host, target.port ?? DEFAULT_PORTS[target.protocol] ?? 0) ? undefined : proxy;
    },
  };
}

/**
 * The proxy a request to `url` would go through under `proxy`, or undefined for a direct
 * connection: what `createS3Client({ proxy })` decides for each request, e.g. for a `--debug` line.
 * @throws UsageError when a proxy URL is malformed (see {@link compileProxyRules}).
 */
export function proxyForUrl(url: string | URL, proxy: ProxyOption | undefined): string | undefined {
  const target = new URL(url);
  const port = target.port === '' ? undefined : Number(target.port);
  return compileProxyRules(proxy)?.proxyFor({ protocol: target.protocol, hostname: target.hostname, port })?.href;
}

/** A proxy URL without its password, for messages. */
export function redactProxyUrl(proxy: URL): string {
  if (proxy.password === '') return proxy.href;
  const copy = new URL(proxy.href);
  copy.password = '***';
  return copy.href;
}

/** The lower-case variable when it is set (even empty: `http_proxy=` turns a proxy off), else the upper-case one. */
function envValue(env: Environment, lowerName: string): string {
  return (env[lowerName] ?? env[lowerName.toUpperCase()] ?? '').trim();
}

function envName(env: Environment, lowerName: string): string {
  return env[lowerName] === undefined ? lowerName.toUpperCase() : lowerName;
}

function parseProxyUrl(value: string, source: string): URL | undefined {
  if (value === '') return undefined;
  // botocore's rule: a proxy without a scheme is an http:// one.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`invalid proxy URL in ${source}: expected http://host:port or https://host:port`, 'InvalidProxy');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(
      `unsupported proxy scheme "${url.protocol}" in ${source}: only http:// and https:// proxies are supported`,
      'InvalidProxy',
    );
  }
  if (url.hostname === '') throw new UsageError(`invalid proxy URL in ${source}: no host`, 'InvalidProxy');
  return url;
}

/** Host name as the URL parser normalises it (lower case, punycode, IPv4 forms), without brackets or a trailing dot. */
function normalizeHost(host: string): string | undefined {
  const bracketed = isIP(host) === 6 ? `[${host}]` : host;
  let hostname: string;
  try {
    hostname = new URL(`http://${bracketed}`).hostname;
  } catch {
    return undefined;
  }
  return hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
}

/**
 * Compiles a NO_PROXY list into a predicate on (normalised host, port). The rules are the union of
 * the aws CLI's (Python urllib: suffix match, leading dot ignored, `*` alone) and curl's and Go's
 * (IP addresses and CIDR blocks), so a list written for any of them behaves as its author meant.
 */
function compileNoProxy(list: string): (host: string, port: number) => boolean {
  const entries = list
    .split(/[\s,]+/)
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== '');
  if (entries.includes('*')) return () => true;
  const rules = entries.map(compileNoProxyEntry).filter((rule) => rule !== undefined);
  return (host, port) => rules.some((rule) => rule(host, port));
}

function compileNoProxyEntry(entry: string): ((host: string, port: number) => boolean) | undefined {
  const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
  if (cidr) {
    const address = cidr[1]!.replace(/^\[|\]$/g, '');
    const family = isIP(address);
    const prefix = Number(cidr[2]);
    if (family === 0 || prefix > (family === 4 ? 32 : 128)) return undefined;
    const block = new BlockList();
    block.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
    return (host) => {
      const hostFamily = isIP(host);
      return hostFamily !== 0 && block.check(host, hostFamily === 4 ? 'ipv4' : 'ipv6');
    };
  }
  // A bare IPv6 address has colons that are no port separator.
  const bare = entry.replace(/^\*?\.+/, '');
  let name: string | undefined;
  let port: number | undefined;
  if (isIP(bare) === 6) {
    name = normalizeHost(bare);
  } else {
    let url: URL;
    try {
      url = new URL(`http://${bare}`);
    } catch {
      return undefined;
    }
    if (url.pathname !== '/' || url.username !== '' || url.search !== '') return undefined;
    name = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
    // URL drops an explicit :80 as http's default port, so read the written port back from the entry.
    const written = /:(\d+)$/.exec(bare);
    port = written ? Number(written[1]) : undefined;
  }
  if (name === undefined || name === '') return undefined;
  const literal = name;
  const isAddress = isIP(literal) !== 0;
  return (host, hostPort) => {
    if (port !== undefined && port !== hostPort) return false;
    if (host === literal) return true;
    return !isAddress && isIP(host) === 0 && host.endsWith(`.${literal}`);
  };
}

/** TLS settings that apply to every https connection: to the endpoint, direct or tunnelled, and to an https proxy. */
export type TlsOptions = Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized'>;

/**
 * Reads a CA bundle for {@link TlsOptions}: PEM certificates that replace Node's default roots,
 * as the aws CLI's `--ca-bundle` does.
 * @throws UsageError naming the file when it cannot be read or holds no valid PEM certificate.
 */
export function readCaBundle(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'InvalidCaBundle';
    const reasons: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory' };
    throw new UsageError(`cannot read CA bundle ${file}: ${reasons[code] ?? code}`, code, { cause: error, source: file });
  }
  // Node takes any text as `ca` and then trusts nothing; say so now rather than at the first request.
  const certificates = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (certificates.length === 0) {
    throw new UsageError(`CA bundle ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, 'InvalidCaBundle', { source: file });
  }
  for (const [index, certificate] of certificates.entries()) {
    try {
      new X509Certificate(certificate);
    } catch (error) {
      throw new UsageError(`CA bundle ${file}: certificate ${index + 1} is not valid PEM`, 'InvalidCaBundle', {
        cause: error,
        source: file,
      });
    }
  }
  return pem;
}

/** The TLS options for a CA bundle file and the verify switch; empty when both are defaults. */
export function tlsOptions(caBundle: string | undefined, verifySsl: boolean | undefined): TlsOptions {
  return {
    ...(caBundle ? { ca: readCaBundle(caBundle) } : {}),
    ...(verifySsl === false ? { rejectUnauthorized: false } : {}),
  };
}

/** Where {@link resolveCaBundle} looks. */
export interface CaBundleSources {
  /** Profile whose `ca_bundle` applies. Default: `env.AWS_PROFILE`, else `default`. */
  profile?: string;
  /** The environment: `AWS_CA_BUNDLE`, `AWS_PROFILE`, `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `HOME`. */
  env: Environment;
}

/**
 * The CA bundle the aws CLI would use, short of its `--ca-bundle` flag (which wins over this):
 * `AWS_CA_BUNDLE`, else the profile's `ca_bundle` in ~/.aws/config (or ~/.aws/credentials, which
 * overrides it as in botocore). A leading `~/` is the home directory. Undefined when none is set.
 * The files are read through the SDK's own loader, whose cache the client's region lookup shares.
 */
export async function resolveCaBundle({ profile, env }: CaBundleSources): Promise<string | undefined> {
  const home = env.HOME || env.USERPROFILE || homedir();
  const fromEnv = env.AWS_CA_BUNDLE?.trim();
  if (fromEnv) return expandHome(fromEnv, home);
  const { configFile, credentialsFile } = await sharedConfigFiles(env, home);
  const name = profile || env.AWS_PROFILE || 'default';
  const value = (credentialsFile[name]?.ca_bundle ?? configFile[name]?.ca_bundle)?.trim();
  return value ? expandHome(value, home) : undefined;
}

/**
 * Checks that a profile named on purpose (`--profile`, `AWS_PROFILE`) is in ~/.aws/config or
 * ~/.aws/credentials, as the aws CLI does ("The config profile (x) could not be found"): the
 * SDK would only say that no provider had credentials.
 * @throws {CredentialsError} (`ProfileNotFound`) when neither file has it.
 */
export async function assertProfileExists({ profile, env }: CaBundleSources): Promise<void> {
  const name = profile || env.AWS_PROFILE;
  if (!name) return;
  const { configFile, credentialsFile } = await sharedConfigFiles(env, env.HOME || env.USERPROFILE || homedir());
  if (configFile[name] === undefined && credentialsFile[name] === undefined) {
    const from = profile ? '--profile' : 'AWS_PROFILE';
    throw new CredentialsError(`the profile "${name}" (${from}) is in neither ~/.aws/config nor ~/.aws/credentials`, 'ProfileNotFound');
  }
}

/** ~/.aws/config and ~/.aws/credentials (or the files AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE name), by profile. */
function sharedConfigFiles(env: NodeJS.ProcessEnv, home: string) {
  return loadSharedConfigFiles({
    configFilepath: env.AWS_CONFIG_FILE || join(home, '.aws', 'config'),
    filepath: env.AWS_SHARED_CREDENTIALS_FILE || join(home, '.aws', 'credentials'),
  });
}

function expandHome(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : path;
}
