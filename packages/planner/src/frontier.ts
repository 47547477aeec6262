import { evaluateAllMax, planEnergy } from './emulator';
import { PlannerInputError } from './errors';
import { slowestWithin, validatePlannerInput, type OptionTable, type ValidInput } from './options';
import { INFINITE_CAPACITY, LowerBoundedMinCut } from './phillips-dessouky';
import { DeltaPlanStore, type DeltaPlanStoreJson } from './plan-store';
import { buildPipelineDag, type PipelineDag } from './schedule';
import type { FrontierPoint, PipelineSpec, PlannerInput, StagePlan } from './types';

// Module bindings, not global lookups: under jest's vm context every access to a global (Math,
// Infinity) is intercepted and hot loops run ~25x slower.
const { abs, ceil, floor, max, min } = Math;
const INF = Infinity;
// Local copies of hot imports: the CommonJS that ts-jest and tsx emit reads an import through a
// property getter on every use, which showed up as ~10% of the sweep.
const CAP_INF = INFINITE_CAPACITY;
const slowest = slowestWithin;
const energyOf = planEnergy;

/** Options of {@link computeFrontier}. */
export interface FrontierOptions {
  /** Called now and then with the iteration time swept so far and the estimated total, in units of τ. */
  onProgress?: (done: number, estTotal: number) => void;
}

/** Plain-data form of a {@link Frontier} (JSON-safe; also what crosses a worker-thread boundary). */
export interface FrontierJson {
  version: 1;
  pipeline: PipelineSpec;
  blockingPowerW: number;
  unitTimeS: number;
  points: FrontierPoint[];
  allMax: { timeS: number; energyJ: number };
  minEnergyTimeS: number;
  /** Per option table (stage·2 + kind), the clock of each option index used by the plans. */
  optionFrequenciesMhz: number[][];
  /** Position in `plans` of each point's plan. */
  planPositions: number[];
  plans: DeltaPlanStoreJson;
  /** Breakpoints of the convex-hull relaxation's frontier (time ascending). */
  lowerBound: { timeS: number[]; energyJ: number[] };
  stats: FrontierStats;
}

/** What the computation did (for benchmarks and logs). */
export interface FrontierStats {
  /** Phillips–Dessouky cuts solved (one per breakpoint of the relaxed frontier). */
  cuts: number;
  /** Discrete candidate plans evaluated before Pareto filtering. */
  candidates: number;
  /** Bytes of the delta-encoded plan storage. */
  planBytes: number;
}

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

/** Relative tolerance on "no slower than all-max" (DESIGN §4.4). */
const ALL_MAX_TOLERANCE = 1e-6;

/**
 * The iteration time–energy Pareto frontier of one pipeline, with a plan for every point.
 * Points are sorted by time ascending (energy descending); their time and energy are the discrete
 * truth of the plan on measured options.
 */
export class Frontier {
  readonly points: FrontierPoint[];
  /** The plan that runs every instruction at its highest measured clock. */
  readonly allMax: { timeS: number; energyJ: number };
  /** T*: time of the least-energy point (the slowest point of the frontier). */
  readonly minEnergyTimeS: number;
  readonly stats: FrontierStats;
  private readonly dag: PipelineDag;

  /** @internal use {@link computeFrontier} or {@link Frontier.fromJSON}. */
  constructor(private readonly json: FrontierJson) {
    this.points = json.points;
    this.allMax = json.allMax;
    this.minEnergyTimeS = json.minEnergyTimeS;
    this.stats = json.stats;
    this.dag = buildPipelineDag(json.pipeline);
    this.store = DeltaPlanStore.fromJSON(json.plans);
  }

  private readonly store: DeltaPlanStore;

  /** The plan of point `index`, each stage's clocks in its schedule order. */
  plan(index: number): StagePlan[] {
    if (!Number.isInteger(index) || index < 0 || index >= this.points.length) {
      throw new PlannerInputError(
        'index',
        `must be an integer in [0, ${this.points.length - 1}], got ${String(index)}`,
      );
    }
    const choice = this.store.get(this.json.planPositions[index]!);
    return this.decode(choice);
  }

  private decode(choice: Uint16Array): StagePlan[] {
    const { dag } = this;
    const freqs = this.json.optionFrequenciesMhz;
    return dag.stageNodes.map((nodes, stage) => ({
      stage,
      instructions: Array.from(nodes, (node) => ({
        kind: dag.kind[node] === 0 ? ('forward' as const) : ('backward' as const),
        microbatch: dag.microbatch[node]!,
        frequencyMhz: freqs[dag.table[node]!]![choice[node]!]!,
      })),
    }));
  }

  /** Index of the least-energy point with time ≤ `timeS` (−1 if none). */
  private lastAtOrBefore(timeS: number): number {
    let lo = 0;
    let hi = this.points.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.points[mid]!.timeS <= timeS) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  }

  /**
   * Intrinsic-bloat plan: the least-energy plan whose time is ≤ the all-max-clock time (within a
   * 1e-6 relative tolerance), i.e. no slowdown.
   */
  intrinsic(): { point: FrontierPoint; plan: StagePlan[] } {
    return this.planFor(this.allMax.timeS * (1 + ALL_MAX_TOLERANCE));
  }

  /**
   * Extrinsic-bloat plan for a straggler that makes the iteration last `targetTimeS`: the
   * least-energy plan with time ≤ target, capped at T* (a slower target gets the T* plan). A target
   * faster than every point gets the fastest point.
   */
  planFor(targetTimeS: number): { point: FrontierPoint; plan: StagePlan[] } {
    if (typeof targetTimeS !== 'number' || Number.isNaN(targetTimeS)) {
      throw new PlannerInputError('target_time_s', `must be a number, got ${String(targetTimeS)}`);
    }
    const i = max(0, this.lastAtOrBefore(min(targetTimeS, this.minEnergyTimeS)));
    return { point: this.points[i]!, plan: this.plan(i) };
  }

  /**
   * Certified lower bound on the energy of ANY plan (discrete or not) whose time is ≤ `timeS`: the
   * convex-hull relaxation's optimum, exact at every time because the parametric cut follows its
   * breakpoints. INF below the fastest feasible time.
   */
  lowerBoundJ(timeS: number): number {
    const { timeS: ts, energyJ: es } = this.json.lowerBound;
    return interpolateLowerBound(ts, es, timeS);
  }

  toJSON(): FrontierJson {
    return this.json;
  }

  static fromJSON(json: FrontierJson): Frontier {
    if (json === null || typeof json !== 'object' || json.version !== 1) {
      throw new PlannerInputError('frontier.version', 'must be 1');
    }
    return new Frontier(json);
  }
}

function interpolateLowerBound(
  ts: ArrayLike<number>,
  es: ArrayLike<number>,
  timeS: number,
): number {
  const n = ts.length;
  if (n === 0 || timeS < ts[0]! * (1 - 1e-12)) return INF;
  if (timeS >= ts[n - 1]!) return es[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ts[mid]! <= timeS) lo = mid;
    else hi = mid;
  }
  const t0 = ts[lo]!;
  const t1 = ts[hi]!;
  if (t1 <= t0) return min(es[lo]!, es[hi]!);
  const w = (timeS - t0) / (t1 - t0);
  return es[lo]! + w * (es[hi]! - es[lo]!);
}

/** Per option table: hull vertex times, effective energies and segment slopes (W). */
interface HullTable {
  t: Float64Array;
  eff: Float64Array;
  /** slope[v] = saving per second of lengthening along segment v→v+1 (decreasing in v). */
  slope: Float64Array;
  last: number;
}

function hullOf(table: OptionTable): HullTable {
  const t = Float64Array.from(table.hull, (i) => table.timeS[i]!);
  const eff = Float64Array.from(table.hull, (i) => table.effectiveJ[i]!);
  const slope = new Float64Array(max(0, t.length - 1));
  for (let v = 0; v + 1 < t.length; v++) slope[v] = (eff[v]! - eff[v + 1]!) / (t[v + 1]! - t[v]!);
  return { t, eff, slope, last: t.length - 1 };
}

/**
 * Turns relaxed durations into a measured-option plan and reclaims slack (DESIGN §4.4): each node
 * first takes the slowest option no longer than its relaxed duration (so the time cannot grow),
 * then, in reverse topological order, the slowest option that still finishes before its
 * successors' latest starts and the time budget.
 */
class Discretizer {
  readonly choice: Uint16Array;
  private readonly finish: Float64Array;
  private readonly latestStart: Float64Array;
  private readonly times: Float64Array;

  constructor(
    private readonly v: ValidInput,
    numNodes: number,
  ) {
    this.choice = new Uint16Array(numNodes);
    this.finish = new Float64Array(numNodes);
    this.latestStart = new Float64Array(numNodes);
    this.times = new Float64Array(numNodes);
  }

  private carried: Uint16Array | null = null;
  private heapScore: Float64Array | null = null;
  private heapNode: Int32Array | null = null;
  private dirty: Uint8Array | null = null;
  private fresh: Uint16Array | null = null;
  private carriedTimeS = INF;

  /**
   * Like {@link run}, but also reclaims the previous call's plan at this budget (samples come in
   * ascending time, so it still fits) and keeps whichever is better: good plans found at one time
   * carry over to the next instead of being rediscovered by rounding.
   */
  runCarrying(durations: Float64Array, budgetS: number): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const carried = this.carried ?? new Uint16Array(n);
    const hadCarry = this.carriedTimeS <= budgetS;
    if (hadCarry) carried.set(this.choice);
    let r = this.run(durations, budgetS);
    if (hadCarry) {
      const fresh = (this.fresh ??= new Uint16Array(n));
      fresh.set(this.choice);
      this.choice.set(carried);
      for (let i = 0; i < n; i++) this.times[i] = tables[dag.table[i]!]!.timeS[this.choice[i]!]!;
      this.reclaim(budgetS, -1);
      const c = this.evaluate();
      const freshFits = r.timeS <= budgetS * (1 + 1e-12);
      if (c.timeS <= budgetS * (1 + 1e-12) && (!freshFits || c.energyJ < r.energyJ)) r = c;
      else {
        this.choice.set(fresh);
        for (let i = 0; i < n; i++) this.times[i] = tables[dag.table[i]!]!.timeS[this.choice[i]!]!;
        this.evaluate();
      }
    }
    this.carried = carried;
    return r;
  }

  /** Records that the plan now in `choice` takes `timeS` (for {@link runCarrying}). */
  settle(timeS: number): void {
    this.carriedTimeS = timeS;
  }

  /** Fills `choice`; returns the plan's real time and energy. */
  run(durations: Float64Array, budgetS: number): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const { choice, times } = this;
    for (let i = 0; i < dag.numNodes; i++) {
      const tb = tables[dag.table[i]!]!;
      const c = slowest(tb, durations[i]! * (1 + 1e-12));
      choice[i] = c;
      times[i] = tb.timeS[c]!;
    }
    this.reclaim(budgetS, -1);
    return this.evaluate();
  }

  /**
   * One reclamation pass on `choice`: earliest starts, then in reverse topological order each node
   * (except `locked`) takes the slowest option that ends by its successors' latest starts.
   */
  private reclaim(budgetS: number, locked: number): void {
    const { dag, tables } = this.v;
    const { choice, finish, latestStart, times } = this;
    const { predStart, pred, succStart, succ } = dag;
    const n = dag.numNodes;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let p = predStart[i]!; p < predStart[i + 1]!; p++) s = max(s, finish[pred[p]!]!);
      finish[i] = s + times[i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let lf = budgetS;
      for (let p = succStart[i]!; p < succStart[i + 1]!; p++) lf = min(lf, latestStart[succ[p]!]!);
      if (i !== locked) {
        const es = finish[i]! - times[i]!;
        const tb = tables[dag.table[i]!]!;
        const c = max(choice[i]!, slowest(tb, lf - es));
        choice[i] = c;
        times[i] = tb.timeS[c]!;
      }
      latestStart[i] = lf - times[i]!;
    }
  }

  private evaluate(): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const { choice, finish, times } = this;
    const { predStart, pred } = dag;
    let makespan = 0;
    let sumE = 0;
    let sumT = 0;
    for (let i = 0; i < dag.numNodes; i++) {
      let s = 0;
      for (let p = predStart[i]!; p < predStart[i + 1]!; p++) s = max(s, finish[pred[p]!]!);
      finish[i] = s + times[i]!;
      makespan = max(makespan, finish[i]!);
      sumE += tables[dag.table[i]!]!.energyJ[choice[i]!]!;
      sumT += times[i]!;
    }
    return {
      timeS: makespan,
      energyJ: energyOf(dag.numStages, this.v.blockingPowerW, makespan, sumE, sumT),
    };
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
    current: { timeS: number; energyJ: number },
  ): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const { choice, times } = this;
    const saved = Uint16Array.from(choice);
    for (let i = 0; i < n; i++) {
      const tb = tables[dag.table[i]!]!;
      const c = slowest(tb, durations[i]! * (1 + 1e-12));
      choice[i] = c;
      times[i] = tb.timeS[c]!;
    }
    const r = this.greedyFrom(budgetS, perSecond, current);
    if (r !== current) return r;
    choice.set(saved);
    for (let i = 0; i < n; i++) times[i] = tables[dag.table[i]!]!.timeS[choice[i]!]!;
    return current;
  }

  /**
   * Constructive search for tiny pipelines: for every instruction b and every option of b, start
   * from all-fastest with b fixed there, fill the slack greedily (both scores), keep the best plan.
   * O(n·K·greedy): only for pipelines of a few instructions, where rounding the relaxation can miss
   * plans that slow a different set of instructions.
   */
  seededRebuild(
    budgetS: number,
    current: { timeS: number; energyJ: number },
  ): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const { choice, times } = this;
    let best = current;
    const bestChoice = Uint16Array.from(choice);
    for (let b = 0; b < n; b++) {
      const tb = tables[dag.table[b]!]!;
      for (let o = 0; o < tb.timeS.length; o++) {
        for (const perSecond of [true, false]) {
          for (let i = 0; i < n; i++) {
            choice[i] = 0;
            times[i] = tables[dag.table[i]!]!.timeS[0]!;
          }
          choice[b] = o;
          times[b] = tb.timeS[o]!;
          if (this.evaluate().timeS > budgetS * (1 + 1e-12)) continue;
          const r = this.greedyFrom(budgetS, perSecond, best);
          if (r !== best) {
            best = r;
            bestChoice.set(choice);
          }
        }
        // Mirror: all slowest with b fixed, speed up the best time-per-joule overrunning
        // instruction until the budget holds, then fill the slack.
        for (let i = 0; i < n; i++) {
          const ti = tables[dag.table[i]!]!;
          choice[i] = ti.timeS.length - 1;
          times[i] = ti.timeS[choice[i]!]!;
        }
        choice[b] = o;
        times[b] = tb.timeS[o]!;
        if (this.repair(budgetS, b)) {
          const r = this.greedyFrom(budgetS, true, best);
          if (r !== best) {
            best = r;
            bestChoice.set(choice);
          }
        }
      }
    }
    choice.set(bestChoice);
    for (let i = 0; i < n; i++) times[i] = tables[dag.table[i]!]!.timeS[choice[i]!]!;
    this.evaluate();
    return best;
  }

  /**
   * Speeds up overrunning instructions (never `locked`), best time gained per joule first, until
   * the plan fits the budget; false if it cannot.
   */
  private repair(budgetS: number, locked: number): boolean {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const { choice, times, finish } = this;
    const { succStart, succ } = dag;
    const tail = this.latestStart; // scratch: longest path from each instruction's start
    for (let guard = 0; guard < 64 * n; guard++) {
      if (this.evaluate().timeS <= budgetS * (1 + 1e-12)) return true;
      for (let i = n - 1; i >= 0; i--) {
        let tl = 0;
        for (let p = succStart[i]!; p < succStart[i + 1]!; p++) tl = max(tl, tail[succ[p]!]!);
        tail[i] = tl + times[i]!;
      }
      let best = -1;
      let bestRatio = -INF;
      for (let i = 0; i < n; i++) {
        if (i === locked || choice[i] === 0) continue;
        if (finish[i]! - times[i]! + tail[i]! <= budgetS) continue;
        const tb = tables[dag.table[i]!]!;
        const c = choice[i]!;
        const ratio =
          (tb.timeS[c]! - tb.timeS[c - 1]!) / max(1e-12, tb.effectiveJ[c - 1]! - tb.effectiveJ[c]!);
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

  /** The greedy of {@link greedyReclaim} from the plan now in `choice` (returns `current` if not better). */
  private greedyFrom(
    budgetS: number,
    perSecond: boolean,
    current: { timeS: number; energyJ: number },
  ): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const { choice, times, finish, latestStart } = this;
    const { predStart, pred, succStart, succ } = dag;
    this.window(budgetS);
    // A step's score depends only on the instruction's current option, and windows only shrink as
    // instructions slow down, so a max-heap of steps is exact: a step that does not fit now never
    // will. Earliest finishes and latest starts are repaired locally after each step.
    const heapScore = (this.heapScore ??= new Float64Array(n));
    const heapNode = (this.heapNode ??= new Int32Array(n));
    const dirty = (this.dirty ??= new Uint8Array(n));
    let size = 0;
    const scoreOf = (i: number): number => {
      const tb = tables[dag.table[i]!]!;
      const c = choice[i]!;
      if (c + 1 >= tb.timeS.length) return -1;
      const gain = tb.effectiveJ[c]! - tb.effectiveJ[c + 1]!;
      return perSecond ? gain / (tb.timeS[c + 1]! - tb.timeS[c]!) : gain;
    };
    const push = (i: number, sc: number): void => {
      let k = size++;
      while (k > 0) {
        const parent = (k - 1) >> 1;
        // Ties go to the lower id (the order the exhaustive scan used).
        if (heapScore[parent]! > sc || (heapScore[parent] === sc && heapNode[parent]! < i)) break;
        heapScore[k] = heapScore[parent]!;
        heapNode[k] = heapNode[parent]!;
        k = parent;
      }
      heapScore[k] = sc;
      heapNode[k] = i;
    };
    const pop = (): number => {
      const top = heapNode[0]!;
      const lastScore = heapScore[--size]!;
      const lastNode = heapNode[size]!;
      let k = 0;
      for (;;) {
        let child = 2 * k + 1;
        if (child >= size) break;
        if (
          child + 1 < size &&
          (heapScore[child + 1]! > heapScore[child]! ||
            (heapScore[child + 1] === heapScore[child] && heapNode[child + 1]! < heapNode[child]!))
        ) {
          child++;
        }
        if (
          heapScore[child]! < lastScore ||
          (heapScore[child] === lastScore && heapNode[child]! > lastNode)
        )
          break;
        heapScore[k] = heapScore[child]!;
        heapNode[k] = heapNode[child]!;
        k = child;
      }
      heapScore[k] = lastScore;
      heapNode[k] = lastNode;
      return top;
    };
    for (let i = 0; i < n; i++) {
      const sc = scoreOf(i);
      if (sc > 0) push(i, sc);
    }
    while (size > 0) {
      const i = pop();
      const tb = tables[dag.table[i]!]!;
      const nc = choice[i]! + 1;
      const room = latestStart[i]! + times[i]! - (finish[i]! - times[i]!);
      if (room < tb.timeS[nc]!) continue;
      const grow = tb.timeS[nc]! - times[i]!;
      choice[i] = nc;
      times[i] = tb.timeS[nc]!;
      finish[i]! += grow;
      latestStart[i]! -= grow;
      // Forward repair of earliest finishes.
      let pending = 0;
      const mark = (v: number): void => {
        if (!dirty[v]) {
          dirty[v] = 1;
          pending++;
        }
      };
      for (let p = succStart[i]!; p < succStart[i + 1]!; p++) mark(succ[p]!);
      for (let v = i + 1; v < n && pending > 0; v++) {
        if (!dirty[v]) continue;
        dirty[v] = 0;
        pending--;
        let st = 0;
        for (let p = predStart[v]!; p < predStart[v + 1]!; p++) st = max(st, finish[pred[p]!]!);
        const f = st + times[v]!;
        if (f !== finish[v]) {
          finish[v] = f;
          for (let p = succStart[v]!; p < succStart[v + 1]!; p++) mark(succ[p]!);
        }
      }
      // Backward repair of latest starts.
      for (let p = predStart[i]!; p < predStart[i + 1]!; p++) mark(pred[p]!);
      for (let v = i - 1; v >= 0 && pending > 0; v--) {
        if (!dirty[v]) continue;
        dirty[v] = 0;
        pending--;
        let lf = budgetS;
        for (let p = succStart[v]!; p < succStart[v + 1]!; p++)
          lf = min(lf, latestStart[succ[p]!]!);
        const ls = lf - times[v]!;
        if (ls !== latestStart[v]) {
          latestStart[v] = ls;
          for (let p = predStart[v]!; p < predStart[v + 1]!; p++) mark(pred[p]!);
        }
      }
      const sc = scoreOf(i);
      if (sc > 0) push(i, sc);
    }
    const r = this.evaluate();
    return r.timeS <= budgetS * (1 + 1e-12) && r.energyJ < current.energyJ ? r : current;
  }

  /**
   * Ejection-chain local search at a fixed budget: slow one instruction b by one clock step, then
   * restore the budget at least cost by speeding up a minimum vertex cut of the paths that now
   * overrun (each cut instruction speeds up by enough for the worst path through it), reclaim the
   * slack that leaves, and keep the move if energy dropped. One max-flow per tried move.
   */
  eject(
    budgetS: number,
    cut: LowerBoundedMinCut,
    maxRounds: number,
    current: { timeS: number; energyJ: number },
    maxSteps = 1,
  ): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const { choice, times, finish } = this;
    const { predStart, pred, succStart, succ } = dag;
    const tail = new Float64Array(n);
    const idx = new Int32Array(n);
    const need = new Float64Array(n);
    const saved = new Uint16Array(n);
    let best = current;
    const eps = budgetS * 1e-12;
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
        for (let i = 0; i < n; i++) {
          let st = 0;
          for (let p = predStart[i]!; p < predStart[i + 1]!; p++) st = max(st, finish[pred[p]!]!);
          finish[i] = st + times[i]!;
        }
        for (let i = n - 1; i >= 0; i--) {
          let tl = 0;
          for (let p = succStart[i]!; p < succStart[i + 1]!; p++) tl = max(tl, tail[succ[p]!]!);
          tail[i] = tl + times[i]!;
        }
        let k = 0;
        for (let i = 0; i < n; i++) {
          const over = finish[i]! - times[i]! + tail[i]! - budgetS;
          if (over > eps) {
            idx[i] = k++;
            need[i] = over;
          } else idx[i] = -1;
        }
        let ok = true;
        if (k > 0) {
          cut.reset(2 + 2 * k);
          for (let i = 0; i < n; i++) {
            const ci = idx[i]!;
            if (ci < 0) continue;
            const ti = tables[dag.table[i]!]!;
            let cap = CAP_INF;
            if (i !== b) {
              const target = times[i]! - need[i]! - eps;
              const c = slowest(ti, target);
              if (ti.timeS[c]! <= target && c < choice[i]!)
                cap = ti.effectiveJ[c]! - ti.effectiveJ[choice[i]!]!;
            }
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
          const res = cut.solve(0, 1);
          if (res.kind !== 'cut' || res.valueW >= tb.effectiveJ[cb]! - tb.effectiveJ[cb + step]!)
            ok = false;
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
          this.reclaim(budgetS, -1);
          r = this.evaluate();
        }
        if (ok && r.timeS <= budgetS * (1 + 1e-12) && r.energyJ < best.energyJ - 1e-9) {
          best = r;
          improved = true;
        } else {
          choice.set(saved);
          for (let i = 0; i < n; i++) times[i] = tables[dag.table[i]!]!.timeS[choice[i]!]!;
        }
      }
      if (!improved) break;
    }
    this.evaluate();
    return best;
  }

  /** Earliest finishes (`finish`) and latest starts (`latestStart`) of the current choice under `budgetS`. */
  private window(budgetS: number): void {
    const { dag } = this.v;
    const { finish, latestStart, times } = this;
    const { predStart, pred, succStart, succ } = dag;
    const n = dag.numNodes;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let p = predStart[i]!; p < predStart[i + 1]!; p++) s = max(s, finish[pred[p]!]!);
      finish[i] = s + times[i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let lf = budgetS;
      for (let p = succStart[i]!; p < succStart[i + 1]!; p++) lf = min(lf, latestStart[succ[p]!]!);
      latestStart[i] = lf - times[i]!;
    }
  }

  /**
   * Local search on the plan in `choice` at a fixed time budget. Move: speed one zero-slack
   * instruction up by one or two clock steps and give the time that frees to the single
   * instruction that saves the most with it; keep the move if the saving beats the cost, reclaim,
   * repeat. A round costs O(critical nodes × (V+E)), so it is spent where it matters (the
   * intrinsic plan; every sample of tiny pipelines).
   */
  polish(budgetS: number, maxRounds = 100): { timeS: number; energyJ: number } {
    const { dag, tables } = this.v;
    const n = dag.numNodes;
    const { choice, times, finish, latestStart } = this;
    const critical: number[] = [];
    this.reclaim(budgetS, -1);
    for (let round = 0; round < maxRounds; round++) {
      this.window(budgetS);
      critical.length = 0;
      for (let i = 0; i < n; i++) {
        const slack = latestStart[i]! - (finish[i]! - times[i]!);
        if (slack <= 1e-12 * budgetS && choice[i]! > 0) critical.push(i);
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
          this.window(budgetS);
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
      this.reclaim(budgetS, -1);
    }
    return this.evaluate();
  }
}

/**
 * Computes the whole iteration time–energy frontier (DESIGN §4.3–4.4).
 *
 * The relaxation (each instruction's cost = the lower convex hull of its options' effective energy
 * over time) is swept from the all-slowest schedule down to the fastest by the Phillips–Dessouky
 * iterative minimum cut with lower bounds on the critical subgraph. Instead of stepping one unit of
 * τ per cut as lowtime does, each cut is applied for as long as it stays optimal — until an
 * activity reaches a hull vertex or a new path turns critical — which makes the relaxed frontier
 * exact and the number of max-flows independent of τ. Every τ of iteration time (on a grid through
 * the all-max time) the relaxed durations are turned into a measured-option plan with slack
 * reclamation and evaluated by the emulator; the Pareto-optimal ones are the frontier.
 */
export function computeFrontier(input: PlannerInput, opts: FrontierOptions = {}): Frontier {
  const v = validatePlannerInput(input);
  return new Frontier(sweep(v, opts));
}

function sweep(v: ValidInput, opts: FrontierOptions): FrontierJson {
  const { dag, tables, unitTimeS: tau, blockingPowerW } = v;
  const n = dag.numNodes;
  const hulls = tables.map(hullOf);
  const hullOfNode = (i: number): HullTable => hulls[dag.table[i]!]!;
  const allMax = evaluateAllMax(v);
  const d = new Float64Array(n);
  const seg = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const h = hullOfNode(i);
    seg[i] = h.last;
    d[i] = h.t[h.last]!;
  }
  const start = new Float64Array(n);
  const finish = new Float64Array(n);
  const latestFinish = new Float64Array(n);
  const delta = new Int8Array(n);
  const compIdx = new Int32Array(n);
  // Flows of the last cut (warm start of the next): per activity, per DAG edge (CSR slot), and on
  // the source/sink arcs. Arc ids of the current network, to read them back.
  const flowNode = new Float64Array(n);
  const flowEdge = new Float64Array(dag.succ.length);
  const flowSrc = new Float64Array(n);
  const flowSnk = new Float64Array(n);
  const arcNode = new Int32Array(n);
  const arcEdge = new Int32Array(dag.succ.length);
  const arcSrc = new Int32Array(n);
  const arcSnk = new Int32Array(n);
  const cut = new LowerBoundedMinCut();
  const disc = new Discretizer(v, n);
  const candidates = new DeltaPlanStore(n, 256);
  const candT: number[] = [];
  const candE: number[] = [];
  const lbT: number[] = [];
  const lbE: number[] = [];
  const sampleD = new Float64Array(n);

  const schedule = (): number => {
    let makespan = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++)
        s = max(s, finish[dag.pred[p]!]!);
      start[i] = s;
      finish[i] = s + d[i]!;
      if (finish[i]! > makespan) makespan = finish[i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let lf = makespan;
      for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
        const j = dag.succ[p]!;
        lf = min(lf, latestFinish[j]! - d[j]!);
      }
      latestFinish[i] = lf;
    }
    return makespan;
  };
  const relaxedCost = (dur: Float64Array): number => {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const h = hullOfNode(i);
      const s = seg[i]!;
      sum += s < h.last ? h.eff[s]! - h.slope[s]! * (dur[i]! - h.t[s]!) : h.eff[s]!;
    }
    return sum;
  };
  const sample = (dur: Float64Array, budgetS: number, boundJ: number): void => {
    let r = disc.runCarrying(dur, budgetS);
    // Rounding a relaxation of a later time can overrun a budget below it (the extra samples of
    // tiny pipelines); such a plan is no candidate, and any search result that fits beats it.
    if (r.timeS > budgetS * (1 + 1e-12)) r = { timeS: r.timeS, energyJ: INF };
    // Best-ratio reclamation from the rounded relaxation: keeps the frontier below lowtime's in the
    // middle of the range, where reverse-topological reclamation alone was up to 0.04% worse.
    if (r.energyJ > boundJ * GREEDY_ABOVE_BOUND) r = disc.greedyReclaim(dur, budgetS, true, r);
    if (budgetS === allMax.timeS) {
      // The intrinsic plan is the one deployed most: spend more search on it.
      r = disc.greedyReclaim(dur, budgetS, false, r);
      // The ejection search costs a max-flow per instruction per round; later rounds gained
      // < 0.001 pp on the paper's profiles, so one round.
      r = disc.eject(budgetS, cut, 1, r);
      r = disc.polish(budgetS);
    }
    if (n <= SEARCH_EVERY_SAMPLE_MAX_NODES) r = disc.seededRebuild(budgetS, r);
    if (r.energyJ === INF) return;
    candT.push(r.timeS);
    candE.push(r.energyJ);
    candidates.push(disc.choice);
    disc.settle(r.timeS);
  };

  // Estimated end of the sweep (all fastest), for progress only.
  let tFastest = 0;
  {
    const ft = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++) s = max(s, ft[dag.pred[p]!]!);
      ft[i] = s + hullOfNode(i).t[0]!;
      tFastest = max(tFastest, ft[i]!);
    }
  }

  let T = schedule();
  const tStart = T;
  const dStart = Float64Array.from(d);
  // Samples lie on the grid allMax.T + k·τ (k = 0 is exactly the all-max time).
  const gridT = (k: number): number => (k === 0 ? allMax.timeS : allMax.timeS + k * tau);
  let cuts = 0;
  let lastProgress = 0;
  const units = max(1, Math.round((tStart - tFastest) / tau));
  const estTotal = 2 * units;
  // Pass 1 records each cut (which activities moved, from where, which way) so that pass 2 can
  // replay the relaxed schedule from fast to slow.
  const evMoved: Int32Array[] = [];
  const evBefore: Float64Array[] = [];
  const evDir: Int8Array[] = [];
  const tenthT = tStart * 1e-10 + 1e-13;

  for (;;) {
    lbT.push(T);
    lbE.push(relaxedCost(d) + blockingPowerW * dag.numStages * T);
    const eps = tenthT;
    // Critical subgraph → flow network. Vertex 0 = s, 1 = t, node k ↦ (2+2k in, 3+2k out).
    let k = 0;
    for (let i = 0; i < n; i++) {
      if (latestFinish[i]! - finish[i]! <= eps) compIdx[i] = k++;
      else compIdx[i] = -1;
    }
    cut.reset(2 + 2 * k);
    arcNode.fill(-1);
    arcEdge.fill(-1);
    arcSrc.fill(-1);
    arcSnk.fill(-1);
    for (let i = 0; i < n; i++) {
      const ci = compIdx[i]!;
      if (ci < 0) continue;
      const h = hullOfNode(i);
      const s = seg[i]!;
      const atVertex = abs(d[i]! - h.t[s]!) <= 1e-15 + 1e-13 * h.t[s]!;
      let lb: number;
      let ub: number;
      if (atVertex) {
        ub = s > 0 ? h.slope[s - 1]! : CAP_INF;
        lb = s < h.last ? h.slope[s]! : 0;
      } else {
        lb = ub = h.slope[s]!;
      }
      const inV = 2 + 2 * ci;
      arcNode[i] = cut.addArc(inV, inV + 1, lb, ub, flowNode[i]!);
      if (start[i]! <= eps) arcSrc[i] = cut.addArc(0, inV, 0, CAP_INF, flowSrc[i]!);
      if (finish[i]! >= T - eps) arcSnk[i] = cut.addArc(inV + 1, 1, 0, CAP_INF, flowSnk[i]!);
      for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
        const j = dag.succ[p]!;
        const cj = compIdx[j]!;
        if (cj >= 0 && abs(start[j]! - finish[i]!) <= eps) {
          arcEdge[p] = cut.addArc(inV + 1, 2 + 2 * cj, 0, CAP_INF, flowEdge[p]!);
        }
      }
    }
    const res = cut.solve(0, 1);
    if (res.kind === 'cut') {
      for (let i = 0; i < n; i++) {
        flowNode[i] = arcNode[i]! >= 0 ? cut.flowOf(arcNode[i]!) : 0;
        flowSrc[i] = arcSrc[i]! >= 0 ? cut.flowOf(arcSrc[i]!) : 0;
        flowSnk[i] = arcSnk[i]! >= 0 ? cut.flowOf(arcSnk[i]!) : 0;
      }
      for (let p = 0; p < arcEdge.length; p++)
        flowEdge[p] = arcEdge[p]! >= 0 ? cut.flowOf(arcEdge[p]!) : 0;
    }
    cuts++;
    if (res.kind === 'unbounded') break;
    if (res.kind === 'infeasible') {
      throw new Error(
        'internal: Phillips–Dessouky flow infeasible (relaxed schedule lost optimality)',
      );
    }
    const side = res.sourceSide;
    // Step limit from the hull vertices.
    let lambda = INF;
    delta.fill(0);
    for (let i = 0; i < n; i++) {
      const ci = compIdx[i]!;
      if (ci < 0) continue;
      const inS = side[2 + 2 * ci]!;
      const outS = side[3 + 2 * ci]!;
      const h = hullOfNode(i);
      const s = seg[i]!;
      if (inS && !outS) {
        delta[i] = -1;
        const atVertex = abs(d[i]! - h.t[s]!) <= 1e-15 + 1e-13 * h.t[s]!;
        lambda = min(lambda, atVertex ? h.t[s]! - h.t[s - 1]! : d[i]! - h.t[s]!);
      } else if (!inS && outS && s < h.last) {
        delta[i] = 1;
        lambda = min(lambda, h.t[s + 1]! - d[i]!);
      }
    }
    if (!(lambda > 0) || lambda === INF) {
      throw new Error(`internal: cut with no movable activity (λ=${lambda})`);
    }
    // Shrink λ until no path outside the critical subgraph overtakes T − λ (Newton on the convex
    // gap function: each iteration jumps to where the current longest path meets T − λ).
    for (let iter = 0; iter < 100; iter++) {
      let makespan = 0;
      let base0 = 0;
      let slope0 = 0;
      for (let i = 0; i < n; i++) {
        let s = 0;
        let b = 0;
        let sl = 0;
        for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++) {
          const q = dag.pred[p]!;
          if (finish[q]! > s) {
            s = finish[q]!;
            b = latestFinish[q]!;
            sl = sampleD[q]!;
          }
        }
        // Reuse buffers: finish = length at λ, latestFinish/sampleD = length at 0 / slope of argmax.
        // They are restored by schedule() below.
        finish[i] = s + d[i]! + lambda * delta[i]!;
        latestFinish[i] = b + d[i]!;
        sampleD[i] = sl + delta[i]!;
        if (finish[i]! > makespan) {
          makespan = finish[i]!;
          base0 = latestFinish[i]!;
          slope0 = sampleD[i]!;
        }
      }
      if (makespan <= T - lambda + eps) break;
      const next = (T - base0) / (1 + slope0);
      if (!(next < lambda)) break;
      lambda = max(next, 0);
    }
    {
      let m = 0;
      for (let i = 0; i < n; i++) if (delta[i] !== 0) m++;
      const moved = new Int32Array(m);
      const before = new Float64Array(m);
      const dir = new Int8Array(m);
      m = 0;
      for (let i = 0; i < n; i++) {
        if (delta[i] === 0) continue;
        moved[m] = i;
        before[m] = d[i]!;
        dir[m++] = delta[i]!;
      }
      evMoved.push(moved);
      evBefore.push(before);
      evDir.push(dir);
    }
    // Apply the cut for λ.
    for (let i = 0; i < n; i++) {
      const dl = delta[i]!;
      if (dl === 0) continue;
      const h = hullOfNode(i);
      let s = seg[i]!;
      if (dl < 0) {
        const atVertex = abs(d[i]! - h.t[s]!) <= 1e-15 + 1e-13 * h.t[s]!;
        if (atVertex) s--;
        let x = d[i]! - lambda;
        if (x <= h.t[s]! + 1e-15 + 1e-13 * h.t[s]!) x = h.t[s]!;
        d[i] = x;
      } else {
        let x = d[i]! + lambda;
        if (x >= h.t[s + 1]! - 1e-15 - 1e-13 * h.t[s + 1]!) {
          s++;
          x = h.t[s]!;
        }
        d[i] = x;
      }
      seg[i] = s;
    }
    T = schedule();
    if (opts.onProgress && (cuts & 63) === 0) {
      const done = Math.round((tStart - T) / tau);
      if (done > lastProgress) {
        lastProgress = done;
        opts.onProgress(done, estTotal);
      }
    }
  }
  // Pass 2, from fast to slow: turn the relaxed schedule at every grid time into a measured plan.
  // A grid time whose relaxed energy (a lower bound on any plan there) is already ≥ the energy of
  // a faster plan found is skipped: everything there is dominated. This prunes the slow end.
  let runningMinJ = INF;
  let done = 0;
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
  const K = evMoved.length;
  const tEnd = lbT[K]!;
  {
    // The fastest schedule, and grid points that float noise put just below it.
    let k = ceil((tEnd * (1 - 1e-9) - allMax.timeS) / tau);
    for (; gridT(k) < tEnd; k++) if (gridT(k) >= tEnd * (1 - 1e-9)) trySample(d, gridT(k), lbE[K]!);
    if (gridT(k) !== tEnd) trySample(d, tEnd, lbE[K]!);
  }
  sampleD.set(d);
  for (let e = K - 1; e >= 0; e--) {
    const moved = evMoved[e]!;
    const before = evBefore[e]!;
    const dir = evDir[e]!;
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
    if (opts.onProgress) {
      const now = units + Math.round((hi - tEnd) / tau);
      if (now > done + units / 100) {
        done = now;
        opts.onProgress(min(now, estTotal), estTotal);
      }
    }
  }
  trySample(dStart, tStart, lbE[0]!);
  opts.onProgress?.(estTotal, estTotal);

  // Pareto filter on the discrete truth.
  const order = candT
    .map((_, i) => i)
    .sort((a, b) => candT[a]! - candT[b]! || candE[a]! - candE[b]!);
  const keep: number[] = [];
  let bestE = INF;
  for (const c of order) {
    if (candE[c]! < bestE * (1 - 1e-12)) {
      keep.push(c);
      bestE = candE[c]!;
    }
  }
  lbT.reverse();
  lbE.reverse();
  const pointOf = new Int32Array(candT.length).fill(-1);
  keep.forEach((c, idx) => (pointOf[c] = idx));
  const store = new DeltaPlanStore(n, 64);
  const planPositions = new Array<number>(keep.length);
  candidates.replay((c, plan) => {
    const p = pointOf[c]!;
    if (p >= 0) {
      planPositions[p] = store.size;
      store.push(plan);
    }
  });
  const points: FrontierPoint[] = keep.map((c, index) => ({
    index,
    timeS: candT[c]!,
    energyJ: candE[c]!,
    modelEnergyJ: interpolateLowerBound(lbT, lbE, candT[c]!),
  }));
  return {
    version: 1,
    pipeline: { ...v.input.pipeline },
    blockingPowerW,
    unitTimeS: tau,
    points,
    allMax,
    minEnergyTimeS: points[points.length - 1]!.timeS,
    optionFrequenciesMhz: tables.map((t) => Array.from(t.frequencyMhz)),
    planPositions,
    plans: store.toJSON(),
    lowerBound: { timeS: lbT, energyJ: lbE },
    stats: { cuts, candidates: candT.length, planBytes: store.byteSize() },
  };
}
