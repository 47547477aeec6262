/**
 * The online profiling sweep (docs/architecture.md §3 step 3) as pure functions over plain, persistable state.
 *
 * Every still-sweeping (stage, instruction) runs at one clock for K iterations, highest clock
 * first. After each clock the profiler's mean energy and its standard error come back and the stop
 * rule is applied per (stage, instruction) to the energy net of blocking power ({@link sweepCost}):
 * stop once the cost at the current clock lies above the cost at some earlier clock by more than
 * `sigmas` combined standard errors (and by at least `minRelativeRise` of it) on `confirmations`
 * measured clocks in a row. Past the cost's minimum a lower clock is only slower and costlier — an
 * option the planner never picks — so the rest of the sweep cannot change the plan. A clock whose
 * error is unknown (fewer than two samples) neither counts nor breaks a run; the last clock of the
 * list always stops. Each step reads the earlier clocks' cells again: measurements reach the
 * profiler after the iteration reports that end a step. A stopped
 * instruction runs at the highest clock while the others keep sweeping, so it never slows the
 * iteration down.
 *
 * The paper's "5 rises in a row" rule did not survive real noise: a GPU energy counter that steps
 * every ~100 ms breaks rises up, so it never fired (issue 12 §3).
 */
import { chunksOf, scheduleOrder } from '@perseus/planner';
import type {
  InstructionKind,
  JobSpec,
  PipelineSpec,
  PlanVariant,
  ScheduledInstruction,
} from './types';

/** Parameters of the stop rule. */
export interface StopRule {
  /** Standard errors of the difference the energy must exceed the minimum so far by. */
  sigmas: number;
  /** Consecutive significant clocks that stop an instruction. */
  confirmations: number;
  /** Least rise over the minimum, as a fraction of it (guards against underestimated errors). */
  minRelativeRise: number;
}

export const DEFAULT_STOP_RULE: StopRule = { sigmas: 3, confirmations: 2, minRelativeRise: 0.005 };

/** What the profiler reports for one (stage, instruction, clock). */
export interface CellEnergy {
  /** Mean energy of one microbatch, J. */
  energyJ: number;
  /** Standard error of that mean, J; undefined when unknown (fewer than two samples). */
  stderrJ: number | undefined;
}

export interface SweepState {
  /** Clocks to visit, MHz, descending (after floor and stride). */
  clocksMhz: number[];
  /** Index into clocksMhz of the clock being profiled now. */
  step: number;
  /** Per `${stage}:${kind}`: measured energy per clock index (null = not measured). */
  energies: Record<string, Array<number | null>>;
  /**
   * Per `${stage}:${kind}`: standard error of each energy (null = unknown). Absent in sweeps
   * persisted before the confidence rule: all unknown.
   */
  stderrs?: Record<string, Array<number | null>>;
  /** Per `${stage}:${kind}`: clock index at which it stopped, or null while sweeping. */
  stoppedAt: Record<string, number | null>;
}

export const KINDS: readonly InstructionKind[] = ['forward', 'backward'];

/**
 * Stages of a job's profile: N, or with interleaved 1F1B the N·V virtual stages (chunk c of GPU r
 * is stage c·N + r). Sweep cells, profiles and coverage are per such stage; schedules per GPU.
 */
export function virtualStages(pipeline: PipelineSpec): number {
  return pipeline.numStages * chunksOf(pipeline);
}
export const cellKey = (stage: number, kind: InstructionKind): string => `${stage}:${kind}`;

/**
 * The clock list of a sweep: the clocks every rank supports, descending, at or above the floor,
 * every `stride`-th one (the highest always included).
 */
export function sweepClocks(
  supportedPerRank: readonly (readonly number[])[],
  floorMhz: number,
  stride: number,
): number[] {
  if (supportedPerRank.length === 0) return [];
  let common = new Set(supportedPerRank[0]);
  for (const list of supportedPerRank.slice(1)) {
    const next = new Set(list);
    common = new Set([...common].filter((f) => next.has(f)));
  }
  const desc = [...common].filter((f) => f >= floorMhz).sort((a, b) => b - a);
  return desc.filter((_, i) => i % Math.max(1, stride) === 0);
}

/** A fresh sweep over `numStages` (virtual, with interleaved 1F1B) stages. */
export function newSweep(numStages: number, clocksMhz: number[]): SweepState {
  const energies: SweepState['energies'] = {};
  const stderrs: NonNullable<SweepState['stderrs']> = {};
  const stoppedAt: SweepState['stoppedAt'] = {};
  for (let s = 0; s < numStages; s++) {
    for (const k of KINDS) {
      energies[cellKey(s, k)] = clocksMhz.map(() => null);
      stderrs[cellKey(s, k)] = clocksMhz.map(() => null);
      stoppedAt[cellKey(s, k)] = null;
    }
  }
  return { clocksMhz, step: 0, energies, stderrs, stoppedAt };
}

/** The clock a (stage, kind) runs at during the current step. */
export function sweepClockOf(sweep: SweepState, stage: number, kind: InstructionKind): number {
  const stopped = sweep.stoppedAt[cellKey(stage, kind)];
  return stopped === null || stopped === undefined
    ? sweep.clocksMhz[sweep.step]!
    : sweep.clocksMhz[0]!;
}

/**
 * The schedule every pipeline runs during the current step: per GPU, its schedule order, each
 * instruction at the clock of its (virtual) stage — chunk c of GPU r is stage c·N + r.
 */
export function sweepVariant(spec: JobSpec, sweep: SweepState): PlanVariant {
  const stages: ScheduledInstruction[][] = [];
  const n = spec.pipeline.numStages;
  const interleaved = chunksOf(spec.pipeline) > 1;
  for (let s = 0; s < n; s++) {
    stages.push(
      scheduleOrder(spec.pipeline, s).map((slot) => {
        const chunk = slot.chunk ?? 0;
        const frequencyMhz = sweepClockOf(sweep, chunk * n + s, slot.kind);
        return interleaved
          ? { kind: slot.kind, microbatch: slot.microbatch, chunk, frequencyMhz }
          : { kind: slot.kind, microbatch: slot.microbatch, frequencyMhz };
      }),
    );
  }
  return {
    reason: `profiling ${sweep.clocksMhz[sweep.step]} MHz (${sweep.step + 1}/${sweep.clocksMhz.length})`,
    stages,
    pointIndex: -1,
    expectedTimeS: 0,
    expectedEnergyJ: 0,
  };
}

/**
 * What the stop rule weighs for one measured cell: its energy net of the blocking power its time
 * replaces, E − P_b·t. The planner's iteration energy is Σ(E_i − P_b·t_i) + P_b·N·T, so an option
 * slower than another and dearer in this cost can never be in a plan: past the minimum of the cost
 * the rest of the sweep cannot change the frontier. (Raw energy is not enough: below its minimum
 * a slower clock may still save blocking energy.) The error is the energy's.
 */
export function sweepCost(
  cell: CellEnergy | undefined,
  timeS: number,
  blockingPowerW: number,
): CellEnergy | undefined {
  if (cell === undefined) return undefined;
  return { energyJ: cell.energyJ - blockingPowerW * timeS, stderrJ: cell.stderrJ };
}

/**
 * Whether the energies seen so far (index = clock index, descending clocks) trigger the stop rule:
 * on `rule.confirmations` consecutive measured clocks with a known error, the energy lies above
 * that of some earlier (faster) clock j by more than max(`sigmas` × √(se² + se_j²),
 * `minRelativeRise` × E_j) — the clock is then dominated, slower and costlier, with confidence.
 * Any earlier clock, not only the one with the lowest mean: a noisy cell that reads low with a
 * large error would otherwise be the only reference and hide every rise behind its error.
 * Unmeasured clocks and clocks without an error estimate neither count, break a run, nor serve as
 * a reference (an empty cell reads 0 J).
 */
export function energyRoseSignificantly(
  energies: ReadonlyArray<number | null>,
  stderrs: ReadonlyArray<number | null> | undefined,
  upTo: number,
  rule: StopRule = DEFAULT_STOP_RULE,
): boolean {
  const earlier: Array<{ e: number; se: number }> = [];
  let run = 0;
  for (let i = 0; i <= upTo; i++) {
    const e = energies[i];
    const se = stderrs?.[i] ?? null;
    if (e === null || e === undefined || se === null) continue;
    if (earlier.length > 0) {
      const dominated = earlier.some(
        (r) =>
          e - r.e >
          Math.max(
            rule.sigmas * Math.sqrt(se * se + r.se * r.se),
            rule.minRelativeRise * Math.abs(r.e),
          ),
      );
      run = dominated ? run + 1 : 0;
      if (run >= rule.confirmations) return true;
    }
    earlier.push({ e, se });
  }
  return false;
}

/**
 * Ends the current step: records the energy measured at the current clock for every still-sweeping
 * (stage, kind) (`energyAt` returns undefined when the profiler has no cell), applies the stop rule,
 * and moves to the next clock. Returns the new state and whether the sweep is complete.
 *
 * Earlier clocks of a still-sweeping cell are read again too: measurements reach the profiler
 * after the iteration reports that end a step (an agent waits for a stepped counter's next update
 * before it sends an End's energy), so a step's cell is often still empty when the step ends and
 * complete one step later.
 */
export function advanceSweep(
  sweep: SweepState,
  energyAt: (stage: number, kind: InstructionKind, frequencyMhz: number) => CellEnergy | undefined,
  rule: StopRule = DEFAULT_STOP_RULE,
): { sweep: SweepState; done: boolean } {
  const next: SweepState = structuredClone(sweep);
  const stderrs = (next.stderrs ??= {});
  const last = next.clocksMhz.length - 1;
  for (const key of Object.keys(next.stoppedAt)) {
    if (next.stoppedAt[key] !== null) continue;
    const [stageText, kind] = key.split(':') as [string, InstructionKind];
    const se = (stderrs[key] ??= next.clocksMhz.map(() => null));
    for (let i = 0; i <= next.step; i++) {
      const cell = energyAt(Number(stageText), kind, next.clocksMhz[i]!);
      if (cell === undefined && i < next.step) continue; // keep what an earlier step saw
      next.energies[key]![i] = cell?.energyJ ?? null;
      se[i] = cell?.stderrJ !== undefined && Number.isFinite(cell.stderrJ) ? cell.stderrJ : null;
    }
    if (next.step >= last || energyRoseSignificantly(next.energies[key]!, se, next.step, rule)) {
      next.stoppedAt[key] = next.step;
    }
  }
  const done = Object.values(next.stoppedAt).every((v) => v !== null);
  if (!done) next.step += 1;
  return { sweep: next, done };
}
