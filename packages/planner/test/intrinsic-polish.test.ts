import {
  computeFrontier,
  evaluatePlan,
  exactFrontier,
  highsMilpSolver,
  neighbourhoodPolish,
  polishPlan,
  validatePlannerInput,
  withPolishedPlan,
  type HighsRuntimeLike,
  type IntrinsicSample,
  type MilpSolver,
  type PlannerInput,
  type StagePlan,
} from '../src';
import { inputOf, syntheticProfile } from './helpers';

// The intrinsic plan handed out mid-computation (for a polish that overlaps the rest of the
// frontier), and a polish of it merged into the finished frontier.
const input = inputOf(syntheticProfile(3, [800, 1000, 1200, 1400], 11, 0.03), '1f1b', 4);

// Small enough to enumerate every plan.
const tiny = inputOf(syntheticProfile(2, [900, 1200, 1500], 3), '1f1b', 3);

function withSample(of: PlannerInput = input): {
  frontier: ReturnType<typeof computeFrontier>;
  samples: IntrinsicSample[];
} {
  const samples: IntrinsicSample[] = [];
  const frontier = computeFrontier(of, { onIntrinsic: (s) => samples.push(s) });
  return { frontier, samples };
}

describe('computeFrontier onIntrinsic', () => {
  it('hands out the all-max-time sample once, as the emulator scores it, without changing the frontier', () => {
    const { frontier, samples } = withSample();
    expect(samples).toHaveLength(1);
    const s = samples[0]!;
    const e = evaluatePlan(input, s.plan);
    expect(e.timeS).toBe(s.timeS);
    expect(e.energyJ).toBeCloseTo(s.energyJ, 9);
    expect(s.timeS).toBeLessThanOrEqual(frontier.allMax.timeS * (1 + 1e-9));
    expect(s.allMax).toEqual(frontier.allMax);
    expect(s.lowerBoundJ).toBe(frontier.lowerBoundJ(frontier.allMax.timeS));
    // The frontier deploys this plan or a better one found later at the same time.
    expect(frontier.intrinsic().point.energyJ).toBeLessThanOrEqual(s.energyJ);
    expect(computeFrontier(input).points).toEqual(frontier.points);
  });
});

describe('withPolishedPlan', () => {
  const failing: MilpSolver = {
    solve: () => ({ status: 'failed', colValue: null, dualBound: -Infinity }),
  };
  const allMaxPlan = (plan: StagePlan[]): StagePlan[] =>
    plan.map((sp) => ({
      stage: sp.stage,
      instructions: sp.instructions.map((ins) => ({ ...ins, frequencyMhz: 1400 })),
    }));

  it('keeps the frontier point when the polished plan is worse, restating the certificate for it', () => {
    const { frontier } = withSample();
    const deadlineS = frontier.allMax.timeS;
    const lpBoundJ = frontier.lowerBoundJ(deadlineS);
    // A polish that found nothing, started from the all-max plan: worse than the frontier's.
    const polished = polishPlan(
      input,
      deadlineS,
      allMaxPlan(frontier.intrinsic().plan),
      { lpBoundJ, allMaxJ: frontier.allMax.energyJ },
      failing,
      { timeLimitS: 1 },
    );
    expect(polished.energyJ).toBeCloseTo(frontier.allMax.energyJ, 9);
    const r = withPolishedPlan(frontier, input, polished);
    const point = frontier.intrinsic().point;
    expect(r.frontier).toBe(frontier);
    expect(r.point).toEqual(point);
    expect(r.energyJ).toBe(point.energyJ);
    expect(r.polish.improved).toBe(false);
    expect(r.boundJ).toBe(lpBoundJ);
    expect(r.gapPp).toBeCloseTo(((point.energyJ - lpBoundJ) / frontier.allMax.energyJ) * 100, 12);
    expect(r.savingPct).toBeCloseTo((1 - point.energyJ / frontier.allMax.energyJ) * 100, 12);
  });

  it('adds a polish of the intrinsic sample that reaches the exact optimum', async () => {
    const highs = (await import('highs')).default;
    const solver = highsMilpSolver((await highs()) as HighsRuntimeLike);
    const { frontier, samples } = withSample(tiny);
    const s = samples[0]!;
    const polished = polishPlan(
      tiny,
      s.allMax.timeS,
      s.plan,
      { lpBoundJ: s.lowerBoundJ, allMaxJ: s.allMax.energyJ },
      solver,
      { timeLimitS: 20 },
    );
    const r = withPolishedPlan(frontier, tiny, polished);
    const deadlineS = frontier.allMax.timeS;
    let optimumJ = Infinity;
    for (const p of exactFrontier(tiny))
      if (p.timeS <= deadlineS * (1 + 1e-9))
        optimumJ = Math.min(optimumJ, p.energyJ + tiny.blockingPowerW * 2 * (deadlineS - p.timeS));
    const paddedJ = r.point.energyJ + tiny.blockingPowerW * 2 * (deadlineS - r.point.timeS);
    expect(paddedJ).toBeCloseTo(optimumJ, 6);
    expect(r.frontier.intrinsic().point).toEqual(r.point);
    expect(evaluatePlan(tiny, r.plan).energyJ).toBeCloseTo(r.point.energyJ, 9);
    expect(r.gapPp).toBeGreaterThanOrEqual(0);
  });
});

describe('neighbourhoodPolish maxSubproblems', () => {
  it('stops after that many sub-problems, not converged, with the same plan every time', async () => {
    const highs = (await import('highs')).default;
    const solver = highsMilpSolver((await highs()) as HighsRuntimeLike);
    const { frontier } = withSample();
    const v = validatePlannerInput(input);
    const start = new Uint16Array(v.dag.numNodes); // every instruction at its fastest option
    const run = () =>
      neighbourhoodPolish(v, frontier.allMax.timeS, start, solver, {
        timeLimitS: 60,
        windowNodes: 4,
        maxSubproblems: 3,
      });
    const a = run();
    expect(a.subproblems).toBe(3);
    expect(a.converged).toBe(false);
    expect(a.energyJ).toBeLessThan(frontier.allMax.energyJ);
    const b = run();
    expect(Array.from(b.choice)).toEqual(Array.from(a.choice));
    // Without the limit the same search goes on until a pass finds nothing.
    const free = neighbourhoodPolish(v, frontier.allMax.timeS, start, solver, {
      timeLimitS: 60,
      windowNodes: 4,
    });
    expect(free.converged).toBe(true);
    expect(free.subproblems).toBeGreaterThan(3);
    expect(free.energyJ).toBeLessThanOrEqual(a.energyJ);
  });
});
