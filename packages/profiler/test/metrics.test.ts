import { createLogger } from '@perseus/service-kit';
import { IngestRateMeter, renderMetrics } from '../src/metrics';
import { Profiler } from '../src/profiler';
import { SqliteProfileStore } from '../src/sqlite-store';

it('ingest rate is stored measurements per second since the oldest sample in the window', () => {
  let now = 0;
  let stored = 1_000;
  const meter = new IngestRateMeter(
    () => stored,
    10,
    () => now,
  );
  now = 2_000;
  stored = 201_000;
  expect(meter.rate()).toBe(100_000);
  meter.stop();
});

it('renders every metric with HELP and TYPE lines', async () => {
  const profiler = new Profiler({
    store: new SqliteProfileStore({ dataDir: ':memory:' }),
    logger: createLogger('m', 'silent'),
    aggregateIntervalMs: 0,
  });
  const text = await renderMetrics(profiler);
  for (const name of [
    'perseus_profiler_batches_total',
    'perseus_profiler_measurements_stored_total',
    'perseus_profiler_ingest_rate',
    'perseus_profiler_commit_lag_seconds',
    'perseus_profiler_raw_rows',
    'perseus_profiler_dirty_cells',
    'perseus_profiler_aggregation_lag_seconds',
  ]) {
    expect(text).toContain(`# TYPE ${name} `);
    expect(text).toContain(`# HELP ${name} `);
  }
  expect(text).toContain('perseus_profiler_commit_lag_seconds_bucket{le="+Inf"} 0');
  expect(text.endsWith('\n')).toBe(true);
  await profiler.close();
});
