import type { InstructionKind, PipelineSpec, ScheduledInstruction } from '@perseus/planner';
import type { RankIdentity } from '@perseus/service-kit';

/** Lifecycle of a job (mirrors `perseus.optimizer.v1.Phase`). */
export type JobPhase = 'REGISTERING' | 'PROFILING' | 'PLANNING' | 'DEPLOYED';

/** Online profiling sweep parameters (docs/architecture.md §3 step 3), defaults filled in. */
export interface ProfilingParams {
  /** K: iterations run at each clock before stepping down. */
  iterationsPerFrequency: number;
  /** Lowest clock to profile, MHz (0 = lowest supported). */
  floorFrequencyMhz: number;
  /** Profile every n-th supported clock. */
  frequencyStride: number;
}

/** A validated job spec (what `RegisterJob` stores; compared for idempotent re-registration). */
export interface JobSpec {
  pipeline: PipelineSpec;
  dpDegree: number;
  tpDegree: number;
  worldSize: number;
  gpuModel: string;
  unitTimeS: number;
  /** 0 = measure it from iteration reports once profiling ends. */
  blockingPowerW: number;
  profiling: ProfilingParams;
}

/** Position of a rank in the 3D-parallel layout (the one type, from service-kit). */
export type { RankIdentity };

/** A registered rank. */
export interface RankInfo extends RankIdentity {
  node: string;
  deviceIndex: number;
  supportedFrequenciesMhz: number[];
  /** The rank's GPU is simulated (absent in stores written before the flag existed = false). */
  simulated?: boolean;
}

/** How non-straggling pipelines pick their frontier point. */
export type Policy =
  | { kind: 'intrinsic' }
  | { kind: 'maxSlowdownPercent'; percent: number }
  | { kind: 'targetIterationTime'; timeS: number }
  | { kind: 'minEnergy' };

/** One schedule variant: per-stage instruction lists plus the prediction. */
export interface PlanVariant {
  /** Why it was issued ("profiling 1410 MHz", "intrinsic", "straggler dp=1 T'=3.1s"). */
  reason: string;
  /** Instructions per stage (index = stage) in schedule order; empty = default clocks. */
  stages: ScheduledInstruction[][];
  /** Frontier point behind it, −1 when not a frontier plan. */
  pointIndex: number;
  expectedTimeS: number;
  expectedEnergyJ: number;
  /**
   * Set when the exact polish at this deadline (s) found a better plan than the frontier point's:
   * the stages are the polished plan (energy ≤ the point's).
   */
  polishedAtS?: number;
  /**
   * Certified gap of this plan from the exact polish, percent of its energy (absent: the LP
   * relaxation at its time certifies it).
   */
  certifiedGapPercent?: number;
}

/**
 * What every rank of a job runs at one version. Each pipeline (dp rank) runs one variant; a rank
 * runs its stage's (pp rank's) list of that variant, whatever its tp rank.
 */
export interface Deployment {
  version: number;
  phase: JobPhase;
  variants: PlanVariant[];
  /** variant index per dp rank. */
  variantOfPipeline: number[];
}

/** An active straggler (reported or detected). */
export interface Straggler {
  dpRank: number;
  /** The straggler's iteration time T′, seconds. */
  iterationTimeS: number;
  /** Epoch ms after which the report lapses; null = until recovered. */
  expiresAtMs: number | null;
  source: 'reported' | 'detected';
  /** Reported as a slowdown factor: T′ = slowdown × the intrinsic plan's time, resolved at deploy. */
  slowdown?: number;
}

export type { InstructionKind, PipelineSpec, ScheduledInstruction };
