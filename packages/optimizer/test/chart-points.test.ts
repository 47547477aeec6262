import { computeFrontier } from '@perseus/planner';
import { FRONTIER_CHART_MAX_POINTS, frontierChartPoints } from '../src/dashboard/chart-specs';
import { gpt3Profile } from './helpers';

describe('frontierChartPoints', () => {
  const frontier = computeFrontier({
    profile: gpt3Profile(),
    pipeline: { schedule: '1f1b', numStages: 8, numMicrobatches: 12 },
    blockingPowerW: 83.64,
    unitTimeS: 1e-3,
  });
  const { points } = frontier;

  it('draws every point of a frontier within the limit, each with its bound', () => {
    expect(points.length).toBeLessThan(FRONTIER_CHART_MAX_POINTS);
    const drawn = frontierChartPoints(frontier);
    expect(drawn.map((p) => [p.timeS, p.energyJ])).toEqual(points.map((p) => [p.timeS, p.energyJ]));
    drawn.forEach((p) => expect(p.boundJ).toBe(frontier.lowerBoundJ(p.timeS)));
  });

  it('thins a larger frontier to evenly spaced points, keeping both ends', () => {
    const drawn = frontierChartPoints(frontier, 50);
    expect(drawn).toHaveLength(50);
    expect(drawn[0]!.timeS).toBe(points[0]!.timeS);
    expect(drawn[49]!.timeS).toBe(points[points.length - 1]!.timeS);
    const step = (points.length - 1) / 49;
    drawn.forEach((p, k) => expect(p.timeS).toBe(points[Math.round(k * step)]!.timeS));
    // Still a frontier: slower points use less energy.
    for (let k = 1; k < drawn.length; k++) {
      expect(drawn[k]!.timeS).toBeGreaterThan(drawn[k - 1]!.timeS);
      expect(drawn[k]!.energyJ).toBeLessThan(drawn[k - 1]!.energyJ);
    }
  });
});
