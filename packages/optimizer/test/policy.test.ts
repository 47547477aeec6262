import type { FrontierPoint } from '@perseus/planner';
import { choosePlans, policyPoint, policyTargetS, stragglerTimeS } from '../src/policy';
import type { FrontierChoices } from '../src/policy';
import type { Straggler } from '../src/types';

/** A frontier as a table: times 10, 11, …, 15 s; energy falls with time; T* = 15 s. */
function tableFrontier(): FrontierChoices & { points: FrontierPoint[] } {
  const points: FrontierPoint[] = [10, 11, 12, 13, 14, 15].map((t, index) => ({
    index,
    timeS: t,
    energyJ: 1000 - 50 * index,
    modelEnergyJ: 1000 - 50 * index,
  }));
  const planFor = (target: number): { point: FrontierPoint; plan: [] } => {
    const capped = Math.min(target, 15);
    const fit = points.filter((p) => p.timeS <= capped + 1e-12);
    return { point: fit.length > 0 ? fit[fit.length - 1]! : points[0]!, plan: [] };
  };
  return {
    points,
    minEnergyTimeS: 15,
    planFor,
    intrinsic: () => planFor(10),
  };
}

const straggler = (dpRank: number, over: Partial<Straggler> = {}): Straggler => ({
  dpRank,
  iterationTimeS: 0,
  expiresAtMs: null,
  source: 'reported',
  ...over,
});

describe('policy choice (pure)', () => {
  const f = tableFrontier();

  test.each([
    [{ kind: 'intrinsic' } as const, 10, 0],
    [{ kind: 'maxSlowdownPercent', percent: 20 } as const, 12, 2],
    [{ kind: 'targetIterationTime', timeS: 13.5 } as const, 13.5, 3],
    [{ kind: 'minEnergy' } as const, 15, 5],
  ])('%j targets %d s and picks point %d', (policy, targetS, index) => {
    expect(policyTargetS(policy, f)).toBeCloseTo(targetS, 12);
    expect(policyPoint(policy, f).index).toBe(index);
  });

  test('a slowdown resolves against the intrinsic time; an absolute time is kept', () => {
    expect(stragglerTimeS(straggler(0, { slowdown: 1.3 }), f)).toBeCloseTo(13, 12);
    expect(stragglerTimeS(straggler(0, { iterationTimeS: 12.5 }), f)).toBe(12.5);
    // Without a frontier a slowdown has no time yet.
    expect(stragglerTimeS(straggler(0, { slowdown: 1.3, iterationTimeS: 0 }), null)).toBe(0);
  });

  test('no straggler: every pipeline runs the policy point', () => {
    const c = choosePlans(f, { kind: 'intrinsic' }, [], 4);
    expect(c.variantPoints.map((p) => p.index)).toEqual([0]);
    expect(c.variantOfPipeline).toEqual([0, 0, 0, 0]);
    expect(c.targetIterationTimeS).toBe(0);
    expect(c.stragglers).toEqual([]);
  });

  test('the slowest straggler decides; the stragglers keep the policy point', () => {
    const c = choosePlans(
      f,
      { kind: 'intrinsic' },
      [straggler(2, { iterationTimeS: 12.2 }), straggler(0, { slowdown: 1.35 })],
      4,
    );
    expect(c.stragglerTimeS).toBeCloseTo(13.5, 12);
    expect(c.variantPoints.map((p) => p.index)).toEqual([0, 3]);
    expect(c.variantOfPipeline).toEqual([0, 1, 0, 1]);
    expect(c.targetIterationTimeS).toBe(13);
    expect(c.stragglers).toEqual([0, 2]);
  });

  test('a straggler slower than T* is capped at T*', () => {
    const c = choosePlans(f, { kind: 'intrinsic' }, [straggler(1, { iterationTimeS: 40 })], 2);
    expect(c.variantPoints.map((p) => p.index)).toEqual([0, 5]);
    expect(c.variantOfPipeline).toEqual([1, 0]);
    expect(c.targetIterationTimeS).toBe(15);
  });

  test('a straggler no slower than the policy point changes nothing', () => {
    const c = choosePlans(
      f,
      { kind: 'maxSlowdownPercent', percent: 30 },
      [straggler(1, { iterationTimeS: 12.9 })],
      3,
    );
    expect(c.variantPoints.map((p) => p.index)).toEqual([3]);
    expect(c.variantOfPipeline).toEqual([0, 0, 0]);
    expect(c.targetIterationTimeS).toBe(0);
  });

  test('under a slower policy the healthy target is max(T′, policy target)', () => {
    const c = choosePlans(
      f,
      { kind: 'targetIterationTime', timeS: 12 },
      [straggler(0, { iterationTimeS: 14 })],
      2,
    );
    expect(c.variantPoints.map((p) => p.index)).toEqual([2, 4]);
    expect(c.variantOfPipeline).toEqual([0, 1]);
    expect(c.targetIterationTimeS).toBe(14);
  });
});
