import { PlannerInputError } from './errors';
import { buildPipelineDag, type PipelineDag } from './schedule';
import type { MeasuredOption, PlannerInput } from './types';

/**
 * The options of one (stage, kind) the planner may choose from: Pareto-optimal in
 * (time, effective energy e − P_b·t), sorted by time ascending, so effective energy strictly
 * decreases with the index. Effective energy, not raw energy, is what a plan's energy depends on
 * (docs/architecture.md §4.2), so a slower option that costs a little more raw energy but less than the blocking
 * power it replaces is kept.
 */
export interface OptionTable {
  readonly frequencyMhz: Float64Array;
  readonly timeS: Float64Array;
  readonly energyJ: Float64Array;
  readonly effectiveJ: Float64Array;
  /** Indices (into this table) of the lower convex hull vertices, time ascending. */
  readonly hull: Int32Array;
  /** Every measured option by frequency, including the dominated ones (for plan evaluation). */
  readonly all: ReadonlyMap<number, MeasuredOption>;
  /** The highest measured clock (the "all-max" option). */
  readonly maxClock: MeasuredOption;
}

/** Planner input after validation: the DAG and one option table per (virtual stage, kind). */
export interface ValidInput {
  readonly input: PlannerInput;
  readonly dag: PipelineDag;
  /** Indexed by virtual stage·2 + kind. */
  readonly tables: OptionTable[];
  readonly blockingPowerW: number;
  readonly unitTimeS: number;
}

function checkOptions(options: unknown, field: string): MeasuredOption[] {
  if (!Array.isArray(options) || options.length === 0) {
    throw new PlannerInputError(field, 'must list at least one measured option');
  }
  const seen = new Set<number>();
  options.forEach((o: Partial<MeasuredOption> | null | undefined, i) => {
    const f = `${field}[${i}]`;
    const freq = o?.frequencyMhz;
    const time = o?.timeS;
    const energy = o?.energyJ;
    if (typeof freq !== 'number' || !Number.isFinite(freq) || freq <= 0) {
      throw new PlannerInputError(
        `${f}.frequency_mhz`,
        `must be a positive number, got ${String(freq)}`,
      );
    }
    if (typeof time !== 'number' || !Number.isFinite(time) || time <= 0) {
      throw new PlannerInputError(`${f}.time_s`, `must be a positive number, got ${String(time)}`);
    }
    if (typeof energy !== 'number' || !Number.isFinite(energy) || energy < 0) {
      throw new PlannerInputError(
        `${f}.energy_j`,
        `must be a non-negative number, got ${String(energy)}`,
      );
    }
    if (seen.has(freq))
      throw new PlannerInputError(`${f}.frequency_mhz`, `duplicates frequency ${freq}`);
    seen.add(freq);
  });
  return options as MeasuredOption[];
}

function buildTable(options: MeasuredOption[], blockingPowerW: number): OptionTable {
  const sorted = [...options].sort(
    (a, b) =>
      a.timeS - b.timeS ||
      a.energyJ - blockingPowerW * a.timeS - (b.energyJ - blockingPowerW * b.timeS) ||
      b.frequencyMhz - a.frequencyMhz,
  );
  const kept: MeasuredOption[] = [];
  let bestEff = Infinity;
  for (const o of sorted) {
    const eff = o.energyJ - blockingPowerW * o.timeS;
    if (eff < bestEff) {
      kept.push(o);
      bestEff = eff;
    }
  }
  const n = kept.length;
  const frequencyMhz = Float64Array.from(kept, (o) => o.frequencyMhz);
  const timeS = Float64Array.from(kept, (o) => o.timeS);
  const energyJ = Float64Array.from(kept, (o) => o.energyJ);
  const effectiveJ = Float64Array.from(kept, (o) => o.energyJ - blockingPowerW * o.timeS);
  // Lower convex hull (monotone chain); x strictly increasing after the Pareto filter.
  const hull: number[] = [];
  for (let i = 0; i < n; i++) {
    while (hull.length >= 2) {
      const a = hull[hull.length - 2] as number;
      const b = hull[hull.length - 1] as number;
      const cross =
        (timeS[b]! - timeS[a]!) * (effectiveJ[i]! - effectiveJ[a]!) -
        (effectiveJ[b]! - effectiveJ[a]!) * (timeS[i]! - timeS[a]!);
      if (cross <= 0) hull.pop();
      else break;
    }
    hull.push(i);
  }
  let maxClock = options[0] as MeasuredOption;
  for (const o of options) if (o.frequencyMhz > maxClock.frequencyMhz) maxClock = o;
  return {
    frequencyMhz,
    timeS,
    energyJ,
    effectiveJ,
    hull: Int32Array.from(hull),
    all: new Map(options.map((o) => [o.frequencyMhz, o])),
    maxClock,
  };
}

/**
 * Validates planner input once, at the boundary, and builds the internal form. Throws
 * {@link PlannerInputError} naming the field.
 */
export function validatePlannerInput(input: PlannerInput): ValidInput {
  if (input === null || typeof input !== 'object')
    throw new PlannerInputError('input', 'must be an object');
  const { pipeline, profile, blockingPowerW, unitTimeS } = input;
  if (pipeline === null || typeof pipeline !== 'object') {
    throw new PlannerInputError('pipeline', 'must be an object');
  }
  const dag = buildPipelineDag(pipeline);
  if (
    typeof blockingPowerW !== 'number' ||
    !Number.isFinite(blockingPowerW) ||
    blockingPowerW < 0
  ) {
    throw new PlannerInputError(
      'blocking_power_w',
      `must be a non-negative number, got ${String(blockingPowerW)}`,
    );
  }
  if (typeof unitTimeS !== 'number' || !Number.isFinite(unitTimeS) || unitTimeS <= 0) {
    throw new PlannerInputError(
      'unit_time_s',
      `must be a positive number, got ${String(unitTimeS)}`,
    );
  }
  if (profile === null || typeof profile !== 'object' || !Array.isArray(profile.stages)) {
    throw new PlannerInputError('profile.stages', 'must be an array');
  }
  const virtualStages = dag.numStages * dag.numChunks;
  if (profile.stages.length !== virtualStages) {
    throw new PlannerInputError(
      'profile.stages',
      dag.numChunks === 1
        ? `has ${profile.stages.length} stages but pipeline.num_stages is ${pipeline.numStages}`
        : `has ${profile.stages.length} stages but interleaved 1F1B needs num_stages × num_chunks = ${virtualStages} (virtual stages)`,
    );
  }
  const tables: OptionTable[] = [];
  profile.stages.forEach((st, s) => {
    for (const kind of ['forward', 'backward'] as const) {
      const opts = checkOptions(
        (st as Partial<typeof st> | undefined)?.[kind],
        `profile.stages[${s}].${kind}`,
      );
      tables.push(buildTable(opts, blockingPowerW));
    }
  });
  return { input, dag, tables, blockingPowerW, unitTimeS };
}

/** Index of the slowest option of `table` whose time is ≤ `limitS` (0 if none is). */
export function slowestWithin(table: OptionTable, limitS: number): number {
  const t = table.timeS;
  let lo = 0;
  let hi = t.length - 1;
  if (t[0]! > limitS) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (t[mid]! <= limitS) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
