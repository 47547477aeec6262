import { MilpRows, type MilpModel, type MilpProgress, type MilpSolver } from './deadline-milp';
import { PlannerInputError } from './errors';
import { validatePlannerInput, type ValidInput } from './options';
import type { PlannerInput } from './types';

/**
 * An LP solver that reads CPLEX LP text — the shape of the `highs` npm package's instance
 * (`await require('highs')()`), injected so the planner stays free of WASM loading and I/O.
 */
export interface LpSolver {
  solve(
    problem: string,
    options?: Record<string, unknown>,
  ): { Status: string; ObjectiveValue: number };
}

/** Options of {@link lpLowerBound}. */
export interface LpOptions {
  /**
   * `all` (default): every measured option, independent of the planner's own filtering. `hull`:
   * only the lower-convex-hull vertices of each instruction's options — the same optimum (the
   * relaxation's cost is that hull), an LP a few times smaller for large pipelines.
   */
  vertices?: 'all' | 'hull';
}

function term(coef: number, name: string): string {
  return coef < 0 ? ` - ${-coef} ${name}` : ` + ${coef} ${name}`;
}

/**
 * The LP relaxation at iteration time `timeS` in CPLEX LP format: each instruction picks a convex
 * combination of ALL its measured options (the convex hull), start times respect the DAG, every
 * instruction ends by `timeS`; the objective is Σ (e − P_b·t) (add P_b·N·T for energy).
 */
export function buildLowerBoundLp(v: ValidInput, timeS: number, options: LpOptions = {}): string {
  const { dag, tables, blockingPowerW } = v;
  const n = dag.numNodes;
  const opts = Array.from({ length: n }, (_, i) => {
    const tb = tables[dag.table[i]!]!;
    if (options.vertices !== 'hull') return [...tb.all.values()];
    return Array.from(tb.hull, (k) => ({ timeS: tb.timeS[k]!, energyJ: tb.energyJ[k]! }));
  });
  const obj: string[] = [];
  const rows: string[] = [];
  const dur = (i: number): string => opts[i]!.map((o, k) => term(-o.timeS, `x${i}_${k}`)).join('');
  for (let i = 0; i < n; i++) {
    opts[i]!.forEach((o, k) => obj.push(term(o.energyJ - blockingPowerW * o.timeS, `x${i}_${k}`)));
    rows.push(` c${i}:${opts[i]!.map((_, k) => ` + x${i}_${k}`).join('')} = 1`);
    // s_i + d_i ≤ T  ⇔  -s_i - d_i ≥ -T
    rows.push(` f${i}: - s${i}${dur(i)} >= ${-timeS}`);
    for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
      const j = dag.succ[p]!;
      rows.push(` p${i}_${j}: + s${j} - s${i}${dur(i)} >= 0`);
    }
  }
  return `Minimize\n obj:${obj.join('')}\nSubject To\n${rows.join('\n')}\nEnd\n`;
}

/**
 * Certified lower bound on the energy (J) of any plan whose iteration time is ≤ `timeS`: the LP
 * relaxation over the convex hull of each instruction's measured options, solved by `solver`.
 * Returns Infinity when no plan, even relaxed, is that fast.
 */
export function lpLowerBound(
  input: PlannerInput,
  timeS: number,
  solver: LpSolver,
  options: LpOptions = {},
): number {
  if (typeof timeS !== 'number' || !Number.isFinite(timeS) || timeS <= 0) {
    throw new PlannerInputError('time_s', `must be a positive number, got ${String(timeS)}`);
  }
  const v = validatePlannerInput(input);
  const res = solver.solve(buildLowerBoundLp(v, timeS, options));
  if (res.Status === 'Infeasible') return Infinity;
  if (res.Status !== 'Optimal') throw new Error(`LP solver returned ${res.Status}`);
  return res.ObjectiveValue + v.blockingPowerW * v.dag.numStages * timeS;
}

/**
 * The LP of {@link buildLowerBoundLp} over hull vertices, as a model for a persistent solver
 * (columns x_{i,k} per node's hull vertex, then the start times s_i; objective Σ (e − P_b·t)·x,
 * add `offsetJ` for energy): no text to write and parse, and the solver can report progress.
 */
export function buildLowerBoundModel(
  v: ValidInput,
  timeS: number,
): { model: MilpModel; offsetJ: number } {
  const { dag, tables, blockingPowerW } = v;
  const n = dag.numNodes;
  const first = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) first[i + 1] = first[i]! + tables[dag.table[i]!]!.hull.length;
  const numX = first[n]!;
  const cols = numX + n;
  const colCost = new Float64Array(cols);
  const colUpper = new Float64Array(cols).fill(1);
  for (let i = 0; i < n; i++) {
    const tb = tables[dag.table[i]!]!;
    tb.hull.forEach((k, j) => {
      colCost[first[i]! + j] = tb.energyJ[k]! - blockingPowerW * tb.timeS[k]!;
    });
    colUpper[numX + i] = timeS;
  }
  const rows = new MilpRows();
  const { indices, values } = rows;
  /** Adds sign·d_i (the chosen duration) to the row. */
  const duration = (i: number, sign: number): void => {
    const tb = tables[dag.table[i]!]!;
    tb.hull.forEach((k, j) => {
      indices.push(first[i]! + j);
      values.push(sign * tb.timeS[k]!);
    });
  };
  for (let i = 0; i < n; i++) {
    for (let c = first[i]!; c < first[i + 1]!; c++) {
      indices.push(c);
      values.push(1);
    }
    rows.end(1, 1);
    indices.push(numX + i);
    values.push(1);
    duration(i, 1);
    rows.end(-Infinity, timeS);
    for (let p = dag.succStart[i]!; p < dag.succStart[i + 1]!; p++) {
      indices.push(numX + dag.succ[p]!, numX + i);
      values.push(1, -1);
      duration(i, -1);
      rows.end(0, Infinity);
    }
  }
  return {
    model: rows.model({
      colCost,
      colLower: new Float64Array(cols),
      colUpper,
      integrality: new Int32Array(cols),
    }),
    offsetJ: blockingPowerW * dag.numStages * timeS,
  };
}

/**
 * {@link lpLowerBound} on a persistent solver ({@link MilpSolver}, e.g. `highsMilpSolver`) with
 * progress: the simplex's elapsed time, iterations and current objective (as energy, J) every
 * half second. Same optimum; Infinity when no plan, even relaxed, is that fast.
 */
export function lpLowerBoundWithProgress(
  input: PlannerInput,
  timeS: number,
  solver: MilpSolver,
  onProgress?: (p: { elapsedS: number; iterations: number; energyJ: number }) => void,
): number {
  if (typeof timeS !== 'number' || !Number.isFinite(timeS) || timeS <= 0) {
    throw new PlannerInputError('time_s', `must be a positive number, got ${String(timeS)}`);
  }
  const v = validatePlannerInput(input);
  const { model, offsetJ } = buildLowerBoundModel(v, timeS);
  const out = solver.solve(model, {
    timeLimitS: 1e6,
    relGap: 0,
    ...(onProgress
      ? {
          onProgress: (p: MilpProgress) =>
            onProgress({
              elapsedS: p.elapsedS,
              iterations: p.iterations ?? 0,
              energyJ: p.primalBound + offsetJ,
            }),
        }
      : {}),
  });
  if (out.status === 'infeasible') return Infinity;
  if (out.status !== 'optimal' || out.colValue === null)
    throw new Error(`LP solver returned ${out.status}`);
  let objective = 0;
  for (let c = 0; c < model.numCols; c++) objective += model.colCost[c]! * out.colValue[c]!;
  return objective + offsetJ;
}
