import type { MeasuredOption, PlannerInput, Profile, ScheduleKind } from '../src';
import { seededUniform } from '../src';

/** Deterministic PRNG (mulberry32) so synthetic profiles are the same on every run. */
export const rng = seededUniform;

/**
 * A GPU-like synthetic profile: time ∝ 1/f-ish, power rising superlinearly with f, per-stage
 * imbalance, a little noise (so dominated options exist).
 */
export function syntheticProfile(
  numStages: number,
  clocksMhz: number[],
  seed: number,
  noise = 0.01,
): Profile {
  const r = rng(seed);
  const stages: Profile['stages'] = [];
  const fMax = Math.max(...clocksMhz);
  for (let s = 0; s < numStages; s++) {
    const weight = 0.7 + 0.6 * r();
    const mk = (base: number): MeasuredOption[] =>
      clocksMhz.map((f) => {
        const x = f / fMax;
        const timeS = base * weight * (0.35 + 0.65 / x) * (1 + noise * (r() - 0.5));
        const powerW = 90 + 260 * x ** 2.2;
        return { frequencyMhz: f, timeS, energyJ: timeS * powerW * (1 + noise * (r() - 0.5)) };
      });
    stages.push({ forward: mk(0.02), backward: mk(0.04) });
  }
  return { stages };
}

export function inputOf(
  profile: Profile,
  schedule: ScheduleKind,
  numMicrobatches: number,
  unitTimeS = 1e-4,
  blockingPowerW = 70,
): PlannerInput {
  return {
    profile,
    pipeline: { schedule, numStages: profile.stages.length, numMicrobatches },
    blockingPowerW,
    unitTimeS,
  };
}
