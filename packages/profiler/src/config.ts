/**
 * The profiler's configuration: the ONE place that reads `PERSEUS_PROFILER_*` environment
 * variables. Precedence: explicit values (CLI flags) > environment > documented defaults.
 * Every variable is listed in the package README.
 */
import * as path from 'node:path';
import { envNumber, envString } from '@perseus/service-kit';
import type { SynchronousMode } from './sqlite-store';

export interface ProfilerConfig {
  /** Directory of the SQLite store, or ':memory:'. Env PERSEUS_PROFILER_DATA_DIR, default `./.perseus-data/profiler`. */
  dataDir: string;
  /** SQLite synchronous mode, 'full' or 'normal'. Env PERSEUS_PROFILER_SYNC, default 'full'. */
  synchronous: SynchronousMode;
  /** Prometheus endpoint `host:port` ('' = off). Env PERSEUS_PROFILER_METRICS_LISTEN, default off. */
  metricsListen: string;
  /** Most measurements per batch (1..10000). Env PERSEUS_PROFILER_MAX_BATCH, default 10000. */
  maxBatchMeasurements: number;
  /** Samples a cell needs for GetCoverage's default. Env PERSEUS_PROFILER_COVERAGE_MIN_COUNT, default 10. */
  coverageMinCount: number;
  /** Warm-up fraction of each frequency window. Env PERSEUS_PROFILER_WARMUP_FRACTION, default 0.1. */
  warmupFraction: number;
  /** Outlier threshold in scaled MADs. Env PERSEUS_PROFILER_OUTLIER_K, default 3.5. */
  outlierK: number;
  /** Prune raw rows of jobs idle this long, seconds (0 = never). Env PERSEUS_PROFILER_RAW_RETENTION_S, default 0. */
  rawRetentionS: number;
  /** Background aggregation period, ms (0 = only on read). Env PERSEUS_PROFILER_AGGREGATE_INTERVAL_MS, default 2000. */
  aggregateIntervalMs: number;
  /** Token file (scopes read/report/control, optional jobs); '' = none. Env PERSEUS_PROFILER_TOKEN_FILE. */
  tokenFile: string;
}

export const DEFAULT_PROFILER_CONFIG: ProfilerConfig = {
  dataDir: path.join('.perseus-data', 'profiler'),
  synchronous: 'full',
  metricsListen: '',
  maxBatchMeasurements: 10_000,
  coverageMinCount: 10,
  warmupFraction: 0.1,
  outlierK: 3.5,
  rawRetentionS: 0,
  aggregateIntervalMs: 2000,
  tokenFile: '',
};

/** Resolves the configuration; throws an Error naming the setting when a value is out of range. */
export function resolveProfilerConfig(
  explicit: Partial<ProfilerConfig> = {},
  env: NodeJS.ProcessEnv = process.env,
): ProfilerConfig {
  const d = DEFAULT_PROFILER_CONFIG;
  const defined = Object.fromEntries(
    Object.entries(explicit).filter(([, v]) => v !== undefined),
  ) as Partial<ProfilerConfig>;
  const cfg: ProfilerConfig = {
    dataDir: envString('PERSEUS_PROFILER_DATA_DIR', d.dataDir, env),
    synchronous: envString('PERSEUS_PROFILER_SYNC', d.synchronous, env) as SynchronousMode,
    metricsListen: envString('PERSEUS_PROFILER_METRICS_LISTEN', d.metricsListen, env),
    maxBatchMeasurements: envNumber('PERSEUS_PROFILER_MAX_BATCH', d.maxBatchMeasurements, env),
    coverageMinCount: envNumber('PERSEUS_PROFILER_COVERAGE_MIN_COUNT', d.coverageMinCount, env),
    warmupFraction: envNumber('PERSEUS_PROFILER_WARMUP_FRACTION', d.warmupFraction, env),
    outlierK: envNumber('PERSEUS_PROFILER_OUTLIER_K', d.outlierK, env),
    rawRetentionS: envNumber('PERSEUS_PROFILER_RAW_RETENTION_S', d.rawRetentionS, env),
    aggregateIntervalMs: envNumber(
      'PERSEUS_PROFILER_AGGREGATE_INTERVAL_MS',
      d.aggregateIntervalMs,
      env,
    ),
    tokenFile: envString('PERSEUS_PROFILER_TOKEN_FILE', d.tokenFile, env),
    ...defined,
  };
  const problems: string[] = [];
  if (cfg.dataDir === '') problems.push('data dir must not be empty');
  if (cfg.synchronous !== 'full' && cfg.synchronous !== 'normal')
    problems.push(`sync must be full or normal, got ${JSON.stringify(cfg.synchronous)}`);
  if (
    !(
      Number.isInteger(cfg.maxBatchMeasurements) &&
      cfg.maxBatchMeasurements >= 1 &&
      cfg.maxBatchMeasurements <= 10_000
    )
  )
    problems.push(`max batch must be an integer in [1, 10000], got ${cfg.maxBatchMeasurements}`);
  if (!(Number.isInteger(cfg.coverageMinCount) && cfg.coverageMinCount >= 1))
    problems.push(`coverage min count must be an integer ≥ 1, got ${cfg.coverageMinCount}`);
  if (!(cfg.warmupFraction >= 0 && cfg.warmupFraction < 1))
    problems.push(`warm-up fraction must be in [0, 1), got ${cfg.warmupFraction}`);
  if (!(cfg.outlierK > 0)) problems.push(`outlier k must be > 0, got ${cfg.outlierK}`);
  if (!(cfg.rawRetentionS >= 0))
    problems.push(`raw retention must be ≥ 0 s, got ${cfg.rawRetentionS}`);
  if (!(cfg.aggregateIntervalMs >= 0))
    problems.push(`aggregate interval must be ≥ 0 ms, got ${cfg.aggregateIntervalMs}`);
  if (problems.length > 0)
    throw new Error(`invalid profiler configuration: ${problems.join('; ')}`);
  return cfg;
}
