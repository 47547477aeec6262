import { tailLengths } from './dag-passes';
import type { Discretizer, PlanCost } from './discretizer';
import { longestPath } from './emulator';
import { slowestWithin } from './options';
import { INFINITE_CAPACITY, type LowerBoundedMinCut } from './phillips-dessouky';
import { fitsBudget, REL_TOL } from './tolerance';

// Module bindings, not global lookups (see discretizer.ts).
const { floor, min } = Math;
const INF = Infinity;
const fits = fitsBudget;
const relTol = REL_TOL;
const CAP_INF = INFINITE_CAPACITY;
const slowest = slowestWithin;

/**
 * Ejection-chain local search at a fixed budget: slow one instruction b by one clock step, then
 * restore the budget at least cost by speeding up a minimum vertex cut of the paths that now
 * overrun (each cut instruction speeds up by enough for the worst path through it), reclaim the
 * slack that leaves, and keep the move if energy dropped. One max-flow per tried move.
 */
export function eject(
  disc: Discretizer,
  budgetS: number,
  cut: LowerBoundedMinCut,
  maxRounds: number,
  current: PlanCost,
  maxSteps = 1,
): PlanCost {
  const { dag, tables } = disc.v;
  const n = dag.numNodes;
  const { choice, times, finish } = disc;
  const { predStart, succStart, succ } = dag;
  const tail = new Float64Array(n);
  const idx = new Int32Array(n);
  const need = new Float64Array(n);
  // Per overrunning instruction: what speeding it up by its overrun costs (CAP_INF: it cannot),
  // and the widest path from the source to it (narrowest instruction on the way).
  const capOf = new Float64Array(n);
  const reach = new Float64Array(n);
  const saved = new Uint16Array(n);
  let best = current;
  const eps = budgetS * relTol;
  for (let round = 0; round < maxRounds; round++) {
    let improved = false;
    for (let trial = 0; trial < n * maxSteps; trial++) {
      const b = floor(trial / maxSteps);
      const step = 1 + (trial % maxSteps);
      const tb = tables[dag.table[b]!]!;
      const cb = choice[b]!;
      if (cb + step >= tb.timeS.length) continue;
      saved.set(choice);
      choice[b] = cb + step;
      times[b] = tb.timeS[cb + step]!;
      longestPath(dag, times, finish);
      tailLengths(dag, times, tail);
      let k = 0;
      for (let i = 0; i < n; i++) {
        const over = finish[i]! - times[i]! + tail[i]! - budgetS;
        if (over > eps) {
          idx[i] = k++;
          need[i] = over;
          reach[i] = -INF;
        } else idx[i] = -1;
      }
      let ok = true;
      // A cut costing the move's saving or more rejects the move.
      const gain = tb.effectiveJ[cb]! - tb.effectiveJ[cb + step]!;
      if (k > 0) {
        // Every path must be cut, so the min cut costs at least the widest path's narrowest
        // instruction: found in one topological pass, it rejects most moves without a max-flow.
        // Only a bound clearly above the saving decides (the flow's tolerances stay out of it).
        let widest = -INF;
        for (let i = 0; i < n; i++) {
          if (idx[i]! < 0) continue;
          const ti = tables[dag.table[i]!]!;
          let cap = CAP_INF;
          if (i !== b) {
            const target = times[i]! - need[i]! - eps;
            const c = slowest(ti, target);
            if (ti.timeS[c]! <= target && c < choice[i]!)
              cap = ti.effectiveJ[c]! - ti.effectiveJ[choice[i]!]!;
          }
          capOf[i] = cap;
          if (predStart[i] === predStart[i + 1]) reach[i] = INF;
          const through = min(reach[i]!, cap);
          if (succStart[i] === succStart[i + 1] && through > widest) widest = through;
          for (let p = succStart[i]!; p < succStart[i + 1]!; p++) {
            const j = succ[p]!;
            if (idx[j]! >= 0 && finish[i]! + tail[j]! - budgetS > eps && through > reach[j]!)
              reach[j] = through;
          }
        }
        if (widest > gain + 1e-9 * gain + 1e-6) ok = false;
      }
      if (k > 0 && ok) {
        cut.reset(2 + 2 * k);
        for (let i = 0; i < n; i++) {
          const ci = idx[i]!;
          if (ci < 0) continue;
          const cap = capOf[i]!;
          const inV = 2 + 2 * ci;
          cut.addArc(inV, inV + 1, 0, cap);
          if (predStart[i] === predStart[i + 1]) cut.addArc(0, inV, 0, CAP_INF);
          if (succStart[i] === succStart[i + 1]) cut.addArc(inV + 1, 1, 0, CAP_INF);
          for (let p = succStart[i]!; p < succStart[i + 1]!; p++) {
            const j = succ[p]!;
            const cj = idx[j]!;
            if (cj >= 0 && finish[i]! + tail[j]! - budgetS > eps)
              cut.addArc(inV + 1, 2 + 2 * cj, 0, CAP_INF);
          }
        }
        // Stop the flow once it reaches the saving.
        const res = cut.solveUnder(0, 1, gain);
        if (res.kind !== 'cut' || res.valueW >= gain) ok = false;
        else {
          for (let i = 0; i < n; i++) {
            const ci = idx[i]!;
            if (ci < 0 || !res.sourceSide[2 + 2 * ci] || res.sourceSide[3 + 2 * ci]) continue;
            const ti = tables[dag.table[i]!]!;
            const c = slowest(ti, times[i]! - need[i]! - eps);
            choice[i] = c;
            times[i] = ti.timeS[c]!;
          }
        }
      }
      let r = best;
      if (ok) {
        disc.reclaim(budgetS, -1);
        r = disc.evaluate();
      }
      if (ok && fits(r.timeS, budgetS) && r.energyJ < best.energyJ - 1e-9) {
        best = r;
        improved = true;
      } else if (!ok) {
        // Rejected before any change but b's: undo that alone, not a pass over the plan.
        choice[b] = cb;
        times[b] = tb.timeS[cb]!;
      } else {
        choice.set(saved);
        disc.syncTimes();
      }
    }
    if (!improved) break;
  }
  disc.evaluate();
  return best;
}
