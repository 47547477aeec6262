import type { Frontier, PlannerInput, StagePlan } from '@perseus/planner';
import { planTimeline } from '@perseus/planner';
import type { ChartContext } from '@perseus/optimizer';
import { frontierChartPoints, frontierChartSpec, timelineChartSpec } from '@perseus/optimizer';
import { renderChartSvg } from './render-chart';

/** frontier.svg of `perseus plan`: the frontier, its relaxed bound, all-max, intrinsic and T*. */
export function planFrontierSvg(frontier: Frontier, context: ChartContext): Promise<string> {
  const intr = frontier.intrinsic().point;
  const star = frontier.points[frontier.points.length - 1]!;
  return renderChartSvg(
    frontierChartSpec({
      context,
      points: frontierChartPoints(frontier),
      allMax: frontier.allMax,
      deployed: { label: 'intrinsic plan', timeS: intr.timeS, energyJ: intr.energyJ },
      minEnergy: { label: 'T* (least energy)', timeS: star.timeS, energyJ: star.energyJ },
      energyQuantity: 'energy per iteration, one pipeline',
    }),
  );
}

/** timeline.svg of `perseus plan`: the intrinsic plan per stage, clock as colour. */
export function planTimelineSvg(
  input: PlannerInput,
  plan: StagePlan[],
  point: { timeS: number; energyJ: number },
  allMaxEnergyJ: number,
  context: ChartContext,
): Promise<string> {
  const entries = planTimeline(input, plan).flatMap((row, stage) =>
    row.map((e) => ({ stage, ...e })),
  );
  return renderChartSvg(
    timelineChartSpec({
      context,
      planLabel: 'intrinsic plan',
      entries,
      timeS: point.timeS,
      energyJ: point.energyJ,
      allMaxEnergyJ,
    }),
  );
}
