/**
 * Boundary validation: one `validateXxx` per request of `perseus.optimizer.v1.Optimizer`. Each turns
 * the loose wire message into a strict internal value or throws a ValidationError naming every bad
 * field with its value (→ INVALID_ARGUMENT + google.rpc.BadRequest). Handlers call them first, so an
 * invalid request never changes state. Checks that need a job (rank in range of its degrees) live
 * in the optimizer and name the field the same way.
 */
import type { commonV1, optimizerV1 } from '@perseus/proto';
import {
  Checker,
  INSTRUCTION_FROM_WIRE,
  SIZE_LIMITS,
  checkSupportedClocks,
  checkRankIdentity,
  checkWirePipeline,
} from '@perseus/service-kit';
import type { MeasuredOption, PipelineSpec, Profile } from '@perseus/planner';
import { virtualStages } from './sweep';
import type { JobSpec, Policy, RankIdentity } from './types';

/** Limits that keep one request from exhausting memory or CPU (sizes: service-kit's SIZE_LIMITS). */
export const LIMITS = {
  maxStages: SIZE_LIMITS.maxStages,
  maxMicrobatches: SIZE_LIMITS.maxMicrobatches,
  maxDegree: SIZE_LIMITS.maxDegree,
  maxWorldSize: SIZE_LIMITS.maxWorldSize,
  maxFrequencies: SIZE_LIMITS.maxFrequencies,
  maxFrequencyMhz: SIZE_LIMITS.maxFrequencyMhz,
  maxProfileRows: SIZE_LIMITS.maxProfileRows,
  maxIterationsPerFrequency: 1000,
  maxUnitTimeS: 10,
  /** Shortest iteration or compute time a report may carry, s. */
  minIterationTimeS: 1e-6,
  /** Longest iteration time a report may carry, s (one day). */
  maxIterationTimeS: 86_400,
  /** Largest energy of one iteration of one rank, J. */
  maxIterationEnergyJ: 1e9,
  maxListPageSize: 1000,
  /** Longest time of one instruction (one microbatch) in a profile row, s. */
  maxInstructionTimeS: 3600,
  /** Largest energy of one instruction in a profile row, J. */
  maxInstructionEnergyJ: 1e7,
} as const;

/** Spec hashes are SHA-256 in lowercase hex. */
const SPEC_HASH = /^[0-9a-f]{64}$/;

/** Defaults of the optional fields of a JobSpec. */
export const JOB_DEFAULTS = {
  unitTimeS: 0.001,
  iterationsPerFrequency: 3,
  frequencyStride: 1,
} as const;

function pipelineSpec(
  c: Checker,
  field: string,
  p: commonV1.PipelineSpec__Output | null | undefined,
): PipelineSpec {
  if (!c.present(field, p)) return { schedule: '1f1b', numStages: 1, numMicrobatches: 1 };
  const pc = c.at(field);
  const w = checkWirePipeline(pc, p);
  if (w === undefined) return { schedule: '1f1b', numStages: 1, numMicrobatches: 1 };
  const { schedule, numStages, numMicrobatches, numChunks } = w;
  // numChunks only where it means something, so a 1F1B/GPipe spec (and its hash) is unchanged.
  return schedule === 'interleaved'
    ? { schedule, numStages, numMicrobatches, numChunks }
    : { schedule, numStages, numMicrobatches };
}

export function validateRegisterJob(req: optimizerV1.RegisterJobRequest__Output): {
  jobId: string;
  spec: JobSpec;
} {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  const s = req.spec;
  const spec: JobSpec = {
    pipeline: { schedule: '1f1b', numStages: 1, numMicrobatches: 1 },
    dpDegree: 1,
    tpDegree: 1,
    worldSize: 1,
    gpuModel: '',
    unitTimeS: JOB_DEFAULTS.unitTimeS,
    blockingPowerW: 0,
    profiling: {
      iterationsPerFrequency: JOB_DEFAULTS.iterationsPerFrequency,
      floorFrequencyMhz: 0,
      frequencyStride: 1,
    },
  };
  if (c.present('spec', s)) {
    const sc = c.at('spec');
    spec.pipeline = pipelineSpec(sc, 'pipeline', s.pipeline);
    spec.dpDegree = sc.uint('dp_degree', s.dp_degree, { min: 1, max: LIMITS.maxDegree });
    spec.tpDegree = sc.uint('tp_degree', s.tp_degree, { min: 1, max: LIMITS.maxDegree });
    spec.worldSize = sc.uint('world_size', s.world_size, { min: 1, max: LIMITS.maxWorldSize });
    const expected = spec.pipeline.numStages * spec.dpDegree * spec.tpDegree;
    if (c.ok && spec.worldSize !== expected) {
      sc.fail(
        'world_size',
        `must equal pipeline.num_stages × dp_degree × tp_degree = ${expected}, got ${spec.worldSize}`,
      );
    }
    spec.gpuModel = sc.string('gpu_model', s.gpu_model, { max: 128 });
    const tau = sc.number('unit_time_s', s.unit_time_s, { min: 0, max: LIMITS.maxUnitTimeS });
    spec.unitTimeS = tau === 0 ? JOB_DEFAULTS.unitTimeS : tau;
    spec.blockingPowerW = sc.number('blocking_power_w', s.blocking_power_w, {
      min: 0,
      max: 10_000,
    });
    const p = s.profiling;
    if (p) {
      const pc = sc.at('profiling');
      const k = pc.uint('iterations_per_frequency', p.iterations_per_frequency, {
        max: LIMITS.maxIterationsPerFrequency,
      });
      spec.profiling = {
        iterationsPerFrequency: k === 0 ? JOB_DEFAULTS.iterationsPerFrequency : k,
        floorFrequencyMhz: pc.uint('floor_frequency_mhz', p.floor_frequency_mhz, {
          max: LIMITS.maxFrequencyMhz,
        }),
        frequencyStride: Math.max(
          1,
          pc.uint('frequency_stride', p.frequency_stride, { max: LIMITS.maxFrequencies }),
        ),
      };
    }
  }
  c.done();
  return { jobId, spec };
}

export interface RegisterRankInput {
  jobId: string;
  rank: RankIdentity;
  node: string;
  deviceIndex: number;
  supportedFrequenciesMhz: number[];
  simulated: boolean;
  /** '' = not checked. */
  expectedSpecHash: string;
}

export function validateRegisterRank(
  req: optimizerV1.RegisterRankRequest__Output,
): RegisterRankInput {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  const rank = checkRankIdentity(c, 'rank', req.rank);
  const node = c.string('node', req.node, { max: 255 });
  const deviceIndex = c.uint('device_index', req.device_index, { max: 1023 });
  const clocks = checkSupportedClocks(
    c,
    'supported_frequencies_mhz',
    req.supported_frequencies_mhz,
    {
      min: 1,
    },
  );
  const expectedSpecHash = req.expected_spec_hash ?? '';
  if (expectedSpecHash !== '' && !SPEC_HASH.test(expectedSpecHash))
    c.fail('expected_spec_hash', 'must be empty or 64 lowercase hex characters');
  c.done();
  return {
    jobId,
    rank,
    node,
    deviceIndex,
    supportedFrequenciesMhz: clocks.sort((a, b) => b - a),
    simulated: req.simulated === true,
    expectedSpecHash,
  };
}

export function validateWatchSchedule(req: optimizerV1.WatchScheduleRequest__Output): {
  jobId: string;
  rank: number;
  knownVersion: number;
  generation: number;
} {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  const rank = c.uint('rank', req.rank, { max: LIMITS.maxWorldSize - 1 });
  const knownVersion = c.uint64('known_version', req.known_version);
  const generation = c.uint64('generation', req.generation);
  c.done();
  return { jobId, rank, knownVersion, generation };
}

export interface IterationReport {
  jobId: string;
  rank: RankIdentity;
  iteration: number;
  timeS: number;
  energyJ: number;
  scheduleVersion: number;
  /** 0 = unknown (use timeS). */
  computeTimeS: number;
  /** 0 = not checked. */
  generation: number;
}

export function validateReportIteration(
  req: optimizerV1.ReportIterationRequest__Output,
): IterationReport {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  const rank = checkRankIdentity(c, 'rank', req.rank);
  const iteration = c.uint64('iteration', req.iteration);
  const timeS = c.number('time_s', req.time_s, {
    min: LIMITS.minIterationTimeS,
    max: LIMITS.maxIterationTimeS,
  });
  const energyJ = c.number('energy_j', req.energy_j, { min: 0, max: LIMITS.maxIterationEnergyJ });
  const scheduleVersion = c.uint64('schedule_version', req.schedule_version);
  const computeTimeS = c.number('compute_time_s', req.compute_time_s ?? 0, {
    min: 0,
    max: LIMITS.maxIterationTimeS,
  });
  if (computeTimeS > 0 && computeTimeS < LIMITS.minIterationTimeS)
    c.fail(
      'compute_time_s',
      `must be 0 (unknown) or ≥ ${LIMITS.minIterationTimeS}, got ${computeTimeS}`,
    );
  const generation = c.uint64('generation', req.generation ?? '0');
  c.done();
  return { jobId, rank, iteration, timeS, energyJ, scheduleVersion, computeTimeS, generation };
}

export type StragglerSeverity =
  | { kind: 'iterationTime'; timeS: number }
  | { kind: 'slowdown'; factor: number }
  | { kind: 'recovered' };

export interface StragglerReport {
  jobId: string;
  dpRank: number;
  severity: StragglerSeverity;
  /** 0 = until recovered. */
  expiresAfterS: number;
}

export function validateReportStraggler(
  req: optimizerV1.ReportStragglerRequest__Output,
): StragglerReport {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  const dpRank = c.uint('dp_rank', req.dp_rank, { max: LIMITS.maxDegree - 1 });
  let severity: StragglerSeverity = { kind: 'recovered' };
  switch (req.severity) {
    case 'iteration_time_s':
      severity = {
        kind: 'iterationTime',
        timeS: c.number('iteration_time_s', req.iteration_time_s, {
          min: LIMITS.minIterationTimeS,
          max: 1e6,
        }),
      };
      break;
    case 'slowdown':
      severity = {
        kind: 'slowdown',
        factor: c.number('slowdown', req.slowdown, { greaterThan: 1, max: 1000 }),
      };
      break;
    case 'recovered':
      if (req.recovered !== true) c.fail('recovered', 'must be true when set');
      break;
    case undefined:
      c.fail('severity', 'is required: set iteration_time_s, slowdown or recovered');
      break;
  }
  const expiresAfterS = c.number('expires_after_s', req.expires_after_s, {
    min: 0,
    max: 365 * 86400,
  });
  if (expiresAfterS > 0 && expiresAfterS < 0.001)
    c.fail('expires_after_s', `must be 0 (until recovered) or ≥ 0.001, got ${expiresAfterS}`);
  c.done();
  return { jobId, dpRank, severity, expiresAfterS };
}

export function validateGetFrontier(req: optimizerV1.GetFrontierRequest__Output): {
  jobId: string;
} {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  c.done();
  return { jobId };
}

export function validateGetJobStatus(req: optimizerV1.GetJobStatusRequest__Output): {
  jobId: string;
} {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  c.done();
  return { jobId };
}

export function validateListJobs(req: optimizerV1.ListJobsRequest__Output): {
  pageSize: number;
  afterJobId: string;
} {
  const c = new Checker();
  const n = c.uint('page_size', req.page_size, { max: LIMITS.maxListPageSize });
  const token = req.page_token ?? '';
  const afterJobId = token === '' ? '' : c.id('page_token', token);
  c.done();
  return { pageSize: n === 0 ? 100 : n, afterJobId };
}

export function validateGetJob(req: optimizerV1.GetJobRequest__Output): { jobId: string } {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  c.done();
  return { jobId };
}

export function validateDeleteJob(req: optimizerV1.DeleteJobRequest__Output): {
  jobId: string;
  keepProfile: boolean;
  force: boolean;
} {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  c.done();
  return { jobId, keepProfile: req.keep_profile === true, force: req.force === true };
}

export function validateSetPolicy(req: optimizerV1.SetPolicyRequest__Output): {
  jobId: string;
  policy: Policy;
} {
  const c = new Checker();
  const jobId = c.id('job_id', req.job_id);
  let policy: Policy = { kind: 'intrinsic' };
  const p = req.policy;
  if (c.present('policy', p)) {
    const pc = c.at('policy');
    switch (p.kind) {
      case 'intrinsic':
        policy = { kind: 'intrinsic' };
        break;
      case 'min_energy':
        policy = { kind: 'minEnergy' };
        break;
      case 'max_slowdown_percent':
        policy = {
          kind: 'maxSlowdownPercent',
          percent: pc.number('max_slowdown_percent', p.max_slowdown_percent, { min: 0, max: 1000 }),
        };
        break;
      case 'target_iteration_time_s':
        policy = {
          kind: 'targetIterationTime',
          timeS: pc.number('target_iteration_time_s', p.target_iteration_time_s, {
            greaterThan: 0,
            max: 1e6,
          }),
        };
        break;
      case undefined:
        pc.fail(
          'kind',
          'is required: set intrinsic, max_slowdown_percent, target_iteration_time_s or min_energy',
        );
        break;
    }
  }
  c.done();
  return { jobId, policy };
}

/** Turns stage-profile rows into a planner Profile, naming the row of any violation. */
export function profileFromRows(
  c: Checker,
  field: string,
  rows: readonly commonV1.ProfileRow__Output[],
  numStages: number,
): Profile {
  const stages = Array.from({ length: numStages }, () => ({
    forward: [] as MeasuredOption[],
    backward: [] as MeasuredOption[],
  }));
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    const rc = c.at(`${field}[${i}]`);
    const stage = rc.uint('stage', r.stage, { max: Math.max(0, numStages - 1) });
    const kind = rc.enumValue('instruction', r.instruction, INSTRUCTION_FROM_WIRE);
    const frequencyMhz = rc.uint('frequency_mhz', r.frequency_mhz, {
      min: 1,
      max: LIMITS.maxFrequencyMhz,
    });
    const timeS = rc.number('time_s', r.time_s, {
      greaterThan: 0,
      max: LIMITS.maxInstructionTimeS,
    });
    const energyJ = rc.number('energy_j', r.energy_j, {
      greaterThan: 0,
      max: LIMITS.maxInstructionEnergyJ,
    });
    if (kind === undefined || stage >= numStages) return;
    const key = `${stage}/${kind}/${frequencyMhz}`;
    if (seen.has(key))
      rc.fail('frequency_mhz', `duplicate row for stage ${stage} ${kind} at ${frequencyMhz} MHz`);
    seen.add(key);
    stages[stage]![kind].push({ frequencyMhz, timeS, energyJ });
  });
  if (c.ok) {
    stages.forEach((st, s) => {
      for (const kind of ['forward', 'backward'] as const) {
        if (st[kind].length === 0) c.fail(field, `stage ${s} ${kind} has no rows`);
      }
    });
  }
  return { stages };
}

export interface PlanOfflineInput {
  profile: Profile;
  pipeline: PipelineSpec;
  blockingPowerW: number;
  unitTimeS: number;
  includePlans: boolean;
}

export function validatePlanOffline(req: optimizerV1.PlanOfflineRequest__Output): PlanOfflineInput {
  const c = new Checker();
  const pipeline = pipelineSpec(c, 'pipeline', req.pipeline);
  const rows = c.list('profile', req.profile, { min: 1, max: LIMITS.maxProfileRows });
  const profile = c.ok
    ? profileFromRows(c, 'profile', rows, virtualStages(pipeline))
    : { stages: [] };
  const blockingPowerW = c.number('blocking_power_w', req.blocking_power_w, {
    greaterThan: 0,
    max: 10_000,
  });
  const tau = c.number('unit_time_s', req.unit_time_s, { min: 0, max: LIMITS.maxUnitTimeS });
  c.done();
  return {
    profile,
    pipeline,
    blockingPowerW,
    unitTimeS: tau === 0 ? JOB_DEFAULTS.unitTimeS : tau,
    includePlans: req.include_plans === true,
  };
}
