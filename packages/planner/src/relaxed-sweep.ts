import { latestStarts } from './dag-passes';
import { hullOf, type HullTable } from './hull';
import type { ValidInput } from './options';
import { INFINITE_CAPACITY, LowerBoundedMinCut } from './phillips-dessouky';
import { atHullVertex } from './tolerance';

// Module bindings, not global lookups (see discretizer.ts).
const { abs, max, min } = Math;
const INF = Infinity;
const CAP_INF = INFINITE_CAPACITY;
const isAtVertex = atHullVertex;

/** One Phillips–Dessouky cut as applied: which activities moved, from where, which way. */
export interface SweepEvent {
  moved: Int32Array;
  /** Relaxed duration of each moved activity before the cut. */
  before: Float64Array;
  /** −1 shortened, +1 lengthened (by the same amount of time, the cut's λ). */
  dir: Int8Array;
}

/** The relaxed frontier from slow to fast, and how to replay it. */
export interface RelaxedSweep {
  hulls: HullTable[];
  /** Relaxed schedule breakpoints, slow → fast: lbT[k] iteration time, lbE[k] relaxed energy. */
  lbT: number[];
  lbE: number[];
  /** events[k] takes the schedule from lbT[k] to lbT[k+1]. */
  events: SweepEvent[];
  /** Relaxed durations at the start (all slowest) and at the end (fastest). */
  dStart: Float64Array;
  dEnd: Float64Array;
  cuts: number;
}

/**
 * Pass 1 of the frontier (docs/architecture.md §4.3): sweeps the convex-hull relaxation from the all-slowest
 * schedule down to the fastest by Phillips–Dessouky minimum cuts on the critical subgraph, each
 * applied for as long as it stays optimal (until an activity reaches a hull vertex or a new path
 * turns critical), and records every cut so that pass 2 can replay it from fast to slow.
 * `onCut(T)` is called every 64 cuts with the current iteration time (progress).
 */
export function sweepRelaxation(v: ValidInput, onCut?: (timeS: number) => void): RelaxedSweep {
  const { dag, tables, blockingPowerW } = v;
  const n = dag.numNodes;
  const hulls = tables.map(hullOf);
  const hullOfNode = (i: number): HullTable => hulls[dag.table[i]!]!;
  const d = new Float64Array(n);
  const seg = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const h = hullOfNode(i);
    seg[i] = h.last;
    d[i] = h.t[h.last]!;
  }
  const start = new Float64Array(n);
  const finish = new Float64Array(n);
  const latestStart = new Float64Array(n);
  // The cut's direction per activity (0: not moved) and the moved activities in ascending order.
  const delta = new Int8Array(n);
  const movedIds = new Int32Array(n);
  let numMoved = 0;
  const critical = new Uint8Array(n);
  // Scratch of the λ search: path length at λ, at 0, and its slope in λ.
  const lenAt = new Float64Array(n);
  const len0 = new Float64Array(n);
  const lenSlope = new Float64Array(n);
  // The cut's network on fixed vertices (s = 0, t = 1, activity i ↦ in 2+2i, out 3+2i), built
  // once: an arc for every activity and every DAG edge, s→i for the activities without
  // predecessors and i→t for those without successors. Per cut the arcs outside the critical
  // subgraph are disabled and the others re-bounded, in the order a fresh build would add them, so
  // the flow is the one a network of the critical subgraph alone gives, without relinking ~90 % of
  // the DAG per cut; each arc starts from its flow in the last cut (warm start: the solve only
  // routes the imbalance the cut's changes made). An activity with predecessors starts at 0, or one
  // with successors ends at T, only if some duration is within `eps` of 0; its s/t arc is then
  // added for that cut alone, with no starting flow.
  const arcNode = new Int32Array(n);
  const arcEdge = new Int32Array(dag.succ.length);
  const arcSrc = new Int32Array(n).fill(-1);
  const arcSnk = new Int32Array(n).fill(-1);
  const cut = new LowerBoundedMinCut();
  const isSource = (i: number): boolean => dag.predStart[i] === dag.predStart[i + 1];
  const isSink = (i: number): boolean => dag.succStart[i] === dag.succStart[i + 1];
  cut.reset(2 + 2 * n);
  for (let i = 0; i < n; i++) {
    const inV = 2 + 2 * i;
    arcNode[i] = cut.addArc(inV, inV + 1, 0, 0);
    if (isSource(i)) arcSrc[i] = cut.addArc(0, inV, 0, CAP_INF);
    if (isSink(i)) arcSnk[i] = cut.addArc(inV + 1, 1, 0, CAP_INF);
    for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
      arcEdge[p] = cut.addArc(inV + 1, 2 + 2 * dag.succ[p]!, 0, CAP_INF);
    }
  }
  cut.freeze();
  const lbT: number[] = [];
  const lbE: number[] = [];
  const events: SweepEvent[] = [];

  // Earliest finishes and starts (the emulator's longest path), the relaxed cost Σ cost[i] (summed
  // in index order) and the iteration time, from activity `from` on. A cut changes only the
  // durations of the activities it moves, so before the first of them in the (topological) index
  // order every finish, start, running cost sum and running maximum of finishes is what the last
  // pass computed, bit for bit, and the pass resumes there.
  const costPrefix = new Float64Array(n + 1);
  const finishPrefixMax = new Float64Array(n + 1);
  let relaxedCost = 0;
  const schedule = (from: number): number => {
    const { predStart, pred } = dag;
    let sum = costPrefix[from]!;
    let makespan = finishPrefixMax[from]!;
    for (let i = from; i < n; i++) {
      let st = 0;
      for (let p = predStart[i]!; p < predStart[i + 1]!; p++) {
        const f = finish[pred[p]!]!;
        if (f > st) st = f;
      }
      const f = st + d[i]!;
      finish[i] = f;
      start[i] = f - d[i]!;
      sum += cost[i]!;
      costPrefix[i + 1] = sum;
      if (f > makespan) makespan = f;
      finishPrefixMax[i + 1] = makespan;
    }
    relaxedCost = sum;
    latestStarts(dag, d, makespan, latestStart);
    return makespan;
  };
  // Per activity, from its place on the hull (refreshed when a cut moves it): its relaxed cost
  // and the bounds of its arc in the cut's network (lower: saving per second of lengthening,
  // upper: cost per second of shortening).
  const cost = new Float64Array(n);
  const arcLb = new Float64Array(n);
  const arcUb = new Float64Array(n);
  const refresh = (i: number): void => {
    const h = hullOfNode(i);
    const s = seg[i]!;
    cost[i] = s < h.last ? h.eff[s]! - h.slope[s]! * (d[i]! - h.t[s]!) : h.eff[s]!;
    if (d[i] === h.t[s]) {
      arcUb[i] = s > 0 ? h.slope[s - 1]! : CAP_INF;
      arcLb[i] = s < h.last ? h.slope[s]! : 0;
    } else {
      arcLb[i] = arcUb[i] = h.slope[s]!;
    }
  };

  /**
   * Sets activity i to duration x on hull segment s, in canonical form: a duration within the
   * snap tolerance of a vertex is exactly that vertex (and a vertex is always held as the start of
   * its segment, d = t[seg]); otherwise t[seg] < d < t[seg + 1] with more than the tolerance on
   * both sides. So "at a vertex" is an exact test, and every step limit a vertex sets is positive:
   * near-equal durations of identical stages (sums in different orders) cannot leave an activity
   * a rounding error short of its vertex, where the next cut could move it by 0.
   */
  const placeOnHull = (h: HullTable, i: number, x: number, s: number): void => {
    if (s < h.last && (x >= h.t[s + 1]! || isAtVertex(x, h.t[s + 1]!))) {
      s++;
      x = h.t[s]!;
    } else if (x <= h.t[s]! || isAtVertex(x, h.t[s]!)) x = h.t[s]!;
    d[i] = x;
    seg[i] = s;
  };

  for (let i = 0; i < n; i++) refresh(i);
  let T = schedule(0);
  const dStart = Float64Array.from(d);
  let cuts = 0;
  // Criticality tolerance (slack, edge gaps) and the least step: both far above the snap
  // tolerance (1e-13 relative) and far below any time that matters.
  const eps = T * 1e-10 + 1e-13;
  const minStep = T * 1e-12 + 1e-14;

  // Critical subgraph of the current schedule → flow network (see `arcNode` above). A function of
  // its own so that the engine can inline the per-arc calls here: called from the sweep's long
  // loop body they stayed calls (a CPU profile showed them as a fifth of the sweep's time).
  const loadCriticalSubgraph = (): void => {
    for (let i = 0; i < n; i++) critical[i] = latestStart[i]! - start[i]! <= eps ? 1 : 0;
    cut.restore();
    for (let i = 0; i < n; i++) {
      const inV = 2 + 2 * i;
      const source = isSource(i);
      const sink = isSink(i);
      if (!critical[i]) {
        cut.disable(arcNode[i]!);
        if (source) cut.disable(arcSrc[i]!);
        else arcSrc[i] = -1;
        if (sink) cut.disable(arcSnk[i]!);
        else arcSnk[i] = -1;
        for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) cut.disable(arcEdge[p]!);
        continue;
      }
      cut.rebound(arcNode[i]!, arcLb[i]!, arcUb[i]!);
      if (start[i]! <= eps) {
        if (source) cut.rebound(arcSrc[i]!, 0, CAP_INF);
        else arcSrc[i] = cut.addArc(0, inV, 0, CAP_INF);
      } else if (source) cut.disable(arcSrc[i]!);
      else arcSrc[i] = -1;
      if (finish[i]! >= T - eps) {
        if (sink) cut.rebound(arcSnk[i]!, 0, CAP_INF);
        else arcSnk[i] = cut.addArc(inV + 1, 1, 0, CAP_INF);
      } else if (sink) cut.disable(arcSnk[i]!);
      else arcSnk[i] = -1;
      for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
        const j = dag.succ[p]!;
        if (critical[j] && abs(start[j]! - finish[i]!) <= eps) {
          cut.rebound(arcEdge[p]!, 0, CAP_INF);
        } else cut.disable(arcEdge[p]!);
      }
    }
  };

  for (;;) {
    lbT.push(T);
    lbE.push(relaxedCost + blockingPowerW * dag.numStages * T);
    loadCriticalSubgraph();
    // Whether this cut's flow needs augmenting paths is much like the last one's: start its search
    // from the side that is cheaper then (same flow either way).
    const res = cut.solve(0, 1, cut.augmented);
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
    for (let k = 0; k < numMoved; k++) delta[movedIds[k]!] = 0;
    numMoved = 0;
    for (let i = 0; i < n; i++) {
      if (!critical[i]) continue;
      const inS = side[2 + 2 * i]!;
      const outS = side[3 + 2 * i]!;
      const h = hullOfNode(i);
      const s = seg[i]!;
      if (inS && !outS) {
        movedIds[numMoved++] = i;
        delta[i] = -1;
        lambda = min(lambda, d[i] === h.t[s] ? h.t[s]! - h.t[s - 1]! : d[i]! - h.t[s]!);
      } else if (!inS && outS && s < h.last) {
        movedIds[numMoved++] = i;
        delta[i] = 1;
        lambda = min(lambda, h.t[s + 1]! - d[i]!);
      }
    }
    // Canonical durations make every limit above > 0; a cut that moves nothing is a bug.
    if (!(lambda > 0) || lambda === INF) {
      throw new Error(`internal: cut with no movable activity (λ=${lambda})`);
    }
    // Never shorter than `minStep` (unless a hull vertex is nearer): a step below the snap
    // tolerance would be undone by `placeOnHull` and the sweep would stand still.
    const floorStep = min(lambda, minStep);
    // Shrink λ until no path outside the critical subgraph overtakes T − λ (Newton on the convex
    // gap function: each iteration jumps to where the current longest path meets T − λ).
    // The activities before the first moved one end at their finish for any λ (no moved activity
    // is on their paths): the pass starts there, as `schedule` does.
    const from = movedIds[0]!;
    lenAt.set(finish.subarray(0, from));
    len0.set(finish.subarray(0, from));
    lenSlope.fill(0, 0, from);
    for (let iter = 0; iter < 100; iter++) {
      let makespan = finishPrefixMax[from]!;
      let base0 = makespan;
      let slope0 = 0;
      for (let i = from; i < n; i++) {
        let s = 0;
        let b = 0;
        let sl = 0;
        for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++) {
          const q = dag.pred[p]!;
          if (lenAt[q]! > s) {
            s = lenAt[q]!;
            b = len0[q]!;
            sl = lenSlope[q]!;
          }
        }
        lenAt[i] = s + d[i]! + lambda * delta[i]!;
        len0[i] = b + d[i]!;
        lenSlope[i] = sl + delta[i]!;
        if (lenAt[i]! > makespan) {
          makespan = lenAt[i]!;
          base0 = len0[i]!;
          slope0 = lenSlope[i]!;
        }
      }
      if (makespan <= T - lambda + eps) break;
      const next = (T - base0) / (1 + slope0);
      if (!(next < lambda)) break;
      lambda = max(next, floorStep);
    }
    const moved = movedIds.slice(0, numMoved);
    const before = new Float64Array(numMoved);
    const dir = new Int8Array(numMoved);
    for (let k = 0; k < numMoved; k++) {
      before[k] = d[moved[k]!]!;
      dir[k] = delta[moved[k]!]!;
    }
    events.push({ moved, before, dir });
    // Apply the cut for λ, keeping every duration canonical (see `placeOnHull`).
    for (let k = 0; k < numMoved; k++) {
      const i = moved[k]!;
      const dl = delta[i]!;
      const h = hullOfNode(i);
      let s = seg[i]!;
      if (dl < 0 && d[i] === h.t[s]) s--;
      placeOnHull(h, i, d[i]! + dl * lambda, s);
      refresh(i);
    }
    T = schedule(movedIds[0]!);
    if (onCut && (cuts & 63) === 0) onCut(T);
  }
  return { hulls, lbT, lbE, events, dStart, dEnd: d, cuts };
}
