import { FlowNetwork } from '../src/max-flow';
import { INFINITE_CAPACITY, LowerBoundedMinCut } from '../src/phillips-dessouky';
import { rng } from './helpers';

interface Arc {
  u: number;
  v: number;
  lb: number;
  ub: number;
}

/** Random small network on vertices 0 (s), 1 (t), 2..n−1; integer bounds so sums are exact. */
function randomArcs(seed: number, n: number, m: number, withLower: boolean): Arc[] {
  const r = rng(seed);
  const arcs: Arc[] = [];
  for (let k = 0; k < m; k++) {
    const u = Math.floor(r() * n);
    let v = Math.floor(r() * (n - 1));
    if (v >= u) v++;
    if (u === 1 || v === 0) continue; // nothing leaves t or enters s
    const ub = r() < 0.15 ? INFINITE_CAPACITY : 1 + Math.floor(r() * 9);
    const lb = withLower && ub < INFINITE_CAPACITY ? Math.floor(r() * (ub + 1) * 0.6) : 0;
    arcs.push({ u, v, lb, ub });
  }
  return arcs;
}

/** min over s–t cuts S of Σ_{S→T} ub − Σ_{T→S} lb, by enumerating every cut. */
function bruteMinCut(n: number, arcs: Arc[]): number {
  let best = Infinity;
  for (let mask = 0; mask < 1 << (n - 2); mask++) {
    const inS = (x: number): boolean => x === 0 || (x >= 2 && ((mask >> (x - 2)) & 1) === 1);
    best = Math.min(best, cutValue(arcs, inS));
  }
  return best;
}

function cutValue(arcs: Arc[], inS: (x: number) => boolean): number {
  let value = 0;
  for (const a of arcs) {
    if (inS(a.u) && !inS(a.v)) value += a.ub;
    else if (!inS(a.u) && inS(a.v)) value -= a.lb;
  }
  return value;
}

describe('FlowNetwork.maxFlow (Dinic)', () => {
  it.each(Array.from({ length: 40 }, (_, i) => i + 1))(
    'seed %i: max flow = brute-force min cut, and the residual cut has that capacity',
    (seed) => {
      const n = 7;
      const arcs = randomArcs(seed, n, 16, false).filter((a) => a.ub < INFINITE_CAPACITY);
      const net = new FlowNetwork();
      net.reset(n);
      for (const a of arcs) net.addArc(a.u, a.v, a.ub);
      const flow = net.maxFlow(0, 1);
      expect(flow).toBe(bruteMinCut(n, arcs));
      const mark = new Uint8Array(n);
      net.reachable(0, mark);
      expect(mark[0]).toBe(1);
      expect(mark[1]).toBe(0);
      expect(cutValue(arcs, (x) => mark[x] === 1)).toBe(flow);
    },
  );

  it.each(Array.from({ length: 60 }, (_, i) => i + 1))(
    'seed %i: starting from the sink gives the same flow on every arc and the same cut',
    (seed) => {
      // Layers of 4 between s and t, random arcs between neighbouring layers (and some skipping
      // one), fractional capacities, a narrow last layer: many maximum flows, so which one comes
      // out depends on the order the paths are pushed in.
      const layers = 8;
      const n = 2 + 4 * layers;
      const at = (layer: number, k: number): number => 2 + 4 * layer + k;
      const net = (): FlowNetwork => {
        const rr = rng(900 + seed);
        const g = new FlowNetwork();
        g.reset(n);
        for (let k = 0; k < 4; k++) g.addArc(0, at(0, k), 1 + 9 * rr());
        for (let l = 0; l + 1 < layers; l++) {
          for (let a = 0; a < 4; a++) {
            for (let b = 0; b < 4; b++) if (rr() < 0.5) g.addArc(at(l, a), at(l + 1, b), 9 * rr());
            if (l + 2 < layers && rr() < 0.3) g.addArc(at(l, a), at(l + 2, a), 9 * rr());
          }
        }
        for (let k = 0; k < 4; k++) g.addArc(at(layers - 1, k), 1, 4 * rr());
        return g;
      };
      const solve = (fromSink: boolean): { flow: number; cap: number[]; mark: number[] } => {
        const g = net();
        const flow = g.maxFlow(0, 1, 1e-9, Infinity, fromSink);
        const mark = new Uint8Array(n);
        g.sourceSide(mark);
        return { flow, cap: Array.from(g.cap.subarray(0, g.numArcs)), mark: Array.from(mark) };
      };
      const forward = solve(false);
      const fromSink = solve(true);
      expect(forward.flow).toBeGreaterThan(0);
      expect(fromSink.flow).toBe(forward.flow);
      expect(fromSink.cap).toEqual(forward.cap);
      expect(fromSink.mark).toEqual(forward.mark);
    },
  );

  it('reports an uncapacitated path as unbounded (≥ 1e29)', () => {
    const net = new FlowNetwork();
    net.reset(3);
    net.addArc(0, 2, INFINITE_CAPACITY);
    net.addArc(2, 1, INFINITE_CAPACITY);
    expect(net.maxFlow(0, 1)).toBeGreaterThanOrEqual(1e29);
  });

  it('is reusable: reset empties the network', () => {
    const net = new FlowNetwork();
    net.reset(2);
    net.addArc(0, 1, 5);
    expect(net.maxFlow(0, 1)).toBe(5);
    net.reset(2);
    net.addArc(0, 1, 2);
    expect(net.maxFlow(0, 1)).toBe(2);
  });
});

describe('LowerBoundedMinCut (Phillips–Dessouky)', () => {
  const cases = Array.from({ length: 60 }, (_, i) => i + 1);
  it.each(cases)('seed %i: the cut minimises Σ ub(S→T) − Σ lb(T→S)', (seed) => {
    const n = 7;
    const arcs = randomArcs(seed, n, 14, true);
    const cut = new LowerBoundedMinCut();
    cut.reset(n);
    for (const a of arcs) cut.addArc(a.u, a.v, a.lb, a.ub);
    const res = cut.solve(0, 1);
    const brute = bruteMinCut(n, arcs);
    if (res.kind === 'unbounded') {
      expect(brute).toBeGreaterThanOrEqual(INFINITE_CAPACITY / 2);
      return;
    }
    if (res.kind === 'infeasible') {
      // No feasible flow: some cut has more lower bound leaving T than capacity entering it,
      // i.e. a cut of negative value in the circulation with t→s uncapacitated.
      expect(hasInfeasibleCut(n, arcs)).toBe(true);
      return;
    }
    expect(res.valueW).toBeCloseTo(brute, 9);
    expect(res.sourceSide[0]).toBe(1);
    expect(res.sourceSide[1]).toBe(0);
    expect(cutValue(arcs, (x) => res.sourceSide[x] === 1)).toBeCloseTo(brute, 9);
  });

  it('covers all three outcomes over the seeds', () => {
    const kinds = new Set<string>();
    for (const seed of cases) {
      const arcs = randomArcs(seed, 7, 14, true);
      const cut = new LowerBoundedMinCut();
      cut.reset(7);
      for (const a of arcs) cut.addArc(a.u, a.v, a.lb, a.ub);
      kinds.add(cut.solve(0, 1).kind);
    }
    expect([...kinds].sort()).toEqual(['cut', 'infeasible', 'unbounded']);
  });

  it('warm start: a starting flow gives the same cut as a cold solve', () => {
    const arcs: Arc[] = [
      { u: 0, v: 2, lb: 1, ub: 6 },
      { u: 2, v: 3, lb: 2, ub: 4 },
      { u: 2, v: 1, lb: 0, ub: 3 },
      { u: 3, v: 1, lb: 1, ub: 5 },
    ];
    const cold = new LowerBoundedMinCut();
    cold.reset(4);
    for (const a of arcs) cold.addArc(a.u, a.v, a.lb, a.ub);
    const c = cold.solve(0, 1);
    const warm = new LowerBoundedMinCut();
    warm.reset(4);
    arcs.forEach((a, k) => warm.addArc(a.u, a.v, a.lb, a.ub, [3, 2, 1, 2][k]));
    const w = warm.solve(0, 1);
    expect(c.kind).toBe('cut');
    expect(w.kind).toBe('cut');
    if (c.kind === 'cut' && w.kind === 'cut') {
      expect(w.valueW).toBeCloseTo(c.valueW, 12);
      expect(c.valueW).toBe(bruteMinCut(4, arcs));
    }
  });
});

describe('LowerBoundedMinCut on a frozen topology (freeze / restore / setBounds / disable)', () => {
  it.each(Array.from({ length: 30 }, (_, i) => i + 1))(
    'seed %i: each round equals a fresh build of the arcs kept, bit for bit, warm-started alike',
    (seed) => {
      const n = 7;
      const all = randomArcs(seed, n, 16, true);
      all.push({ u: 0, v: 2, lb: 0, ub: INFINITE_CAPACITY }); // arcs that are not in every round
      all.push({ u: 2, v: 1, lb: 0, ub: INFINITE_CAPACITY }); // make some rounds unbounded
      const r = rng(1000 + seed);
      const frozen = new LowerBoundedMinCut();
      frozen.reset(n);
      const ids = all.map((a) => frozen.addArc(a.u, a.v, 0, 0)); // no flow yet
      frozen.freeze();
      let flows = all.map(() => 0);
      let solved = 0;
      // Rounds until three have ended in a cut (infeasible and unbounded ones compare their kind).
      for (let round = 0; round < 40 && solved < 3; round++) {
        const keep = all.map((a) => r() < (a.ub >= INFINITE_CAPACITY ? 0.3 : 0.75));
        // New bounds each round, as the sweep re-bounds the activities a cut moved.
        const bounds = all.map((a) => {
          const ub = a.ub >= INFINITE_CAPACITY ? a.ub : 1 + Math.floor(r() * 9);
          return { lb: a.lb > 0 ? Math.floor(r() * ub * 0.3) : 0, ub };
        });
        const fresh = new LowerBoundedMinCut();
        fresh.reset(n);
        frozen.restore();
        const freshIds: number[] = [];
        all.forEach((a, k) => {
          const { lb, ub } = bounds[k]!;
          if (keep[k]) {
            freshIds[k] = fresh.addArc(a.u, a.v, lb, ub, flows[k]);
            // Odd rounds: the flow passed as the fresh build gets it; even: the arc's own.
            if (round % 2) frozen.setBounds(ids[k]!, lb, ub, flows[k]);
            else frozen.rebound(ids[k]!, lb, ub);
          } else frozen.disable(ids[k]!);
        });
        const a = fresh.solve(0, 1);
        const b = frozen.solve(0, 1);
        expect(b.kind).toBe(a.kind);
        if (a.kind !== 'cut' || b.kind !== 'cut') continue;
        solved++;
        expect(b.valueW).toBe(a.valueW);
        expect(Array.from(b.sourceSide.subarray(0, n))).toEqual(
          Array.from(a.sourceSide.subarray(0, n)),
        );
        const next = all.map((_, k) => (keep[k] ? fresh.flowOf(freshIds[k]!) : 0));
        expect(all.map((_, k) => frozen.flowOf(ids[k]!))).toEqual(next);
        flows = next;
      }
      expect(solved).toBe(3);
    },
  );
});

/**
 * Hoffman's condition with t→s uncapacitated: a feasible flow exists iff every vertex set X that
 * does not separate t from s (not t∈X, s∉X) has Σ ub into X ≥ Σ lb out of X.
 */
function hasInfeasibleCut(n: number, arcs: Arc[]): boolean {
  for (let mask = 1; mask < (1 << n) - 1; mask++) {
    const inX = (x: number): boolean => ((mask >> x) & 1) === 1;
    if (inX(1) && !inX(0)) continue; // the t→s arc brings unbounded capacity into X
    let capIn = 0;
    let lbOut = 0;
    for (const a of arcs) {
      if (!inX(a.u) && inX(a.v)) capIn += a.ub;
      if (inX(a.u) && !inX(a.v)) lbOut += a.lb;
    }
    if (capIn < lbOut) return true;
  }
  return false;
}
