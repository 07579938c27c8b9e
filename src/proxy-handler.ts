import { type AgentOptions, Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { NodeHttpHandler, type NodeHttpHandlerOptions } from '@smithy/node-http-handler';
import type { ProxyRules, TlsOptions } from './network.js';

/** What every connection of one client shares, direct or through a proxy. */
export interface ConnectionSettings {
  /** The SDK handler's timeouts. */
  handler: Pick<NodeHttpHandlerOptions, 'connectionTimeout' | 'socketTimeout'>;
  /** Pooling: keep-alive and sockets per host. */
  agent: AgentOptions;
  /** CA bundle and verification for https endpoints (and https proxies). */
  tls: TlsOptions;
}

/**
 * The SDK's handler with agents of our own for direct connections. Agents are passed as instances,
 * not options: for a body of 2 MiB or more (every part) the SDK sends `Expect: 100-continue` and,
 * given options, makes a throwaway agent per request that has neither the CA bundle nor a proxy
 * (nor keep-alive); given instances it uses them for every request.
 */
export function directHandler(settings: ConnectionSettings): NodeHttpHandler {
  return new NodeHttpHandler({
    ...settings.handler,
    httpAgent: new HttpAgent(settings.agent),
    httpsAgent: new HttpsAgent({ ...settings.agent, ...settings.tls }),
  });
}

type HandleArgs = Parameters<NodeHttpHandler['handle']>;
type ConfigUpdate = Parameters<NodeHttpHandler['updateHttpClientConfig']>;

/**
 * A request handler that decides per request whether it goes through a proxy, since the host
 * varies per bucket with virtual-hosted addressing and NO_PROXY may name some hosts only. Each
 * route (direct, or one per proxy) is a stock NodeHttpHandler with its own keep-alive pool; the
 * proxy agents load on the first proxied request.
 */
export class ProxyRoutingHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  readonly #rules: ProxyRules;
  readonly #settings: ConnectionSettings;
  readonly #direct: NodeHttpHandler;
  readonly #proxied = new Map<string, Promise<NodeHttpHandler>>();
  readonly #ready: NodeHttpHandler[] = [];
  readonly #updates: ConfigUpdate[] = [];

  constructor(rules: ProxyRules, settings: ConnectionSettings) {
    this.#rules = rules;
    this.#settings = settings;
    this.#direct = directHandler(settings);
  }

  async handle(request: HandleArgs[0], options?: HandleArgs[1]): ReturnType<NodeHttpHandler['handle']> {
    const proxy = this.#rules.proxyFor(request);
    const handler = proxy === undefined ? this.#direct : await this.#handlerFor(proxy);
    return handler.handle(request, options);
  }

  #handlerFor(proxy: URL): Promise<NodeHttpHandler> {
    let handler = this.#proxied.get(proxy.href);
    if (handler === undefined) {
      handler = import('./proxy-agents.js').then(({ createProxyAgents }) => {
        const created = new NodeHttpHandler({
          ...this.#settings.handler,
          ...createProxyAgents(proxy, this.#settings.agent, this.#settings.tls),
        });
        for (const update of this.#updates) created.updateHttpClientConfig(...update);
        this.#ready.push(created);
        return created;
      });
      this.#proxied.set(proxy.href, handler);
    }
    return handler;
  }

  updateHttpClientConfig(...update: ConfigUpdate): void {
    this.#updates.push(update);
    for (const handler of [this.#direct, ...this.#ready]) handler.updateHttpClientConfig(...update);
  }

  httpHandlerConfigs(): NodeHttpHandlerOptions {
    return this.#direct.httpHandlerConfigs();
  }

  destroy(): void {
    for (const handler of [this.#direct, ...this.#ready]) handler.destroy();
  }
}
