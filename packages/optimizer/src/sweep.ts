/**
 * The online profiling sweep (DESIGN §3 step 3) as pure functions over plain, persistable state.
 *
 * Every still-sweeping (stage, instruction) runs at one clock for K iterations, highest clock
 * first. After each clock the measured energies come back from the profiler and the paper's stop
 * rule is applied per (stage, instruction): once past the first third of the clock list, stop when
 * the energy has risen 5 times in a row (lower clocks only get slower and costlier from there);
 * otherwise stop at the floor (the last clock of the list). An instruction that has stopped runs
 * at the highest clock while the others keep sweeping, so it never slows the iteration down.
 */
import { scheduleOrder } from '@perseus/planner';
import type { InstructionKind, JobSpec, PlanVariant, ScheduledInstruction } from './types';

/** Consecutive energy rises that stop a (stage, instruction) — the paper's rule. */
export const STOP_AFTER_RISES = 5;

export interface SweepState {
  /** Clocks to visit, MHz, descending (after floor and stride). */
  clocksMhz: number[];
  /** Index into clocksMhz of the clock being profiled now. */
  step: number;
  /** Per `${stage}:${kind}`: measured energy per clock index (null = not measured). */
  energies: Record<string, Array<number | null>>;
  /** Per `${stage}:${kind}`: clock index at which it stopped, or null while sweeping. */
  stoppedAt: Record<string, number | null>;
}

export const KINDS: readonly InstructionKind[] = ['forward', 'backward'];
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

export function newSweep(numStages: number, clocksMhz: number[]): SweepState {
  const energies: SweepState['energies'] = {};
  const stoppedAt: SweepState['stoppedAt'] = {};
  for (let s = 0; s < numStages; s++) {
    for (const k of KINDS) {
      energies[cellKey(s, k)] = clocksMhz.map(() => null);
      stoppedAt[cellKey(s, k)] = null;
    }
  }
  return { clocksMhz, step: 0, energies, stoppedAt };
}

/** The clock a (stage, kind) runs at during the current step. */
export function sweepClockOf(sweep: SweepState, stage: number, kind: InstructionKind): number {
  const stopped = sweep.stoppedAt[cellKey(stage, kind)];
  return stopped === null || stopped === undefined
    ? sweep.clocksMhz[sweep.step]!
    : sweep.clocksMhz[0]!;
}

/** The schedule every pipeline runs during the current step. */
export function sweepVariant(spec: JobSpec, sweep: SweepState): PlanVariant {
  const stages: ScheduledInstruction[][] = [];
  for (let s = 0; s < spec.pipeline.numStages; s++) {
    const f = {
      forward: sweepClockOf(sweep, s, 'forward'),
      backward: sweepClockOf(sweep, s, 'backward'),
    };
    stages.push(
      scheduleOrder(spec.pipeline, s).map((slot) => ({
        kind: slot.kind,
        microbatch: slot.microbatch,
        frequencyMhz: f[slot.kind],
      })),
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
 * Whether the energies seen so far (index = clock index, descending clocks) trigger the stop rule:
 * `STOP_AFTER_RISES` consecutive rises, each at a clock index ≥ ⌈len/3⌉. Unmeasured clocks neither
 * count as a rise nor break a run.
 */
export function energyRoseEnough(
  energies: ReadonlyArray<number | null>,
  upTo: number,
  listLength: number,
): boolean {
  const firstThird = Math.ceil(listLength / 3);
  let rises = 0;
  let prev: number | null = null;
  for (let i = 0; i <= upTo; i++) {
    const e = energies[i];
    if (e === null || e === undefined) continue;
    if (prev !== null && i >= firstThird) rises = e > prev ? rises + 1 : 0;
    prev = e;
    if (rises >= STOP_AFTER_RISES) return true;
  }
  return false;
}

/**
 * Ends the current step: records the energy measured at the current clock for every still-sweeping
 * (stage, kind) (`energyAt` returns undefined when the profiler has no cell), applies the stop rule,
 * and moves to the next clock. Returns the new state and whether the sweep is complete.
 */
export function advanceSweep(
  sweep: SweepState,
  energyAt: (stage: number, kind: InstructionKind, frequencyMhz: number) => number | undefined,
): { sweep: SweepState; done: boolean } {
  const next: SweepState = structuredClone(sweep);
  const clock = next.clocksMhz[next.step]!;
  const last = next.clocksMhz.length - 1;
  for (const key of Object.keys(next.stoppedAt)) {
    if (next.stoppedAt[key] !== null) continue;
    const [stageText, kind] = key.split(':') as [string, InstructionKind];
    const e = energyAt(Number(stageText), kind, clock);
    next.energies[key]![next.step] = e ?? null;
    if (
      next.step >= last ||
      energyRoseEnough(next.energies[key]!, next.step, next.clocksMhz.length)
    ) {
      next.stoppedAt[key] = next.step;
    }
  }
  const done = Object.values(next.stoppedAt).every((v) => v !== null);
  if (!done) next.step += 1;
  return { sweep: next, done };
}
