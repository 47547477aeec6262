/**
 * The exact polish of deployed plans (issue 16 §2): the planner worker polishes the intrinsic plan
 * with the frontier and a straggler's T′ on request; an abort stops it (the worker, HiGHS in it);
 * the optimizer deploys a polished plan only when it uses less energy than the frontier's point.
 */
import { computeFrontier, evaluatePlan } from '@perseus/planner';
import type { PlannerInput } from '@perseus/planner';
import type { optimizerV1 } from '@perseus/proto';
import { PlanAbortedError, WorkerFrontierPlanner } from '../src/planner-pool';
import type { PolishRequest } from '../src/planner-pool';
import type { Harness } from './helpers';
import { Watch, call, gpt3Profile, jobRequest, registerAll, startOptimizer } from './helpers';

const CLOCKS = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i);

/** The first `stages` stages of the GPT-3 A100 profile, 1F1B with `m` microbatches. */
const gpt3Input = (stages: number, m: number): PlannerInput => ({
  profile: { stages: gpt3Profile().stages.slice(0, stages) },
  pipeline: { schedule: '1f1b', numStages: stages, numMicrobatches: m },
  blockingPowerW: 83.64,
  unitTimeS: 1e-3,
});

/** A polish request for the frontier's plan at `deadlineS`. */
function polishRequest(input: PlannerInput, deadlineS: number): PolishRequest {
  const f = computeFrontier(input);
  return {
    input,
    deadlineS,
    plan: f.planFor(deadlineS).plan,
    lpBoundJ: f.lowerBoundJ(deadlineS),
    allMaxJ: f.allMax.energyJ,
    budgetS: 120,
  };
}

describe('the planner worker polishes deployed plans', () => {
  let planner: WorkerFrontierPlanner;
  beforeEach(() => {
    planner = new WorkerFrontierPlanner(0);
  });
  afterEach(async () => {
    await planner.close();
  });

  it('polishes the intrinsic plan with the frontier: no more energy, re-evaluated, certified', async () => {
    const input = gpt3Input(2, 6);
    const plain = computeFrontier(input).intrinsic().point;
    const { frontier, exact } = await planner.plan(input, undefined, undefined, {
      polishBudgetS: 120,
    });
    const intrinsic = frontier.intrinsic();
    expect(exact).toBeDefined();
    expect(intrinsic.point.energyJ).toBeLessThanOrEqual(plain.energyJ + 1e-9);
    expect(intrinsic.point.timeS).toBeLessThanOrEqual(frontier.allMax.timeS * (1 + 1e-7));
    expect(evaluatePlan(input, intrinsic.plan).energyJ).toBeCloseTo(intrinsic.point.energyJ, 9);
    expect(exact!.energyJ).toBeCloseTo(intrinsic.point.energyJ, 9);
    // Small enough to be solved: the bound is the optimum, the gap HiGHS's 1e-6 at most.
    expect(exact!.polish.status).toBe('optimal');
    expect(exact!.gapPp).toBeGreaterThanOrEqual(0);
    expect(exact!.gapPp).toBeLessThan(1e-3);
  });

  it("polishes a straggler's T′ to less energy than the frontier's point, within T′", async () => {
    const input = gpt3Input(2, 6);
    const f = computeFrontier(input);
    const tPrime = f.intrinsic().point.timeS * 1.2;
    const point = f.planFor(tPrime).point;
    const r = await planner.polish(polishRequest(input, tPrime));
    expect(r.polish.improved).toBe(true);
    expect(r.energyJ).toBeLessThan(point.energyJ - 0.1);
    const e = evaluatePlan(input, r.plan);
    expect(e.energyJ).toBeCloseTo(r.energyJ, 9);
    expect(e.timeS).toBeCloseTo(r.timeS, 12);
    expect(r.timeS).toBeLessThanOrEqual(tPrime * (1 + 1e-7));
    expect(r.deadlineS).toBe(tPrime);
    expect(r.polish.status).toBe('optimal');
    expect(r.gapPp).toBeLessThan(1e-3);
  });

  it('an abort stops a running polish (its worker, HiGHS in it); the next request is served', async () => {
    const input = gpt3Input(4, 8);
    const f = computeFrontier(input);
    const abort = new AbortController();
    let reports = 0;
    const running = planner.polish(
      polishRequest(input, f.intrinsic().point.timeS * 1.2),
      () => {
        reports++;
        abort.abort();
      },
      abort.signal,
    );
    await expect(running).rejects.toBeInstanceOf(PlanAbortedError);
    expect(reports).toBe(1);
    // A queued request is dropped before it starts, without a report.
    const gate = new AbortController();
    const first = planner.polish(polishRequest(gpt3Input(2, 6), f.allMax.timeS), undefined);
    const queued = planner.polish(
      polishRequest(input, f.allMax.timeS),
      () => reports++,
      gate.signal,
    );
    gate.abort();
    await expect(queued).rejects.toBeInstanceOf(PlanAbortedError);
    const served = await first;
    expect(served.deadlineS).toBe(f.allMax.timeS);
    expect(reports).toBe(1);
  });
});

describe('the optimizer deploys polished plans', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startOptimizer({
      importedProfiles: [{ profile: { stages: gpt3Profile().stages.slice(0, 2) } }],
      exactBudgetS: 120,
    });
  });
  afterEach(async () => {
    await h.close();
  });

  it("redeploys a straggler's T′ with the polished plan and reports its certified gap", async () => {
    await call(h.client, 'RegisterJob', jobRequest('p', { n: 2, m: 6, dp: 2 }));
    // Pipeline 0, the healthy one: its two stages are ranks 0 and 1.
    const watches = [new Watch(h.client, 'p', 0), new Watch(h.client, 'p', 1)];
    const w = watches[0]!;
    try {
      await registerAll(h.client, 'p', 2, 2, 1, CLOCKS);
      const intrinsic = await w.until((s) => s.phase === 'PHASE_DEPLOYED', 120_000);
      expect(intrinsic.reason).toBe('intrinsic');
      await call(h.client, 'ReportStraggler', { job_id: 'p', dp_rank: 1, slowdown: 1.2 });
      const slowed = await w.until((s) => s.reason.startsWith('straggler dp=1'), 120_000);
      const polished = await w.until((s) => s.reason.endsWith('(exact polish)'), 120_000);
      expect(Number(polished.version)).toBeGreaterThan(Number(slowed.version));
      expect(polished.expected_iteration_energy_j).toBeLessThan(
        slowed.expected_iteration_energy_j - 0.1,
      );
      // The same T′ as the frontier plan it replaces: the pipeline is paced by the straggler.
      expect(polished.reason).toBe(`${slowed.reason} (exact polish)`);
      // The deployed plan is what the emulator says it is (same input as the job's).
      const stages = await Promise.all(
        watches.map((x) => x.until((s) => s.version === polished.version, 120_000)),
      );
      const input = gpt3Input(2, 6);
      const plan = computeFrontier(input)
        .intrinsic()
        .plan.map((sp, stage) => ({
          stage,
          instructions: sp.instructions.map((ins, j) => ({
            ...ins,
            frequencyMhz: stages[stage]!.instructions[j]!.frequency_mhz,
          })),
        }));
      stages.forEach((s, stage) =>
        expect(s.instructions).toHaveLength(plan[stage]!.instructions.length),
      );
      const e = evaluatePlan(input, plan);
      expect(e.energyJ).toBeCloseTo(polished.expected_iteration_energy_j, 6);
      expect(e.timeS).toBeCloseTo(polished.expected_iteration_time_s, 9);
      const st = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
        job_id: 'p',
      });
      expect(st.certified_gap_percent).toBeDefined();
      expect(st.certified_gap_percent!).toBeGreaterThanOrEqual(0);
      expect(st.certified_gap_percent!).toBeLessThan(1e-3);
    } finally {
      for (const x of watches) x.stream.cancel();
    }
  });
});
