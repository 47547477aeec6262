/**
 * The profiler's Prometheus metrics (names in the package README): ingest outcomes and rate, group
 * commits and their latency, queue depth, and what the store holds. Registered on the process's
 * registry (service-kit) and read from the profiler at scrape time.
 */
import type { MetricsRegistry } from '@perseus/service-kit';
import { createMetricsRegistry, histogram, observedMetric } from '@perseus/service-kit';
import type { Profiler } from './profiler';
import type { StoreStats } from './store';

/** Measurements stored per second over the last `windowS` seconds, sampled once a second. */
export class IngestRateMeter {
  private readonly samples: Array<[number, number]> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly read: () => number,
    private readonly windowS = 10,
    private readonly now: () => number = Date.now,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  private sample(): void {
    this.samples.push([this.now(), this.read()]);
    while (this.samples.length > this.windowS + 1) this.samples.shift();
  }

  /** Current rate, per second. */
  rate(): number {
    const first = this.samples[0];
    if (!first) return 0;
    const t = this.now();
    const dt = (t - first[0]) / 1000;
    return dt > 0 ? (this.read() - first[1]) / dt : 0;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Registers every profiler metric on `registry`. Returns a stop function (ends the ingest-rate
 * meter's timer and the commit-latency subscription).
 */
export function registerProfilerMetrics(registry: MetricsRegistry, profiler: Profiler): () => void {
  const meter = new IngestRateMeter(() => profiler.ingestCounters().measurementsStored);
  const c = (): ReturnType<Profiler['ingestCounters']> => profiler.ingestCounters();
  // One store read per scrape, shared by the gauges below.
  let cached: { at: number; stats: Promise<StoreStats> } | undefined;
  const stats = (): Promise<StoreStats> => {
    const now = Date.now();
    if (cached === undefined || now - cached.at > 250)
      cached = { at: now, stats: profiler.storeStats() };
    return cached.stats;
  };
  const storeGauge = (name: string, help: string, pick: (s: StoreStats) => number): void =>
    observedMetric(registry, { name, help, read: async () => pick(await stats()) });

  observedMetric(registry, {
    name: 'perseus_profiler_batches_total',
    help: 'Measurement batches by outcome.',
    type: 'counter',
    labelNames: ['result'],
    read: () => [
      [{ result: 'stored' }, c().batchesStored],
      [{ result: 'duplicate' }, c().batchesDuplicate],
      [{ result: 'rejected' }, c().batchesRejected],
    ],
  });
  observedMetric(registry, {
    name: 'perseus_profiler_measurements_stored_total',
    help: 'Measurements durably stored since start.',
    type: 'counter',
    read: () => c().measurementsStored,
  });
  observedMetric(registry, {
    name: 'perseus_profiler_ingest_rate',
    help: 'Measurements stored per second over the last 10 s.',
    read: () => meter.rate(),
  });
  observedMetric(registry, {
    name: 'perseus_profiler_group_commits_total',
    help: 'Durable group commits (one fsync each with sync=full).',
    type: 'counter',
    read: () => c().groupCommits,
  });
  observedMetric(registry, {
    name: 'perseus_profiler_queued_measurements',
    help: 'Measurements received and waiting for commit.',
    read: () => c().queuedMeasurements,
  });
  observedMetric(registry, {
    name: 'perseus_profiler_queued_batches',
    help: 'Batches received and waiting for commit.',
    read: () => c().queuedBatches,
  });
  const commitLag = histogram(registry, {
    name: 'perseus_profiler_commit_lag_seconds',
    help: 'Time from a batch entering the commit queue to its durable commit.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });
  const unsubscribe = profiler.onCommitLatency((s) => commitLag.observe(s));
  storeGauge(
    'perseus_profiler_raw_rows',
    'Raw measurement rows held by the store.',
    (s) => s.rawRows,
  );
  storeGauge('perseus_profiler_cells', 'Aggregated cells held (all scopes).', (s) => s.cells);
  storeGauge('perseus_profiler_jobs', 'Jobs known to the profiler.', (s) => s.jobs);
  storeGauge(
    'perseus_profiler_iteration_records',
    'Iteration records held.',
    (s) => s.iterationRecords,
  );
  storeGauge(
    'perseus_profiler_dirty_cells',
    'Cells with measurements not yet aggregated.',
    (s) => s.dirtyCells,
  );
  storeGauge(
    'perseus_profiler_aggregation_lag_seconds',
    'Age of the oldest measurement not yet aggregated.',
    (s) => s.oldestDirtyAgeS,
  );
  return () => {
    meter.stop();
    unsubscribe();
  };
}

/** The text exposition of the profiler's metrics alone (tests, one-off dumps). */
export async function renderMetrics(profiler: Profiler): Promise<string> {
  const registry = createMetricsRegistry();
  const stop = registerProfilerMetrics(registry, profiler);
  try {
    return await registry.metrics();
  } finally {
    stop();
  }
}
