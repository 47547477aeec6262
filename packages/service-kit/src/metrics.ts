/**
 * Prometheus metrics for every Perseus service, through prom-client. A process creates ONE
 * {@link MetricsRegistry} (with the default process metrics), hands it to every module it hosts,
 * and serves it at one `/metrics` endpoint ({@link startMetricsServer}). Modules built without a
 * registry (tests, benchmarks) get their own, without the process metrics.
 *
 * Names follow the Prometheus conventions: `perseus_<service>_<what>_<base unit>` (seconds, joules,
 * hertz; ratios in [0, 1], never percent), counters end in `_total`.
 */
import * as http from 'node:http';
import * as promClient from 'prom-client';
import type { Logger } from './logger';
import { PERSEUS_VERSION } from './version';

export type MetricsRegistry = promClient.Registry;

/**
 * A registry holding `perseus_build_info`; with `processMetrics` also the default process metrics
 * (CPU, memory, event loop).
 */
export function createMetricsRegistry(options: { processMetrics?: boolean } = {}): MetricsRegistry {
  const registry = new promClient.Registry();
  if (options.processMetrics === true) promClient.collectDefaultMetrics({ register: registry });
  new promClient.Gauge({
    name: 'perseus_build_info',
    help: 'Always 1: the Perseus suite version and the Node.js runtime serving this endpoint',
    labelNames: ['version', 'node'],
    registers: [registry],
  }).set({ version: PERSEUS_VERSION, node: process.version }, 1);
  return registry;
}

type LabelValues = Record<string, string | number>;
/** What one collect reports: a single value, or one value per label set. */
export type Sample = number | ReadonlyArray<readonly [LabelValues, number]>;

/**
 * A gauge (or counter) read from the service's state at scrape time. Non-finite values are
 * reported as they are (Prometheus reads NaN); label values are escaped by prom-client.
 */
export function observedMetric(
  registry: MetricsRegistry,
  spec: {
    name: string;
    help: string;
    type?: 'gauge' | 'counter';
    labelNames?: readonly string[];
    read: () => Sample | Promise<Sample>;
  },
): void {
  const labelNames = [...(spec.labelNames ?? [])];
  const set = (g: promClient.Gauge | promClient.Counter, s: Sample): void => {
    g.reset();
    if (typeof s === 'number') {
      if (g instanceof promClient.Gauge) g.set(s);
      else if (Number.isFinite(s) && s > 0) g.inc(s);
      return;
    }
    for (const [labels, v] of s) {
      if (g instanceof promClient.Gauge) g.set(labels, v);
      else if (Number.isFinite(v) && v > 0) g.inc(labels, v);
    }
  };
  if (spec.type === 'counter') {
    // A counter whose running total the service already keeps: reset, then add the total.
    new promClient.Counter({
      name: spec.name,
      help: spec.help,
      labelNames,
      registers: [registry],
      async collect() {
        set(this, await spec.read());
      },
    });
    return;
  }
  new promClient.Gauge({
    name: spec.name,
    help: spec.help,
    labelNames,
    registers: [registry],
    async collect() {
      set(this, await spec.read());
    },
  });
}

/** A window of samples the service keeps itself (exact quantiles over its last N samples). */
export interface QuantileWindow {
  quantile(q: number): number;
  sumS: number;
  count: number;
}

/** A summary reporting the quantiles (0.5, 0.99, 1) of a window the service keeps at scrape time. */
class WindowSummary extends promClient.Summary {
  constructor(
    private readonly spec: { name: string; help: string; read: () => QuantileWindow },
    registry: MetricsRegistry,
  ) {
    super({ name: spec.name, help: spec.help, percentiles: [0.5, 0.99, 1], registers: [registry] });
  }

  override async get(): Promise<
    promClient.MetricObjectWithValues<promClient.MetricValueWithName<string>>
  > {
    const w = this.spec.read();
    // The base supplies name, help and type; the values are the service's own window.
    const base = await super.get();
    return {
      ...base,
      values: [
        ...[0.5, 0.99, 1].map((q) => ({ labels: { quantile: q }, value: w.quantile(q) })),
        { metricName: `${this.spec.name}_sum`, labels: {}, value: w.sumS },
        { metricName: `${this.spec.name}_count`, labels: {}, value: w.count },
      ],
    };
  }
}

/** Exposes a service-kept window as a Prometheus summary. */
export function observedSummary(
  registry: MetricsRegistry,
  spec: { name: string; help: string; read: () => QuantileWindow },
): void {
  new WindowSummary(spec, registry);
}

/** A histogram the service observes into. */
export function histogram(
  registry: MetricsRegistry,
  spec: { name: string; help: string; buckets: number[] },
): promClient.Histogram {
  return new promClient.Histogram({ ...spec, registers: [registry] });
}

export interface MetricsServer {
  /** `host:port` actually bound. */
  readonly address: string;
  close(): Promise<void>;
}

const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/;

/**
 * Serves `GET /metrics` (the text exposition of `registry`) on `listen` (`host:port`, port 0 picks
 * one); everything else is 404.
 */
export async function startMetricsServer(
  listen: string,
  registry: MetricsRegistry,
  logger: Logger,
): Promise<MetricsServer> {
  const m = LISTEN.exec(listen.trim());
  if (!m)
    throw new Error(`metrics listen address must be host:port, got ${JSON.stringify(listen)}`);
  const hostText = m[1]!;
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => {
        logger.error({ err }, 'metrics rendering failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), hostText.replace(/^\[|\]$/g, ''), () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a !== null ? a.port : Number(m[2]);
  const address = `${hostText}:${port}`;
  logger.info({ address }, 'metrics serving');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
