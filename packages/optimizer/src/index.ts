/**
 * @perseus/optimizer — the Perseus optimizer service (docs/architecture.md §2, §3): jobs and ranks, the online
 * profiling sweep, planning in a worker thread, versioned per-rank schedules, stragglers and
 * policies, over `perseus.optimizer.v1.Optimizer`.
 *
 * @example
 * ```ts
 * import { createOptimizerModule } from '@perseus/optimizer';
 * import { PerseusServer, createLogger } from '@perseus/service-kit';
 * const logger = createLogger('optimizer');
 * const mod = await createOptimizerModule({ logger, dataDir: '/var/lib/perseus/optimizer', profilerUrl: '127.0.0.1:50052' });
 * const server = new PerseusServer({ address: '127.0.0.1:50051', logger });
 * for (const s of mod.services) server.addService(s);
 * server.onShutdown(() => mod.close());
 * await mod.onListening?.(await server.start());
 * ```
 */
export {
  createOptimizerModule,
  loadProfileCsvs,
  type OptimizerModule,
  type OptimizerModuleOptions,
} from './module';
export {
  DEFAULT_CONFIG,
  DEFAULT_PROFILER_URL,
  KNOWN_BLOCKING_POWER_W,
  optimizerConfigFromEnv,
  validateOptimizerConfig,
  OptimizerConfigError,
  type OptimizerConfig,
} from './config';
export {
  GrpcProfileSource,
  MemoryProfileSource,
  type ProfileCellStat,
  type ProfileCoverage,
  type ProfileJobShape,
  type ProfileSource,
} from './profile-source';
export { Optimizer, type JobMetrics, type OptimizerCoreOptions } from './optimizer';
export {
  WorkerFrontierPlanner,
  frontierFromText,
  type FrontierPlanner,
  type PlannedFrontier,
} from './planner-pool';
export { OptimizerStore } from './store';
export * from './dashboard/chart-specs';
export { registerOptimizerMetrics } from './metrics';
export { DEFAULT_DETECTOR, StragglerDetector, type StragglerDetectorOptions } from './stragglers';
export {
  DEFAULT_STOP_RULE,
  advanceSweep,
  energyRoseSignificantly,
  newSweep,
  sweepClocks,
  type CellEnergy,
  type StopRule,
  type SweepState,
} from './sweep';
export { choosePlans, policyPoint, policyTargetS, type PlanChoice } from './policy';
export * from './validate';
export type { JobPhase, JobSpec, Policy, RankInfo } from './types';
