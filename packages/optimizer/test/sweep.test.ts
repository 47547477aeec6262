import { scheduleOrder } from '@perseus/planner';
import {
  advanceSweep,
  energyRoseSignificantly,
  newSweep,
  sweepClocks,
  sweepVariant,
} from '../src/sweep';
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

describe('stop rule: significant rises over the minimum so far', () => {
  const se = (n: number, v = 0.5): number[] => Array.from({ length: n }, () => v);

  test('stops on the second consecutive clock more than 3 combined errors above the minimum', () => {
    // Minimum 90 at index 2; 3 × √(0.5² + 0.5²) = 2.12 J.
    const e = [100, 95, 90, 91, 93, 94, 95];
    expect(energyRoseSignificantly(e, se(7), 3)).toBe(false); // +1: within the noise
    expect(energyRoseSignificantly(e, se(7), 4)).toBe(false); // +3: one significant clock
    expect(energyRoseSignificantly(e, se(7), 5)).toBe(true); // +4: the second in a row
  });

  test('a clock back within the noise breaks the run; a new minimum resets the reference', () => {
    const e = [100, 95, 90, 93, 91, 93, 85, 88, 90];
    expect(energyRoseSignificantly(e, se(9), 5)).toBe(false);
    expect(energyRoseSignificantly(e, se(9), 7)).toBe(false);
    expect(energyRoseSignificantly(e, se(9), 8)).toBe(true);
  });

  test('large errors make the same rise insignificant', () => {
    const e = [100, 95, 90, 93, 94, 95, 96];
    expect(energyRoseSignificantly(e, se(7, 0.5), 6)).toBe(true);
    expect(energyRoseSignificantly(e, se(7, 3), 6)).toBe(false); // 3 × 4.24 = 12.7 J
  });

  test('the relative floor holds when the errors are tiny', () => {
    const e = [100, 95, 90, 90.3, 90.4, 90.5];
    expect(energyRoseSignificantly(e, se(6, 0.001), 5)).toBe(false); // < 0.5 % of 90
    expect(
      energyRoseSignificantly(e, se(6, 0.001), 5, {
        sigmas: 3,
        confirmations: 2,
        minRelativeRise: 0.001,
      }),
    ).toBe(true);
  });

  test('unmeasured clocks and unknown errors neither count nor break a run', () => {
    const e = [100, 90, 95, null, 96, 97];
    const errs = [0.5, 0.5, 0.5, null, null, 0.5];
    expect(energyRoseSignificantly(e, errs, 4)).toBe(false); // 95 counts once; 96 has no error
    expect(energyRoseSignificantly(e, errs, 5)).toBe(true); // 97 is the second
    expect(energyRoseSignificantly(e, undefined, 5)).toBe(false); // no errors at all: never
  });

  test('a cell that reads low with a large error does not hide a rise over a precise one', () => {
    // 86 ± 5 J at index 2 (an unlucky cell) is the lowest mean, but 96 and 98 lie significantly
    // above 93 ± 0.5 at index 3: dominated by a faster clock, twice in a row.
    const e = [100, 94, 86, 93, 96, 98];
    const errs = [0.5, 0.5, 5, 0.5, 0.5, 0.5];
    expect(energyRoseSignificantly(e, errs, 4)).toBe(false);
    expect(energyRoseSignificantly(e, errs, 5)).toBe(true);
  });

  test('a clock without an error estimate cannot be the minimum (an empty cell reads 0 J)', () => {
    // Index 1 is a cell the profiler had no samples of yet: 0 J, no error. Against it no rise
    // could ever be judged; the minimum is 90 at index 2 and 95, 96 rise over it.
    const e = [100, 0, 90, 95, 96];
    const errs = [0.5, null, 0.5, 0.5, 0.5];
    expect(energyRoseSignificantly(e, errs, 3)).toBe(false);
    expect(energyRoseSignificantly(e, errs, 4)).toBe(true);
  });
});

test('a step reads earlier clocks again: measurements that arrived late still count', () => {
  const clocks = [1410, 1395, 1380, 1365, 1350];
  let sweep = newSweep(1, clocks);
  // Each clock's cell reaches the profiler one step late; the cost rises from index 2 on.
  const net = [100, 95, 90, 95, 97];
  let arrived = 0;
  const energy = (
    _s: number,
    _k: string,
    f: number,
  ): { energyJ: number; stderrJ: number } | undefined => {
    const i = clocks.indexOf(f);
    return i < arrived ? { energyJ: net[i]!, stderrJ: 0.5 } : undefined;
  };
  const stops: Array<number | null> = [];
  for (let step = 0; step < clocks.length; step++) {
    ({ sweep } = advanceSweep(sweep, energy));
    stops.push(sweep.stoppedAt['0:forward']!);
    arrived++;
  }
  // At step 4 the cells of 0..3 are in: 95 at index 3 is one significant rise; index 4 (97) has
  // not arrived, so it stops at the floor — but every late cell was recorded.
  expect(sweep.energies['0:forward']).toEqual([100, 95, 90, 95, null]);
  expect(stops.slice(0, 4)).toEqual([null, null, null, null]);
  // With one more clock after the rise, the late cells alone stop it.
  let longer = newSweep(1, [...clocks, 1335]);
  arrived = 0;
  const net2 = [...net, 99];
  const energy2 = (
    _s: number,
    _k: string,
    f: number,
  ): { energyJ: number; stderrJ: number } | undefined => {
    const i = [...clocks, 1335].indexOf(f);
    return i < arrived ? { energyJ: net2[i]!, stderrJ: 0.5 } : undefined;
  };
  let done = false;
  for (let step = 0; !done; step++) {
    ({ sweep: longer, done } = advanceSweep(longer, energy2));
    arrived++;
  }
  expect(longer.stoppedAt['0:forward']).toBe(5);
  expect(longer.energies['0:forward']).toEqual([100, 95, 90, 95, 97, null]);
});

test('a sweep steps down per clock, stops each (stage, kind) on its own, ends at the floor', () => {
  const clocks = [1410, 1395, 1380, 1365, 1350, 1335, 1320, 1305, 1290];
  let sweep = newSweep(2, clocks);
  // Stage 0 forward: falls to 98 J at index 2, then rises 1 J per clock (errors 0.5 J): +1 and +2 J
  // are within 3 combined errors (2.12 J); +3 J at 5 and +4 J at 6 are significant → stops at 6.
  // The other cells fall all the way and stop at the floor (index 8).
  const energy = (s: number, k: string, f: number): { energyJ: number; stderrJ: number } => {
    const i = clocks.indexOf(f);
    if (s === 0 && k === 'forward') return { energyJ: i < 3 ? 100 - i : 96 + i, stderrJ: 0.5 };
    return { energyJ: 100 - i, stderrJ: 0.5 };
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
      // Stage 0 forward stopped at 6 and runs at the highest clock meanwhile.
      expect(sweep.stoppedAt['0:forward']).toBe(6);
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
    '0:forward': 6,
    '0:backward': 8,
    '1:forward': 8,
    '1:backward': 8,
  });
  expect(sweep.energies['0:forward']).toEqual([100, 99, 98, 99, 100, 101, 102, null, null]);
  expect(sweep.stderrs!['0:forward']).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, null, null]);
});
