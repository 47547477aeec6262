/**
 * One job generation's runtime record and the read-only views of it the RPCs answer (summary,
 * details, status). What changes it: the {@link Optimizer}'s RPC entry points (optimizer.ts) and the
 * phase steps they run (profiling.ts, planning.ts, deployment.ts, straggler-reports.ts).
 */
import type { Frontier, PlannerInput, PolishedPlan, Profile } from '@perseus/planner';
import type { IdleSample } from './profile-assembly';
import { ScheduleEncoder } from './schedule-encoding';
import type { JobState } from './store';
import { StragglerDetector } from './stragglers';
import type { StragglerDetectorOptions } from './stragglers';
import { SweepStep } from './sweep-step';
import { specHash } from './job-identity';
import { stragglerTimeS } from './policy';
import type { JobPhase, JobSpec, Policy, RankInfo, Straggler } from './types';

/** Runtime state of one job (the persisted part is `state`). */
export interface Job {
  jobId: string;
  spec: JobSpec;
  createdMs: number;
  /** Generation of the id (>= 1) and its spec hash; every schedule carries both. */
  generation: number;
  specHash: string;
  /** Job id of this generation's measurements at the profiler. */
  profileJobId: string;
  /** rank → last RPC from it, epoch ms. */
  lastSeenMs: Map<number, number>;
  /** Set once the job (this generation) is deleted or superseded: pending transitions stop. */
  dropped: boolean;
  state: JobState;
  ranks: Map<number, RankInfo>;
  /** `${dp}/${pp}/${tp}` → rank, so one position has one rank. */
  positions: Map<string, number>;
  frontier: Frontier | null;
  /** What `frontier` was planned from (null after a restart: no polish until the next plan). */
  plannerInput: PlannerInput | null;
  /**
   * Exact polishes of deployed plans for `frontier`, by deadline (s): running (result null) or
   * done. Cleared with a new frontier.
   */
  polishes: Map<number, PolishEntry>;
  importedProfile: Profile | null;
  /** Progress of the current profiling version's sweep step. */
  sweepStep: SweepStep;
  detector: StragglerDetector;
  /** Serialises the async transitions (profiling start, sweep steps, planning). */
  chain: Promise<void>;
  expiryTimer: NodeJS.Timeout | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  /** Per stage, the ranks' iteration (time, energy) during profiling with the clocks they ran. */
  idleSamples: IdleSample[];
  /** Encoded schedules of the current deployment. */
  schedules: ScheduleEncoder;
  planningStartedMs: number;
  lastPlanningMs: number;
  /** How long the last version took to hand to every watcher's stream, ms. */
  lastPublishMs: number;
}

/** The exact polish of a deployed plan at one deadline, in the planner worker or done. */
export interface PolishEntry {
  /** Stops the worker's polish (a superseded deadline, a new frontier, a deleted job). */
  abort: AbortController;
  /** null while it runs, or when it failed. */
  result: PolishedPlan | null;
}

/** Stops every running polish of the job and forgets every result (its frontier changed or it ended). */
export function dropPolishes(job: Job): void {
  for (const e of job.polishes.values()) if (e.result === null) e.abort.abort();
  job.polishes.clear();
}

/** Identity of a job generation, as registration answers it. */
export interface JobIdentity {
  generation: number;
  specHash: string;
  profileJobId: string;
}

export interface RegisteredJob extends JobIdentity {
  created: boolean;
  phase: JobPhase;
}

export interface RegisteredRank extends JobIdentity {
  created: boolean;
  registeredRanks: number;
}

/** One job in a listing (ListJobs, and the head of GetJob). */
export interface JobSummary extends JobIdentity {
  jobId: string;
  phase: JobPhase;
  version: number;
  worldSize: number;
  registeredRanks: number;
  liveRanks: number;
  createdMs: number;
  lastSeenMs: number;
  finished: boolean;
  predictedSavingPercent: number;
  simulated: boolean;
}

/** Everything GetJob reports. */
export interface JobDetails {
  summary: JobSummary;
  spec: JobSpec;
  policy: Policy;
  ranks: Array<RankInfo & { alive: boolean; lastSeenMs: number }>;
  stragglers: Array<{
    dpRank: number;
    iterationTimeS: number;
    detected: boolean;
    expiresAtMs: number | null;
  }>;
  frontierPoints: number;
  blockingPowerW: number;
  detail: string;
  hasImportedProfile: boolean;
}

/** What GetJobStatus reports. */
export interface JobStatus extends JobIdentity {
  phase: JobPhase;
  version: number;
  registeredRanks: number;
  worldSize: number;
  predictedSavingPercent: number;
  stragglerDpRanks: number[];
  detail: string;
  simulated: boolean;
  /** Certified gap of the deployed plan, percent; undefined = no certificate. */
  certifiedGapPercent: number | undefined;
}

export const identityOf = (job: {
  generation: number;
  specHash: string;
  profileJobId: string;
}): JobIdentity => ({
  generation: job.generation,
  specHash: job.specHash,
  profileJobId: job.profileJobId,
});

export function newJob(
  jobId: string,
  spec: JobSpec,
  createdMs: number,
  state: JobState,
  identity: { generation: number; profileJobId: string },
  detectorOpts: StragglerDetectorOptions,
): Job {
  return {
    jobId,
    spec,
    createdMs,
    generation: identity.generation,
    specHash: specHash(spec),
    profileJobId: identity.profileJobId,
    lastSeenMs: new Map(),
    dropped: false,
    state,
    ranks: new Map(),
    positions: new Map(),
    frontier: null,
    plannerInput: null,
    polishes: new Map(),
    importedProfile: null,
    sweepStep: newSweepStep(spec),
    detector: new StragglerDetector(
      spec.dpDegree,
      spec.pipeline.numStages * spec.tpDegree,
      detectorOpts,
    ),
    chain: Promise.resolve(),
    expiryTimer: undefined,
    retryTimer: undefined,
    idleSamples: [],
    schedules: new ScheduleEncoder(),
    planningStartedMs: 0,
    lastPlanningMs: 0,
    lastPublishMs: 0,
  };
}

/** Mean over pipelines of the deployed plan's energy saving vs all-max clocks, percent. */
export function predictedSaving(job: Job): number {
  const d = job.state.deployment;
  const f = job.frontier;
  if (f === null || d === null || d.phase !== 'DEPLOYED') return 0;
  const savings = d.variantOfPipeline.map(
    (v) => 100 * (1 - d.variants[v]!.expectedEnergyJ / f.allMax.energyJ),
  );
  return savings.reduce((a, b) => a + b, 0) / Math.max(1, savings.length);
}

/**
 * Certified gap of the deployed plans, percent of their energy: over the pipelines' variants, the
 * most a plan's energy may lie above the optimum for its deadline. A plan the exact polish
 * certified carries its own gap (against the MILP's dual bound where that beats the LP
 * relaxation); any other is measured against the planner's LP relaxation at its time, a proven
 * bound too. Undefined until frontier plans are deployed.
 */
export function certifiedGap(job: Job): number | undefined {
  const d = job.state.deployment;
  const f = job.frontier;
  if (f === null || d === null || d.phase !== 'DEPLOYED') return undefined;
  let gap: number | undefined;
  for (const v of new Set(d.variantOfPipeline)) {
    const p = d.variants[v]!;
    if (p.certifiedGapPercent !== undefined) {
      gap = Math.max(gap ?? 0, p.certifiedGapPercent);
      continue;
    }
    const boundJ = f.lowerBoundJ(p.expectedTimeS);
    if (p.pointIndex < 0 || !Number.isFinite(boundJ) || !(p.expectedEnergyJ > 0)) return undefined;
    gap = Math.max(gap ?? 0, (100 * Math.max(0, p.expectedEnergyJ - boundJ)) / p.expectedEnergyJ);
  }
  return gap;
}

/** Stragglers whose report has not lapsed at `nowMs`. */
export function activeStragglers(job: Job, nowMs: number): Straggler[] {
  const now = nowMs;
  return job.state.stragglers.filter((s) => s.expiresAtMs === null || s.expiresAtMs > now);
}

export const newSweepStep = (spec: JobSpec): SweepStep =>
  new SweepStep(spec.profiling.iterationsPerFrequency, spec.worldSize, spec.pipeline.numStages);

export const isSimulated = (job: Job): boolean =>
  [...job.ranks.values()].some((r) => r.simulated === true);

/** Ranks alive at `nowMs`: watching their schedule, or heard from within `timeoutMs`. */
export function liveRanks(
  job: Job,
  watching: ReadonlySet<number>,
  nowMs: number,
  timeoutMs: number,
): number[] {
  const live = new Set(watching);
  for (const [rank, t] of job.lastSeenMs) if (nowMs - t < timeoutMs) live.add(rank);
  return [...live].sort((a, b) => a - b);
}

/** Last RPC from any rank of the job, epoch ms (its creation when none). */
export function jobLastSeenMs(job: Job): number {
  return Math.max(job.createdMs, ...job.lastSeenMs.values());
}

export function jobSummary(
  job: Job,
  live: readonly number[],
  nowMs: number,
  timeoutMs: number,
): JobSummary {
  return {
    ...identityOf(job),
    jobId: job.jobId,
    phase: job.state.phase,
    version: job.state.version,
    worldSize: job.spec.worldSize,
    registeredRanks: job.ranks.size,
    liveRanks: live.length,
    createdMs: job.createdMs,
    lastSeenMs: jobLastSeenMs(job),
    finished: live.length === 0 && nowMs - jobLastSeenMs(job) >= timeoutMs,
    predictedSavingPercent: predictedSaving(job),
    simulated: isSimulated(job),
  };
}

export function jobDetails(
  job: Job,
  live: readonly number[],
  nowMs: number,
  timeoutMs: number,
): JobDetails {
  const alive = new Set(live);
  return {
    summary: jobSummary(job, live, nowMs, timeoutMs),
    spec: job.spec,
    policy: job.state.policy,
    ranks: [...job.ranks.values()]
      .sort((a, b) => a.rank - b.rank)
      .map((r) => ({
        ...r,
        alive: alive.has(r.rank),
        lastSeenMs: job.lastSeenMs.get(r.rank) ?? 0,
      })),
    stragglers: activeStragglers(job, nowMs).map((s) => ({
      dpRank: s.dpRank,
      iterationTimeS: stragglerTimeS(s, job.frontier),
      detected: s.source === 'detected',
      expiresAtMs: s.expiresAtMs,
    })),
    frontierPoints: job.frontier?.points.length ?? 0,
    blockingPowerW: job.frontier === null ? 0 : job.state.blockingPowerW,
    detail: job.state.detail,
    hasImportedProfile: job.importedProfile !== null,
  };
}

export function jobStatus(job: Job, nowMs: number): JobStatus {
  return {
    ...identityOf(job),
    phase: job.state.phase,
    version: job.state.version,
    registeredRanks: job.ranks.size,
    worldSize: job.spec.worldSize,
    predictedSavingPercent: predictedSaving(job),
    stragglerDpRanks: activeStragglers(job, nowMs)
      .map((s) => s.dpRank)
      .sort((a, b) => a - b),
    detail: job.state.detail,
    simulated: isSimulated(job),
    certifiedGapPercent: certifiedGap(job),
  };
}
