import { tailLengths } from './dag-passes';
import type { Discretizer, PlanCost } from './discretizer';
import { longestPath } from './emulator';
import { slowestWithin } from './options';
import { fitsBudget, REL_TOL } from './tolerance';

// Module bindings, not global lookups (see discretizer.ts).
const { max, min } = Math;
const fits = fitsBudget;
const relTol = REL_TOL;
const INF = Infinity;
const slowest = slowestWithin;
const tailsOf = tailLengths;
const pathLength = longestPath;

/** Result of one seed of {@link SeededRebuild} and the budgets at which it stays that. */
const NO_RESULT = { timeS: INF, energyJ: INF };

/**
 * Constructive search for tiny pipelines: for every instruction b and every option of b, start
 * from all-fastest with b fixed there, fill the slack greedily (both scores), and from all-slowest
 * with b fixed, repair then fill (the mirror); keep the best plan. O(n·K·greedy) per budget, so
 * only for pipelines of a few instructions, where rounding the relaxation can miss plans that slow
 * a different set of instructions.
 *
 * Every decision of a seed's run compares a budget-independent length with the budget, so each
 * seed's plan is kept with the range of budgets over which its run would decide everything the
 * same way; the frontier's next sample (one τ away) reruns only the seeds whose range it left.
 */
export class SeededRebuild {
  /** First seed slot of each node (slots: node b × option o). */
  private readonly slotStart: Int32Array;
  /** Per slot: makespan with every instruction at its fastest but b at o (NaN: not yet known). */
  private readonly fastest: Float64Array;
  /** Per run (slot × 3: greedy per second, greedy in total, mirror): budget range and result. */
  private readonly lo: Float64Array;
  private readonly hi: Float64Array;
  private readonly runT: Float64Array;
  private readonly runE: Float64Array;
  private readonly plans: Uint16Array;
  private readonly saved: Uint16Array;

  constructor(private readonly disc: Discretizer) {
    const { dag, tables } = disc.v;
    const n = dag.numNodes;
    this.slotStart = new Int32Array(n + 1);
    for (let b = 0; b < n; b++)
      this.slotStart[b + 1] = this.slotStart[b]! + tables[dag.table[b]!]!.timeS.length;
    const slots = this.slotStart[n]!;
    this.fastest = new Float64Array(slots).fill(NaN);
    this.lo = new Float64Array(3 * slots).fill(INF);
    this.hi = new Float64Array(3 * slots).fill(-INF);
    this.runT = new Float64Array(3 * slots);
    this.runE = new Float64Array(3 * slots);
    this.plans = new Uint16Array(3 * slots * n);
    this.saved = new Uint16Array(n);
  }

  /** The best plan over every seed at `budgetS`, or `current` (in `choice`) if none beats it. */
  run(budgetS: number, current: PlanCost): PlanCost {
    const { disc } = this;
    const { dag, tables } = disc.v;
    const n = dag.numNodes;
    const { choice, times } = disc;
    const { lo, hi, runT, runE, plans } = this;
    let best = current;
    let bestRun = -1;
    this.saved.set(choice);
    for (let b = 0; b < n; b++) {
      const tb = tables[dag.table[b]!]!;
      for (let o = 0; o < tb.timeS.length; o++) {
        const slot = this.slotStart[b]! + o;
        // All-fastest with b fixed at o is the fastest such plan (the makespan only grows with
        // any duration): if it overruns, no plan with b at o or slower fits.
        if (Number.isNaN(this.fastest[slot]!)) {
          choice.fill(0);
          disc.syncTimes();
          times[b] = tb.timeS[o]!;
          this.fastest[slot] = pathLength(dag, times, disc.finish);
        }
        if (!fits(this.fastest[slot]!, budgetS)) break;
        for (let kind = 0; kind < 3; kind++) {
          const k = 3 * slot + kind;
          if (!(budgetS >= lo[k]! && budgetS <= hi[k]!)) this.seed(b, o, kind, k, budgetS);
          if (fits(runT[k]!, budgetS) && runE[k]! < best.energyJ) {
            best = { timeS: runT[k]!, energyJ: runE[k]! };
            bestRun = k;
          }
        }
      }
    }
    choice.set(bestRun < 0 ? this.saved : plans.subarray(bestRun * n, bestRun * n + n));
    disc.syncTimes();
    disc.evaluate();
    return best;
  }

  /** Runs seed `kind` of (b, o) at `budgetS` into run slot `k`, with its budget range. */
  private seed(b: number, o: number, kind: number, k: number, budgetS: number): void {
    const { disc } = this;
    const { dag, tables } = disc.v;
    const n = dag.numNodes;
    const { choice, times } = disc;
    const tb = tables[dag.table[b]!]!;
    if (kind < 2) choice.fill(0);
    else for (let i = 0; i < n; i++) choice[i] = tables[dag.table[i]!]!.timeS.length - 1;
    disc.syncTimes();
    choice[b] = o;
    times[b] = tb.timeS[o]!;
    let r = NO_RESULT;
    let up = INF;
    let down = INF;
    // Mirror: all slowest with b fixed, speed up the best time-per-joule overrunning instruction
    // until the budget holds, then fill the slack.
    const repaired = kind < 2 || repair(disc, budgetS, b);
    if (kind === 2) {
      up = repairSlack.up;
      down = repairSlack.down;
    }
    if (repaired) {
      r = disc.greedyFrom(budgetS, kind !== 1, NO_RESULT);
      up = min(up, disc.budgetSlackUp);
      down = min(down, disc.budgetSlackDown);
    }
    // Float rounding of the lengths compared: keep well inside the exact range.
    const tol = 1e-9 * budgetS;
    this.lo[k] = budgetS - down + tol;
    this.hi[k] = budgetS + up - tol;
    this.runT[k] = r.timeS;
    this.runE[k] = r.energyJ;
    if (r !== NO_RESULT) this.plans.set(choice, k * n);
  }
}

/** Budget range of the last {@link repair}'s decisions (as for the greedy's). */
const repairSlack = { up: INF, down: INF };

/**
 * Speeds up overrunning instructions (never `locked`), best time gained per joule first, until
 * the plan fits the budget; false if it cannot. Records in {@link repairSlack} how far the budget
 * could move with every test deciding the same way.
 */
function repair(disc: Discretizer, budgetS: number, locked: number): boolean {
  const { dag, tables } = disc.v;
  const n = dag.numNodes;
  const { choice, times, finish } = disc;
  const tail = disc.latestStart; // scratch: longest path from each instruction's start
  let up = INF;
  let down = INF;
  const done = (ok: boolean): boolean => {
    repairSlack.up = up;
    repairSlack.down = down;
    return ok;
  };
  for (let guard = 0; guard < 64 * n; guard++) {
    // The makespan alone (refreshing `finish`): the plan's energy is not needed here.
    const makespan = pathLength(dag, times, finish);
    if (fits(makespan, budgetS)) {
      down = min(down, budgetS - makespan);
      return done(true);
    }
    up = min(up, makespan - budgetS);
    tailsOf(dag, times, tail);
    let best = -1;
    let bestRatio = -INF;
    for (let i = 0; i < n; i++) {
      if (i === locked || choice[i] === 0) continue;
      const through = finish[i]! - times[i]! + tail[i]!;
      if (through <= budgetS) {
        down = min(down, budgetS - through);
        continue;
      }
      up = min(up, through - budgetS);
      const tb = tables[dag.table[i]!]!;
      const c = choice[i]!;
      const ratio =
        (tb.timeS[c]! - tb.timeS[c - 1]!) / max(relTol, tb.effectiveJ[c - 1]! - tb.effectiveJ[c]!);
      if (ratio > bestRatio) {
        bestRatio = ratio;
        best = i;
      }
    }
    if (best < 0) return done(false);
    choice[best] = choice[best]! - 1;
    times[best] = tables[dag.table[best]!]!.timeS[choice[best]!]!;
  }
  return done(false);
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
