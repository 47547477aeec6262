/**
 * Prometheus metrics of the profiler in the text exposition format (0.0.4), served over node:http
 * at `/metrics`: ingest rate, rows, commit latency and aggregation lag.
 */
import * as http from 'node:http';
import type { Logger } from '@perseus/service-kit';
import type { Profiler } from './profiler';

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

function line(name: string, value: number, labels = ''): string {
  return `${name}${labels ? `{${labels}}` : ''} ${Number.isFinite(value) ? value : 0}`;
}

/** Renders every profiler metric. */
export async function renderMetrics(profiler: Profiler, meter?: IngestRateMeter): Promise<string> {
  const c = profiler.ingestCounters();
  const s = await profiler.storeStats();
  const out: string[] = [];
  const metric = (
    name: string,
    type: 'counter' | 'gauge' | 'histogram',
    help: string,
    lines: string[],
  ): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  };
  metric('perseus_profiler_batches_total', 'counter', 'Measurement batches by outcome.', [
    line('perseus_profiler_batches_total', c.batchesStored, 'result="stored"'),
    line('perseus_profiler_batches_total', c.batchesDuplicate, 'result="duplicate"'),
    line('perseus_profiler_batches_total', c.batchesRejected, 'result="rejected"'),
  ]);
  metric(
    'perseus_profiler_measurements_stored_total',
    'counter',
    'Measurements durably stored since start.',
    [line('perseus_profiler_measurements_stored_total', c.measurementsStored)],
  );
  metric(
    'perseus_profiler_ingest_rate',
    'gauge',
    'Measurements stored per second over the last 10 s.',
    [line('perseus_profiler_ingest_rate', meter?.rate() ?? 0)],
  );
  metric(
    'perseus_profiler_group_commits_total',
    'counter',
    'Durable group commits (one fsync each with sync=full).',
    [line('perseus_profiler_group_commits_total', c.groupCommits)],
  );
  metric(
    'perseus_profiler_queued_measurements',
    'gauge',
    'Measurements received and waiting for commit.',
    [line('perseus_profiler_queued_measurements', c.queuedMeasurements)],
  );
  metric('perseus_profiler_queued_batches', 'gauge', 'Batches received and waiting for commit.', [
    line('perseus_profiler_queued_batches', c.queuedBatches),
  ]);
  // Bucket counts are already cumulative (an observation counts in every bucket it fits).
  const buckets = c.commitLatency.buckets.map(([le, n]) =>
    line('perseus_profiler_commit_lag_seconds_bucket', n, `le="${le}"`),
  );
  metric(
    'perseus_profiler_commit_lag_seconds',
    'histogram',
    'Time from a batch entering the commit queue to its durable commit.',
    [
      ...buckets,
      line('perseus_profiler_commit_lag_seconds_bucket', c.commitLatency.count, 'le="+Inf"'),
      line('perseus_profiler_commit_lag_seconds_sum', c.commitLatency.sumS),
      line('perseus_profiler_commit_lag_seconds_count', c.commitLatency.count),
    ],
  );
  metric('perseus_profiler_raw_rows', 'gauge', 'Raw measurement rows held by the store.', [
    line('perseus_profiler_raw_rows', s.rawRows),
  ]);
  metric('perseus_profiler_cells', 'gauge', 'Aggregated cells held (all scopes).', [
    line('perseus_profiler_cells', s.cells),
  ]);
  metric('perseus_profiler_jobs', 'gauge', 'Jobs known to the profiler.', [
    line('perseus_profiler_jobs', s.jobs),
  ]);
  metric('perseus_profiler_iteration_records', 'gauge', 'Iteration records held.', [
    line('perseus_profiler_iteration_records', s.iterationRecords),
  ]);
  metric('perseus_profiler_dirty_cells', 'gauge', 'Cells with measurements not yet aggregated.', [
    line('perseus_profiler_dirty_cells', s.dirtyCells),
  ]);
  metric(
    'perseus_profiler_aggregation_lag_seconds',
    'gauge',
    'Age of the oldest measurement not yet aggregated.',
    [line('perseus_profiler_aggregation_lag_seconds', s.oldestDirtyAgeS)],
  );
  return `${out.join('\n')}\n`;
}

export interface MetricsServer {
  /** `host:port` actually bound. */
  address: string;
  close(): Promise<void>;
}

/** Serves `/metrics` on `listen` (`host:port`, port 0 picks one). */
export async function startMetricsServer(
  listen: string,
  profiler: Profiler,
  logger: Logger,
): Promise<MetricsServer> {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(listen.trim());
  if (!m)
    throw new Error(`metrics listen address must be host:port, got ${JSON.stringify(listen)}`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const meter = new IngestRateMeter(() => profiler.ingestCounters().measurementsStored);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    renderMetrics(profiler, meter).then(
      (body) =>
        res
          .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
          .end(body),
      (err: unknown) => {
        logger.error({ err }, 'metrics rendering failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : Number(m[2]);
  const address = `${m[1]}:${port}`;
  logger.info({ address }, 'metrics serving');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        meter.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
