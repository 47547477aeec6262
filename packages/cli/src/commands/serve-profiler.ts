import type { Command } from 'commander';
import { createProfilerModule } from '@perseus/profiler';
import type { ProfilerConfig } from '@perseus/profiler';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';
import { envOption, flagNumber } from './flag-values';

/** Adds the profiler-specific flags of `perseus serve profiler` (and of the all-in-one `perseus serve`). */
export function addProfilerFlags(cmd: Command): Command {
  return cmd
    .addOption(
      envOption(
        '--profiler-data-dir <dir>',
        'PERSEUS_PROFILER_DATA_DIR',
        'directory of the profiler SQLite store, or :memory: (default ./.perseus-data/profiler)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-sync <mode>',
        'PERSEUS_PROFILER_SYNC',
        'full (fsync every commit; survives OS crash) or normal (survives process crash) (default full)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-metrics-listen <host:port>',
        'PERSEUS_PROFILER_METRICS_LISTEN',
        'serve Prometheus metrics at http://<host:port>/metrics (default off)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-token-file <file>',
        'PERSEUS_PROFILER_TOKEN_FILE',
        'bearer tokens, one "<name> <read|report|control>[,…] <secret> [jobs=<id>,…]" per line, mode 0600; required for a non-local --listen (default none)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-max-batch <n>',
        'PERSEUS_PROFILER_MAX_BATCH',
        'most measurements per batch, 1..10000 (default 10000)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-coverage-min-count <n>',
        'PERSEUS_PROFILER_COVERAGE_MIN_COUNT',
        'samples a cell needs to count as covered (default 10)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-warmup-fraction <f>',
        'PERSEUS_PROFILER_WARMUP_FRACTION',
        'fraction of each frequency window discarded as warm-up (default 0.1)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-outlier-k <k>',
        'PERSEUS_PROFILER_OUTLIER_K',
        'outlier threshold in scaled MADs from the median (default 3.5)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-raw-retention-s <s>',
        'PERSEUS_PROFILER_RAW_RETENTION_S',
        'prune raw measurements of jobs idle this long, keeping aggregates; 0 = never (default 0)',
      ),
    )
    .addOption(
      envOption(
        '--profiler-aggregate-interval-ms <ms>',
        'PERSEUS_PROFILER_AGGREGATE_INTERVAL_MS',
        'background aggregation period; 0 = on read only (default 2000)',
      ),
    );
}

/** Flags → explicit profiler settings (undefined where the flag is absent, so env and defaults apply). */
export function profilerConfigFromFlags(flags: Record<string, unknown>): Partial<ProfilerConfig> {
  return {
    dataDir: flags['profilerDataDir'] as string | undefined,
    synchronous: flags['profilerSync'] as ProfilerConfig['synchronous'] | undefined,
    metricsListen: flags['profilerMetricsListen'] as string | undefined,
    tokenFile: flags['profilerTokenFile'] as string | undefined,
    maxBatchMeasurements: flagNumber(flags, 'profilerMaxBatch'),
    coverageMinCount: flagNumber(flags, 'profilerCoverageMinCount'),
    warmupFraction: flagNumber(flags, 'profilerWarmupFraction'),
    outlierK: flagNumber(flags, 'profilerOutlierK'),
    rawRetentionS: flagNumber(flags, 'profilerRawRetentionS'),
    aggregateIntervalMs: flagNumber(flags, 'profilerAggregateIntervalMs'),
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
