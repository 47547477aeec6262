import type { Command } from 'commander';
import { createProfilerModule } from '@perseus/profiler';
import type { ProfilerConfig } from '@perseus/profiler';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';

/** Adds the profiler-specific flags of `perseus serve profiler` (and of the all-in-one `perseus serve`). */
export function addProfilerFlags(cmd: Command): Command {
  return cmd
    .option(
      '--profiler-data-dir <dir>',
      'directory of the profiler SQLite store, or :memory: (env PERSEUS_PROFILER_DATA_DIR; default ./.perseus-data/profiler)',
    )
    .option(
      '--profiler-sync <mode>',
      'full (fsync every commit; survives OS crash) or normal (survives process crash) (env PERSEUS_PROFILER_SYNC; default full)',
    )
    .option(
      '--profiler-metrics-listen <host:port>',
      'serve Prometheus metrics at http://<host:port>/metrics (env PERSEUS_PROFILER_METRICS_LISTEN; default off)',
    )
    .option(
      '--profiler-token-file <file>',
      'bearer tokens, one "<name> <read|report|control>[,…] <secret> [jobs=<id>,…]" per line, mode 0600; required for a non-local --listen (env PERSEUS_PROFILER_TOKEN_FILE; default none)',
    )
    .option(
      '--profiler-max-batch <n>',
      'most measurements per batch, 1..10000 (env PERSEUS_PROFILER_MAX_BATCH; default 10000)',
    )
    .option(
      '--profiler-coverage-min-count <n>',
      'samples a cell needs to count as covered (env PERSEUS_PROFILER_COVERAGE_MIN_COUNT; default 10)',
    )
    .option(
      '--profiler-warmup-fraction <f>',
      'fraction of each frequency window discarded as warm-up (env PERSEUS_PROFILER_WARMUP_FRACTION; default 0.1)',
    )
    .option(
      '--profiler-outlier-k <k>',
      'outlier threshold in scaled MADs from the median (env PERSEUS_PROFILER_OUTLIER_K; default 3.5)',
    )
    .option(
      '--profiler-raw-retention-s <s>',
      'prune raw measurements of jobs idle this long, keeping aggregates; 0 = never (env PERSEUS_PROFILER_RAW_RETENTION_S; default 0)',
    )
    .option(
      '--profiler-aggregate-interval-ms <ms>',
      'background aggregation period; 0 = on read only (env PERSEUS_PROFILER_AGGREGATE_INTERVAL_MS; default 2000)',
    );
}

function num(flags: Record<string, unknown>, key: string, flag: string): number | undefined {
  const v = flags[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${flag} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** Flags → explicit profiler settings (undefined where the flag is absent, so env and defaults apply). */
export function profilerConfigFromFlags(flags: Record<string, unknown>): Partial<ProfilerConfig> {
  return {
    dataDir: flags['profilerDataDir'] as string | undefined,
    synchronous: flags['profilerSync'] as ProfilerConfig['synchronous'] | undefined,
    metricsListen: flags['profilerMetricsListen'] as string | undefined,
    tokenFile: flags['profilerTokenFile'] as string | undefined,
    maxBatchMeasurements: num(flags, 'profilerMaxBatch', '--profiler-max-batch'),
    coverageMinCount: num(flags, 'profilerCoverageMinCount', '--profiler-coverage-min-count'),
    warmupFraction: num(flags, 'profilerWarmupFraction', '--profiler-warmup-fraction'),
    outlierK: num(flags, 'profilerOutlierK', '--profiler-outlier-k'),
    rawRetentionS: num(flags, 'profilerRawRetentionS', '--profiler-raw-retention-s'),
    aggregateIntervalMs: num(
      flags,
      'profilerAggregateIntervalMs',
      '--profiler-aggregate-interval-ms',
    ),
  };
}

/** Builds the profiler module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function profilerModuleFromFlags(
  flags: Record<string, unknown>,
  ctx: ModuleContext,
): Promise<ServiceModule> {
  const mod = await createProfilerModule({
    logger: ctx.logger,
    metrics: ctx.metrics,
    tls: ctx.tls,
    config: profilerConfigFromFlags(flags),
  });
  const metrics = mod.metricsAddress();
  if (metrics !== undefined)
    process.stdout.write(`${JSON.stringify({ event: 'metrics', address: metrics })}\n`);
  return mod;
}
