/**
 * @perseus/planner — the Perseus frontier planner (docs/architecture.md §4): pure functions from GPU profiles to
 * energy-optimal per-instruction clock plans. No I/O; safe to run in a worker thread.
 *
 * @example
 * ```ts
 * import { computeFrontier, parseProfileCsv } from '@perseus/planner';
 * const profile = parseProfileCsv(csvText);
 * const frontier = computeFrontier({
 *   profile,
 *   pipeline: { schedule: '1f1b', numStages: 8, numMicrobatches: 12 },
 *   blockingPowerW: 83.64,
 *   unitTimeS: 1e-3,
 * });
 * const { point, plan } = frontier.intrinsic(); // same time as all-max clocks, less energy
 * const slow = frontier.planFor(point.timeS * 1.2); // a straggler makes the iteration 1.2x longer
 * ```
 */
export type {
  FrontierPoint,
  InstructionKind,
  MeasuredOption,
  PipelineSpec,
  PlannerInput,
  Profile,
  ScheduledInstruction,
  ScheduleKind,
  StagePlan,
} from './types';
export { PlannerInputError } from './errors';
export { parseProfileCsv } from './profile-csv';
export {
  readProfileCsvRows,
  RANK_CSV_COLUMNS,
  STAGE_CSV_COLUMNS,
  type ProfileCsvFormat,
  type ProfileCsvLimits,
  type ProfileCsvProblem,
  type ProfileCsvRow,
  type ProfileCsvRows,
} from './profile-csv-rows';
export { chunksOf, scheduleOrder, type InstructionSlot } from './schedule';
export { evaluatePlan, planEvaluator, planTimeline, type TimelineEntry } from './emulator';
export { validatePlannerInput, type OptionTable, type ValidInput } from './options';
export {
  computeFrontier,
  frontierWorkEstimate,
  Frontier,
  type FrontierJson,
  type FrontierOptions,
  type IntrinsicSample,
  type FrontierStats,
} from './frontier';
export {
  decodePlanLines,
  parsePlansJsonl,
  plansJsonlLines,
  PLANS_KEYFRAME_EVERY,
  type PlanRecord,
} from './plans-file';
export { exactFrontier, type ExactFrontierPoint } from './exact';
export {
  lpLowerBound,
  lpLowerBoundWithProgress,
  buildLowerBoundLp,
  buildLowerBoundModel,
  type LpOptions,
  type LpSolver,
} from './lp-bound';
export {
  buildDeadlineMilp,
  type DeadlineMilp,
  type MilpModel,
  type MilpOutcome,
  type MilpProgress,
  type MilpSolver,
  type OptionRange,
} from './deadline-milp';
export {
  neighbourhoodPolish,
  type NeighbourhoodOptions,
  type NeighbourhoodResult,
} from './neighbourhood-search';
export {
  exactAtDeadline,
  polishAtDeadline,
  polishPlan,
  withPolishedPlan,
  type ExactDeadlineResult,
  type PolishedPlan,
  type PolishOptions,
  type PolishResult,
} from './milp-polish';
export { highsMilpSolver, type HighsRuntimeLike } from './highs-milp';
export { seededUniform } from './seeded-random';
