import type { MilpModel, MilpOutcome, MilpProgress, MilpSolver } from './deadline-milp';

/** The part of one event of HiGHS's MIP interrupt callback that the adapter reads. */
interface HighsMipEvent {
  readonly data: {
    readonly running_time?: number;
    readonly simplex_iteration_count?: number;
    readonly objective_function_value?: number;
    readonly mip_primal_bound?: number;
    readonly mip_dual_bound?: number;
  };
  interrupt(): void;
}

/** The part of a persistent HiGHS model (`highs` ≥ 1.15 `createModel()`) that the adapter uses. */
interface HighsModelLike {
  readonly options: { set(values: Readonly<Record<string, number | string | boolean>>): unknown };
  readonly info: { get(name: string): number | bigint };
  passModel(model: MilpModel): unknown;
  setSolution(solution: { colValue: Float64Array }): unknown;
  run(callbacks?: { [type: number]: ((event: HighsMipEvent) => undefined) | undefined }): {
    modelStatus: number;
  };
  getSolution(): { colValue: Float64Array };
  dispose(): void;
}

/** The part of the loaded `highs` runtime (`await require('highs')()`, ≥ 1.15) the adapter uses. */
export interface HighsRuntimeLike {
  createModel(): HighsModelLike;
  readonly constants: {
    readonly modelStatus: {
      readonly optimal: number;
      readonly infeasible: number;
      readonly timeLimit: number;
      readonly iterationLimit: number;
      readonly solutionLimit: number;
      readonly interrupted: number;
    };
    readonly callbackType: { readonly mipInterrupt: number; readonly simplexInterrupt: number };
  };
}

/**
 * A {@link MilpSolver} over HiGHS's persistent model: passes the model, installs the start as the
 * incumbent, stops at the node limit (HiGHS `mip_max_nodes`), the time limit or when `shouldStop()` turns true (polled from HiGHS's MIP
 * interrupt callback, so a worker's cancellation takes effect mid-solve), and reports the proven
 * dual bound even when it stops early.
 */
export function highsMilpSolver(
  highs: HighsRuntimeLike,
  /** Extra HiGHS options (snake_case names), e.g. `{ mip_heuristic_effort: 0.3 }`. */
  extraOptions: Readonly<Record<string, number | string | boolean>> = {},
): MilpSolver {
  return {
    solve(model, { start, timeLimitS, relGap, nodeLimit, shouldStop, onProgress }): MilpOutcome {
      const m = highs.createModel();
      try {
        m.options.set({
          output_flag: false,
          time_limit: timeLimitS,
          mip_rel_gap: relGap,
          ...(nodeLimit !== undefined ? { mip_max_nodes: nodeLimit } : {}),
          ...extraOptions,
        });
        m.passModel(model);
        if (start !== undefined) m.setSolution({ colValue: start });
        // A model without integer columns is an LP: its progress comes from the simplex.
        const isLp = !model.integrality.some((x) => x !== 0);
        let lastReportS = -Infinity;
        // HiGHS checks time_limit between MIP nodes; a large model's root LP can run far past it,
        // so the simplex callback enforces the budget (and cancellation) there too.
        const stopAt = performance.now() + timeLimitS * 1000;
        const overdue = (): boolean => performance.now() > stopAt || shouldStop?.() === true;
        const types = highs.constants.callbackType;
        const status = m.run({
          [types.simplexInterrupt]: (event) => {
            const d = event.data;
            const elapsedS = d.running_time ?? 0;
            if (isLp && onProgress && elapsedS - lastReportS >= 0.5) {
              lastReportS = elapsedS;
              onProgress({
                elapsedS,
                primalBound: d.objective_function_value ?? Infinity,
                dualBound: -Infinity,
                iterations: d.simplex_iteration_count ?? 0,
              });
            }
            if (overdue()) event.interrupt();
            return undefined;
          },
          [types.mipInterrupt]: (event) => {
            const d = event.data;
            const elapsedS = d.running_time ?? 0;
            if (onProgress && elapsedS - lastReportS >= 0.5) {
              lastReportS = elapsedS;
              const p: MilpProgress = {
                elapsedS,
                primalBound: d.mip_primal_bound ?? Infinity,
                dualBound: d.mip_dual_bound ?? -Infinity,
              };
              onProgress(p);
            }
            if (overdue()) event.interrupt();
            return undefined;
          },
        }).modelStatus;
        const c = highs.constants.modelStatus;
        const dual = Number(m.info.get('mip_dual_bound'));
        const dualBound = Number.isFinite(dual) ? dual : -Infinity;
        if (status === c.infeasible) return { status: 'infeasible', colValue: null, dualBound };
        // A node limit ends the solve as a solution limit in HiGHS.
        const stopped =
          status === c.timeLimit ||
          status === c.interrupted ||
          status === c.iterationLimit ||
          status === c.solutionLimit;
        if (status !== c.optimal && !stopped)
          return { status: 'failed', colValue: null, dualBound };
        const primalStatus = Number(m.info.get('primal_solution_status'));
        // HiGHS: 2 = a feasible primal solution is available.
        const colValue = primalStatus === 2 ? m.getSolution().colValue : null;
        return { status: status === c.optimal ? 'optimal' : 'stopped', colValue, dualBound };
      } finally {
        m.dispose();
      }
    },
  };
}
