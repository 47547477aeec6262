import {
  computeFrontier,
  evaluatePlan,
  exactAtDeadline,
  exactFrontier,
  highsMilpSolver,
  lpLowerBound,
  lpLowerBoundWithProgress,
  type HighsRuntimeLike,
  type LpSolver,
  type MilpSolver,
  type PlannerInput,
} from '../src';
import { inputOf, syntheticProfile } from './helpers';

let solver: MilpSolver;
let runtime: HighsRuntimeLike & LpSolver;
beforeAll(async () => {
  const highs = (await import('highs')).default;
  runtime = (await highs()) as HighsRuntimeLike & LpSolver;
  solver = highsMilpSolver(runtime);
});

const interleaved = (stages: number, chunks: number, m: number, seed: number, clocks: number[]) =>
  ({
    profile: syntheticProfile(stages * chunks, clocks, seed),
    pipeline: { schedule: 'interleaved', numStages: stages, numMicrobatches: m, numChunks: chunks },
    blockingPowerW: 70,
    unitTimeS: 1e-4,
  }) satisfies PlannerInput;

const cases: Array<[string, PlannerInput]> = [
  ['1f1b N=2 M=2 3 clocks', inputOf(syntheticProfile(2, [900, 1200, 1500], 3), '1f1b', 2)],
  ['1f1b N=3 M=2 2 clocks', inputOf(syntheticProfile(3, [1000, 1500], 9), '1f1b', 2)],
  ['gpipe N=2 M=2 3 clocks', inputOf(syntheticProfile(2, [900, 1200, 1500], 5), 'gpipe', 2)],
  ['interleaved N=1 V=2 M=2 3 clocks', interleaved(1, 2, 2, 4, [900, 1200, 1500])],
  ['interleaved N=2 V=2 M=2 2 clocks', interleaved(2, 2, 2, 25, [1000, 1500])],
];

/** Least energy of any plan when the iteration lasts `deadlineS` (idle GPUs draw P_b until then). */
function oracleAt(input: PlannerInput, deadlineS: number): number {
  const gpus = input.pipeline.numStages;
  let best = Infinity;
  for (const p of exactFrontier(input))
    if (p.timeS <= deadlineS * (1 + 1e-9))
      best = Math.min(best, p.energyJ + input.blockingPowerW * gpus * (deadlineS - p.timeS));
  return best;
}

describe('exactAtDeadline (exact polish of the deployed point, HiGHS)', () => {
  it.each(cases)('%s: the exact optimum at the all-max time and at 1.1× it', (_name, input) => {
    const frontier = computeFrontier(input);
    for (const deadlineS of [frontier.allMax.timeS, frontier.allMax.timeS * 1.1]) {
      const r = exactAtDeadline(frontier, input, deadlineS, solver, { timeLimitS: 20 });
      const paddedJ =
        r.point.energyJ +
        input.blockingPowerW * input.pipeline.numStages * (deadlineS - r.point.timeS);
      const optimumJ = oracleAt(input, deadlineS);
      expect(paddedJ).toBeCloseTo(optimumJ, 6);
      // The MILP closed its gap, so the certified bound is the optimum (HiGHS's 1e-6 gap aside).
      expect(r.polish.status).toBe('optimal');
      expect(r.boundJ).toBeLessThanOrEqual(optimumJ + 1e-9);
      expect(r.gapPp).toBeGreaterThanOrEqual(0);
      expect(r.gapPp).toBeLessThan(1e-3);
      // The plan is what the emulator says, and the returned frontier serves it.
      const e = evaluatePlan(input, r.plan);
      expect(e.timeS).toBeLessThanOrEqual(deadlineS * (1 + 1e-7));
      expect(e.energyJ).toBeCloseTo(r.point.energyJ, 9);
      expect(r.frontier.planFor(deadlineS).point).toEqual(r.point);
      expect(r.savingPct).toBeCloseTo((1 - r.point.energyJ / frontier.allMax.energyJ) * 100, 9);
    }
  });

  it('keeps the frontier Pareto after adding the polished plan', () => {
    const input = inputOf(syntheticProfile(3, [800, 1000, 1200, 1400], 11, 0.03), '1f1b', 4);
    const frontier = computeFrontier(input);
    const r = exactAtDeadline(frontier, input, frontier.allMax.timeS, solver, { timeLimitS: 20 });
    const pts = r.frontier.points;
    pts.forEach((p, i) => {
      expect(p.index).toBe(i);
      if (i > 0) {
        expect(p.timeS).toBeGreaterThan(pts[i - 1]!.timeS);
        expect(p.energyJ).toBeLessThan(pts[i - 1]!.energyJ);
      }
      const e = evaluatePlan(input, r.frontier.plan(i));
      expect(e.energyJ).toBeCloseTo(p.energyJ, 9);
    });
    expect(r.frontier.intrinsic().point.energyJ).toBeLessThanOrEqual(
      frontier.intrinsic().point.energyJ,
    );
  });

  it('falls back to the frontier plan and the LP bound when the solver fails or is stopped', () => {
    const input = cases[0]![1];
    const frontier = computeFrontier(input);
    const failing: MilpSolver = {
      solve: () => ({ status: 'failed', colValue: null, dualBound: -Infinity }),
    };
    const r = exactAtDeadline(frontier, input, frontier.allMax.timeS, failing, { timeLimitS: 1 });
    expect(r.point).toEqual(frontier.intrinsic().point);
    expect(r.boundSource).toBe('lp');
    expect(r.boundJ).toBeCloseTo(frontier.lowerBoundJ(frontier.allMax.timeS), 9);
    expect(r.polish.improved).toBe(false);
    // Cancelled at once: HiGHS stops at its first callback with no better plan than the start.
    const stopped = exactAtDeadline(frontier, input, frontier.allMax.timeS, solver, {
      timeLimitS: 20,
      shouldStop: () => true,
    });
    expect(stopped.point.energyJ).toBeLessThanOrEqual(frontier.intrinsic().point.energyJ);
    expect(evaluatePlan(input, stopped.plan).energyJ).toBeCloseTo(stopped.point.energyJ, 9);
  });
});

describe('lpLowerBoundWithProgress (the LP bound as a model, with simplex progress)', () => {
  it.each(cases)('%s: equals the sweep and the LP text at two times', (_name, input) => {
    const frontier = computeFrontier(input);
    for (const timeS of [frontier.allMax.timeS, frontier.minEnergyTimeS]) {
      const j = lpLowerBoundWithProgress(input, timeS, solver);
      expect(j).toBeCloseTo(frontier.lowerBoundJ(timeS), 6);
      expect(j).toBeCloseTo(lpLowerBound(input, timeS, runtime, { vertices: 'hull' }), 6);
    }
    // Faster than any plan, even relaxed: no bound.
    expect(lpLowerBoundWithProgress(input, frontier.allMax.timeS * 0.5, solver)).toBe(Infinity);
  });
});

it('lpLowerBoundWithProgress reports the simplex as it runs', () => {
  const clocks = [900, 1000, 1100, 1200, 1300, 1400, 1500];
  const input = inputOf(syntheticProfile(3, clocks, 3), '1f1b', 6);
  const frontier = computeFrontier(input);
  const reports: Array<{ elapsedS: number; iterations: number }> = [];
  const j = lpLowerBoundWithProgress(input, frontier.allMax.timeS, solver, (p) => reports.push(p));
  expect(j).toBeCloseTo(frontier.lowerBoundJ(frontier.allMax.timeS), 6);
  expect(reports.length).toBeGreaterThanOrEqual(1);
  for (const p of reports) {
    expect(p.elapsedS).toBeGreaterThanOrEqual(0);
    expect(p.iterations).toBeGreaterThanOrEqual(0);
  }
});
