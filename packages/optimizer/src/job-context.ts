/**
 * What the optimizer's phase machine (profiling, planning, deployment, stragglers) shares with the
 * {@link Optimizer} core that owns the jobs: its options, the watch hub, the logger, the clock.
 */
import type { Profile } from '@perseus/planner';
import type { Logger } from '@perseus/service-kit';
import type { FrontierPlanner } from './planner-pool';
import type { Job } from './job';
import type { ProfileSource } from './profile-source';
import type { OptimizerStore } from './store';
import type { StragglerDetectorOptions } from './stragglers';
import type { IterationReport } from './validate';
import type { WatchHub } from './watch-hub';

/** What the {@link Optimizer} core needs (the module wires these from flags/env). */
export interface OptimizerCoreOptions {
  store: OptimizerStore;
  planner: FrontierPlanner;
  /** Planner for PlanOffline (default: `planner`); its own worker keeps jobs from waiting on it. */
  offlinePlanner?: FrontierPlanner;
  /** Resolved lazily: the all-in-one server only knows its profiler address once bound. */
  profileSource: () => ProfileSource | undefined;
  /** Imported profiles: for one job id, or (jobId undefined) for any job with that many stages. */
  importedProfiles?: Array<{ jobId?: string | undefined; profile: Profile }>;
  logger: Logger;
  detector?: Partial<StragglerDetectorOptions>;
  /** Clocks an imported/profiled (stage, instruction) must cover to skip the sweep. Default 3. */
  minCoveredClocks?: number;
  /** Delay before re-trying a failed planning attempt, ms. Default 5000. */
  planRetryMs?: number;
  /**
   * Wall-clock cap of the exact polish (HiGHS) of each deployed plan in the planner worker, s:
   * the intrinsic plan before its first deployment, a straggler's T′ (or a policy's target) after
   * its frontier plan is deployed. 0 = deploy the frontier's plans as they are. Default 10.
   */
  exactBudgetS?: number;
  /**
   * Least time a sweep step waits for silent ranks once every stage has K iterations, ms
   * (the wait is at least 3 × the longest reported iteration). Default 5000.
   */
  sweepGraceMs?: number;
  /**
   * A rank without an open WatchSchedule stream counts as alive for this long after its last RPC,
   * ms. Default 60000. While any rank of a job is alive its id cannot start a new generation.
   */
  rankTimeoutMs?: number;
  /** Finished jobs (no live rank) are deleted this long after their last RPC, ms. Default 7 days. */
  finishedRetentionMs?: number;
  /** Told of every accepted iteration report (the dashboard's live time and energy). */
  onIteration?: (rep: IterationReport) => void;
  now?: () => number;
}

/** The optimizer core as its phase-machine steps see it. */
export interface JobContext {
  readonly opts: OptimizerCoreOptions;
  readonly hub: WatchHub;
  readonly log: Logger;
  now(): number;
  /** The optimizer is shutting down: transitions stop at their next step. */
  isClosed(): boolean;
  /** Runs `fn` after the job's earlier transitions, unless the optimizer closed or the job was dropped. */
  enqueue(job: Job, fn: () => Promise<void>): void;
}

/** Persists a job's state, unless the job was deleted or superseded meanwhile. */
export function persistState(ctx: JobContext, job: Job): void {
  if (!job.dropped) ctx.opts.store.putState(job.jobId, job.state);
}
