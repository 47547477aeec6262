/** Synthetic pipeline profiles shared by the planner benchmarks (bench.ts, exact-gap.ts). */
import type { Profile } from '../../../packages/planner/src';

/** Synthetic imbalanced pipeline: A100-like clock curve, stage weights far apart. */
export function syntheticCsv(numStages: number, weights: number[], seed: number): string {
  let a = seed >>> 0;
  const rnd = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rows = ['stage,instruction,frequency,time,energy'];
  for (let s = 0; s < numStages; s++) {
    for (const [kind, base] of [
      ['forward', 0.03],
      ['backward', 0.065],
    ] as const) {
      for (let f = 1410; f >= 855; f -= 15) {
        const x = f / 1410;
        const t = base * weights[s]! * (0.3 + 0.7 / x) * (1 + 0.004 * (rnd() - 0.5));
        const p = 95 + 300 * x ** 2.4;
        rows.push(`${s},${kind},${f},${t},${t * p * (1 + 0.004 * (rnd() - 0.5))}`);
      }
    }
  }
  return rows.join('\n') + '\n';
}

/**
 * A 4-stage imbalanced pipeline with coarse clocks (six, 255 MHz apart), where rounding the
 * relaxation loses the most; same shape of curves as bench.ts's synthetic cases.
 */
export function coarseSynthetic(): Profile {
  const weights = [1.0, 0.6, 0.8, 1.4];
  const clocks = [1410, 1290, 1155, 1035, 915, 855];
  return {
    stages: weights.map((w, s) => {
      const mk = (base: number) =>
        clocks.map((f) => {
          const x = f / 1410;
          const timeS = base * w * (0.3 + 0.7 / x) * (1 + 0.002 * Math.sin(7 * s + f));
          return { frequencyMhz: f, timeS, energyJ: timeS * (95 + 300 * x ** 2.4) };
        });
      return { forward: mk(0.03), backward: mk(0.065) };
    }),
  };
}
