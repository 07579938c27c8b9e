import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { join } from 'node:path';

/** A private CA and a server certificate it signed, for 127.0.0.1 and localhost. */
export interface TestCertificates {
  /** PEM file of the CA certificate: what `caBundle` takes. */
  caFile: string;
  /** A second, unrelated CA: trusting it must not make the server trusted. */
  otherCaFile: string;
  cert: string;
  key: string;
}

/**
 * Makes the certificates with the `openssl` command (OpenSSL 1.1.1 or later, as any Debian has),
 * valid for a day: EC keys, a CA with keyCertSign, a server certificate with IP and DNS names.
 */
export function makeTestCertificates(dir: string): TestCertificates {
  const openssl = (args: string) => execFileSync('openssl', args.split(' '), { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';
  for (const ca of ['ca', 'other-ca']) {
    openssl(
      `req -x509 ${ec} -days 1 -keyout ${ca}.key -out ${ca}.pem -subj /CN=s3xfer-test-${ca} ` +
        '-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign',
    );
  }
  openssl(`req -new ${ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1`);
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    `x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 1 -set_serial 0x${randomBytes(8).toString('hex')} ` +
      '-extfile server.ext -out server.pem',
  );
  return {
    caFile: join(dir, 'ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
  };
}

/** A server the test started, with what it saw. */
export interface TestServer {
  url: string;
  /** Request lines seen, e.g. `PUT http://127.0.0.1:7480/bucket/key` or `CONNECT 127.0.0.1:8443`. */
  seen: string[];
  /** TCP connections accepted: far fewer than requests when keep-alive works. */
  connections: number;
  close(): Promise<void>;
}

// Only this machine's loopback is ever a target of the test servers.
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/**
 * A minimal HTTP forward proxy on 127.0.0.1, like Squid for this purpose: absolute-URI requests
 * (`GET http://host/path`) for http targets, CONNECT tunnels for https ones. It refuses any
 * target off the loopback interface.
 */
export async function startForwardProxy(): Promise<TestServer> {
  const seen: string[] = [];
  const tunnels = new Set<Socket>();
  const server = createHttpServer({ keepAlive: true }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      return void res.writeHead(400).end('absolute URI expected');
    }
    if (target.protocol !== 'http:' || !LOOPBACK.has(target.hostname)) return void res.writeHead(403).end('loopback targets only');
    forward(req, res, target);
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = splitHostPort(req.url ?? '');
    if (!LOOPBACK.has(host)) return void client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    const upstream = connect(port, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    tunnels.add(client);
    const end = () => {
      tunnels.delete(client);
      upstream.destroy();
      client.destroy();
    };
    upstream.on('error', end);
    client.on('error', end);
    client.on('close', end);
  });
  return listen(server, 'http', seen, () => {
    for (const socket of tunnels) socket.destroy();
  });
}

/** An https reverse proxy on 127.0.0.1 in front of an http endpoint (the test Ceph), with the given certificate. */
export async function startTlsTerminator(backend: string, certificates: Pick<TestCertificates, 'cert' | 'key'>): Promise<TestServer> {
  const seen: string[] = [];
  const base = new URL(backend);
  const server = createHttpsServer({ cert: certificates.cert, key: certificates.key, keepAlive: true }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    // The Host header stays as the client signed it (SigV4 covers it); only the socket goes to the backend.
    forward(req, res, new URL(req.url ?? '/', base));
  });
  // A client that rejects our certificate aborts the handshake; that is expected here.
  server.on('tlsClientError', () => {});
  return listen(server, 'https', seen);
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'expect'];

function forward(req: IncomingMessage, res: ServerResponse, target: URL): void {
  const headers = { ...req.headers };
  for (const name of HOP_BY_HOP) delete headers[name];
  const upstream = httpRequest(
    { host: target.hostname, port: target.port, method: req.method, path: target.pathname + target.search, headers, setHost: false },
    (answer) => {
      const answerHeaders = { ...answer.headers };
      for (const name of [...HOP_BY_HOP, 'transfer-encoding']) delete answerHeaders[name];
      res.writeHead(answer.statusCode ?? 502, answerHeaders);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
}

function splitHostPort(authority: string): [string, number] {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(authority);
  return match ? [match[1]!, Number(match[2])] : [authority, 443];
}

async function listen(server: Server, scheme: string, seen: string[], onClose?: () => void): Promise<TestServer> {
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    seen,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        onClose?.();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
