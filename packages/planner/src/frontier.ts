import { evaluateAllMax, longestPath } from './emulator';
import { PlannerInputError } from './errors';
import { sampleFrontier } from './frontier-sampling';
import { interpolateLowerBound } from './hull';
import { validatePlannerInput, type ValidInput } from './options';
import { DeltaPlanStore, type DeltaPlanStoreJson } from './plan-store';
import { sweepRelaxation } from './relaxed-sweep';
import { buildPipelineDag, type PipelineDag } from './schedule';
import type { FrontierPoint, PipelineSpec, PlannerInput, StagePlan } from './types';

const { max, min } = Math;

/** Options of {@link computeFrontier}. */
export interface FrontierOptions {
  /** Called now and then with the iteration time swept so far and the estimated total, in units of τ. */
  onProgress?: (done: number, estTotal: number) => void;
  /**
   * Called once, early in pass 2, with the plan sampled at the all-max time and the certified
   * bound there, so that a caller can polish the intrinsic plan (e.g. in another thread) while
   * the rest of the frontier is computed. The frontier's intrinsic point is this plan unless a
   * later sample finds a better one at that time.
   */
  onIntrinsic?: (sample: IntrinsicSample) => void;
}

/** The plan sampled at the all-max time (see {@link FrontierOptions.onIntrinsic}). */
export interface IntrinsicSample {
  plan: StagePlan[];
  timeS: number;
  energyJ: number;
  /** The relaxation's optimum at the all-max time (J): no plan there uses less. */
  lowerBoundJ: number;
  allMax: { timeS: number; energyJ: number };
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

/** Relative tolerance on "no slower than all-max" (docs/architecture.md §4.4). */
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

  /**
   * @internal use {@link computeFrontier} or {@link Frontier.fromJSON}. `store` is `json.plans`
   * already decoded (its maker has it): not decoding the arrays again saves a copy of every plan.
   */
  constructor(
    private readonly json: FrontierJson,
    store?: DeltaPlanStore,
  ) {
    this.points = json.points;
    this.allMax = json.allMax;
    this.minEnergyTimeS = json.minEnergyTimeS;
    this.stats = json.stats;
    this.dag = buildPipelineDag(json.pipeline);
    this.store = store ?? DeltaPlanStore.fromJSON(json.plans);
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

  /**
   * The plan of point `index` without an object per instruction (for writers that stream every
   * point's plan): per stage, each instruction's clock (MHz) in schedule order, written into
   * `out` (one array per stage, reused between calls).
   */
  planClocks(index: number, out: Float64Array[]): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.points.length) {
      throw new PlannerInputError(
        'index',
        `must be an integer in [0, ${this.points.length - 1}], got ${String(index)}`,
      );
    }
    const choice = this.store.get(this.json.planPositions[index]!);
    const { dag } = this;
    const freqs = this.json.optionFrequenciesMhz;
    dag.stageNodes.forEach((nodes, stage) => {
      const clocks = out[stage]!;
      for (let j = 0; j < nodes.length; j++) {
        const node = nodes[j]!;
        clocks[j] = freqs[dag.table[node]!]![choice[node]!]!;
      }
    });
  }

  /** Instructions per stage (the lengths {@link planClocks} fills). */
  stageLengths(): number[] {
    return this.dag.stageNodes.map((nodes) => nodes.length);
  }

  private decode(choice: Uint16Array): StagePlan[] {
    return decodePlan(this.dag, this.json.optionFrequenciesMhz, choice);
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

  /**
   * This frontier with one more plan (one option index per DAG node, indexing
   * `optionFrequenciesMhz`), e.g. the exact polish of a deployed point, whose emulated time and
   * energy are `timeS` and `energyJ`. The points it dominates are dropped; nothing changes if an
   * existing point already dominates it.
   */
  withPlan(choice: Uint16Array, timeS: number, energyJ: number): Frontier {
    const { points, planPositions } = this.json;
    const at = this.lastAtOrBefore(timeS);
    if (at >= 0 && points[at]!.energyJ <= energyJ) return this;
    const store = DeltaPlanStore.fromJSON(this.json.plans);
    const position = store.size;
    store.push(choice);
    const kept: Array<[FrontierPoint, number]> = [];
    let inserted = false;
    const add = (p: FrontierPoint, pos: number): void => {
      kept.push([{ ...p, index: kept.length }, pos]);
    };
    points.forEach((p, i) => {
      if (!inserted && p.timeS > timeS) {
        add({ index: 0, timeS, energyJ, modelEnergyJ: this.lowerBoundJ(timeS) }, position);
        inserted = true;
      }
      // Dropped: at or after the new plan's time without using less energy.
      if (p.timeS >= timeS && p.energyJ >= energyJ) return;
      add(p, planPositions[i]!);
    });
    if (!inserted)
      add({ index: 0, timeS, energyJ, modelEnergyJ: this.lowerBoundJ(timeS) }, position);
    const json: FrontierJson = {
      ...this.json,
      points: kept.map(([p]) => p),
      planPositions: kept.map(([, pos]) => pos),
      minEnergyTimeS: kept[kept.length - 1]![0].timeS,
      plans: store.toJSON(),
      stats: { ...this.json.stats, planBytes: store.byteSize() },
    };
    return new Frontier(json, store);
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

/** Per stage, each instruction's clock for option indices `choice` (one per DAG node). */
function decodePlan(
  dag: PipelineDag,
  freqs: ArrayLike<ArrayLike<number>>,
  choice: Uint16Array,
): StagePlan[] {
  return dag.stageNodes.map((nodes, stage) => ({
    stage,
    instructions: Array.from(nodes, (node) => ({
      kind: dag.kind[node] === 0 ? ('forward' as const) : ('backward' as const),
      microbatch: dag.microbatch[node]!,
      ...(dag.numChunks > 1 ? { chunk: dag.chunk[node]! } : {}),
      frequencyMhz: freqs[dag.table[node]!]![choice[node]!]!,
    })),
  }));
}

/**
 * Computes the whole iteration time–energy frontier (docs/architecture.md §4.3–4.4).
 *
 * The relaxation (each instruction's cost = the lower convex hull of its options' effective energy
 * over time) is swept from the all-slowest schedule down to the fastest by the Phillips–Dessouky
 * iterative minimum cut with lower bounds on the critical subgraph (relaxed-sweep.ts). Instead of
 * stepping one unit of τ per cut as lowtime does, each cut is applied for as long as it stays
 * optimal — until an activity reaches a hull vertex or a new path turns critical — which makes the
 * relaxed frontier exact and the number of max-flows independent of τ. Every τ of iteration time
 * (on a grid through the all-max time) the relaxed durations are turned into a measured-option plan
 * with slack reclamation and evaluated by the emulator; the Pareto-optimal ones are the frontier
 * (frontier-sampling.ts).
 */
export function computeFrontier(input: PlannerInput, opts: FrontierOptions = {}): Frontier {
  const v = validatePlannerInput(input);
  const { tables, unitTimeS: tau, blockingPowerW } = v;
  const allMax = evaluateAllMax(v);
  const { onProgress, onIntrinsic } = opts;
  // Progress in units of τ: pass 1 from the slowest to the fastest time, pass 2 back.
  const tStart = pathAtHullEnd(v, 'slowest');
  const units = max(1, Math.round((tStart - pathAtHullEnd(v, 'fastest')) / tau));
  let done = 0;
  const relaxed = sweepRelaxation(
    v,
    onProgress &&
      ((timeS) => {
        const now = Math.round((tStart - timeS) / tau);
        if (now > done) {
          done = now;
          onProgress(now, 2 * units);
        }
      }),
  );
  const tEnd = relaxed.lbT[relaxed.lbT.length - 1]!;
  // The relaxed frontier time-ascending: the certified bound of every point.
  const lbTAsc = relaxed.lbT.slice().reverse();
  const lbEAsc = relaxed.lbE.slice().reverse();
  done = 0;
  const sampled = sampleFrontier(
    v,
    relaxed,
    allMax,
    onProgress &&
      ((timeS) => {
        const now = units + Math.round((timeS - tEnd) / tau);
        if (now > done + units / 100) {
          done = now;
          onProgress(min(now, 2 * units), 2 * units);
        }
      }),
    onIntrinsic &&
      ((choice, cost) =>
        onIntrinsic({
          plan: decodePlan(
            v.dag,
            tables.map((t) => t.frequencyMhz),
            choice,
          ),
          timeS: cost.timeS,
          energyJ: cost.energyJ,
          lowerBoundJ: interpolateLowerBound(lbTAsc, lbEAsc, allMax.timeS),
          allMax,
        })),
  );
  onProgress?.(2 * units, 2 * units);
  const { points, plans, planPositions } = sampled;
  return new Frontier(
    {
      version: 1,
      pipeline: { ...input.pipeline },
      blockingPowerW,
      unitTimeS: tau,
      points,
      allMax,
      minEnergyTimeS: points[points.length - 1]!.timeS,
      optionFrequenciesMhz: tables.map((t) => Array.from(t.frequencyMhz)),
      planPositions,
      plans: plans.toJSON(),
      lowerBound: { timeS: lbTAsc, energyJ: lbEAsc },
      stats: { cuts: relaxed.cuts, candidates: sampled.candidates, planBytes: plans.byteSize() },
    },
    plans,
  );
}

/**
 * The planner's work before it starts: how many τ-steps of iteration time the frontier spans
 * (from every instruction at its fastest hull vertex to every one at its slowest) — each a sampled
 * plan — and how many instructions each sample plans. Callers bound `samples × instructions` to
 * refuse inputs that would plan for hours (a τ of 1e-300, a row time of 2^53 s).
 */
export function frontierWorkEstimate(input: PlannerInput): {
  samples: number;
  instructions: number;
} {
  const v = validatePlannerInput(input);
  const span = pathAtHullEnd(v, 'slowest') - pathAtHullEnd(v, 'fastest');
  return { samples: max(1, span / v.unitTimeS), instructions: v.dag.numNodes };
}

/** Iteration time with every instruction at its fastest or slowest hull vertex (for progress). */
function pathAtHullEnd(v: ValidInput, end: 'fastest' | 'slowest'): number {
  const { dag, tables } = v;
  const times = Float64Array.from(dag.table, (t) => {
    const { hull, timeS } = tables[t]!;
    return timeS[end === 'fastest' ? hull[0]! : hull[hull.length - 1]!]!;
  });
  return longestPath(dag, times);
}
