/** The profiler as a {@link ServiceModule} that `perseus serve` hosts (alone or all-in-one). */
import type { Logger, MetricsRegistry, MetricsServer, ServiceModule } from '@perseus/service-kit';
import {
  createMetricsRegistry,
  serviceListenerAccess,
  startMetricsServer,
} from '@perseus/service-kit';
import type { ProfilerConfig } from './config';
import { resolveProfilerConfig } from './config';
import type { ProfilerServiceOptions } from './grpc-service';
import { profilerService } from './grpc-service';
import { registerProfilerMetrics } from './metrics';
import { Profiler } from './profiler';
import { SqliteProfileStore } from './sqlite-store';
import type { ProfileStore } from './store';

export interface ProfilerModuleOptions {
  logger: Logger;
  /** Explicit settings (CLI flags); the rest come from PERSEUS_PROFILER_* env, then defaults. */
  config?: Partial<ProfilerConfig>;
  /** A store to use instead of the SQLite store under `config.dataDir`. */
  store?: ProfileStore;
  /** Environment to read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The process's metrics registry; default: one of the module's own. */
  metrics?: MetricsRegistry;
  /** The server listens with TLS (then a non-local address is allowed, with a token file). */
  tls?: boolean;
  /** Per-stream backpressure window (batches awaiting commit). Default 8. */
  streamWindow?: ProfilerServiceOptions['streamWindow'];
}

export interface ProfilerModule extends ServiceModule {
  readonly profiler: Profiler;
  readonly config: ProfilerConfig;
  /** The metrics endpoint's address once listening, when enabled. */
  metricsAddress(): string | undefined;
}

/**
 * Opens the store, builds the service and (when configured) the metrics endpoint. `close()` drains:
 * queued batches are committed and acknowledged, then the store is closed.
 *
 * @example
 * ```ts
 * const mod = await createProfilerModule({ logger, config: { dataDir: ':memory:' } });
 * const server = new PerseusServer({ address: '127.0.0.1:0', logger });
 * for (const s of mod.services) server.addService(s);
 * server.onShutdown(() => mod.close());
 * ```
 */
export async function createProfilerModule(
  options: ProfilerModuleOptions,
): Promise<ProfilerModule> {
  const config = resolveProfilerConfig(options.config, options.env);
  const logger = options.logger;
  // With a token file, tokens are required from the start; without one the module is open until
  // onListening settles the policy for the bound address (a non-local address without TLS and
  // tokens is refused there; `perseus serve` refuses it before binding).
  const access = serviceListenerAccess(config.tokenFile, {
    tls: options.tls === true,
    service: 'profiler',
  });
  const sqlite =
    options.store === undefined
      ? new SqliteProfileStore({ dataDir: config.dataDir, synchronous: config.synchronous })
      : undefined;
  // The aggregation worker is up before the first read.
  await sqlite?.ready();
  const store: ProfileStore = options.store ?? sqlite!;
  const profiler = new Profiler({
    store,
    logger,
    aggregation: { warmupFraction: config.warmupFraction, outlierK: config.outlierK },
    defaultCoverageMinCount: config.coverageMinCount,
    aggregateIntervalMs: config.aggregateIntervalMs,
    rawRetentionS: config.rawRetentionS,
  });
  const registry = options.metrics ?? createMetricsRegistry();
  const stopMetrics = registerProfilerMetrics(registry, profiler);
  let metrics: MetricsServer | undefined;
  if (config.metricsListen !== '') {
    try {
      metrics = await startMetricsServer(config.metricsListen, registry, logger);
    } catch (err) {
      stopMetrics();
      await profiler.close();
      throw err;
    }
  }
  logger.info({ dataDir: config.dataDir, synchronous: config.synchronous }, 'profiler store open');
  return {
    name: 'profiler',
    services: [
      profilerService(profiler, logger, {
        maxBatchMeasurements: config.maxBatchMeasurements,
        streamWindow: options.streamWindow,
        access: access.listener,
      }),
    ],
    async onListening(address: string): Promise<void> {
      await access.settle(address);
      logger.info(
        {
          address,
          tokens: access.tokens?.length ?? 0,
          requireToken: access.listener.current.requireToken,
        },
        'profiler access',
      );
    },
    profiler,
    config,
    metricsAddress: () => metrics?.address,
    close: async () => {
      stopMetrics();
      await profiler.close();
      await metrics?.close();
    },
  };
}
