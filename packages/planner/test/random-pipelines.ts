import type { MeasuredOption, PlannerInput, ScheduleKind } from '../src';
import { rng } from './helpers';

/** What a random case stresses (each seed draws one). */
export type CaseShape =
  | 'identical-stages'
  | 'single-clock'
  | 'equal-times'
  | 'integer-times'
  | 'fine-clocks-identical'
  | 'generic';

/** A seeded random planner input and how it was drawn. */
export interface RandomCase {
  seed: number;
  shape: CaseShape;
  input: PlannerInput;
  /** Small enough that {@link exactFrontier} can enumerate every plan. */
  tiny: boolean;
}

const SHAPES: CaseShape[] = [
  'identical-stages',
  'single-clock',
  'equal-times',
  'integer-times',
  'fine-clocks-identical',
  'generic',
];

/**
 * The random input of `seed`: 1–64 stages, 1–512 microbatches (instructions capped at
 * `maxNodes` so a case stays CI-cheap), 1F1B, GPipe or interleaved 1F1B (2–3 chunks), blocking power zero, typical or far above
 * any instruction's power, and one of the {@link CaseShape}s. One seed in eight is tiny (≤ 4,096
 * plans) so the exhaustive oracle can check it. The same seed gives the same input everywhere.
 */
export function randomCase(seed: number, maxNodes = 480, only?: CaseShape): RandomCase {
  const r = rng(seed * 7919 + 17);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const tiny = seed % 8 === 0;
  const drawn = pick(SHAPES);
  const shape = only ?? drawn;
  const schedule: ScheduleKind = pick(['1f1b', 'gpipe', 'interleaved'] as const);
  // Interleaved 1F1B: V model chunks per GPU (N·V virtual stages), M a multiple of N.
  const numChunks = schedule !== 'interleaved' ? 1 : tiny ? 2 : pick([2, 3]);
  let numStages: number;
  let numMicrobatches: number;
  let numClocks: number;
  if (tiny && schedule === 'interleaved') {
    // N=1, M∈{1,2}, 3 clocks (≤ 6,561 plans at V=2) or N=2, M=2, 2 clocks (65,536 plans).
    numStages = pick([1, 2]);
    numMicrobatches = numStages === 1 ? pick([1, 2]) : 2;
    numClocks = numStages === 1 ? 3 : 2;
  } else if (tiny) {
    numStages = pick([1, 2]);
    numMicrobatches = numStages === 1 ? pick([1, 2, 3]) : pick([1, 2]);
    numClocks = pick([2, 3]);
  } else {
    // Log-uniform sizes, then shrink whichever is larger until the DAG fits the budget.
    numStages = Math.max(1, Math.round(Math.exp(r() * Math.log(64))));
    numMicrobatches = Math.max(1, Math.round(Math.exp(r() * Math.log(512))));
    const roundM = (): void => {
      if (schedule === 'interleaved')
        numMicrobatches = numStages * Math.max(1, Math.round(numMicrobatches / numStages));
    };
    roundM();
    while (2 * numStages * numChunks * numMicrobatches > maxNodes) {
      // Interleaved keeps M ≥ N (a multiple of it), so it can only halve M while M > N.
      const halveM =
        schedule === 'interleaved' ? numMicrobatches > numStages : numMicrobatches >= numStages;
      if (halveM) numMicrobatches = Math.ceil(numMicrobatches / 2);
      else numStages = Math.ceil(numStages / 2);
      roundM();
    }
    numClocks = pick([1, 2, 3, 5, 8, 16]);
    // A real GPU's clock table: dozens of 15 MHz steps (the paper's A100 has 38 per instruction).
    if (shape === 'fine-clocks-identical') numClocks = 24 + Math.floor(r() * 16);
  }
  const blockingPowerW = pick([0, 0, 60, 85, 5000]);
  const fMax = 1410;
  const clocks = Array.from(
    { length: numClocks },
    (_, k) => fMax - k * (shape === 'fine-clocks-identical' ? 15 : 45),
  );
  const quantum = 1e-3;
  const options = (baseS: number, singleClock: boolean): MeasuredOption[] => {
    const fs = singleClock ? [clocks[Math.floor(r() * clocks.length)]!] : clocks;
    let prevTime = 0;
    return fs.map((f) => {
      const x = f / fMax;
      let timeS = baseS * (0.3 + 0.7 / x) * (1 + 0.01 * (r() - 0.5));
      if (shape === 'integer-times') timeS = quantum * Math.max(1, Math.round(timeS / quantum));
      // Equal times at different clocks: some slower clocks take exactly the faster one's time.
      if (shape === 'equal-times' && prevTime > 0 && r() < 0.5) timeS = prevTime;
      prevTime = timeS;
      const powerW = 90 + 260 * x ** 2.2 * (1 + 0.05 * (r() - 0.5));
      return { frequencyMhz: f, timeS, energyJ: timeS * powerW };
    });
  };
  const stage = (): { forward: MeasuredOption[]; backward: MeasuredOption[] } => {
    const w = 0.6 + 0.8 * r();
    const single = shape === 'single-clock' && r() < 0.6;
    return { forward: options(0.02 * w, single), backward: options(0.045 * w, single) };
  };
  const virtualStages = numStages * numChunks;
  const stages = Array.from({ length: virtualStages }, stage);
  if (
    shape === 'identical-stages' ||
    shape === 'integer-times' ||
    shape === 'fine-clocks-identical'
  ) {
    // Identical middle stages (homogeneous layers); the last stage differs, as with a head.
    for (let s = 1; s < virtualStages - 1; s++) stages[s] = stages[0]!;
  }
  // τ: a few dozen to a few hundred samples over the iteration's range.
  const iterS = 0.065 * numChunks * (numMicrobatches + numStages);
  const unitTimeS = iterS * pick([0.002, 0.005, 0.02, 0.05]);
  return {
    seed,
    shape,
    tiny,
    input: {
      profile: { stages },
      pipeline:
        schedule === 'interleaved'
          ? { schedule, numStages, numMicrobatches, numChunks }
          : { schedule, numStages, numMicrobatches },
      blockingPowerW,
      unitTimeS,
    },
  };
}
