import { Discretizer, type PlanCost } from './discretizer';
import { eject } from './ejection-search';
import { interpolateLowerBound } from './hull';
import type { ValidInput } from './options';
import { LowerBoundedMinCut } from './phillips-dessouky';
import { DeltaPlanStore } from './plan-store';
import { polish, SeededRebuild } from './plan-search';
import type { RelaxedSweep } from './relaxed-sweep';
import { fitsBudget, REL_TOL } from './tolerance';
import type { FrontierPoint } from './types';

// Module bindings, not global lookups (see discretizer.ts).
const { ceil, min } = Math;
const fits = fitsBudget;
const relTol = REL_TOL;
const INF = Infinity;

/**
 * Pipelines up to this many instructions get the intrinsic plan's local searches at every sample
 * (cheap there, and coarse clock tables on tiny pipelines need them to get near the exact frontier).
 */
const SEARCH_EVERY_SAMPLE_MAX_NODES = 16;

/**
 * Samples whose plan is already within this factor of the certified bound skip the best-ratio
 * reclamation (it costs as much as the rest of the sample and cannot gain much there).
 */
const GREEDY_ABOVE_BOUND = 1 + 2e-3;

/** The Pareto-optimal sampled plans. */
export interface SampledFrontier {
  points: FrontierPoint[];
  /** The points' plans, in the order they were found. */
  plans: DeltaPlanStore;
  /** Position in `plans` of each point's plan. */
  planPositions: number[];
  /** Discrete candidate plans evaluated before Pareto filtering. */
  candidates: number;
}

/**
 * Pass 2 of the frontier (docs/architecture.md §4.3): replays the relaxed sweep from fast to slow and, at every
 * τ of iteration time on a grid through the all-max time, turns the relaxed durations into a
 * measured-option plan (rounding, slack reclamation, local searches), evaluated exactly; keeps the
 * Pareto-optimal ones on the discrete truth. `onProgress(timeS)` reports the grid time reached;
 * `onIntrinsic` gets the plan sampled at the all-max time as soon as it is found (the first
 * samples: pass 2 starts at the fast end), so a caller can start polishing it meanwhile.
 */
export function sampleFrontier(
  v: ValidInput,
  relaxed: RelaxedSweep,
  allMax: PlanCost,
  onProgress?: (timeS: number) => void,
  onIntrinsic?: (choice: Uint16Array, cost: PlanCost) => void,
): SampledFrontier {
  const { dag, unitTimeS: tau } = v;
  const n = dag.numNodes;
  const { lbT, lbE, events } = relaxed;
  const cut = new LowerBoundedMinCut();
  const disc = new Discretizer(v, n);
  const candidates = new DeltaPlanStore(n, 256);
  const rebuild = n <= SEARCH_EVERY_SAMPLE_MAX_NODES ? new SeededRebuild(disc) : null;
  const candT: number[] = [];
  const candE: number[] = [];

  const sample = (dur: Float64Array, budgetS: number, boundJ: number): void => {
    let r = disc.runCarrying(dur, budgetS);
    // Rounding a relaxation of a later time can overrun a budget below it (the extra samples of
    // tiny pipelines); such a plan is no candidate, and any search result that fits beats it.
    if (!fits(r.timeS, budgetS)) r = { timeS: r.timeS, energyJ: INF };
    // Best-ratio reclamation from the rounded relaxation: keeps the frontier below lowtime's in the
    // middle of the range, where reverse-topological reclamation alone was up to 0.04% worse.
    if (r.energyJ > boundJ * GREEDY_ABOVE_BOUND) r = disc.greedyReclaim(dur, budgetS, true, r);
    if (budgetS === allMax.timeS) {
      // The intrinsic plan is the one deployed most: spend more search on it.
      r = disc.greedyReclaim(dur, budgetS, false, r);
      // The ejection search costs a max-flow per instruction per round; later rounds gained
      // < 0.001 pp on the paper's profiles, so one round.
      r = eject(disc, budgetS, cut, 1, r);
      r = polish(disc, budgetS);
    }
    // No plan at this budget costs less than the relaxed bound: once within the tolerance of it,
    // the exhaustive rebuild cannot improve the sample (and would cost n·K greedy passes).
    if (rebuild && !(r.energyJ <= boundJ * (1 + relTol))) r = rebuild.run(budgetS, r);
    if (r.energyJ === INF) return;
    if (budgetS === allMax.timeS) onIntrinsic?.(Uint16Array.from(disc.choice), r);
    candT.push(r.timeS);
    candE.push(r.energyJ);
    candidates.push(disc.choice);
    disc.settle(r.timeS);
  };

  // Samples lie on the grid allMax.T + k·τ (k = 0 is exactly the all-max time).
  const gridT = (k: number): number => (k === 0 ? allMax.timeS : allMax.timeS + k * tau);
  // A grid time whose relaxed energy (a lower bound on any plan there) is already ≥ the energy of
  // a faster plan found is skipped: everything there is dominated. This prunes the slow end.
  let runningMinJ = INF;
  let prevBudgetS = 0;
  const trySample = (dur: Float64Array, g: number, boundJ: number): void => {
    if (g !== allMax.timeS && boundJ >= runningMinJ) return;
    sample(dur, g, boundJ);
    runningMinJ = min(runningMinJ, candE[candE.length - 1]!);
    // Tiny pipelines: a plan found at T < g leaves (previous sample, T) unexplored; ask for the
    // best plan strictly faster than it too (the exhaustive seeds make that cheap and exact-ish).
    for (let extra = 0; extra < 4 && n <= SEARCH_EVERY_SAMPLE_MAX_NODES; extra++) {
      const t = candT[candT.length - 1]! * (1 - 1e-9);
      if (!(t > prevBudgetS)) break;
      sample(dur, t, boundJ);
      runningMinJ = min(runningMinJ, candE[candE.length - 1]!);
    }
    prevBudgetS = g;
  };
  const K = events.length;
  const tEnd = lbT[K]!;
  const d = Float64Array.from(relaxed.dEnd);
  {
    // The fastest schedule, and grid points that float noise put just below it.
    let k = ceil((tEnd * (1 - 1e-9) - allMax.timeS) / tau);
    for (; gridT(k) < tEnd; k++) if (gridT(k) >= tEnd * (1 - 1e-9)) trySample(d, gridT(k), lbE[K]!);
    if (gridT(k) !== tEnd) trySample(d, tEnd, lbE[K]!);
  }
  const sampleD = Float64Array.from(d);
  for (let e = K - 1; e >= 0; e--) {
    const { moved, before, dir } = events[e]!;
    for (let q = 0; q < moved.length; q++) d[moved[q]!] = before[q]!;
    const hi = lbT[e]!;
    const lo = lbT[e + 1]!;
    for (let k = ceil((lo - allMax.timeS) / tau) - 1; gridT(k) < hi; k++) {
      const g = gridT(k);
      if (g < lo) continue;
      const x = hi - g;
      for (let q = 0; q < moved.length; q++) sampleD[moved[q]!] = before[q]! + x * dir[q]!;
      const boundJ = hi > lo ? lbE[e]! + ((lbE[e + 1]! - lbE[e]!) * x) / (hi - lo) : lbE[e]!;
      trySample(sampleD, g, boundJ);
    }
    for (let q = 0; q < moved.length; q++) sampleD[moved[q]!] = before[q]!;
    onProgress?.(hi);
  }
  trySample(relaxed.dStart, lbT[0]!, lbE[0]!);

  // Pareto filter on the discrete truth.
  const order = candT
    .map((_, i) => i)
    .sort((a, b) => candT[a]! - candT[b]! || candE[a]! - candE[b]!);
  const keep: number[] = [];
  let bestE = INF;
  for (const c of order) {
    if (candE[c]! < bestE * (1 - relTol)) {
      keep.push(c);
      bestE = candE[c]!;
    }
  }
  const lbTAsc = lbT.slice().reverse();
  const lbEAsc = lbE.slice().reverse();
  const pointOf = new Int32Array(candT.length).fill(-1);
  keep.forEach((c, idx) => (pointOf[c] = idx));
  const plans = new DeltaPlanStore(n, 64);
  const planPositions = new Array<number>(keep.length);
  candidates.replay((c, plan) => {
    const p = pointOf[c]!;
    if (p >= 0) {
      planPositions[p] = plans.size;
      plans.push(plan);
    }
  });
  const points: FrontierPoint[] = keep.map((c, index) => ({
    index,
    timeS: candT[c]!,
    energyJ: candE[c]!,
    modelEnergyJ: interpolateLowerBound(lbTAsc, lbEAsc, candT[c]!),
  }));
  return { points, plans, planPositions, candidates: candT.length };
}
