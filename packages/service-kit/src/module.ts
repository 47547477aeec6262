import type { Logger } from './logger';
import type { MetricsRegistry } from './metrics';
import type { HostedService } from './server';

/**
 * What a service package hands the `perseus serve` command: the gRPC services to host and a close
 * hook run on shutdown before the listener closes (flush the store, reset clocks, stop workers).
 * `perseus serve <name>` hosts one module; `perseus serve` (all-in-one) hosts all three on one
 * server.
 */
export interface ServiceModule {
  readonly name: 'agent' | 'profiler' | 'optimizer';
  readonly services: HostedService[];
  /** Called once the server is bound, with its address (e.g. the optimizer dials the profiler). */
  onListening?(address: string): void | Promise<void>;
  close(): Promise<void>;
}

/** Common inputs of every module factory. */
export interface ModuleContext {
  logger: Logger;
  /**
   * The process's one metrics registry (`perseus serve` creates it and serves it at one /metrics
   * endpoint). Absent: the module keeps its own.
   */
  metrics?: MetricsRegistry;
  /** The server listens with TLS (a module may then accept a non-local address, with tokens). */
  tls?: boolean;
}
