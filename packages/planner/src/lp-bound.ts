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
