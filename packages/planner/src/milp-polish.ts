import {
  buildDeadlineMilp,
  choiceFromColumns,
  evaluateChoice,
  startVector,
  type MilpOutcome,
  type MilpProgress,
  type MilpSolver,
} from './deadline-milp';
import type { Frontier } from './frontier';
import { neighbourhoodPolish } from './neighbourhood-search';
import { validatePlannerInput, type ValidInput } from './options';
import type { FrontierPoint, PlannerInput, StagePlan } from './types';

/** Options of {@link polishAtDeadline}. */
export interface PolishOptions {
  /**
   * Wall-clock cap (s). Default 10. The search stops on its own (work limits, below) and gives the
   * same plan on any machine when it fits in the cap; a slow or loaded machine is cut short here.
   */
  timeLimitS?: number;
  /** Relative MIP gap at which the solver may stop. Default 1e-6. */
  relGap?: number;
  /**
   * Branch-and-bound nodes of the whole deadline MILP (after the neighbourhood search). Default
   * 2,000: it proves small pipelines optimal and tightens the bound of mid-sized ones.
   */
  nodeLimit?: number;
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
 * deadline MILP over every planner option, warm-started from `start`, under a node limit, a time
 * cap and cancellation. Keeps the solver's plan only if the emulator confirms it meets the
 * deadline (within 1e-7 relative, the solver's feasibility tolerance) with less energy than `start`.
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
  const onProgress = options.onProgress;
  const out = solver.solve(milp.model, {
    start: startVector(v, milp, start),
    timeLimitS: options.timeLimitS ?? 10,
    relGap: options.relGap ?? 1e-6,
    nodeLimit: options.nodeLimit ?? 2000,
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

/** A plan after the exact polish at one deadline, with its certified gap. */
export interface PolishedPlan {
  deadlineS: number;
  /** The polished plan, or the start plan when nothing better was found. */
  plan: StagePlan[];
  /** Its emulated iteration time (≤ the deadline) and energy, s and J. */
  timeS: number;
  energyJ: number;
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
    /** Of `seconds`, the neighbourhood search's (the plan is final then unless the whole MILP improves it). */
    searchSeconds: number;
    /** Exact sub-problems of the neighbourhood search. */
    subproblems: number;
    /** The neighbourhood search ended on its own (not at the time cap or a cancellation). */
    converged: boolean;
  };
}

/** The deployed point at one deadline after the exact polish, with its certified gap. */
export interface ExactDeadlineResult extends PolishedPlan {
  /** The frontier with the polished plan in it (the same frontier if the polish found nothing better). */
  frontier: Frontier;
  point: FrontierPoint;
}

/**
 * Sub-problems of the neighbourhood search per second of budget. Large pipelines never converge
 * within a 10 s budget (one pass of 24-instruction windows over 6,144 instructions is ~510
 * sub-problems) and gain little there (32 × 96: +0.0007 pp in ~500); small ones converge in
 * well under this many.
 */
const SUBPROBLEMS_PER_BUDGET_S = 25;

/** Share of the time cap the neighbourhood search may use before the whole MILP gets the rest. */
const NEIGHBOURHOOD_SHARE = 0.75;

/**
 * Above this many instructions the whole MILP is skipped: its root LP and cut rounds run in
 * phases where HiGHS checks no time limit (2–4× over a 30 s budget at 768 and 1,536 instructions
 * on the shared box) and its dual bound never beat the LP relaxation there.
 */
const WHOLE_MILP_MAX_NODES = 400;

/**
 * The certificate of a plan at `deadlineS` against a proven bound `provenJ` on any plan there: the
 * plan's energy if the iteration lasts the whole deadline (a faster plan idles at P_b until then)
 * caps the bound, and the gap and saving are in percent of the all-max energy.
 */
function certificate(
  v: ValidInput,
  deadlineS: number,
  plan: { timeS: number; energyJ: number },
  provenJ: number,
  allMaxJ: number,
): { boundJ: number; gapPp: number; savingPct: number } {
  const paddedJ =
    plan.energyJ + v.blockingPowerW * v.dag.numStages * Math.max(0, deadlineS - plan.timeS);
  const boundJ = Math.min(paddedJ, provenJ);
  return {
    boundJ,
    gapPp: ((paddedJ - boundJ) / allMaxJ) * 100,
    savingPct: (1 - plan.energyJ / allMaxJ) * 100,
  };
}

/** Option index of each DAG node in `plan` (the inverse of a frontier's decoding). */
function choiceOf(v: ValidInput, plan: StagePlan[]): Uint16Array {
  const { dag, tables } = v;
  const choice = new Uint16Array(dag.numNodes);
  plan.forEach((sp, s) =>
    sp.instructions.forEach((ins, j) => {
      const node = dag.stageNodes[s]![j]!;
      const k = tables[dag.table[node]!]!.frequencyMhz.indexOf(ins.frequencyMhz);
      if (k < 0)
        throw new Error(`stage ${s} instruction ${j}: ${ins.frequencyMhz} MHz is no option`);
      choice[node] = k;
    }),
  );
  return choice;
}

/** `plan` with the clocks of option indices `choice`. */
function withChoice(v: ValidInput, plan: StagePlan[], choice: Uint16Array): StagePlan[] {
  const { dag, tables } = v;
  return plan.map((sp, s) => ({
    stage: sp.stage,
    instructions: sp.instructions.map((ins, j) => {
      const node = dag.stageNodes[s]![j]!;
      return { ...ins, frequencyMhz: tables[dag.table[node]!]!.frequencyMhz[choice[node]!]! };
    }),
  }));
}

/**
 * Makes the plan `start` deployed at `deadlineS` (the all-max time for the intrinsic plan, a
 * straggler's T′, a policy's target) exact within the limits: the neighbourhood search
 * ({@link neighbourhoodPolish}) from `start`, then the whole deadline MILP ({@link polishAtDeadline})
 * from its result (pipelines of ≤ 400 instructions), and certifies the plan against the best
 * proven bound: `lpBoundJ` (the LP relaxation at `deadlineS`, e.g. {@link Frontier.lowerBoundJ})
 * or the MILP's dual bound. Savings and gaps are relative to `allMaxJ`. Needs no frontier, so a
 * planner worker can polish any plan it is sent.
 */
export function polishPlan(
  input: PlannerInput | ValidInput,
  deadlineS: number,
  start: StagePlan[],
  reference: { lpBoundJ: number; allMaxJ: number },
  solver: MilpSolver,
  options: PolishOptions = {},
): PolishedPlan {
  const v = 'dag' in input ? input : validatePlannerInput(input);
  const started = performance.now();
  const budgetS = options.timeLimitS ?? 10;
  const startChoice = choiceOf(v, start);
  const startEval = evaluateChoice(v, startChoice);
  const { lpBoundJ, allMaxJ } = reference;
  // The first report comes before any work: callers can synchronise on the polish having begun.
  options.onProgress?.({ elapsedS: 0, energyJ: startEval.energyJ, boundJ: lpBoundJ });
  // Most of the cap goes to exact sub-problems (where HiGHS is fast), the rest to the whole
  // MILP from the best plan found: it proves the bound and may still improve the plan.
  const whole = v.dag.numNodes <= WHOLE_MILP_MAX_NODES;
  const lns = neighbourhoodPolish(v, deadlineS, startChoice, solver, {
    timeLimitS: whole ? budgetS * NEIGHBOURHOOD_SHARE : budgetS,
    // A short budget cannot wait seconds on one hard window (the pipeline's warm-up ones are):
    // a tenth of it per sub-problem, at most 5 s so a long one stops at node limits instead.
    stepLimitS: Math.min(5, Math.max(0.5, budgetS / 10)),
    // Work in proportion to the budget: where sub-problems are fast (32 × 96: ~50/s here) the
    // search stops on this count, with the same plan on any machine, instead of at the cap.
    maxSubproblems: Math.ceil(SUBPROBLEMS_PER_BUDGET_S * budgetS),
    ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
    ...(options.onProgress
      ? {
          onProgress: (p: { elapsedS: number; energyJ: number }) =>
            options.onProgress?.({ ...p, boundJ: lpBoundJ }),
        }
      : {}),
  });
  const spentS = (performance.now() - started) / 1000;
  const polished: PolishResult =
    whole && options.shouldStop?.() !== true
      ? polishAtDeadline(v, deadlineS, lns.choice, solver, {
          ...options,
          timeLimitS: Math.max(budgetS - spentS, budgetS * (1 - NEIGHBOURHOOD_SHARE)),
          ...(options.onProgress
            ? {
                onProgress: (p) => options.onProgress?.({ ...p, elapsedS: p.elapsedS + spentS }),
              }
            : {}),
        })
      : { ...lns, boundJ: -Infinity, status: 'stopped', improved: false };
  const seconds = (performance.now() - started) / 1000;
  const improved = polished.energyJ < startEval.energyJ - 1e-9;
  const best = improved ? polished : { ...startEval, choice: startChoice };
  const milpJ = polished.boundJ;
  return {
    deadlineS,
    plan: improved ? withChoice(v, start, best.choice) : start,
    timeS: best.timeS,
    energyJ: best.energyJ,
    ...certificate(v, deadlineS, best, Math.max(lpBoundJ, milpJ), allMaxJ),
    boundSource: milpJ > lpBoundJ ? 'milp' : 'lp',
    polish: {
      status: polished.status,
      improved,
      seconds,
      searchSeconds: spentS,
      subproblems: lns.subproblems,
      converged: lns.converged,
    },
  };
}

/**
 * {@link polishPlan} of the frontier's plan at `deadlineS`, with the polished plan added to the
 * frontier (the other points are left as they are).
 */
export function exactAtDeadline(
  frontier: Frontier,
  input: PlannerInput,
  deadlineS: number,
  solver: MilpSolver,
  options: PolishOptions = {},
): ExactDeadlineResult {
  const v = validatePlannerInput(input);
  const current = frontier.planFor(deadlineS);
  const polished = polishPlan(
    v,
    deadlineS,
    current.plan,
    { lpBoundJ: frontier.lowerBoundJ(deadlineS), allMaxJ: frontier.allMax.energyJ },
    solver,
    options,
  );
  return withPolishedPlan(frontier, v, polished);
}

/**
 * The frontier with a plan polished at `polished.deadlineS` in it (when it beats the frontier's
 * plan there), and that deadline's point. The polish may have started from another plan (the
 * intrinsic sample, polished while the rest of the frontier was computed): the certificate is
 * restated for whichever plan the frontier now deploys, against the same proven bound.
 */
export function withPolishedPlan(
  frontier: Frontier,
  input: PlannerInput | ValidInput,
  polished: PolishedPlan,
): ExactDeadlineResult {
  const v = 'dag' in input ? input : validatePlannerInput(input);
  const { deadlineS } = polished;
  const next = polished.polish.improved
    ? frontier.withPlan(choiceOf(v, polished.plan), polished.timeS, polished.energyJ)
    : frontier;
  const { point, plan } = next.planFor(deadlineS);
  if (point.energyJ === polished.energyJ) return { ...polished, frontier: next, point, plan };
  return {
    ...polished,
    plan,
    timeS: point.timeS,
    energyJ: point.energyJ,
    ...certificate(v, deadlineS, point, polished.boundJ, frontier.allMax.energyJ),
    polish: { ...polished.polish, improved: false },
    frontier: next,
    point,
  };
}
