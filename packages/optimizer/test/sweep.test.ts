import { scheduleOrder } from '@perseus/planner';
import { advanceSweep, energyRoseEnough, newSweep, sweepClocks, sweepVariant } from '../src/sweep';
import type { JobSpec } from '../src/types';

const spec: JobSpec = {
  pipeline: { schedule: '1f1b', numStages: 2, numMicrobatches: 3 },
  dpDegree: 1,
  tpDegree: 1,
  worldSize: 2,
  gpuModel: 'A100',
  unitTimeS: 0.001,
  blockingPowerW: 80,
  profiling: { iterationsPerFrequency: 1, floorFrequencyMhz: 0, frequencyStride: 1 },
};

test('clock list: common clocks, descending, at or above the floor, every stride-th', () => {
  expect(
    sweepClocks(
      [
        [1410, 1395, 1380, 1365, 1350],
        [1350, 1365, 1380, 1410],
      ],
      0,
      1,
    ),
  ).toEqual([1410, 1380, 1365, 1350]);
  expect(sweepClocks([[1410, 1395, 1380, 1365, 1350]], 1370, 1)).toEqual([1410, 1395, 1380]);
  expect(sweepClocks([[1410, 1395, 1380, 1365, 1350]], 0, 2)).toEqual([1410, 1380, 1350]);
  expect(sweepClocks([], 0, 1)).toEqual([]);
});

test('stop rule: five consecutive rises, counted only past the first third of the list', () => {
  // 15 clocks: first third = indices 0..4. Rises at 1..5 do not count (index 5 is the first that can).
  const early = [10, 11, 12, 13, 14, 15, 16, 9, 9, 9, 9, 9, 9, 9, 9];
  expect(energyRoseEnough(early, 14, 15)).toBe(false);
  const late = [10, 9, 8, 7, 6, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
  expect(energyRoseEnough(late, 9, 15)).toBe(false); // rises at 6,7,8,9 → four
  expect(energyRoseEnough(late, 10, 15)).toBe(true); // fifth rise at index 10
  const broken = [10, 9, 8, 7, 6, 5, 6, 7, 5, 6, 7, 8, 9, 4, 4];
  expect(energyRoseEnough(broken, 14, 15)).toBe(false);
  // Unmeasured clocks neither rise nor break a run.
  expect(energyRoseEnough([10, 9, 8, 7, 6, 5, 6, 7, null, 8, 9, 10], 11, 12)).toBe(true);
});

test('a sweep steps down per clock, stops each (stage, kind) on its own, ends at the floor', () => {
  const clocks = [1410, 1395, 1380, 1365, 1350, 1335, 1320, 1305, 1290];
  let sweep = newSweep(2, clocks);
  // Stage 0 forward: energy falls then rises from index 3 on (first third = 3): rises at 4..8 → stop at 8?
  // Stage 1 backward: rises from index 3: 4,5,6,7,8 → five rises at index 8. Make stage 0 forward rise earlier.
  const energy = (s: number, k: string, f: number): number => {
    const i = clocks.indexOf(f);
    if (s === 0 && k === 'forward') return i < 3 ? 100 - i : 100 + i; // rises at every index ≥ 3
    return 100 - i; // always falls
  };
  const variant0 = sweepVariant(spec, sweep);
  expect(variant0.reason).toBe('profiling 1410 MHz (1/9)');
  expect(variant0.stages[0]!.map((x) => [x.kind, x.microbatch])).toEqual(
    scheduleOrder(spec.pipeline, 0).map((x) => [x.kind, x.microbatch]),
  );
  expect(new Set(variant0.stages.flat().map((x) => x.frequencyMhz))).toEqual(new Set([1410]));
  let done = false;
  let steps = 0;
  while (!done && steps < 20) {
    ({ sweep, done } = advanceSweep(sweep, energy));
    steps++;
    if (sweep.step === 8 && !done) {
      // Stage 0 forward rose at 3,4,5,6,7 → stopped at 7 and runs at the highest clock meanwhile.
      expect(sweep.stoppedAt['0:forward']).toBe(7);
      const v = sweepVariant(spec, sweep);
      expect(
        v.stages[0]!.filter((x) => x.kind === 'forward').every((x) => x.frequencyMhz === 1410),
      ).toBe(true);
      expect(
        v.stages[0]!.filter((x) => x.kind === 'backward').every((x) => x.frequencyMhz === 1290),
      ).toBe(true);
    }
  }
  expect(done).toBe(true);
  expect(steps).toBe(9);
  expect(sweep.stoppedAt).toEqual({
    '0:forward': 7,
    '0:backward': 8,
    '1:forward': 8,
    '1:backward': 8,
  });
  expect(sweep.energies['0:forward']!.slice(0, 8)).toEqual([100, 99, 98, 103, 104, 105, 106, 107]);
});
