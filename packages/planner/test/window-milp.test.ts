import {
  highsMilpSolver,
  neighbourhoodPolish,
  validatePlannerInput,
  type HighsRuntimeLike,
  type MilpModel,
  type MilpSolver,
  type ValidInput,
} from '../src';
import {
  buildDeadlineMilp,
  choiceFromColumns,
  evaluateChoice,
  startVector,
} from '../src/deadline-milp';
import { buildWindowMilp, choiceWithWindow } from '../src/window-milp';
import { inputOf, rng, syntheticProfile } from './helpers';
import { randomCase } from './random-pipelines';

let solver: MilpSolver;
beforeAll(async () => {
  const highs = (await import('highs')).default;
  solver = highsMilpSolver((await highs()) as HighsRuntimeLike);
});

const dot = (a: Float64Array, b: Float64Array): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

/** Largest violation of the model's rows and bounds by `x` (0 when feasible). */
function violation(m: MilpModel, x: Float64Array): number {
  let worst = 0;
  for (let c = 0; c < m.numCols; c++)
    worst = Math.max(worst, m.colLower[c]! - x[c]!, x[c]! - m.colUpper[c]!);
  for (let r = 0; r < m.numRows; r++) {
    let ax = 0;
    for (let p = m.matrix.starts[r]!; p < m.matrix.starts[r + 1]!; p++)
      ax += m.matrix.values[p]! * x[m.matrix.indices[p]!]!;
    worst = Math.max(worst, m.rowLower[r]! - ax, ax - m.rowUpper[r]!);
  }
  return worst;
}

/** Σ effective energy of a plan: what both models minimise, up to P_b·N·T. */
const effectiveJ = (v: ValidInput, choice: Uint16Array): number =>
  choice.reduce((s, k, i) => s + v.tables[v.dag.table[i]!]!.effectiveJ[k]!, 0);

/** A seeded random plan, deadline and window of a random pipeline of ≤ `maxNodes` instructions. */
function drawCase(seed: number, maxNodes = 96) {
  const v = validatePlannerInput(randomCase(seed, maxNodes).input);
  const r = rng(seed * 31 + 7);
  const n = v.dag.numNodes;
  const choice = new Uint16Array(n);
  for (let i = 0; i < n; i++) choice[i] = Math.floor(r() * v.tables[v.dag.table[i]!]!.timeS.length);
  const deadlineS = evaluateChoice(v, choice).timeS * (seed % 3 === 0 ? 1.03 : 1);
  // Half the cases a run of node ids (instructions close together), half a scattered set.
  const size = 1 + Math.floor(r() * Math.min(n, 12));
  const nodes = new Set<number>();
  if (seed % 2 === 0) {
    const first = Math.floor(r() * (n - size + 1));
    for (let k = 0; k < size; k++) nodes.add(first + k);
  } else while (nodes.size < size) nodes.add(Math.floor(r() * n));
  return { v, choice, deadlineS, window: [...nodes] };
}

describe('buildWindowMilp (the deadline MILP reduced to a window of free clocks)', () => {
  const seeds = Array.from({ length: 40 }, (_, k) => k + 1);

  it('has the optimum of the full range-restricted MILP on random pipelines and windows', () => {
    let improvedCases = 0;
    let prunedSteps = 0;
    for (const seed of seeds) {
      const { v, choice, deadlineS, window } = drawCase(seed);
      const n = v.dag.numNodes;
      const free = new Set(window);
      // The full model: every start time free, only the window's clocks free.
      const lo = Uint16Array.from(choice);
      const hi = Uint16Array.from(choice);
      for (const i of free) {
        lo[i] = 0;
        hi[i] = v.tables[v.dag.table[i]!]!.timeS.length - 1;
      }
      const full = buildDeadlineMilp(v, deadlineS, { lo, hi });
      const fullOut = solver.solve(full.model, {
        start: startVector(v, full, choice),
        timeLimitS: 60,
        relGap: 1e-9,
      });
      const red = buildWindowMilp(v, deadlineS, choice, window);
      // Window-sized: the window's steps (those that fit) and starts; at most |W|² + |W| rows
      // besides the steps'.
      const steps = red.slowest.reduce((s, k) => s + k, 0);
      expect(red.model.numCols).toBe(steps + window.length);
      expect(red.model.numRows).toBeLessThanOrEqual(steps + window.length ** 2);
      red.nodes.forEach((i, a) => {
        expect(red.slowest[a]).toBeGreaterThanOrEqual(choice[i]!);
        expect(red.slowest[a]).toBeLessThan(v.tables[v.dag.table[i]!]!.timeS.length);
      });
      prunedSteps += window.reduce((s, i) => s + v.tables[v.dag.table[i]!]!.timeS.length - 1, 0);
      prunedSteps -= steps;
      // Its start is the plan itself, feasible, with the plan's objective.
      expect(violation(red.model, red.start)).toBeLessThanOrEqual(1e-9);
      expect(dot(red.model.colCost, red.start) + red.offsetJ).toBeCloseTo(
        effectiveJ(v, choice) + v.blockingPowerW * v.dag.numStages * deadlineS,
        6,
      );
      const redOut = solver.solve(red.model, { start: red.start, timeLimitS: 60, relGap: 1e-9 });
      expect([seed, fullOut.status, redOut.status]).toEqual([seed, 'optimal', 'optimal']);
      const fullPlan = choiceFromColumns(full, fullOut.colValue!);
      const redPlan = choiceWithWindow(red, choice, redOut.colValue!);
      // The same optimum (as energy, both objectives plus their constants).
      const fullJ = dot(full.model.colCost, fullOut.colValue!) + full.offsetJ;
      const redJ = dot(red.model.colCost, redOut.colValue!) + red.offsetJ;
      expect(Math.abs(redJ - fullJ)).toBeLessThanOrEqual(1e-7 * Math.abs(fullJ));
      expect(Math.abs(effectiveJ(v, redPlan) - effectiveJ(v, fullPlan))).toBeLessThanOrEqual(
        1e-7 * Math.abs(fullJ),
      );
      // Only the window moved, and the emulator says the plan meets the deadline.
      for (let i = 0; i < n; i++) if (!free.has(i)) expect(redPlan[i]).toBe(choice[i]);
      expect(evaluateChoice(v, redPlan).timeS).toBeLessThanOrEqual(deadlineS * (1 + 1e-7));
      if (effectiveJ(v, redPlan) < effectiveJ(v, choice) - 1e-9) improvedCases++;
    }
    // The cases are not trivial: in most of them the window's optimum beats the random plan.
    expect(improvedCases).toBeGreaterThanOrEqual(seeds.length / 2);
    // And options too slow for any plan that meets the deadline were left out (exactly).
    expect(prunedSteps).toBeGreaterThan(0);
  });
});

describe('neighbourhoodPolish on reduced sub-problems', () => {
  it('reaches the whole MILP optimum when the window is the whole pipeline', () => {
    // Deadlines at the plan's own time (seed % 3 ≠ 0): the search keeps a plan only if it saves
    // energy at its own time, which is the MILP's objective when the time is the deadline.
    for (const seed of [4, 5, 10, 22]) {
      const { v, choice, deadlineS } = drawCase(seed, 32);
      const n = v.dag.numNodes;
      const full = buildDeadlineMilp(v, deadlineS);
      const out = solver.solve(full.model, {
        start: startVector(v, full, choice),
        timeLimitS: 60,
        relGap: 1e-9,
      });
      expect([seed, v.dag.numNodes, out.status]).toEqual([seed, expect.any(Number), 'optimal']);
      const optimumJ = dot(full.model.colCost, out.colValue!) + full.offsetJ;
      const lns = neighbourhoodPolish(v, deadlineS, choice, solver, {
        timeLimitS: 600,
        // No wall-clock cap binds, so the result is the same on a slow machine.
        stepLimitS: 600,
        windowNodes: n,
        nodeLimit: 100_000,
      });
      expect(lns.converged).toBe(true);
      expect(lns.timeS).toBeLessThanOrEqual(deadlineS * (1 + 1e-7));
      const paddedJ = lns.energyJ + v.blockingPowerW * v.dag.numStages * (deadlineS - lns.timeS);
      expect([seed, Math.abs(paddedJ - optimumJ) <= 1e-6 * Math.abs(optimumJ)]).toEqual([
        seed,
        true,
      ]);
    }
  });

  it('converges on its own and finds the same plan every time', () => {
    // From the all-max plan of a 128-instruction pipeline (3 clocks: cheap sub-problems).
    const v = validatePlannerInput(
      inputOf(syntheticProfile(4, [1000, 1200, 1400], 17), '1f1b', 16),
    );
    const allMax = new Uint16Array(v.dag.numNodes);
    const start = evaluateChoice(v, allMax);
    const limits = { timeLimitS: 600, stepLimitS: 600 };
    const first = neighbourhoodPolish(v, start.timeS, allMax, solver, limits);
    const again = neighbourhoodPolish(v, start.timeS, allMax, solver, limits);
    expect(again.choice).toEqual(first.choice);
    expect(again.subproblems).toBe(first.subproblems);
    expect(first.converged).toBe(true);
    expect(first.timeS).toBeLessThanOrEqual(start.timeS * (1 + 1e-7));
    // 9 windows of 24, then 6 of 36 per pass: at least one pass of each, the last fruitless.
    expect(first.subproblems).toBeGreaterThanOrEqual(15);
    expect(first.energyJ).toBeLessThan(start.energyJ * 0.9);
  });
});
