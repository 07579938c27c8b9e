/**
 * The proxy agents, in a module of their own so that they load (dynamic import) only once a
 * request goes through a proxy: a run without one never parses them.
 */
import type { Agent, AgentOptions, ClientRequest } from 'node:http';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import type { TlsOptions } from './network.js';

type ConnectOptions = Parameters<HttpsProxyAgent<string>['connect']>[1];

/** Plain http targets: absolute-URI requests to the proxy (what every forward proxy accepts). */
class HttpTargetProxyAgent extends HttpProxyAgent<string> {
  // The SDK passes no `protocol` to http.request; without this, agent-base guesses from a stack trace.
  override isSecureEndpoint(): boolean {
    return false;
  }
}

/** https targets: a CONNECT tunnel through the proxy, then TLS with the endpoint inside it. */
class HttpsTargetProxyAgent extends HttpsProxyAgent<string> {
  readonly #targetTls: TlsOptions;

  constructor(proxy: URL, options: AgentOptions & TlsOptions, targetTls: TlsOptions) {
    super(proxy, options);
    this.#targetTls = targetTls;
  }

  override isSecureEndpoint(): boolean {
    return true;
  }

  // https-proxy-agent applies its constructor's TLS options to the proxy connection only; the
  // endpoint's TLS inside the tunnel takes the request's, so the CA bundle is added here.
  override connect(request: ClientRequest, options: ConnectOptions): ReturnType<HttpsProxyAgent<string>['connect']> {
    return super.connect(request, { ...options, ...this.#targetTls, secureEndpoint: true } as ConnectOptions);
  }
}

/**
 * Keep-alive, pooled agents that send http and https requests through `proxy`. `tls` (CA bundle,
 * verification) applies to the endpoint's TLS and, for an https:// proxy, to the proxy's too.
 */
export function createProxyAgents(proxy: URL, agent: AgentOptions, tls: TlsOptions): { httpAgent: Agent; httpsAgent: Agent } {
  return {
    httpAgent: new HttpTargetProxyAgent(proxy, { ...agent, ...tls }),
    httpsAgent: new HttpsTargetProxyAgent(proxy, { ...agent, ...tls }, tls),
  };
}
