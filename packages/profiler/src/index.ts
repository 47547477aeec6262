/**
 * The Perseus profiler (docs/architecture.md §2, §3, §5): durable ingestion of per-instruction and per-iteration
 * measurements, robust aggregation per (job, stage, instruction, frequency), coverage, and Zeus CSV
 * import/export — as a gRPC module for `perseus serve`, and as a library (store + pure functions).
 *
 * @example
 * ```ts
 * import { SqliteProfileStore, Profiler, parseProfileCsv } from '@perseus/profiler';
 * const store = new SqliteProfileStore({ dataDir: ':memory:' });
 * const profiler = new Profiler({ store, logger });
 * await profiler.importProfile({ jobId: 'gpt3', format: 'stage', rows: parseProfileCsv(csv, 'stage') });
 * const cells = await profiler.getProfile({ jobId: 'gpt3', minCount: 0 });
 * ```
 */
export { createProfilerModule, type ProfilerModule, type ProfilerModuleOptions } from './module';
export { DEFAULT_PROFILER_CONFIG, resolveProfilerConfig, type ProfilerConfig } from './config';
export {
  Profiler,
  relativeStderr,
  type Coverage,
  type CoverageEntry,
  type IngestCounters,
  type ProfilerOptions,
} from './profiler';
export { profilerService, type ProfilerServiceOptions } from './grpc-service';
export type {
  BatchOutcome,
  CellAggregator,
  CellQuery,
  DirtyFilter,
  ProfileStore,
  StoreStats,
} from './store';
export {
  SqliteProfileStore,
  type SqliteProfileStoreOptions,
  type SynchronousMode,
} from './sqlite-store';
export {
  DEFAULT_OUTLIER_K,
  DEFAULT_WARMUP_FRACTION,
  aggregateCell,
  aggregateRanks,
  aggregateTpGroups,
  groupTensorParallel,
  combineTensorParallel,
  discardWarmup,
  median,
  medianAbsoluteDeviation,
  mergeCellStats,
  removeOutliers,
  summarize,
  warmupIterations,
  type AggregationOptions,
  type CellStats,
  type RawRow,
  type Sample,
  type TpGroup,
} from './aggregate';
export {
  MAX_CSV_ROWS,
  RANK_CSV_COLUMNS,
  STAGE_CSV_COLUMNS,
  compareCsvRows,
  formatProfileCsv,
  parseProfileCsv,
  type ProfileCsvRow,
} from './profile-csv';
export {
  LIMITS,
  checkBatchAgainstJob,
  checkImportAgainstJob,
  checkIterationsAgainstJob,
  validateExportProfile,
  validateGetCoverage,
  validateGetProfile,
  validateImportProfile,
  validateMeasurementBatch,
  validateRegisterJob,
  validateReportIterations,
  type ExportProfileQuery,
  type GetCoverageQuery,
  type GetProfileQuery,
  type ImportProfileCommand,
  type ReportIterations,
} from './validate';
export { IngestRateMeter, registerProfilerMetrics, renderMetrics } from './metrics';
export {
  INSTRUCTIONS,
  type BatchResult,
  type CellKey,
  type CellScope,
  type Instruction,
  type IterationRecord,
  type JobSpec,
  type Measurement,
  type MeasurementBatch,
  type ProfileCell,
  type ProfileFormatName,
  type RankIdentity,
  type ScheduleName,
} from './types';
