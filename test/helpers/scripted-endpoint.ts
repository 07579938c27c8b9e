import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a scripted endpoint answers: called once a request's whole body has arrived. */
export type ScriptedHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** One request as the scripted endpoint received it. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An HTTP server on 127.0.0.1 whose answers a test scripts, for the real SDK stack to talk to. */
export interface ScriptedEndpoint {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Every request received, in order (clear it between tests). */
  readonly requests: ReceivedRequest[];
  close(): Promise<void>;
}

/** Starts a scripted endpoint; `handle` is looked up at each request, so a test may swap what it calls. */
export async function startScriptedEndpoint(handle: ScriptedHandler): Promise<ScriptedEndpoint> {
  const requests: ReceivedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handle(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
