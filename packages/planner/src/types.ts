/** Which computation of a microbatch an instruction is. */
export type InstructionKind = 'forward' | 'backward';

/** One measured clock setting of one instruction on one GPU (unscaled: one microbatch, one GPU). */
export interface MeasuredOption {
  frequencyMhz: number;
  timeS: number;
  energyJ: number;
}

/**
 * Measured options per stage (array index = stage; with `interleaved`, virtual stage c·N + r) and
 * instruction kind.
 */
export interface Profile {
  stages: Array<{ forward: MeasuredOption[]; backward: MeasuredOption[] }>;
}

/**
 * Pipeline schedule. `interleaved` is Megatron-LM's interleaved 1F1B (virtual pipeline stages):
 * each GPU holds `numChunks` model chunks.
 */
export type ScheduleKind = '1f1b' | 'gpipe' | 'interleaved';

/** Shape of one pipeline iteration. */
export interface PipelineSpec {
  schedule: ScheduleKind;
  /** Pipeline GPUs (N). With `interleaved` the profile has N·V virtual stages. */
  numStages: number;
  numMicrobatches: number;
  /**
   * Model chunks per GPU (V, Megatron's virtual pipeline size): `interleaved` only, ≥ 2 there.
   * Virtual stage c·N + r runs on GPU r as its chunk c. Absent (or 1) for the other schedules.
   */
  numChunks?: number;
}

/** Everything the planner needs (docs/architecture.md §4.1). */
export interface PlannerInput {
  profile: Profile;
  pipeline: PipelineSpec;
  /** Power a GPU draws while waiting on a neighbour (W). */
  blockingPowerW: number;
  /** Frontier sampling step (s): one frontier candidate per unit of iteration time. */
  unitTimeS: number;
}

/** One instruction of a stage's plan with its clock. */
export interface ScheduledInstruction {
  kind: InstructionKind;
  microbatch: number;
  frequencyMhz: number;
  /** Model chunk on this GPU (`interleaved` only; virtual stage chunk·N + stage). */
  chunk?: number;
}

/** The plan of one stage (one GPU): its instructions in the stage's schedule order. */
export interface StagePlan {
  stage: number;
  instructions: ScheduledInstruction[];
}

/** One point of the frontier. `timeS`/`energyJ` are the discrete truth of the plan (emulated). */
export interface FrontierPoint {
  index: number;
  timeS: number;
  energyJ: number;
  /**
   * Energy of the continuous (convex-hull) relaxation at this point's time: a certified lower bound
   * on any plan's energy at `timeS`.
   */
  modelEnergyJ: number;
}
