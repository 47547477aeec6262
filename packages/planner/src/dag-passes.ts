import type { PipelineDag } from './schedule';

// Module bindings, not global lookups: under jest's vm context every access to a global (Math)
// is intercepted and hot loops run ~25x slower.
const { max } = Math;

/**
 * Latest start of every node such that every path from it ends by `budgetS` (one backward pass in
 * reverse topological order). The forward pass (earliest finishes) is the emulator's `longestPath`.
 */
export function latestStarts(
  dag: PipelineDag,
  timeS: Float64Array,
  budgetS: number,
  latestStart: Float64Array,
): void {
  const { succStart, succ } = dag;
  for (let i = dag.numNodes - 1; i >= 0; i--) {
    let lf = budgetS;
    // A comparison, not Math.min: this is the sweep's hottest pass and min's NaN/±0 handling costs
    // time (the values are finite, and ±0 alike give the same difference below).
    for (let p = succStart[i]!; p < succStart[i + 1]!; p++) {
      const ls = latestStart[succ[p]!]!;
      if (ls < lf) lf = ls;
    }
    latestStart[i] = lf - timeS[i]!;
  }
}

/** Longest path from each node's start to the end of the DAG (the node's own time included). */
export function tailLengths(dag: PipelineDag, timeS: Float64Array, tail: Float64Array): void {
  const { succStart, succ } = dag;
  for (let i = dag.numNodes - 1; i >= 0; i--) {
    let tl = 0;
    for (let p = succStart[i]!; p < succStart[i + 1]!; p++) tl = max(tl, tail[succ[p]!]!);
    tail[i] = tl + timeS[i]!;
  }
}
