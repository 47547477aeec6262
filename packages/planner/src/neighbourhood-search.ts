import { evaluateChoice, type MilpSolver } from './deadline-milp';
import type { ValidInput } from './options';
import { buildWindowMilp, choiceWithWindow } from './window-milp';

/** Options of {@link neighbourhoodPolish}. */
export interface NeighbourhoodOptions {
  /** Wall-clock cap of the whole search (s): a safety net, the search stops on its own first. */
  timeLimitS: number;
  /** Instructions freed per sub-problem at first. Default 24. */
  windowNodes?: number;
  /**
   * Largest window: windows grow ×1.5 after a pass without improvement, and a pass without
   * improvement at this size ends the search (converged). Default 1.5 × `windowNodes`.
   */
  maxWindowNodes?: number;
  /**
   * Branch-and-bound nodes per sub-problem. Default 200: the sub-problems that improve a GPT-3
   * plan close their gap within it, the ones that would not run for seconds without it.
   */
  nodeLimit?: number;
  /**
   * Wall-clock cap of one sub-problem (s): a safety net above what the node limit takes on a
   * loaded machine (a sub-problem stopped by it makes the search depend on the machine). Default 5.
   */
  stepLimitS?: number;
  /**
   * Sub-problems at most (default: no limit): a limit on work, so a search stopped by it gives
   * the same plan on any machine.
   */
  maxSubproblems?: number;
  shouldStop?: () => boolean;
  /** After every sub-problem: the best plan's energy so far. */
  onProgress?: (p: { elapsedS: number; energyJ: number; subproblems: number }) => void;
}

/** What {@link neighbourhoodPolish} found. */
export interface NeighbourhoodResult {
  choice: Uint16Array;
  timeS: number;
  energyJ: number;
  subproblems: number;
  /** A pass at the largest window found nothing: the search ended on its own, not at a limit. */
  converged: boolean;
}

/**
 * Large-neighbourhood search with exact sub-problems: repeatedly frees the clocks of a window of
 * instructions that run close together in time (the rest keep their clocks; every start time
 * stays free) and solves that deadline MILP, warm-started from the current plan; keeps each
 * emulator-confirmed improvement. Each sub-problem is the MILP reduced to the window
 * ({@link buildWindowMilp}: the fixed instructions become longest-path constants), so it costs
 * the window's size, not the pipeline's. The windows slide over the schedule by half a window; a
 * pass without improvement makes them larger, one at the largest size ends the search. Every
 * sub-problem is limited in branch-and-bound nodes, so the search does the same work, and finds
 * the same plan, on any machine; the wall-clock caps only cut it short on a very slow one. Small
 * sub-problems are where the MILP solver is fast; the full problem only certifies.
 */
export function neighbourhoodPolish(
  v: ValidInput,
  deadlineS: number,
  start: Uint16Array,
  solver: MilpSolver,
  options: NeighbourhoodOptions,
): NeighbourhoodResult {
  const { dag, tables } = v;
  const n = dag.numNodes;
  const began = performance.now();
  const elapsed = (): number => (performance.now() - began) / 1000;
  let size = Math.min(n, options.windowNodes ?? 24);
  const maxSize = Math.min(n, Math.max(size, options.maxWindowNodes ?? Math.ceil(size * 1.5)));
  const choice = Uint16Array.from(start);
  let best = evaluateChoice(v, choice);
  const finish = new Float64Array(n);
  const order = new Int32Array(n);
  let orderStale = true;
  let subproblems = 0;
  let sinceImproved = 0;
  let offset = 0;
  let converged = false;
  const windowsOf = (k: number): number => Math.max(1, Math.ceil((2 * n) / k) - 1);
  const maxSubproblems = options.maxSubproblems ?? Infinity;
  while (
    subproblems < maxSubproblems &&
    elapsed() < options.timeLimitS &&
    options.shouldStop?.() !== true
  ) {
    if (sinceImproved >= windowsOf(size)) {
      // A whole pass found nothing: this neighbourhood is exhausted, free bigger windows.
      if (size >= maxSize) {
        converged = true;
        break;
      }
      size = Math.min(maxSize, Math.ceil(size * 1.5));
      sinceImproved = 0;
      offset = 0;
    }
    if (orderStale) {
      // Instructions by start time in the current plan; the window is a run of them.
      evaluateChoice(v, choice, finish);
      for (let i = 0; i < n; i++) order[i] = i;
      const startOf = (i: number): number => finish[i]! - tables[dag.table[i]!]!.timeS[choice[i]!]!;
      order.sort((a, b) => startOf(a) - startOf(b) || a - b);
      orderStale = false;
    }
    const first = Math.min(offset, n - size);
    offset = first + size >= n ? 0 : offset + (size >> 1);
    // Only the window's clocks are free: the reduced model is exact and window-sized.
    const window = order.subarray(first, first + size);
    const milp = buildWindowMilp(v, Math.max(deadlineS, best.timeS), choice, window);
    const out = solver.solve(milp.model, {
      start: milp.start,
      timeLimitS: Math.min(options.stepLimitS ?? 5, Math.max(0.1, options.timeLimitS - elapsed())),
      relGap: 1e-7,
      nodeLimit: options.nodeLimit ?? 200,
      ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
    });
    subproblems++;
    sinceImproved++;
    if (out.colValue !== null) {
      const next = choiceWithWindow(milp, choice, out.colValue);
      const r = evaluateChoice(v, next);
      if (r.timeS <= deadlineS * (1 + 1e-7) && r.energyJ < best.energyJ - 1e-9) {
        choice.set(next);
        best = r;
        sinceImproved = 0;
        orderStale = true;
      }
    }
    options.onProgress?.({ elapsedS: elapsed(), energyJ: best.energyJ, subproblems });
  }
  return { choice, timeS: best.timeS, energyJ: best.energyJ, subproblems, converged };
}
