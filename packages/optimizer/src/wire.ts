/**
 * Domain values → `perseus.optimizer.v1` / `perseus.common.v1` messages. Every enum table is keyed
 * by the domain type and valued by the generated enum type, so adding a value on either side breaks
 * the build instead of sending a wrong number.
 */
import type {
  Frontier,
  FrontierPoint,
  InstructionKind,
  ScheduleKind,
  StagePlan,
} from '@perseus/planner';
import type { commonV1, optimizerV1 } from '@perseus/proto';
import type { JobDetails, JobStatus, JobSummary } from './job';
import type { JobPhase, JobSpec, Policy } from './types';

export const PHASE_TO_PROTO: Readonly<Record<JobPhase, optimizerV1.Phase>> = {
  REGISTERING: 'PHASE_REGISTERING',
  PROFILING: 'PHASE_PROFILING',
  PLANNING: 'PHASE_PLANNING',
  DEPLOYED: 'PHASE_DEPLOYED',
};

export const KIND_TO_PROTO: Readonly<Record<InstructionKind, commonV1.InstructionKind>> = {
  forward: 'INSTRUCTION_KIND_FORWARD',
  backward: 'INSTRUCTION_KIND_BACKWARD',
};

export const SCHEDULE_TO_PROTO: Readonly<Record<ScheduleKind, commonV1.ScheduleKind>> = {
  '1f1b': 'SCHEDULE_KIND_1F1B',
  gpipe: 'SCHEDULE_KIND_GPIPE',
  interleaved: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
};

export function pointToProto(p: FrontierPoint): commonV1.FrontierPoint {
  return { index: p.index, time_s: p.timeS, energy_j: p.energyJ, model_energy_j: p.modelEnergyJ };
}

export function stagePlanToProto(sp: StagePlan): commonV1.StagePlan {
  return {
    stage: sp.stage,
    instructions: sp.instructions.map((x) => ({
      instruction: KIND_TO_PROTO[x.kind],
      microbatch: x.microbatch,
      frequency_mhz: x.frequencyMhz,
      chunk: x.chunk ?? 0,
    })),
  };
}

export function policyToProto(p: Policy): optimizerV1.Policy {
  switch (p.kind) {
    case 'intrinsic':
      return { intrinsic: true };
    case 'minEnergy':
      return { min_energy: true };
    case 'maxSlowdownPercent':
      return { max_slowdown_percent: p.percent };
    case 'targetIterationTime':
      return { target_iteration_time_s: p.timeS };
  }
}

export function specToProto(s: JobSpec): optimizerV1.JobSpec {
  return {
    pipeline: {
      schedule: SCHEDULE_TO_PROTO[s.pipeline.schedule],
      num_stages: s.pipeline.numStages,
      num_microbatches: s.pipeline.numMicrobatches,
      num_chunks: s.pipeline.numChunks ?? 0,
    },
    dp_degree: s.dpDegree,
    tp_degree: s.tpDegree,
    world_size: s.worldSize,
    gpu_model: s.gpuModel,
    unit_time_s: s.unitTimeS,
    blocking_power_w: s.blockingPowerW,
    profiling: {
      iterations_per_frequency: s.profiling.iterationsPerFrequency,
      floor_frequency_mhz: s.profiling.floorFrequencyMhz,
      frequency_stride: s.profiling.frequencyStride,
    },
  };
}

export function summaryToProto(s: JobSummary): optimizerV1.JobSummary {
  return {
    job_id: s.jobId,
    generation: String(s.generation),
    spec_hash: s.specHash,
    phase: PHASE_TO_PROTO[s.phase],
    world_size: s.worldSize,
    registered_ranks: s.registeredRanks,
    live_ranks: s.liveRanks,
    created_unix_ms: String(s.createdMs),
    last_seen_unix_ms: String(s.lastSeenMs),
    finished: s.finished,
    predicted_saving_percent: s.predictedSavingPercent,
    simulated: s.simulated,
    schedule_version: String(s.version),
  };
}

export function jobDetailsToProto(d: JobDetails): optimizerV1.GetJobResponse {
  return {
    summary: summaryToProto(d.summary),
    spec: specToProto(d.spec),
    policy: policyToProto(d.policy),
    ranks: d.ranks.map((r) => ({
      rank: { rank: r.rank, dp_rank: r.dpRank, pp_rank: r.ppRank, tp_rank: r.tpRank },
      node: r.node,
      device_index: r.deviceIndex,
      alive: r.alive,
      last_seen_unix_ms: String(r.lastSeenMs),
      simulated: r.simulated === true,
    })),
    stragglers: d.stragglers.map((s) => ({
      dp_rank: s.dpRank,
      iteration_time_s: s.iterationTimeS,
      detected: s.detected,
      expires_unix_ms: String(s.expiresAtMs ?? 0),
    })),
    frontier_points: d.frontierPoints,
    blocking_power_w: d.blockingPowerW,
    detail: d.detail,
    has_imported_profile: d.hasImportedProfile,
  };
}

export function jobStatusToProto(s: JobStatus): optimizerV1.GetJobStatusResponse {
  return {
    phase: PHASE_TO_PROTO[s.phase],
    schedule_version: String(s.version),
    registered_ranks: s.registeredRanks,
    world_size: s.worldSize,
    predicted_saving_percent: s.predictedSavingPercent,
    straggler_dp_ranks: s.stragglerDpRanks,
    detail: s.detail,
    simulated: s.simulated,
    ...(s.certifiedGapPercent === undefined
      ? {}
      : { certified_gap_percent: s.certifiedGapPercent }),
    generation: String(s.generation),
    spec_hash: s.specHash,
  };
}

export function planOfflineToProto(
  f: Frontier,
  includePlans: boolean,
): optimizerV1.PlanOfflineResponse {
  return {
    points: f.points.map(pointToProto),
    plans: includePlans
      ? f.points.map((p) => ({ index: p.index, stages: f.plan(p.index).map(stagePlanToProto) }))
      : [],
    all_max_time_s: f.allMax.timeS,
    all_max_energy_j: f.allMax.energyJ,
    min_energy_time_s: f.minEnergyTimeS,
    intrinsic_index: f.intrinsic().point.index,
  };
}
