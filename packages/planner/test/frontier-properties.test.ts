import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  computeFrontier,
  evaluatePlan,
  exactFrontier,
  parseProfileCsv,
  type Frontier,
} from '../src';
import { randomCase, type RandomCase } from './random-pipelines';

/**
 * Property test over seeded random pipelines (test/random-pipelines.ts): identical stages,
 * single-clock instructions, equal times at different clocks, integer-grid times, zero or huge
 * blocking power, 1–64 stages, 1–512 microbatches, 1F1B, GPipe and interleaved 1F1B. Every seed is reproducible:
 * `randomCase(seed)` is the same input on every machine.
 *
 * To hunt beyond the CI seeds: PLANNER_PROPERTY_SEEDS=1000-1999 npx jest -c
 * packages/planner/jest.config.cjs frontier-properties. Any seed that ever fails goes into
 * REGRESSION_SEEDS with the failure it showed.
 */
const CI_SEEDS = Array.from({ length: 96 }, (_, i) => i);

/**
 * Seeds kept forever, with what they showed. No seed has thrown or broken an invariant since the
 * tie fix; these are the largest oracle gaps found (see expectNearOracle).
 */
const REGRESSION_SEEDS: number[] = [
  184, // tiny interleaved, integer times: 5.96% above the exact optimum away from all-max
  736, // tiny interleaved, identical stages: 5.29%
  440, // tiny GPipe: 3.30%
];

function seedsToRun(): number[] {
  const range = /^(\d+)-(\d+)$/.exec(process.env['PLANNER_PROPERTY_SEEDS'] ?? '');
  if (range) {
    const [lo, hi] = [Number(range[1]), Number(range[2])];
    return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  }
  return [...new Set([...REGRESSION_SEEDS, ...CI_SEEDS])];
}

/** Every point's plan, re-evaluated by the emulator, gives the point's (T, E). */
function expectPlansReevaluate(c: RandomCase, f: Frontier): void {
  const pts = f.points;
  // All points of small frontiers; a spread of ~40 (first and last included) of large ones.
  const step = Math.max(1, Math.floor(pts.length / 40));
  const checked = new Set<number>([pts.length - 1]);
  for (let k = 0; k < pts.length; k += step) checked.add(k);
  for (const k of checked) {
    const e = evaluatePlan(c.input, f.plan(k));
    expect(e.timeS).toBeCloseTo(pts[k]!.timeS, 12);
    expect(Math.abs(e.energyJ - pts[k]!.energyJ)).toBeLessThanOrEqual(
      1e-9 * Math.abs(pts[k]!.energyJ) + 1e-9,
    );
  }
}

/** Time strictly ascending, energy strictly descending, never below the certified bound. */
function expectPareto(f: Frontier): void {
  const pts = f.points;
  expect(pts.length).toBeGreaterThan(0);
  for (let k = 1; k < pts.length; k++) {
    expect(pts[k]!.timeS).toBeGreaterThan(pts[k - 1]!.timeS);
    expect(pts[k]!.energyJ).toBeLessThan(pts[k - 1]!.energyJ);
  }
  for (const p of pts) {
    const bound = f.lowerBoundJ(p.timeS);
    expect(p.energyJ).toBeGreaterThanOrEqual(bound - 1e-9 * Math.abs(bound) - 1e-9);
  }
  // The intrinsic plan is no slower than all-max clocks and uses no more energy.
  const intr = f.intrinsic().point;
  expect(intr.timeS).toBeLessThanOrEqual(f.allMax.timeS * (1 + 1e-6));
  expect(intr.energyJ).toBeLessThanOrEqual(f.allMax.energyJ * (1 + 1e-12));
}

/**
 * Against the exhaustive oracle: the same fastest time, the exact optimum at the all-max time (the
 * deployed intrinsic plan), no point better than the truth, and within 6% of the exact optimum at
 * every exact frontier time. Away from the all-max time the discretisation is a heuristic: over the
 * tiny seeds 0–799 the worst gap was 5.96% (seed 184, interleaved, integer times), then 5.29%
 * (seed 736, interleaved); all others ≤ 3.3%.
 */
function expectNearOracle(c: RandomCase, f: Frontier): void {
  const exact = exactFrontier(c.input);
  expect(f.points[0]!.timeS).toBeCloseTo(exact[0]!.timeS, 12);
  for (const p of f.points) {
    // The least exact energy at or before p's time.
    let truth = Infinity;
    for (const e of exact) if (e.timeS <= p.timeS * (1 + 1e-12)) truth = Math.min(truth, e.energyJ);
    expect(p.energyJ).toBeGreaterThanOrEqual(truth * (1 - 1e-12));
  }
  for (const e of exact) {
    const ours = f.planFor(e.timeS * (1 + 1e-12)).point;
    expect(ours.timeS).toBeLessThanOrEqual(e.timeS * (1 + 1e-9));
    expect(ours.energyJ / e.energyJ - 1).toBeLessThanOrEqual(0.06);
  }
  const intr = f.intrinsic().point;
  const best = exact.filter((e) => e.timeS <= f.allMax.timeS * (1 + 1e-9)).at(-1)!;
  expect(intr.energyJ).toBeCloseTo(best.energyJ, 9);
}

describe('computeFrontier on seeded random pipelines', () => {
  it.each(seedsToRun())('seed %i', (seed) => {
    const c = randomCase(seed);
    const f = computeFrontier(c.input);
    expectPareto(f);
    expectPlansReevaluate(c, f);
    if (c.tiny) expectNearOracle(c, f);
  });

  it('the CI seeds cover every shape, both schedules, tiny cases and large M', () => {
    const cases = CI_SEEDS.map((s) => randomCase(s));
    expect(new Set(cases.map((c) => c.shape)).size).toBe(6);
    expect(new Set(cases.map((c) => c.input.pipeline.schedule)).size).toBe(3);
    expect(cases.filter((c) => c.tiny).length).toBeGreaterThanOrEqual(10);
    expect(Math.max(...cases.map((c) => c.input.pipeline.numMicrobatches))).toBeGreaterThan(100);
    expect(Math.max(...cases.map((c) => c.input.pipeline.numStages))).toBeGreaterThan(32);
    expect(cases.some((c) => c.input.blockingPowerW === 0)).toBe(true);
    expect(cases.some((c) => c.input.blockingPowerW >= 1000)).toBe(true);
  });
});

describe('identical stages at scale (issue 18)', () => {
  it('GPT-3 175B A100 stage rows repeated to 32 stages × 36 microbatches: no internal error', () => {
    // Stages 0–6 of the paper's profile are identical and stage 7 differs; repeating the eight
    // rows four times gives 32 stages with exactly equal durations on parallel paths. Before the
    // sweep kept durations canonical on the hull, this threw "cut with no movable activity (λ=0)"
    // after ~7,900 cuts.
    const csv = join(__dirname, '..', '..', '..', 'data', 'sosp24', 'stage_profile');
    const paper = parseProfileCsv(readFileSync(join(csv, 'gpt3-175b+a100_sxm_bf16.csv'), 'utf8'));
    const stages = Array.from({ length: 32 }, (_, s) => paper.stages[s % 8]!);
    const input = {
      profile: { stages },
      pipeline: { schedule: '1f1b' as const, numStages: 32, numMicrobatches: 36 },
      blockingPowerW: 83.64,
      unitTimeS: 1e-3,
    };
    const f = computeFrontier(input);
    expectPareto(f);
    expectPlansReevaluate({ seed: -1, shape: 'identical-stages', tiny: false, input }, f);
    expect(f.points.length).toBeGreaterThan(800);
  });
});
