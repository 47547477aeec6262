import { planEnergy } from './emulator';
import type { ValidInput } from './options';

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

/** Rows of a {@link MilpModel} as they are written, one at a time (CSR). */
export class MilpRows {
  private readonly starts: number[] = [0];
  readonly indices: number[] = [];
  readonly values: number[] = [];
  private readonly lower: number[] = [];
  private readonly upper: number[] = [];

  /** Ends the row of the entries pushed since the last one: lower ≤ row · x ≤ upper. */
  end(lower: number, upper: number): void {
    this.lower.push(lower);
    this.upper.push(upper);
    this.starts.push(this.indices.length);
  }

  /**
   * Rows y_k ≥ y_{k+1} over an instruction's `count` step columns from `first` ("option k or
   * slower" is monotone in k).
   */
  monotoneSteps(first: number, count: number): void {
    for (let c = first; c + 1 < first + count; c++) {
      this.indices.push(c, c + 1);
      this.values.push(1, -1);
      this.end(0, Infinity);
    }
  }

  /**
   * Adds sign·(d − times[lo]) of an instruction to the row being written, where its options
   * lo+1..hi are step columns `first`.. (option k ↦ first + k − lo − 1); returns sign·times[lo],
   * the constant the row's bound must absorb.
   */
  duration(times: Float64Array, first: number, lo: number, hi: number, sign: number): number {
    for (let k = lo + 1; k <= hi; k++) {
      this.indices.push(first + k - lo - 1);
      this.values.push(sign * (times[k]! - times[k - 1]!));
    }
    return sign * times[lo]!;
  }

  /** The model over `cols` with these rows. */
  model(cols: {
    colCost: Float64Array;
    colLower: Float64Array;
    colUpper: Float64Array;
    integrality: Int32Array;
  }): MilpModel {
    const numCols = cols.colCost.length;
    const numRows = this.lower.length;
    return {
      numCols,
      numRows,
      ...cols,
      rowLower: Float64Array.from(this.lower),
      rowUpper: Float64Array.from(this.upper),
      matrix: {
        format: 'csr',
        numRows,
        numCols,
        starts: Int32Array.from(this.starts),
        indices: Int32Array.from(this.indices),
        values: Float64Array.from(this.values),
      },
    };
  }
}

/**
 * Progress of a solve: the incumbent and the proven bound on the objective (a MILP), or the
 * simplex's current objective in `primalBound` and its iterations (a model without integers).
 */
export interface MilpProgress {
  elapsedS: number;
  primalBound: number;
  dualBound: number;
  /** Simplex iterations so far (LP progress only). */
  iterations?: number;
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
      /** A feasible start (column values): the plan to beat. None for an LP. */
      start?: Float64Array;
      /** Wall-clock cap (s): a safety net; `nodeLimit` is what makes a result reproducible. */
      timeLimitS: number;
      relGap: number;
      /**
       * Branch-and-bound nodes after which the solver stops with its best plan: a limit on work,
       * not time, so the answer is the same on a fast and a slow (or loaded) machine.
       */
      nodeLimit?: number;
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
  const rows = new MilpRows();
  const { indices, values } = rows;
  /** Adds sign·(d_i − t_lo) to the row; returns sign·t_lo for the right-hand side. */
  const duration = (i: number, sign: number): number =>
    rows.duration(tables[dag.table[i]!]!.timeS, firstCol[i]!, lo[i]!, hi[i]!, sign);
  for (let i = 0; i < n; i++) {
    rows.monotoneSteps(firstCol[i]!, hi[i]! - lo[i]!);
    // s_i + d_i ≤ T.
    indices.push(startCol[i]!);
    values.push(1);
    const t0 = duration(i, 1);
    rows.end(-Infinity, deadlineS - t0);
    // s_j − s_i − d_i ≥ 0 for every successor j.
    for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
      const j = dag.succ[p]!;
      indices.push(startCol[j]!, startCol[i]!);
      values.push(1, -1);
      const c0 = duration(i, -1);
      rows.end(-c0, Infinity);
    }
  }
  return {
    model: rows.model({ colCost, colLower, colUpper, integrality }),
    firstCol,
    lo,
    hi,
    startCol,
    offsetJ,
  };
}

/** The MILP column values of plan `choice` (start times: earliest starts). */
export function startVector(v: ValidInput, milp: DeadlineMilp, choice: Uint16Array): Float64Array {
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
export function choiceFromColumns(milp: DeadlineMilp, x: Float64Array): Uint16Array {
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
