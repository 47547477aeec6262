/** Stateless planning (PlanOffline): a frontier for a caller's profile, within fixed budgets. */
import { PlannerInputError, frontierWorkEstimate } from '@perseus/planner';
import type { Frontier, PlannerInput } from '@perseus/planner';
import { ResourceExhaustedError, ValidationError } from '@perseus/service-kit';
import type { FrontierPlanner } from './planner-pool';
import { virtualStages } from './sweep';
import { MAX_FRONTIER_SAMPLES } from './planning';
import type { PlanOfflineInput } from './validate';

const MAX_OFFLINE_PLAN_INSTRUCTIONS = 2_000_000;

/**
 * Plans `input`'s frontier. Refuses a frontier over the planning budget, and with `includePlans`
 * one whose plans would exceed the response budget.
 */
export async function planOffline(
  planner: FrontierPlanner,
  input: PlanOfflineInput,
  signal?: AbortSignal,
): Promise<Frontier> {
  const plannerInput: PlannerInput = {
    profile: input.profile,
    pipeline: input.pipeline,
    blockingPowerW: input.blockingPowerW,
    unitTimeS: input.unitTimeS,
  };
  let f: Frontier;
  try {
    // The work is known before planning starts: refuse what would plan for minutes.
    const samples = frontierWorkEstimate(plannerInput).samples;
    if (samples > MAX_FRONTIER_SAMPLES) {
      throw ValidationError.field(
        'unit_time_s',
        `the frontier would take ${samples.toExponential(2)} samples of unit_time_s (limit ${MAX_FRONTIER_SAMPLES}): use unit_time_s ≥ ${((input.unitTimeS * samples) / MAX_FRONTIER_SAMPLES).toPrecision(3)} s for this profile`,
      );
    }
    ({ frontier: f } = await planner.plan(plannerInput, undefined, signal));
  } catch (err) {
    if (err instanceof PlannerInputError) throw ValidationError.field(err.field, err.message);
    throw err;
  }
  if (input.includePlans) {
    const perPlan = 2 * virtualStages(input.pipeline) * input.pipeline.numMicrobatches;
    if (perPlan * f.points.length > MAX_OFFLINE_PLAN_INSTRUCTIONS) {
      throw new ResourceExhaustedError(
        `include_plans would return ${perPlan * f.points.length} instructions (limit ${MAX_OFFLINE_PLAN_INSTRUCTIONS}); use a larger unit_time_s or omit plans`,
      );
    }
  }
  return f;
}
