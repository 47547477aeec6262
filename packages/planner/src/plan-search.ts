import { tailLengths } from './dag-passes';
import type { Discretizer, PlanCost } from './discretizer';
import { longestPath } from './emulator';
import { slowestWithin } from './options';
import { fitsBudget, REL_TOL } from './tolerance';

// Module bindings, not global lookups (see discretizer.ts).
const { max } = Math;
const fits = fitsBudget;
const relTol = REL_TOL;
const INF = Infinity;
const slowest = slowestWithin;
const tailsOf = tailLengths;
const pathLength = longestPath;

/**
 * Constructive search for tiny pipelines: for every instruction b and every option of b, start
 * from all-fastest with b fixed there, fill the slack greedily (both scores), keep the best plan.
 * O(n·K·greedy): only for pipelines of a few instructions, where rounding the relaxation can miss
 * plans that slow a different set of instructions.
 */
export function seededRebuild(disc: Discretizer, budgetS: number, current: PlanCost): PlanCost {
  const { dag, tables } = disc.v;
  const n = dag.numNodes;
  const { choice, times } = disc;
  let best = current;
  const bestChoice = Uint16Array.from(choice);
  for (let b = 0; b < n; b++) {
    const tb = tables[dag.table[b]!]!;
    for (let o = 0; o < tb.timeS.length; o++) {
      // All-fastest with b fixed at o is the fastest such plan (the makespan only grows with any
      // duration): if it overruns, no plan with b at o or slower fits, and the repair below would
      // spend up to n·K passes finding that out.
      choice.fill(0);
      disc.syncTimes();
      times[b] = tb.timeS[o]!;
      if (!fits(disc.evaluate().timeS, budgetS)) break;
      for (const perSecond of [true, false]) {
        choice.fill(0);
        disc.syncTimes();
        choice[b] = o;
        times[b] = tb.timeS[o]!;
        const r = disc.greedyFrom(budgetS, perSecond, best);
        if (r !== best) {
          best = r;
          bestChoice.set(choice);
        }
      }
      // Mirror: all slowest with b fixed, speed up the best time-per-joule overrunning
      // instruction until the budget holds, then fill the slack.
      for (let i = 0; i < n; i++) choice[i] = tables[dag.table[i]!]!.timeS.length - 1;
      disc.syncTimes();
      choice[b] = o;
      times[b] = tb.timeS[o]!;
      if (repair(disc, budgetS, b)) {
        const r = disc.greedyFrom(budgetS, true, best);
        if (r !== best) {
          best = r;
          bestChoice.set(choice);
        }
      }
    }
  }
  choice.set(bestChoice);
  disc.syncTimes();
  disc.evaluate();
  return best;
}

/**
 * Speeds up overrunning instructions (never `locked`), best time gained per joule first, until
 * the plan fits the budget; false if it cannot.
 */
function repair(disc: Discretizer, budgetS: number, locked: number): boolean {
  const { dag, tables } = disc.v;
  const n = dag.numNodes;
  const { choice, times, finish } = disc;
  const tail = disc.latestStart; // scratch: longest path from each instruction's start
  for (let guard = 0; guard < 64 * n; guard++) {
    // The makespan alone (refreshing `finish`): the plan's energy is not needed here.
    if (fits(pathLength(dag, times, finish), budgetS)) return true;
    tailsOf(dag, times, tail);
    let best = -1;
    let bestRatio = -INF;
    for (let i = 0; i < n; i++) {
      if (i === locked || choice[i] === 0) continue;
      if (finish[i]! - times[i]! + tail[i]! <= budgetS) continue;
      const tb = tables[dag.table[i]!]!;
      const c = choice[i]!;
      const ratio =
        (tb.timeS[c]! - tb.timeS[c - 1]!) / max(relTol, tb.effectiveJ[c - 1]! - tb.effectiveJ[c]!);
      if (ratio > bestRatio) {
        bestRatio = ratio;
        best = i;
      }
    }
    if (best < 0) return false;
    choice[best] = choice[best]! - 1;
    times[best] = tables[dag.table[best]!]!.timeS[choice[best]!]!;
  }
  return false;
}

/**
 * Local search on the plan in `choice` at a fixed time budget. Move: speed one zero-slack
 * instruction up by one or two clock steps and give the time that frees to the single
 * instruction that saves the most with it; keep the move if the saving beats the cost, reclaim,
 * repeat. A round costs O(critical nodes × (V+E)), so it is spent where it matters (the
 * intrinsic plan; every sample of tiny pipelines).
 */
export function polish(disc: Discretizer, budgetS: number, maxRounds = 100): PlanCost {
  const { dag, tables } = disc.v;
  const n = dag.numNodes;
  const { choice, times, finish, latestStart } = disc;
  const critical: number[] = [];
  disc.reclaim(budgetS, -1);
  for (let round = 0; round < maxRounds; round++) {
    disc.window(budgetS);
    critical.length = 0;
    for (let i = 0; i < n; i++) {
      const slack = latestStart[i]! - (finish[i]! - times[i]!);
      if (slack <= relTol * budgetS && choice[i]! > 0) critical.push(i);
    }
    let bestNet = 1e-9;
    let bestA = -1;
    let bestAOpt = 0;
    let bestB = -1;
    let bestBOpt = 0;
    for (const a of critical) {
      const ta = tables[dag.table[a]!]!;
      const ca = choice[a]!;
      for (let step = 1; step <= 2 && ca - step >= 0; step++) {
        const cost = ta.effectiveJ[ca - step]! - ta.effectiveJ[ca]!;
        times[a] = ta.timeS[ca - step]!;
        disc.window(budgetS);
        for (let b = 0; b < n; b++) {
          if (b === a) continue;
          const tb = tables[dag.table[b]!]!;
          const cb = choice[b]!;
          if (cb + 1 >= tb.timeS.length) continue;
          const room = latestStart[b]! + times[b]! - (finish[b]! - times[b]!);
          if (room < tb.timeS[cb + 1]!) continue;
          const nb = slowest(tb, room);
          const net = tb.effectiveJ[cb]! - tb.effectiveJ[nb]! - cost;
          if (net > bestNet) {
            bestNet = net;
            bestA = a;
            bestAOpt = ca - step;
            bestB = b;
            bestBOpt = nb;
          }
        }
        times[a] = ta.timeS[ca]!;
      }
    }
    if (bestA < 0) break;
    choice[bestA] = bestAOpt;
    times[bestA] = tables[dag.table[bestA]!]!.timeS[bestAOpt]!;
    choice[bestB] = bestBOpt;
    times[bestB] = tables[dag.table[bestB]!]!.timeS[bestBOpt]!;
    disc.reclaim(budgetS, -1);
  }
  return disc.evaluate();
}
