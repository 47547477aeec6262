import { FlowNetwork } from './max-flow';

// Module bindings, not global lookups: under jest's vm context every access to a global (Math,
// Infinity) is intercepted and hot loops run ~25x slower.
const { max } = Math;

/** Capacity standing for "cannot be crossed forward" (an activity at its fastest, a dependency). */
export const INFINITE_CAPACITY = 1e30;

/** Outcome of {@link minCutWithLowerBounds}. */
export type CutResult =
  | { kind: 'cut'; valueW: number; sourceSide: Uint8Array }
  | { kind: 'unbounded' }
  | { kind: 'infeasible' };

/**
 * Minimum s–t cut of a network whose arcs carry lower bounds (Phillips & Dessouky 1977): the cut
 * minimising Σ_{S→T arcs} ub − Σ_{T→S arcs} lb. Solved as a feasible flow (lower bounds moved into
 * vertex excesses, a super source/sink, t→s uncapacitated) followed by a max-flow from s to t on the
 * residual; the source side is what s still reaches.
 *
 * Used by the frontier on the critical subgraph: ub = cost of shortening an activity, lb = saving of
 * lengthening it. "infeasible" means the current schedule is not optimal for its own time (cannot
 * happen in exact arithmetic when started from an optimum); "unbounded" means no finite cut: the
 * iteration cannot get shorter.
 */
export class LowerBoundedMinCut {
  private readonly net = new FlowNetwork();
  private excess = new Float64Array(16);
  private mark = new Uint8Array(16);
  private lower = new Float64Array(64);
  private numArcs = 0;
  private frozenArcs = 0;
  private numVertices = 0;
  private scale = 0;

  /** Starts a new problem with vertices 0..n−1 (s and t among them). */
  reset(n: number): void {
    this.numVertices = n;
    this.numArcs = 0;
    this.scale = 0;
    this.net.reset(n + 2);
    if (this.excess.length < n) this.excess = new Float64Array(2 * n);
    if (this.mark.length < n + 2) this.mark = new Uint8Array(2 * n + 4);
    this.excess.fill(0, 0, n);
  }

  /**
   * Adds arc u→v with bounds [lb, ub] and returns its id. `flow` is a starting flow (clipped into
   * the bounds): passing the previous solution's flow warm-starts the solve, which then only routes
   * the imbalance that the network's changes created. Arcs go straight into the flow network
   * (arc a is network arc 2a), with the starting flow's imbalance kept per vertex.
   */
  addArc(u: number, v: number, lb: number, ub: number, flow = lb): number {
    this.net.addArc(u, v, 0);
    if (this.numArcs === this.lower.length) {
      const grown = new Float64Array(this.lower.length * 2);
      grown.set(this.lower);
      this.lower = grown;
    }
    const a = this.numArcs++;
    this.setBounds(a, lb, ub, flow);
    return a;
  }

  /**
   * Keeps the arcs added so far as a fixed topology (see {@link restore}): for a caller that solves
   * many problems on the same vertices whose arcs differ only in their bounds, or in being there.
   */
  freeze(): void {
    this.net.freeze();
    this.frozenArcs = this.numArcs;
  }

  /**
   * Starts a new problem on the frozen arcs without relinking them: arcs added since
   * {@link freeze} are dropped and every vertex is balanced again. The caller then gives each
   * frozen arc its bounds ({@link setBounds}) or takes it out ({@link disable}), in the order it
   * would have added them, and may add more arcs.
   */
  restore(): void {
    this.net.restore();
    this.numArcs = this.frozenArcs;
    this.scale = 0;
    this.excess.fill(0, 0, this.numVertices);
  }

  /** Bounds arc `a` as {@link addArc} bounds a new arc (same arithmetic, same excess updates). */
  setBounds(a: number, lb: number, ub: number, flow = lb): void {
    // The starting flow clipped into [lb, ub] by comparisons (Math.min/max cost more here, once per
    // arc per sweep cut); f may be −0 where max would give +0, which changes none of the uses below.
    let f = flow > lb ? flow : lb;
    if (f > ub) f = ub;
    const net = this.net;
    const e = 2 * a;
    net.cap[e] = ub >= INFINITE_CAPACITY ? INFINITE_CAPACITY : max(0, ub - f);
    net.cap[e + 1] = f - lb;
    if (f > 0) {
      this.excess[net.to[e]!]! += f;
      this.excess[net.to[e + 1]!]! -= f;
    }
    if (lb > this.scale) this.scale = lb;
    this.lower[a] = lb;
  }

  /**
   * {@link setBounds} warm-started from the arc's flow in the last solution (0 if it was disabled):
   * what a caller would pass after reading every flow back, without reading them back.
   */
  rebound(a: number, lb: number, ub: number): void {
    this.setBounds(a, lb, ub, this.flowOf(a));
  }

  /** Takes frozen arc `a` out of this problem: no capacity either way, so it never carries flow. */
  disable(a: number): void {
    this.net.cap[2 * a] = 0;
    this.net.cap[2 * a + 1] = 0;
    this.lower[a] = 0;
  }

  /** Flow on arc `a` in the last solution (after a `cut` result). */
  flowOf(a: number): number {
    return this.lower[a]! + this.net.cap[2 * a + 1]!;
  }

  /**
   * Whether the last solve's s–t phase pushed any flow (beyond the feasible flow): a sequence of
   * related problems can guess from it whether the next one will (see `fromSink` below).
   */
  augmented = false;

  /**
   * The minimum cut. `fromSink` starts the s–t max-flow from t's side (FlowNetwork.maxFlow): the
   * same result, faster where the feasible flow is not yet maximum, slower where it is.
   */
  solve(s: number, t: number, fromSink = false): CutResult {
    const res = this.solveUnder(s, t, Infinity, fromSink);
    if (res.kind === 'atLeastLimit') throw new Error('internal: a cut above an infinite limit');
    return res;
  }

  /**
   * {@link solve} for a caller that rejects any cut costing `limit` or more: such a cut is
   * reported as `atLeastLimit` as soon as the flow proves it, without finishing the max-flow.
   */
  solveUnder(
    s: number,
    t: number,
    limit: number,
    fromSink = false,
  ): CutResult | { kind: 'atLeastLimit' } {
    const n = this.numVertices;
    const superS = n;
    const superT = n + 1;
    const net = this.net;
    const excess = this.excess;
    const eps = max(1e-12, this.scale * 1e-10);
    const back = net.addArc(t, s, INFINITE_CAPACITY);
    let demand = 0;
    for (let v = 0; v < n; v++) {
      const x = excess[v]!;
      if (x > 0) {
        net.addArc(superS, v, x);
        demand += x;
      } else if (x < 0) net.addArc(v, superT, -x);
    }
    // Stop once the super arcs' residue is within the flow tolerance: the search that would
    // follow could not use any of them and would only confirm that over the whole network.
    const fed = demand > 0 ? net.maxFlow(superS, superT, eps, demand - eps) : 0;
    if (fed < demand - max(eps * 1e3, demand * 1e-9)) return { kind: 'infeasible' };
    const base = net.cap[back ^ 1]!; // flow already going s→…→t→s
    net.cap[back] = 0;
    net.cap[back ^ 1] = 0;
    const extra = net.maxFlow(s, t, eps, limit - base, fromSink);
    this.augmented = extra > 0;
    if (extra >= 1e29) return { kind: 'unbounded' };
    if (base + extra >= limit) return { kind: 'atLeastLimit' };
    // The residual search from s that ended the flow never enters superS or superT usefully:
    // superS's arcs are saturated (the flow is feasible) and so are the arcs into superT.
    net.sourceSide(this.mark);
    return { kind: 'cut', valueW: base + extra, sourceSide: this.mark };
  }
}
