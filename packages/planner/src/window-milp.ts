import { MilpRows, type MilpModel } from './deadline-milp';
import type { ValidInput } from './options';

/** The deadline MILP reduced to a window of free instructions, and where their columns are. */
export interface WindowMilp {
  model: MilpModel;
  /** The window's DAG nodes, ascending (a topological order). */
  nodes: Int32Array;
  /**
   * First step column of window node w (= `nodes[w]`): column firstCol[w] + k − 1 is 1 iff the
   * node runs at option k or slower (1 ≤ k ≤ slowest[w]).
   */
  firstCol: Int32Array;
  /**
   * Slowest option of window node w that fits: the time between its earliest start and latest
   * finish with every other window node at its fastest option. Slower ones get no column.
   */
  slowest: Uint16Array;
  /** Column of window node w's start time. */
  startCol: Int32Array;
  /** The column values of the plan the window was cut from (start times: earliest starts). */
  start: Float64Array;
  /** Add to the objective for the energy (J) of the deadline MILP at the same deadline. */
  offsetJ: number;
}

/**
 * The deadline MILP ({@link buildDeadlineMilp}) with every instruction outside `window` at its
 * clock in `choice`, as a model over the window alone, with the same optimum (its objective is
 * the full model's minus a constant). With the outside clocks fixed, a schedule meets the deadline
 * iff, for window nodes u and v,
 *   s_v ≥ head(v)                    (longest path from the pipeline's start to v through fixed nodes),
 *   s_v ≥ s_u + d_u + L(u, v)        (longest path from u's end to v's start through fixed nodes, 0
 *                                     for a direct edge; no row without such a path),
 *   s_u + d_u + tail(u) ≤ T          (longest path from u's end to the pipeline's end through fixed nodes),
 * and the longest path through fixed nodes alone is ≤ T (true for `choice` when T is at least its
 * iteration time): a path through window nodes is a chain of these pieces, and the fixed nodes
 * start as early as the window allows. Pair rows implied by a chain through a third window node
 * at its fastest option are left out. So a sub-problem of the neighbourhood search costs the
 * window's size, not the pipeline's, in the solver; building it is a few linear passes over the
 * DAG (node ids are a topological order). Steps are encoded as in the full model ("option k or
 * slower", monotone), which keeps branching shallow.
 */
export function buildWindowMilp(
  v: ValidInput,
  deadlineS: number,
  choice: Uint16Array,
  window: ArrayLike<number>,
): WindowMilp {
  const { dag, tables } = v;
  const n = dag.numNodes;
  const nodes = Int32Array.from(window).sort();
  const w = nodes.length;
  const slot = new Int32Array(n).fill(-1);
  nodes.forEach((i, k) => {
    if (slot[i] !== -1) throw new Error(`window lists node ${i} twice`);
    slot[i] = k;
  });
  const dur = (i: number): number => tables[dag.table[i]!]!.timeS[choice[i]!]!;
  const first = w > 0 ? nodes[0]! : 0;
  const last = w > 0 ? nodes[w - 1]! : -1;

  // head: forward pass up to the last window node, window nodes blocking.
  const headEnd = new Float64Array(n);
  const head = new Float64Array(w);
  for (let i = 0; i <= last; i++) {
    let s = 0;
    for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++) {
      const q = dag.pred[p]!;
      if (slot[q] === -1 && headEnd[q]! > s) s = headEnd[q]!;
    }
    if (slot[i] === -1) headEnd[i] = s + dur(i);
    else head[slot[i]!] = s;
  }
  // tail: backward pass down to the first window node.
  const tailStart = new Float64Array(n);
  const tail = new Float64Array(w);
  for (let i = n - 1; i >= first; i--) {
    let t = 0;
    for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
      const q = dag.succ[p]!;
      if (slot[q] === -1 && tailStart[q]! > t) t = tailStart[q]!;
    }
    if (slot[i] === -1) tailStart[i] = t + dur(i);
    else tail[slot[i]!] = t;
  }
  // L(a, ·): one forward pass from each window node a over the ids up to the last window node.
  const gap = new Float64Array(w * w).fill(-Infinity);
  // From u's end to i's start; −∞: no path (nodes before u included: a pass may see them).
  const reach = new Float64Array(n).fill(-Infinity);
  for (let a = 0; a < w; a++) {
    const u = nodes[a]!;
    if (a > 0) reach.fill(-Infinity, first, last + 1);
    for (let i = u + 1; i <= last; i++) {
      let s = -Infinity;
      for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++) {
        const q = dag.pred[p]!;
        if (q === u) s = Math.max(s, 0);
        else if (slot[q] === -1 && reach[q]! > -Infinity) s = Math.max(s, reach[q]! + dur(q));
      }
      if (slot[i] === -1) reach[i] = s;
      else gap[a * w + slot[i]!] = s;
    }
  }

  // Earliest starts and latest finishes with every window node at its fastest option: no option
  // longer than the time between them can be part of a plan that meets the deadline.
  const fastest = (a: number): number => tables[dag.table[nodes[a]!]!]!.timeS[0]!;
  const earliest = Float64Array.from(head);
  const latest = new Float64Array(w);
  for (let a = 0; a < w; a++)
    for (let b = 0; b < a; b++) {
      const l = gap[b * w + a]!;
      if (l > -Infinity) earliest[a] = Math.max(earliest[a]!, earliest[b]! + fastest(b) + l);
    }
  for (let a = w - 1; a >= 0; a--) {
    latest[a] = deadlineS - tail[a]!;
    for (let b = a + 1; b < w; b++) {
      const l = gap[a * w + b]!;
      if (l > -Infinity) latest[a] = Math.min(latest[a]!, latest[b]! - fastest(b) - l);
    }
  }
  // Columns: per window node its steps, then its start.
  const firstCol = new Int32Array(w);
  const startCol = new Int32Array(w);
  const slowest = new Uint16Array(w);
  let cols = 0;
  for (let a = 0; a < w; a++) {
    const i = nodes[a]!;
    const t = tables[dag.table[i]!]!.timeS;
    // Rounding aside: an option that fits exactly keeps its column.
    const room = latest[a]! - earliest[a]! + 1e-9 * deadlineS;
    let k = choice[i]!;
    while (k + 1 < t.length && t[k + 1]! <= room) k++;
    slowest[a] = k;
    firstCol[a] = cols;
    cols += k;
    startCol[a] = cols++;
  }
  let offsetJ = v.blockingPowerW * dag.numStages * deadlineS;
  for (let i = 0; i < n; i++)
    offsetJ += tables[dag.table[i]!]!.effectiveJ[slot[i] === -1 ? choice[i]! : 0]!;
  const colCost = new Float64Array(cols);
  const colLower = new Float64Array(cols);
  const colUpper = new Float64Array(cols);
  const integrality = new Int32Array(cols);
  const start = new Float64Array(cols);
  for (let a = 0; a < w; a++) {
    const i = nodes[a]!;
    const tb = tables[dag.table[i]!]!;
    for (let k = 1; k <= slowest[a]!; k++) {
      const c = firstCol[a]! + k - 1;
      colCost[c] = tb.effectiveJ[k]! - tb.effectiveJ[k - 1]!;
      colUpper[c] = 1;
      integrality[c] = 1;
      if (k <= choice[i]!) start[c] = 1;
    }
    colLower[startCol[a]!] = head[a]!;
    colUpper[startCol[a]!] = deadlineS;
    // Earliest start in `choice`: its longest path's last window node is some b < a, or none.
    let s = head[a]!;
    for (let b = 0; b < a; b++) {
      const l = gap[b * w + a]!;
      if (l > -Infinity) s = Math.max(s, start[startCol[b]!]! + dur(nodes[b]!) + l);
    }
    start[startCol[a]!] = s;
  }

  const rows = new MilpRows();
  const { indices, values } = rows;
  /** Adds sign·(d − fastest time) of window node a to the row; returns sign·fastest time. */
  const duration = (a: number, sign: number): number =>
    rows.duration(tables[dag.table[nodes[a]!]!]!.timeS, firstCol[a]!, 0, slowest[a]!, sign);
  for (let a = 0; a < w; a++) {
    rows.monotoneSteps(firstCol[a]!, slowest[a]!);
    // s_a + d_a + tail(a) ≤ T.
    indices.push(startCol[a]!);
    values.push(1);
    const t0 = duration(a, 1);
    rows.end(-Infinity, deadlineS - tail[a]! - t0);
    for (let b = a + 1; b < w; b++) {
      const l = gap[a * w + b]!;
      if (l === -Infinity) continue;
      // Implied by a → c → b with c at its fastest option (c's rows are there or implied too).
      let implied = false;
      for (let c = a + 1; c < b && !implied; c++) {
        const l1 = gap[a * w + c]!;
        const l2 = gap[c * w + b]!;
        implied = l1 > -Infinity && l2 > -Infinity && l1 + fastest(c) + l2 >= l;
      }
      if (implied) continue;
      // s_b − s_a − d_a ≥ L(a, b).
      indices.push(startCol[b]!, startCol[a]!);
      values.push(1, -1);
      const c0 = duration(a, -1);
      rows.end(l - c0, Infinity);
    }
  }
  return {
    model: rows.model({ colCost, colLower, colUpper, integrality }),
    nodes,
    firstCol,
    slowest,
    startCol,
    start,
    offsetJ,
  };
}

/** `choice` with the window's clocks read from the column values `x` of its {@link WindowMilp}. */
export function choiceWithWindow(
  milp: WindowMilp,
  choice: Uint16Array,
  x: Float64Array,
): Uint16Array {
  const out = Uint16Array.from(choice);
  milp.nodes.forEach((i, a) => {
    let k = 0;
    while (k < milp.slowest[a]! && x[milp.firstCol[a]! + k]! > 0.5) k++;
    out[i] = k;
  });
  return out;
}
