import * as fs from 'node:fs';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { addReflection } from './reflection';
import { PERSEUS_VERSION } from './version';
import { normalizeListenAddress, unixSocketPath } from './env';
import type { Handler, ServiceAccess } from './handlers';
import { implementService, tolerantDefinition } from './handlers';
import type { Logger } from './logger';
import { tagUnixConnection } from './peer-credentials';

/** Lifecycle of a server: starting → serving → draining → stopped. */
export type ServerState = 'starting' | 'serving' | 'draining' | 'stopped';

export interface PerseusServerOptions {
  /** `host:port` (port 0 picks one) or `unix:/path`. */
  address: string;
  logger: Logger;
  /** Default insecure (loopback / Unix socket); TLS credentials for remote listeners. */
  credentials?: grpc.ServerCredentials;
  /** Mode applied to a Unix socket after bind (e.g. 0o660). Default: left as the umask made it. */
  socketMode?: number;
  /** grpc-js server options (keepalive, message sizes). */
  grpcOptions?: grpc.ServerOptions;
  /** How long `shutdown` waits for in-flight calls before forcing. Default 5000 ms. */
  shutdownGraceMs?: number;
}

/** A service to host: its fully-qualified name, grpc-js definition, and handlers. */
export interface HostedService {
  /** e.g. `perseus.agent.v1.GpuAgent`. */
  name: string;
  definition: grpc.ServiceDefinition;
  handlers: Readonly<Record<string, Handler | undefined>>;
  /** Who may call what (tokens and scopes). Absent: open (the agent checks in its handlers). */
  access?: ServiceAccess;
}

/** Response header carrying the suite version on every call (clients warn on a major mismatch). */
export const VERSION_HEADER = 'perseus-version';

const versionHeader: grpc.ServerInterceptor = (_method, call) =>
  new grpc.ServerInterceptingCall(call, {
    sendMetadata: (metadata, next) => {
      metadata.set(VERSION_HEADER, PERSEUS_VERSION);
      next(metadata);
    },
  });

/**
 * A grpc-js server with what every Perseus service needs: the error mapper in front of every
 * handler, grpc.health.v1 (overall and per service), server reflection limited to the hosted
 * services, explicit lifecycle states, and shutdown hooks that run before the process exits
 * (the agent resets clocks there).
 */
export class PerseusServer {
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly services: HostedService[] = [];
  private readonly shutdownHooks: Array<() => Promise<void> | void> = [];
  private stateValue: ServerState = 'starting';
  private boundAddress: string | undefined;
  /** The Unix-socket listener, accepted here so each connection carries its peer credentials. */
  private unixListener: net.Server | undefined;

  constructor(private readonly options: PerseusServerOptions) {
    this.server = new grpc.Server({
      interceptors: [versionHeader],
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc-node.max_session_memory': 64,
      ...options.grpcOptions,
    });
  }

  get state(): ServerState {
    return this.stateValue;
  }

  /** The address actually bound (with the chosen port for port 0). */
  get address(): string {
    if (this.boundAddress === undefined) throw new Error('server not started');
    return this.boundAddress;
  }

  /** Adds a service; call before {@link start}. */
  addService(service: HostedService): this {
    if (this.stateValue !== 'starting') throw new Error('addService after start');
    this.services.push(service);
    this.server.addService(
      tolerantDefinition(service.definition),
      implementService(
        service.name,
        service.definition,
        service.handlers,
        this.options.logger,
        service.access,
      ),
    );
    return this;
  }

  /** Registers work to run on shutdown, before the listener closes (in order added). */
  onShutdown(hook: () => Promise<void> | void): this {
    this.shutdownHooks.push(hook);
    return this;
  }

  async start(): Promise<string> {
    const { logger } = this.options;
    this.health.addToServer(this.server);
    addReflection(
      this.server,
      this.services.map((s) => s.name),
    );

    const address = normalizeListenAddress(this.options.address);
    const socketPath = unixSocketPath(address);
    if (socketPath !== undefined) {
      await refuseLiveSocket(socketPath);
      removeStaleSocket(socketPath);
      await this.listenUnix(socketPath);
      if (this.options.socketMode !== undefined) fs.chmodSync(socketPath, this.options.socketMode);
      this.boundAddress = address;
    } else {
      const port = await new Promise<number>((resolve, reject) => {
        this.server.bindAsync(
          address,
          this.options.credentials ?? grpc.ServerCredentials.createInsecure(),
          (err, p) => (err ? reject(err) : resolve(p)),
        );
      });
      this.boundAddress = address.replace(/:\d+$/, `:${port}`);
    }
    this.health.setStatus('', 'SERVING');
    for (const s of this.services) this.health.setStatus(s.name, 'SERVING');
    this.stateValue = 'serving';
    logger.info(
      { address: this.boundAddress, services: this.services.map((s) => s.name) },
      'serving',
    );
    return this.boundAddress;
  }

  /**
   * A Unix socket is accepted by a plain `net.Server` and each connection handed to grpc-js, so
   * `call.getPeer()` names the peer's pid/uid/gid (SO_PEERCRED) and connection (peer-credentials.ts).
   */
  private async listenUnix(socketPath: string): Promise<void> {
    const injector = this.server.createConnectionInjector(
      this.options.credentials ?? grpc.ServerCredentials.createInsecure(),
    );
    const listener = net.createServer((socket) => {
      tagUnixConnection(socket);
      injector.injectConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(socketPath, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    listener.on('error', (err) => this.options.logger.error({ err }, 'unix listener error'));
    this.unixListener = listener;
  }

  /**
   * Drains: health flips to NOT_SERVING, shutdown hooks run, then `tryShutdown` waits for in-flight
   * calls up to the grace period before `forceShutdown`. Safe to call more than once.
   */
  async shutdown(graceMs = this.options.shutdownGraceMs ?? 5000): Promise<void> {
    if (this.stateValue === 'stopped' || this.stateValue === 'draining') return this.drained;
    this.stateValue = 'draining';
    this.drained = this.drain(graceMs);
    return this.drained;
  }

  private drained: Promise<void> = Promise.resolve();

  private async drain(graceMs: number): Promise<void> {
    const { logger } = this.options;
    this.health.setStatus('', 'NOT_SERVING');
    for (const s of this.services) this.health.setStatus(s.name, 'NOT_SERVING');
    for (const hook of this.shutdownHooks) {
      try {
        await hook();
      } catch (err) {
        logger.error({ err }, 'shutdown hook failed');
      }
    }
    // Stop accepting; the connections already handed to grpc-js close with its sessions below.
    this.unixListener?.close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    const socketPath = this.boundAddress && unixSocketPath(this.boundAddress);
    if (socketPath) removeStaleSocket(socketPath);
    this.stateValue = 'stopped';
    logger.info('stopped');
  }
}

/** Throws when a server answers on `path`: a live socket is never unlinked (only a stale one). */
async function refuseLiveSocket(path: string): Promise<void> {
  try {
    if (!fs.statSync(path).isSocket()) return;
  } catch {
    return;
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`${path} is in use: another server is listening on it`);
}

function removeStaleSocket(path: string): void {
  try {
    if (fs.statSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    // absent: nothing to remove
  }
}

/**
 * SIGTERM/SIGINT → shut every server down (hooks first, so clocks are reset), then exit. A second
 * signal exits at once after the hooks that already ran.
 */
export function shutdownOnSignals(
  servers: PerseusServer[],
  logger: Logger,
  exit: (code: number) => void = process.exit,
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    Promise.all(servers.map((s) => s.shutdown())).then(
      () => exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
