/**
 * The sweep's stop rule on an EMULATED noisy sweep (issue 12 §3): the plan planned from what the
 * rule measured saves as much energy (on the true profile) as the full sweep's, within 0.1 pp.
 * The benchmark with more seeds and settings is tools/bench/optimizer/sweep-stop-rule.ts.
 */
import { readFileSync } from 'node:fs';
import { parseProfileCsv } from '@perseus/planner';
import { GPT3_A100_CSV } from './helpers';
import { extendProfile, runNoisySweep } from './support/noisy-sweep';
import type { NoisySweepOptions } from './support/noisy-sweep';

const measured = parseProfileCsv(readFileSync(GPT3_A100_CSV, 'utf8'));
const base: NoisySweepOptions = {
  truth: { stages: measured.stages.slice(0, 4) },
  pipeline: { schedule: '1f1b', numStages: 4, numMicrobatches: 4 },
  iterationsPerClock: 3,
  dpDegree: 1,
  counterPeriodS: 0.1,
  powerJitter: 0.02,
  blockingPowerW: 83.64,
  unitTimeS: 0.001,
  seed: 1,
};

test('under a 100 ms energy counter the plan is within 0.1 pp of the full sweep', () => {
  for (const seed of [1, 2]) {
    const r = runNoisySweep({ ...base, seed });
    expect(r.stopRule.iterations).toBeLessThanOrEqual(r.full.iterations);
    expect(
      Math.abs(r.stopRule.intrinsicSavingPercent - r.full.intrinsicSavingPercent),
    ).toBeLessThanOrEqual(0.1);
    expect(
      Math.abs(r.stopRule.minEnergySavingPercent - r.full.minEnergySavingPercent),
    ).toBeLessThanOrEqual(0.1);
    // The plans save energy at all (the emulation is not degenerate).
    expect(r.full.intrinsicSavingPercent).toBeGreaterThan(5);
  }
});

test('the rule stops an instruction once its cost has risen significantly, and only then', () => {
  // Clocks below the profile's 855 MHz, extrapolated with a computing power floor: the cost net of
  // blocking power has a minimum inside the range, and with an exact counter the rule must stop
  // every instruction past it and before the floor.
  const truth = extendProfile(base.truth, 210, 15, 300);
  const r = runNoisySweep({ ...base, truth, counterPeriodS: 0, seed: 3 });
  for (const { stoppedAt, trueMinAt } of Object.values(r.stops)) {
    expect(stoppedAt).toBeGreaterThan(trueMinAt);
    expect(stoppedAt).toBeLessThan(r.clocks - 1);
  }
  expect(r.stopRule.iterations).toBeLessThan(r.full.iterations);
  expect(
    Math.abs(r.stopRule.minEnergySavingPercent - r.full.minEnergySavingPercent),
  ).toBeLessThanOrEqual(0.1);
});
