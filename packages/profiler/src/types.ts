/** Internal, validated values of the profiler (what `validateXxx` produce and the store keeps). */
import type { RankIdentity, WireSchedule } from '@perseus/service-kit';

/** Forward or backward; stored as 0/1 so SQL keys stay small. */
export type Instruction = 'forward' | 'backward';

export const INSTRUCTIONS: readonly Instruction[] = ['forward', 'backward'];

export function instructionToWire(
  i: Instruction,
): 'INSTRUCTION_KIND_FORWARD' | 'INSTRUCTION_KIND_BACKWARD' {
  switch (i) {
    case 'forward':
      return 'INSTRUCTION_KIND_FORWARD';
    case 'backward':
      return 'INSTRUCTION_KIND_BACKWARD';
  }
}

export function instructionCode(i: Instruction): 0 | 1 {
  return i === 'forward' ? 0 : 1;
}

export function instructionFromCode(code: number): Instruction {
  return code === 0 ? 'forward' : 'backward';
}

export type ScheduleName = WireSchedule | 'unspecified';

/** A job's shape as the profiler knows it (docs/architecture.md §3 step 1). */
export interface JobSpec {
  jobId: string;
  schedule: ScheduleName;
  /** Pipeline GPUs N (for an imported profile: its stages). */
  numStages: number;
  /**
   * Model chunks per GPU V (interleaved 1F1B; 1 otherwise). The profile's stages are the N·V
   * virtual stages: chunk c of pp_rank r measures stage c·N + r.
   */
  numChunks: number;
  /** 0 when unknown (a job created by ImportProfile). */
  numMicrobatches: number;
  dpDegree: number;
  tpDegree: number;
  /** Ascending; empty = any clock accepted. */
  supportedFrequenciesMhz: number[];
  /** 'register' for RegisterJob, 'import' for a job created by ImportProfile. */
  origin: 'register' | 'import';
}

/** Position of a rank in the 3D-parallel layout (the one type, from service-kit). */
export type { RankIdentity };

/** One validated per-instruction measurement. */
export interface Measurement {
  rank: number;
  dpRank: number;
  ppRank: number;
  tpRank: number;
  instruction: Instruction;
  microbatch: number;
  /** Model chunk on the rank's GPU (0 unless interleaved 1F1B). */
  chunk: number;
  frequencyMhz: number;
  timeS: number;
  energyJ: number;
  iteration: number;
}

export interface MeasurementBatch {
  jobId: string;
  batchId: string;
  measurements: Measurement[];
}

export interface IterationRecord {
  rank: RankIdentity;
  iteration: number;
  timeS: number;
  energyJ: number;
}

/** What one batch commit did. */
export interface BatchResult {
  batchId: string;
  /** Measurements newly stored (0 for a duplicate batch). */
  storedCount: number;
  duplicate: boolean;
}

/**
 * Which population a cell summarises: `pooled` = every pipeline together, `pipeline` = one
 * data-parallel pipeline (TP-combined), `rank` = one GPU (not TP-combined; rank-level CSV).
 */
export type CellScope = 'pooled' | 'pipeline' | 'rank';

/** Statistics of one (stage, instruction, frequency) cell in one scope. */
export interface ProfileCell {
  scope: CellScope;
  /** Pipeline for `pipeline`/`rank` scope, -1 when pooled. */
  dpRank: number;
  /** Global rank for `rank` scope, -1 otherwise. */
  rank: number;
  /** Tensor-parallel rank for `rank` scope, -1 otherwise. */
  tpRank: number;
  stage: number;
  instruction: Instruction;
  frequencyMhz: number;
  /** Samples kept after warm-up and outlier removal. */
  count: number;
  /** Samples received (complete TP groups for pooled/pipeline scope). */
  rawCount: number;
  timeMeanS: number;
  timeStddevS: number;
  timeRobustS: number;
  energyMeanJ: number;
  energyStddevJ: number;
  energyRobustJ: number;
  /** True for cells that came from ImportProfile (taken as authoritative by min-count filters). */
  imported: boolean;
}

/** A cell's key without the scope details. */
export interface CellKey {
  stage: number;
  instruction: Instruction;
  frequencyMhz: number;
}

export type ProfileFormatName = 'stage' | 'rank';
