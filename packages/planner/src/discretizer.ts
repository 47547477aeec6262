import { latestStarts } from './dag-passes';
import { longestPath, planEnergy } from './emulator';
import { slowestWithin, type ValidInput } from './options';
import { StepHeap } from './step-heap';
import { fitsBudget, REL_TOL } from './tolerance';

// Module bindings, not global lookups: under jest's vm context every access to a global (Math,
// Infinity) is intercepted and hot loops run ~25x slower. Local copies of hot imports: the
// CommonJS that ts-jest and tsx emit reads an import through a property getter on every use.
const { max, min } = Math;
const fits = fitsBudget;
const relTol = REL_TOL;
const INF = Infinity;
const slowest = slowestWithin;
const energyOf = planEnergy;
const pathLength = longestPath;

/** Iteration time and energy of a plan. */
export interface PlanCost {
  timeS: number;
  energyJ: number;
}

/**
 * Turns relaxed durations into a measured-option plan and reclaims slack (docs/architecture.md §4.3): each node
 * first takes the slowest option no longer than its relaxed duration (so the time cannot grow),
 * then, in reverse topological order, the slowest option that still finishes before its
 * successors' latest starts and the time budget. Holds the plan being built (`choice`, `times`)
 * and its windows; the local searches in plan-search.ts and ejection-search.ts work on it.
 */
export class Discretizer {
  readonly choice: Uint16Array;
  /** Earliest finishes of the plan in `choice` (after {@link evaluate} / {@link window}). */
  readonly finish: Float64Array;
  /** Latest starts under the last budget (after {@link window}); scratch for the searches. */
  readonly latestStart: Float64Array;
  readonly times: Float64Array;
  private readonly heap: StepHeap;
  private readonly dirty: Uint8Array;
  private readonly dirtyBack: Uint8Array;
  /**
   * The last {@link roundDown}: the durations it rounded, their options and times, and (when
   * `roundedFinishKnown`) the earliest finishes of that plan. Consecutive frontier samples differ
   * only in the durations of the sweep event's moved instructions, so rounding is redone for
   * those alone, and a rounding that changed no option reuses the earliest finishes.
   */
  private readonly roundedDurations: Float64Array;
  private readonly roundedChoice: Uint16Array;
  private readonly roundedTimes: Float64Array;
  private readonly roundedFinish: Float64Array;
  private roundedFinishKnown = false;
  /**
   * The greedy's first candidates for the rounded plan: every instruction with a positive step
   * score, in pop order (score descending, then node ascending), for `orderPerSecond`. Scores
   * depend only on an instruction's option, and the rounded plan usually stays the same from one
   * sample to the next, so this is kept and patched (the instructions in `staleList`, whose
   * rounded option changed) instead of scoring and heap-ordering every instruction per sample.
   */
  private readonly orderNode: Int32Array;
  private readonly orderScore: Float64Array;
  private orderCount = 0;
  private orderPerSecond = true;
  private orderValid = false;
  private readonly stale: Uint8Array;
  private readonly staleList: Int32Array;
  private staleCount = 0;
  /** Scratch of {@link runCarrying} and {@link greedyReclaim}: plans put aside and restored. */
  private readonly carried: Uint16Array;
  private readonly carriedTimes: Float64Array;
  private readonly fresh: Uint16Array;
  private readonly freshTimes: Float64Array;
  private readonly freshFinish: Float64Array;
  private carriedTimeS = INF;
  /**
   * After {@link greedyFrom}: how far the budget could rise (`budgetSlackUp`) or fall
   * (`budgetSlackDown`) with every decision of that run taken the same way — each step's fit test
   * and the final one compare a budget-independent length with the budget — so the same plan
   * would come out. Lets a caller reuse a greedy's result at nearby budgets.
   */
  budgetSlackUp = INF;
  budgetSlackDown = INF;

  constructor(
    readonly v: ValidInput,
    numNodes: number,
  ) {
    this.choice = new Uint16Array(numNodes);
    this.finish = new Float64Array(numNodes);
    this.latestStart = new Float64Array(numNodes);
    this.times = new Float64Array(numNodes);
    this.heap = new StepHeap(numNodes);
    this.dirty = new Uint8Array(numNodes);
    this.dirtyBack = new Uint8Array(numNodes);
    // NaN equals no duration and no option has index 0xffff: the first rounding does every node.
    this.roundedDurations = new Float64Array(numNodes).fill(NaN);
    this.roundedChoice = new Uint16Array(numNodes).fill(0xffff);
    this.roundedTimes = new Float64Array(numNodes);
    this.roundedFinish = new Float64Array(numNodes);
    this.orderNode = new Int32Array(numNodes);
    this.orderScore = new Float64Array(numNodes);
    this.stale = new Uint8Array(numNodes);
    this.staleList = new Int32Array(numNodes);
    this.carried = new Uint16Array(numNodes);
    this.carriedTimes = new Float64Array(numNodes);
    this.fresh = new Uint16Array(numNodes);
    this.freshTimes = new Float64Array(numNodes);
    this.freshFinish = new Float64Array(numNodes);
  }

  /** Sets `times` from `choice`. */
  syncTimes(): void {
    const { dag, tables } = this.v;
    const { choice, times } = this;
    for (let i = 0; i < dag.numNodes; i++) times[i] = tables[dag.table[i]!]!.timeS[choice[i]!]!;
  }

  /** Every node at the slowest option no longer than its relaxed duration. */
  private roundDown(durations: Float64Array): void {
    const { dag, tables } = this.v;
    const { roundedDurations, roundedChoice, roundedTimes } = this;
    for (let i = 0; i < dag.numNodes; i++) {
      const d = durations[i]!;
      if (d === roundedDurations[i]) continue;
      roundedDurations[i] = d;
      const tb = tables[dag.table[i]!]!;
      // Along a sweep event a moved duration mostly stays between the same two options: then the
      // search would return the option it has (the times ascend).
      const limitS = d * (1 + relTol);
      const old = roundedChoice[i]!;
      const t = tb.timeS;
      if (old < t.length && t[old]! <= limitS && (old + 1 === t.length || t[old + 1]! > limitS))
        continue;
      const c = slowest(tb, limitS);
      if (c === old) continue;
      roundedChoice[i] = c;
      roundedTimes[i] = tb.timeS[c]!;
      this.roundedFinishKnown = false;
      if (!this.stale[i]) {
        this.stale[i] = 1;
        this.staleList[this.staleCount++] = i;
      }
    }
    this.choice.set(roundedChoice);
    this.times.set(roundedTimes);
  }

  /** `finish` of the plan {@link roundDown} just put in `choice`. */
  private finishRounded(): void {
    if (this.roundedFinishKnown) this.finish.set(this.roundedFinish);
    else {
      pathLength(this.v.dag, this.times, this.finish);
      this.roundedFinish.set(this.finish);
      this.roundedFinishKnown = true;
    }
  }

  /**
   * Like {@link run}, but also reclaims the previous call's plan at this budget (samples come in
   * ascending time, so it still fits) and keeps whichever is better: good plans found at one time
   * carry over to the next instead of being rediscovered by rounding.
   */
  runCarrying(durations: Float64Array, budgetS: number): PlanCost {
    const { carried, carriedTimes, fresh, freshTimes, freshFinish } = this;
    const hadCarry = this.carriedTimeS <= budgetS;
    if (hadCarry) {
      carried.set(this.choice);
      carriedTimes.set(this.times);
    }
    let r = this.run(durations, budgetS);
    if (hadCarry) {
      // Put the fresh plan aside with its times and finishes, so that restoring it is a copy
      // rather than another pass over the DAG.
      fresh.set(this.choice);
      freshTimes.set(this.times);
      freshFinish.set(this.finish);
      this.choice.set(carried);
      this.times.set(carriedTimes);
      pathLength(this.v.dag, this.times, this.finish);
      const c = this.reclaimFromFinish(budgetS, -1) ? this.evaluate() : this.evaluateFromFinish();
      const freshFits = fits(r.timeS, budgetS);
      if (fits(c.timeS, budgetS) && (!freshFits || c.energyJ < r.energyJ)) r = c;
      else {
        this.choice.set(fresh);
        this.times.set(freshTimes);
        this.finish.set(freshFinish);
      }
    }
    return r;
  }

  /** Records that the plan now in `choice` takes `timeS` (for {@link runCarrying}). */
  settle(timeS: number): void {
    this.carriedTimeS = timeS;
  }

  /** Fills `choice`; returns the plan's real time and energy. */
  run(durations: Float64Array, budgetS: number): PlanCost {
    this.roundDown(durations);
    this.finishRounded();
    // A reclamation that slowed nothing leaves the finishes valid.
    return this.reclaimFromFinish(budgetS, -1) ? this.evaluate() : this.evaluateFromFinish();
  }

  /**
   * One reclamation pass on `choice`: earliest starts, then in reverse topological order each node
   * (except `locked`) takes the slowest option that ends by its successors' latest starts.
   */
  reclaim(budgetS: number, locked: number): void {
    pathLength(this.v.dag, this.times, this.finish);
    this.reclaimFromFinish(budgetS, locked);
  }

  /** {@link reclaim} when `finish` already holds the earliest finishes of the plan in `choice`. */
  private reclaimFromFinish(budgetS: number, locked: number): boolean {
    const { dag, tables } = this.v;
    const { choice, finish, latestStart, times } = this;
    const { succStart, succ } = dag;
    let changed = false;
    for (let i = dag.numNodes - 1; i >= 0; i--) {
      // Compares, not Math.min: the same value on these finite times, and cheaper in the hot loop.
      let lf = budgetS;
      for (let p = succStart[i]!; p < succStart[i + 1]!; p++) {
        const ls = latestStart[succ[p]!]!;
        if (ls < lf) lf = ls;
      }
      if (i !== locked) {
        const tb = tables[dag.table[i]!]!;
        const timeS = tb.timeS;
        const room = lf - (finish[i]! - times[i]!);
        let c = choice[i]!;
        // Most instructions cannot slow down at all: test the next option before searching.
        if (c + 1 < timeS.length && timeS[c + 1]! <= room) c = max(c, slowest(tb, room));
        choice[i] = c;
        if (times[i] !== timeS[c]) {
          times[i] = timeS[c]!;
          changed = true;
        }
      }
      latestStart[i] = lf - times[i]!;
    }
    return changed;
  }

  /** Time and energy of the plan in `choice` (also refreshes `finish`). */
  evaluate(): PlanCost {
    return this.costAt(pathLength(this.v.dag, this.times, this.finish));
  }

  /**
   * {@link evaluate} when `finish` already holds the plan's earliest finishes: the makespan is
   * their maximum, the value the forward pass would return.
   */
  private evaluateFromFinish(): PlanCost {
    const { finish } = this;
    let makespan = 0;
    for (let i = 0; i < finish.length; i++) if (finish[i]! > makespan) makespan = finish[i]!;
    return this.costAt(makespan);
  }

  /** Time and energy of the plan in `choice` when its makespan is `makespan`. */
  private costAt(makespan: number): PlanCost {
    const { dag, tables } = this.v;
    const { choice, times } = this;
    let sumE = 0;
    let sumT = 0;
    for (let i = 0; i < dag.numNodes; i++) {
      sumE += tables[dag.table[i]!]!.energyJ[choice[i]!]!;
      sumT += times[i]!;
    }
    return {
      timeS: makespan,
      energyJ: energyOf(dag.numStages, this.v.blockingPowerW, makespan, sumE, sumT),
    };
  }

  /** Earliest finishes (`finish`) and latest starts (`latestStart`) of the current choice under `budgetS`. */
  window(budgetS: number): void {
    const { dag } = this.v;
    pathLength(dag, this.times, this.finish);
    latestStarts(dag, this.times, budgetS, this.latestStart);
  }

  /**
   * Slack reclamation by best marginal saving: from the plan that rounds every relaxed duration
   * down, repeatedly slow the instruction whose next slower option saves the most effective energy
   * per second of slack (`perSecond`) or in total, among those whose window still fits it; windows
   * are recomputed after every step. O(steps × (V+E)), so for the intrinsic plan only. Keeps the
   * result if it beats `current`.
   */
  greedyReclaim(
    durations: Float64Array,
    budgetS: number,
    perSecond: boolean,
    current: PlanCost,
  ): PlanCost {
    const { fresh: saved, freshTimes: savedTimes } = this;
    saved.set(this.choice);
    savedTimes.set(this.times);
    // Usually the durations the last run rounded: the rounding and its finishes are reused.
    this.roundDown(durations);
    this.finishRounded();
    latestStarts(this.v.dag, this.times, budgetS, this.latestStart);
    this.refreshOrder(perSecond);
    const r = this.greedySteps(budgetS, perSecond, current);
    if (r !== current) return r;
    this.choice.set(saved);
    this.times.set(savedTimes);
    return current;
  }

  /** The greedy of {@link greedyReclaim} from the plan now in `choice` (returns `current` if not better). */
  greedyFrom(budgetS: number, perSecond: boolean, current: PlanCost): PlanCost {
    this.window(budgetS);
    this.buildOrder(perSecond);
    // Not the rounded plan's order: the next greedyReclaim rebuilds it.
    this.orderValid = false;
    return this.greedySteps(budgetS, perSecond, current);
  }

  /** Score of slowing instruction `i` by one option (≤ 0 or NaN: no such step). */
  private stepScore(i: number, perSecond: boolean): number {
    const { dag, tables } = this.v;
    const tb = tables[dag.table[i]!]!;
    const c = this.choice[i]!;
    if (c + 1 >= tb.timeS.length) return -1;
    const gain = tb.effectiveJ[c]! - tb.effectiveJ[c + 1]!;
    return perSecond ? gain / (tb.timeS[c + 1]! - tb.timeS[c]!) : gain;
  }

  /** Sets the candidate order from every instruction of `choice`. */
  private buildOrder(perSecond: boolean): void {
    const { heap, orderNode, orderScore, stale, staleList } = this;
    const n = this.v.dag.numNodes;
    heap.clear();
    for (let i = 0; i < n; i++) {
      const sc = this.stepScore(i, perSecond);
      if (sc > 0) heap.add(i, sc);
    }
    heap.build();
    let m = 0;
    while (heap.size > 0) {
      orderScore[m] = heap.topScore();
      orderNode[m++] = heap.pop();
    }
    this.orderCount = m;
    this.orderPerSecond = perSecond;
    this.orderValid = true;
    for (let k = 0; k < this.staleCount; k++) stale[staleList[k]!] = 0;
    this.staleCount = 0;
  }

  /** Brings the candidate order up to the rounded plan now in `choice`. */
  private refreshOrder(perSecond: boolean): void {
    const { orderNode, orderScore, stale, staleList } = this;
    const count = this.staleCount;
    if (!this.orderValid || this.orderPerSecond !== perSecond || count > 64) {
      this.buildOrder(perSecond);
      return;
    }
    if (count === 0) return;
    // Drop the stale entries, then insert each one's new score where it pops.
    let m = 0;
    for (let r = 0; r < this.orderCount; r++) {
      const i = orderNode[r]!;
      if (stale[i]) continue;
      orderNode[m] = i;
      orderScore[m++] = orderScore[r]!;
    }
    for (let k = 0; k < count; k++) {
      const i = staleList[k]!;
      stale[i] = 0;
      const sc = this.stepScore(i, perSecond);
      if (!(sc > 0)) continue;
      let lo = 0;
      let hi = m;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const s = orderScore[mid]!;
        if (s > sc || (s === sc && orderNode[mid]! < i)) lo = mid + 1;
        else hi = mid;
      }
      orderNode.copyWithin(lo + 1, lo, m);
      orderScore.copyWithin(lo + 1, lo, m);
      orderNode[lo] = i;
      orderScore[lo] = sc;
      m++;
    }
    this.orderCount = m;
    this.staleCount = 0;
  }

  /** {@link greedyFrom} once the windows (`finish`, `latestStart`) of `choice` are set. */
  private greedySteps(budgetS: number, perSecond: boolean, current: PlanCost): PlanCost {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const { choice, times, finish, latestStart, heap, dirty, orderNode, orderScore } = this;
    const { predStart, pred, succStart, succ } = dag;
    // A step's score depends only on the instruction's current option, and windows only shrink as
    // instructions slow down, so taking steps best score first is exact: a step that does not fit
    // now never will. Earliest finishes and latest starts are repaired locally after steps.
    // The candidates are the prepared order (first steps) merged with a heap of the steps that
    // follow taken ones: (score, node) is a total order, so this pops what one heap of all would.
    // The windows are repaired lazily: a step only marks its neighbours, and the marks are
    // propagated (in topological order, forward for earliest finishes, backward for latest
    // starts) just before a popped step reads its window, and only as far as that step. Each
    // mark recomputes a node from its neighbours' current values, so the windows read are the
    // ones an eager repair after every step would give, but nodes moved by several steps are
    // recomputed once, and those no later step reads never. Bit-level caveat: a stepped node's
    // window is shifted by its growth, not recomputed, and stays so until a neighbour changes;
    // if a neighbour's value leaves and returns to the same float between two reads, eager repair
    // recomputes the stepped node and this does not. The frontiers of the paper's profiles and of
    // the random pipelines were identical bit for bit.
    // Defined once per call, not per step: tsx and ts-jest wrap every closure they create in a
    // naming helper, which cost a fifth of a tiny pipeline's planning when this lived in the loop.
    const back = this.dirtyBack;
    let forwardFrom = n; // every node marked forward has at least this index
    let forwardPending = 0;
    let backwardFrom = -1; // every node marked backward has at most this index
    let backwardPending = 0;
    const markForward = (v: number): void => {
      if (!dirty[v]) {
        dirty[v] = 1;
        forwardPending++;
        if (v < forwardFrom) forwardFrom = v;
      }
    };
    const markBackward = (v: number): void => {
      if (!back[v]) {
        back[v] = 1;
        backwardPending++;
        if (v > backwardFrom) backwardFrom = v;
      }
    };
    // Earliest finishes of every node up to `j`, and latest starts of every node from `j`.
    const settle = (j: number): void => {
      let v = forwardFrom;
      for (; v <= j && forwardPending > 0; v++) {
        if (!dirty[v]) continue;
        dirty[v] = 0;
        forwardPending--;
        // Compares, not Math.max/min (as in reclaim).
        let st = 0;
        for (let p = predStart[v]!; p < predStart[v + 1]!; p++) {
          const f = finish[pred[p]!]!;
          if (f > st) st = f;
        }
        const f = st + times[v]!;
        if (f !== finish[v]) {
          finish[v] = f;
          for (let p = succStart[v]!; p < succStart[v + 1]!; p++) markForward(succ[p]!);
        }
      }
      forwardFrom = forwardPending > 0 ? v : n;
      v = backwardFrom;
      for (; v >= j && backwardPending > 0; v--) {
        if (!back[v]) continue;
        back[v] = 0;
        backwardPending--;
        let lf = budgetS;
        for (let p = succStart[v]!; p < succStart[v + 1]!; p++) {
          const ls = latestStart[succ[p]!]!;
          if (ls < lf) lf = ls;
        }
        const ls = lf - times[v]!;
        if (ls !== latestStart[v]) {
          latestStart[v] = ls;
          for (let p = predStart[v]!; p < predStart[v + 1]!; p++) markBackward(pred[p]!);
        }
      }
      backwardFrom = backwardPending > 0 ? v : -1;
    };
    // Every room below is the budget minus a budget-independent length.
    let up = INF;
    let down = INF;
    const count = this.orderCount;
    let next = 0;
    heap.clear();
    while (next < count || heap.size > 0) {
      const i =
        next < count && (heap.size === 0 || !heap.topBeats(orderScore[next]!, orderNode[next]!))
          ? orderNode[next++]!
          : heap.pop();
      settle(i);
      const tb = tables[dag.table[i]!]!;
      const nc = choice[i]! + 1;
      const room = latestStart[i]! + times[i]! - (finish[i]! - times[i]!);
      const margin = room - tb.timeS[nc]!;
      if (margin < 0) {
        if (-margin < up) up = -margin;
        continue;
      }
      if (margin < down) down = margin;
      const grow = tb.timeS[nc]! - times[i]!;
      choice[i] = nc;
      times[i] = tb.timeS[nc]!;
      finish[i]! += grow;
      latestStart[i]! -= grow;
      for (let p = succStart[i]!; p < succStart[i + 1]!; p++) markForward(succ[p]!);
      for (let p = predStart[i]!; p < predStart[i + 1]!; p++) markBackward(pred[p]!);
      const sc = this.stepScore(i, perSecond);
      if (sc > 0) heap.push(i, sc);
    }
    // Marks no step read: clear them (the windows are scratch from here on).
    for (let v = forwardFrom; v < n && forwardPending > 0; v++) {
      if (dirty[v]) {
        dirty[v] = 0;
        forwardPending--;
      }
    }
    for (let v = backwardFrom; v >= 0 && backwardPending > 0; v--) {
      if (back[v]) {
        back[v] = 0;
        backwardPending--;
      }
    }
    const r = this.evaluate();
    const fitsBudgetS = fits(r.timeS, budgetS);
    if (fitsBudgetS) down = min(down, budgetS - r.timeS);
    else up = min(up, r.timeS - budgetS);
    this.budgetSlackUp = up;
    this.budgetSlackDown = down;
    return fitsBudgetS && r.energyJ < current.energyJ ? r : current;
  }
}
