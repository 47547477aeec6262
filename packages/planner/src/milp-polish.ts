import { planEnergy } from './emulator';
import type { Frontier } from './frontier';
import { validatePlannerInput, type ValidInput } from './options';
import type { FrontierPoint, PlannerInput, StagePlan } from './types';

/**
 * A mixed-integer program in the shape HiGHS takes it (rows in CSR form): minimise colCost·x
 * subject to rowLower ≤ A·x ≤ rowUpper, colLower ≤ x ≤ colUpper, x integer where integrality is 1.
 */
export interface MilpModel {
  numCols: number;
  numRows: number;
  colCost: Float64Array;
  colLower: Float64Array;
  colUpper: Float64Array;
  rowLower: Float64Array;
  rowUpper: Float64Array;
  matrix: {
    format: 'csr';
    numRows: number;
    numCols: number;
    starts: Int32Array;
    indices: Int32Array;
    values: Float64Array;
  };
  integrality: Int32Array;
}

/** Progress of a MILP solve: the incumbent and the proven bound on the objective. */
export interface MilpProgress {
  elapsedS: number;
  primalBound: number;
  dualBound: number;
}

/** What a {@link MilpSolver} returns. */
export interface MilpOutcome {
  /** `optimal`: gap closed; `stopped`: time limit or interrupt; `failed`: no usable answer. */
  status: 'optimal' | 'stopped' | 'infeasible' | 'failed';
  /** Best solution found (column values), or null. */
  colValue: Float64Array | null;
  /** Proven lower bound on the objective (−Infinity if none). */
  dualBound: number;
}

/**
 * A MILP solver, injected so the planner stays free of WASM loading (the CLI and the optimizer
 * wrap the `highs` package's persistent model: `highsMilpSolver` in @perseus/cli).
 */
export interface MilpSolver {
  solve(
    model: MilpModel,
    options: {
      /** A feasible start (column values): the plan to beat. */
      start: Float64Array;
      timeLimitS: number;
      relGap: number;
      /** Polled by the solver; true stops it with the best plan so far (cancellation). */
      shouldStop?: () => boolean;
      onProgress?: (p: MilpProgress) => void;
    },
  ): MilpOutcome;
}

/** Per node, the range [lo, hi] of option indices the MILP may choose from. */
export interface OptionRange {
  lo: Uint16Array;
  hi: Uint16Array;
}

/** The deadline MILP and where each node's columns are. */
export interface DeadlineMilp {
  model: MilpModel;
  /**
   * First step column of node i: column firstCol[i] + (k − lo[i] − 1) is 1 iff the node runs at
   * option k or slower (k in (lo, hi]).
   */
  firstCol: Int32Array;
  lo: Uint16Array;
  hi: Uint16Array;
  /** Column of node i's start time. */
  startCol: Int32Array;
  /** Add to the objective for energy (J): Σ effective energy at lo + P_b·N·T. */
  offsetJ: number;
}

/**
 * The exact problem at iteration time `deadlineS`. Each instruction's options (Pareto-optimal in
 * time and effective energy, so no optimum is lost; only those in `range` when given) are modelled
 * incrementally: binary step k says "option k or slower", steps are monotone, the duration is the
 * fastest time plus the steps taken, the cost the fastest option's effective energy minus the
 * savings of the steps. Branching on a step then halves an instruction's clock range instead of
 * excluding one clock (the assignment model), which is what makes the search tree shallow. Starts
 * respect the DAG and everything ends by the deadline.
 */
export function buildDeadlineMilp(
  v: ValidInput,
  deadlineS: number,
  range?: OptionRange,
): DeadlineMilp {
  const { dag, tables } = v;
  const n = dag.numNodes;
  const lo = new Uint16Array(n);
  const hi = new Uint16Array(n);
  const firstCol = new Int32Array(n);
  const startCol = new Int32Array(n);
  let cols = 0;
  let offsetJ = v.blockingPowerW * dag.numStages * deadlineS;
  for (let i = 0; i < n; i++) {
    const tb = tables[dag.table[i]!]!;
    lo[i] = range?.lo[i] ?? 0;
    hi[i] = range?.hi[i] ?? tb.timeS.length - 1;
    firstCol[i] = cols;
    cols += hi[i]! - lo[i]!;
    startCol[i] = cols++;
    offsetJ += tb.effectiveJ[lo[i]!]!;
  }
  const colCost = new Float64Array(cols);
  const colLower = new Float64Array(cols);
  const colUpper = new Float64Array(cols);
  const integrality = new Int32Array(cols);
  for (let i = 0; i < n; i++) {
    const tb = tables[dag.table[i]!]!;
    for (let k = lo[i]! + 1; k <= hi[i]!; k++) {
      const c = firstCol[i]! + k - lo[i]! - 1;
      colCost[c] = tb.effectiveJ[k]! - tb.effectiveJ[k - 1]!;
      colUpper[c] = 1;
      integrality[c] = 1;
    }
    colUpper[startCol[i]!] = deadlineS;
  }
  const starts: number[] = [0];
  const indices: number[] = [];
  const values: number[] = [];
  const rowLower: number[] = [];
  const rowUpper: number[] = [];
  /** Adds sign·(d_i − t_lo) to the row; returns sign·t_lo for the right-hand side. */
  const duration = (i: number, sign: number): number => {
    const tb = tables[dag.table[i]!]!;
    for (let k = lo[i]! + 1; k <= hi[i]!; k++) {
      indices.push(firstCol[i]! + k - lo[i]! - 1);
      values.push(sign * (tb.timeS[k]! - tb.timeS[k - 1]!));
    }
    return sign * tb.timeS[lo[i]!]!;
  };
  const endRow = (lower: number, upper: number): void => {
    rowLower.push(lower);
    rowUpper.push(upper);
    starts.push(indices.length);
  };
  for (let i = 0; i < n; i++) {
    // Steps are monotone: y_k ≥ y_{k+1}.
    for (let k = lo[i]! + 1; k < hi[i]!; k++) {
      const c = firstCol[i]! + k - lo[i]! - 1;
      indices.push(c, c + 1);
      values.push(1, -1);
      endRow(0, Infinity);
    }
    // s_i + d_i ≤ T.
    indices.push(startCol[i]!);
    values.push(1);
    const t0 = duration(i, 1);
    endRow(-Infinity, deadlineS - t0);
    // s_j − s_i − d_i ≥ 0 for every successor j.
    for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
      const j = dag.succ[p]!;
      indices.push(startCol[j]!, startCol[i]!);
      values.push(1, -1);
      const c0 = duration(i, -1);
      endRow(-c0, Infinity);
    }
  }
  const numRows = rowLower.length;
  return {
    model: {
      numCols: cols,
      numRows,
      colCost,
      colLower,
      colUpper,
      rowLower: Float64Array.from(rowLower),
      rowUpper: Float64Array.from(rowUpper),
      matrix: {
        format: 'csr',
        numRows,
        numCols: cols,
        starts: Int32Array.from(starts),
        indices: Int32Array.from(indices),
        values: Float64Array.from(values),
      },
      integrality,
    },
    firstCol,
    lo,
    hi,
    startCol,
    offsetJ,
  };
}

/** The MILP column values of plan `choice` (start times: earliest starts). */
function startVector(v: ValidInput, milp: DeadlineMilp, choice: Uint16Array): Float64Array {
  const { dag, tables } = v;
  const x0 = new Float64Array(milp.model.numCols);
  const finish = new Float64Array(dag.numNodes);
  evaluateChoice(v, choice, finish);
  for (let i = 0; i < dag.numNodes; i++) {
    for (let k = milp.lo[i]! + 1; k <= choice[i]!; k++)
      x0[milp.firstCol[i]! + k - milp.lo[i]! - 1] = 1;
    x0[milp.startCol[i]!] = finish[i]! - tables[dag.table[i]!]!.timeS[choice[i]!]!;
  }
  return x0;
}

/** The plan in MILP column values `x`. */
function choiceFromColumns(milp: DeadlineMilp, x: Float64Array): Uint16Array {
  const n = milp.lo.length;
  const choice = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    let k = milp.lo[i]!;
    while (k < milp.hi[i]! && x[milp.firstCol[i]! + k - milp.lo[i]!]! > 0.5) k++;
    choice[i] = k;
  }
  return choice;
}

/** Longest path and energy of an option choice (the emulator on option indices). */
export function evaluateChoice(
  v: ValidInput,
  choice: Uint16Array,
  finish: Float64Array = new Float64Array(v.dag.numNodes),
): { timeS: number; energyJ: number } {
  const { dag, tables } = v;
  let makespan = 0;
  let sumE = 0;
  let sumT = 0;
  for (let i = 0; i < dag.numNodes; i++) {
    const tb = tables[dag.table[i]!]!;
    const t = tb.timeS[choice[i]!]!;
    let s = 0;
    for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++)
      s = Math.max(s, finish[dag.pred[p]!]!);
    finish[i] = s + t;
    makespan = Math.max(makespan, finish[i]!);
    sumE += tb.energyJ[choice[i]!]!;
    sumT += t;
  }
  return {
    timeS: makespan,
    energyJ: planEnergy(dag.numStages, v.blockingPowerW, makespan, sumE, sumT),
  };
}

/** Options of {@link polishAtDeadline}. */
export interface PolishOptions {
  /** Wall-clock budget of the MILP (s). Default 10. */
  timeLimitS?: number;
  /** Relative MIP gap at which the solver may stop. Default 1e-6. */
  relGap?: number;
  /** Cancellation: polled during the solve; true stops it with the best plan so far. */
  shouldStop?: () => boolean;
  /** Incumbent and proven bound, both as energy (J), now and then. */
  onProgress?: (p: { elapsedS: number; energyJ: number; boundJ: number }) => void;
}

/** What {@link polishAtDeadline} found. */
export interface PolishResult {
  /** Option index per node, no worse than the start plan. */
  choice: Uint16Array;
  timeS: number;
  energyJ: number;
  /** Energy (J) below which no plan meets the deadline, proven by the MILP (−Infinity if none). */
  boundJ: number;
  status: MilpOutcome['status'];
  /** Whether the MILP found a better plan than the start. */
  improved: boolean;
}

/**
 * Exact polish of the plan deployed at `deadlineS` (the all-max time, or a straggler's T′): the
 * deadline MILP over every planner option, warm-started from `start`, under a time budget and
 * cancellation. Keeps the solver's plan only if the emulator confirms it meets the deadline
 * (within 1e-7 relative, the solver's feasibility tolerance) with less energy than `start`.
 */
export function polishAtDeadline(
  v: ValidInput,
  deadlineS: number,
  start: Uint16Array,
  solver: MilpSolver,
  options: PolishOptions = {},
): PolishResult {
  const base = evaluateChoice(v, start);
  const milp = buildDeadlineMilp(v, Math.max(deadlineS, base.timeS));
  const x0 = startVector(v, milp, start);
  const onProgress = options.onProgress;
  const out = solver.solve(milp.model, {
    start: x0,
    timeLimitS: options.timeLimitS ?? 10,
    relGap: options.relGap ?? 1e-6,
    ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
    ...(onProgress
      ? {
          onProgress: (p: MilpProgress) =>
            onProgress({
              elapsedS: p.elapsedS,
              energyJ: p.primalBound + milp.offsetJ,
              boundJ: p.dualBound + milp.offsetJ,
            }),
        }
      : {}),
  });
  const result: PolishResult = {
    choice: Uint16Array.from(start),
    timeS: base.timeS,
    energyJ: base.energyJ,
    boundJ: out.dualBound + milp.offsetJ,
    status: out.status,
    improved: false,
  };
  if (!Number.isFinite(result.boundJ)) result.boundJ = -Infinity;
  if (out.colValue === null) return result;
  const choice = choiceFromColumns(milp, out.colValue);
  const r = evaluateChoice(v, choice);
  if (r.timeS <= deadlineS * (1 + 1e-7) && r.energyJ < base.energyJ - 1e-9) {
    result.choice = choice;
    result.timeS = r.timeS;
    result.energyJ = r.energyJ;
    result.improved = true;
  }
  return result;
}

/** The deployed point at one deadline after the exact polish, with its certified gap. */
export interface ExactDeadlineResult {
  /** The frontier with the polished plan in it (the same frontier if the polish found nothing better). */
  frontier: Frontier;
  deadlineS: number;
  point: FrontierPoint;
  plan: StagePlan[];
  /**
   * Proven lower bound (J) on the energy of any plan when the iteration lasts `deadlineS`: the
   * larger of the LP relaxation's optimum and the MILP's dual bound.
   */
  boundJ: number;
  boundSource: 'lp' | 'milp';
  /**
   * Certified gap in percentage points of the all-max energy: the saving of the best possible plan
   * is at most the plan's saving plus this.
   */
  gapPp: number;
  /** Saving vs the all-max plan, % (emulated on the measured options). */
  savingPct: number;
  polish: Pick<PolishResult, 'status' | 'improved'> & {
    seconds: number;
    /** Exact sub-problems of the neighbourhood search. */
    subproblems: number;
  };
}

/** Share of {@link exactAtDeadline}'s budget for the neighbourhood search. */
const NEIGHBOURHOOD_SHARE = 0.75;

/**
 * Above this many instructions the whole MILP is skipped: its root LP and cut rounds run in
 * phases where HiGHS checks no time limit (2–4× over a 30 s budget at 768 and 1,536 instructions
 * on the shared box) and its dual bound never beat the LP relaxation there.
 */
const WHOLE_MILP_MAX_NODES = 400;

/** Option index of each DAG node in `plan` (the inverse of a frontier's decoding). */
function choiceOf(v: ValidInput, plan: StagePlan[]): Uint16Array {
  const { dag, tables } = v;
  const choice = new Uint16Array(dag.numNodes);
  plan.forEach((sp, s) =>
    sp.instructions.forEach((ins, j) => {
      const node = dag.stageNodes[s]![j]!;
      choice[node] = tables[dag.table[node]!]!.frequencyMhz.indexOf(ins.frequencyMhz);
    }),
  );
  return choice;
}

/**
 * Makes the plan deployed at `deadlineS` (the all-max time for the intrinsic plan, or a
 * straggler's T′) exact within the budget (`timeLimitS`, default 10 s): the neighbourhood search
 * ({@link neighbourhoodPolish}) from the frontier's plan there, then the whole deadline MILP
 * ({@link polishAtDeadline}) from its result (pipelines of ≤ 400 instructions), and certifies the
 * plan against the best proven bound. The other points of the frontier are left as they are.
 */
export function exactAtDeadline(
  frontier: Frontier,
  input: PlannerInput,
  deadlineS: number,
  solver: MilpSolver,
  options: PolishOptions = {},
): ExactDeadlineResult {
  const v = validatePlannerInput(input);
  const started = performance.now();
  const budgetS = options.timeLimitS ?? 10;
  const current = frontier.planFor(deadlineS);
  // Most of the budget goes to exact sub-problems (where HiGHS is fast), the rest to the whole
  // MILP from the best plan found: it proves the bound and may still improve the plan.
  const whole = v.dag.numNodes <= WHOLE_MILP_MAX_NODES;
  const lns = neighbourhoodPolish(v, deadlineS, choiceOf(v, current.plan), solver, {
    timeLimitS: whole ? budgetS * NEIGHBOURHOOD_SHARE : budgetS,
    ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
    ...(options.onProgress
      ? {
          onProgress: (p: { elapsedS: number; energyJ: number }) =>
            options.onProgress?.({ ...p, boundJ: frontier.lowerBoundJ(deadlineS) }),
        }
      : {}),
  });
  const spentS = (performance.now() - started) / 1000;
  const polished: PolishResult = whole
    ? polishAtDeadline(v, deadlineS, lns.choice, solver, {
        ...options,
        timeLimitS: Math.max(budgetS - spentS, budgetS * (1 - NEIGHBOURHOOD_SHARE)),
      })
    : { ...lns, boundJ: -Infinity, status: 'stopped', improved: false };
  const seconds = (performance.now() - started) / 1000;
  const improved = polished.energyJ < current.point.energyJ - 1e-9;
  const next = improved
    ? frontier.withPlan(polished.choice, polished.timeS, polished.energyJ)
    : frontier;
  const { point, plan } = next.planFor(deadlineS);
  // Energy if the iteration lasts the whole deadline (a faster plan idles at P_b until then).
  const paddedJ =
    point.energyJ + v.blockingPowerW * v.dag.numStages * Math.max(0, deadlineS - point.timeS);
  const lpJ = frontier.lowerBoundJ(deadlineS);
  const milpJ = polished.boundJ;
  const boundJ = Math.min(paddedJ, Math.max(lpJ, milpJ));
  const allMaxJ = frontier.allMax.energyJ;
  return {
    frontier: next,
    deadlineS,
    point,
    plan,
    boundJ,
    boundSource: milpJ > lpJ ? 'milp' : 'lp',
    gapPp: ((paddedJ - boundJ) / allMaxJ) * 100,
    savingPct: (1 - point.energyJ / allMaxJ) * 100,
    polish: { status: polished.status, improved, seconds, subproblems: lns.subproblems },
  };
}

/** Options of {@link neighbourhoodPolish}. */
export interface NeighbourhoodOptions {
  /** Wall-clock budget of the whole search (s). */
  timeLimitS: number;
  /** Instructions freed per sub-problem at first; ×1.5 after each pass without improvement. Default 24. */
  windowNodes?: number;
  /** Budget of one sub-problem (s). Default 1. */
  stepLimitS?: number;
  shouldStop?: () => boolean;
  onProgress?: (p: { elapsedS: number; energyJ: number }) => void;
}

/**
 * Large-neighbourhood search with exact sub-problems: repeatedly frees the clocks of a window of
 * instructions that run close together in time (the rest keep their clocks; every start time
 * stays free) and solves that deadline MILP exactly, warm-started from the current plan; keeps
 * each emulator-confirmed improvement. The windows slide over the schedule by half a window; a
 * pass without improvement makes them larger; the search stops at the budget (or when the window
 * is the whole pipeline and found nothing). Small sub-problems are where
 * the MILP solver is fast; the full problem only certifies.
 */
export function neighbourhoodPolish(
  v: ValidInput,
  deadlineS: number,
  start: Uint16Array,
  solver: MilpSolver,
  options: NeighbourhoodOptions,
): { choice: Uint16Array; timeS: number; energyJ: number; subproblems: number } {
  const { dag, tables } = v;
  const n = dag.numNodes;
  const began = performance.now();
  const elapsed = (): number => (performance.now() - began) / 1000;
  let size = Math.min(n, options.windowNodes ?? 24);
  const choice = Uint16Array.from(start);
  let best = evaluateChoice(v, choice);
  const finish = new Float64Array(n);
  const lo = new Uint16Array(n);
  const hi = new Uint16Array(n);
  const order = new Int32Array(n);
  let subproblems = 0;
  let sinceImproved = 0;
  let offset = 0;
  const windowsOf = (k: number): number => Math.max(1, Math.ceil((2 * n) / k) - 1);
  while (elapsed() < options.timeLimitS && !options.shouldStop?.()) {
    if (sinceImproved >= windowsOf(size)) {
      // A whole pass found nothing: this neighbourhood is exhausted, free bigger windows.
      if (size === n) break;
      size = Math.min(n, Math.ceil(size * 1.5));
      sinceImproved = 0;
    }
    // Instructions by start time in the current plan; the window is a run of them.
    evaluateChoice(v, choice, finish);
    for (let i = 0; i < n; i++) order[i] = i;
    const startOf = (i: number): number => finish[i]! - tables[dag.table[i]!]!.timeS[choice[i]!]!;
    order.sort((a, b) => startOf(a) - startOf(b) || a - b);
    const first = Math.min(offset, n - size);
    lo.set(choice);
    hi.set(choice);
    for (let w = first; w < first + size; w++) {
      const i = order[w]!;
      lo[i] = 0;
      hi[i] = tables[dag.table[i]!]!.timeS.length - 1;
    }
    offset = first + size >= n ? 0 : offset + (size >> 1);
    const milp = buildDeadlineMilp(v, Math.max(deadlineS, best.timeS), { lo, hi });
    const x0 = startVector(v, milp, choice);
    const out = solver.solve(milp.model, {
      start: x0,
      timeLimitS: Math.min(options.stepLimitS ?? 1, Math.max(0.1, options.timeLimitS - elapsed())),
      relGap: 1e-7,
      ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
    });
    subproblems++;
    sinceImproved++;
    if (out.colValue === null) continue;
    const next = choiceFromColumns(milp, out.colValue);
    const r = evaluateChoice(v, next);
    if (r.timeS <= deadlineS * (1 + 1e-7) && r.energyJ < best.energyJ - 1e-9) {
      choice.set(next);
      best = r;
      sinceImproved = 0;
      options.onProgress?.({ elapsedS: elapsed(), energyJ: r.energyJ });
    }
  }
  return { choice, timeS: best.timeS, energyJ: best.energyJ, subproblems };
}
