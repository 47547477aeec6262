/**
 * Values that make no sense and requests that would stall the planner (issue 13): each refused at
 * the boundary with INVALID_ARGUMENT naming the field, or FAILED_PRECONDITION, before any work.
 */
import { status } from '@grpc/grpc-js';
import type { Profile } from '@perseus/planner';
import { createLogger } from '@perseus/service-kit';
import { Optimizer, OptimizerStore } from '../src';
import type { FrontierPlanner, PlannedFrontier } from '../src';
import { PlanAbortedError, WorkerFrontierPlanner } from '../src/planner-pool';
import type { Harness } from './helpers';
import { call, failure, gpt3Profile, jobRequest, startOptimizer, CLOCKS } from './helpers';

/** Two stages of the GPT-3 profile as PlanOffline rows. */
function rows(profile: Profile, stages: number) {
  return profile.stages.slice(0, stages).flatMap((st, stage) =>
    (['forward', 'backward'] as const).flatMap((k) =>
      st[k].map((o) => ({
        stage,
        instruction: k === 'forward' ? 'INSTRUCTION_KIND_FORWARD' : 'INSTRUCTION_KIND_BACKWARD',
        frequency_mhz: o.frequencyMhz,
        time_s: o.timeS,
        energy_j: o.energyJ,
      })),
    ),
  );
}

const offline = (over: object) => ({
  profile: rows(gpt3Profile(), 2),
  pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 2, num_microbatches: 4 },
  blocking_power_w: 83.64,
  unit_time_s: 0.001,
  ...over,
});

describe('hostile values through the server', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startOptimizer({ importedProfiles: [{ profile: gpt3Profile() }] });
  });
  afterEach(async () => {
    await h.close();
  });

  test('PlanOffline with a row time of 1e308 or 2^53 s is INVALID_ARGUMENT on that row', async () => {
    for (const t of [1e308, 2 ** 53]) {
      const req = offline({});
      req.profile[3] = { ...req.profile[3]!, time_s: t };
      const f = await failure(call(h.client, 'PlanOffline', req));
      expect(f.code).toBe(status.INVALID_ARGUMENT);
      expect(f.fields).toEqual(['profile[3].time_s']);
    }
  });

  test('PlanOffline with a tiny unit time is refused before planning, naming the limit', async () => {
    for (const tau of [1e-300, 1e-5]) {
      const f = await failure(call(h.client, 'PlanOffline', offline({ unit_time_s: tau })));
      expect(f.code).toBe(status.INVALID_ARGUMENT);
      expect(f.fields).toEqual(['unit_time_s']);
      expect(f.details).toContain('limit 20000');
    }
  });

  test('straggler reports of 5e-324 s are refused; a job still registering refuses any', async () => {
    await call(h.client, 'RegisterJob', jobRequest('s', { dp: 2 }));
    const tiny = await failure(
      call(h.client, 'ReportStraggler', { job_id: 's', dp_rank: 0, iteration_time_s: 5e-324 }),
    );
    expect(tiny).toMatchObject({ code: status.INVALID_ARGUMENT, fields: ['iteration_time_s'] });
    const early = await failure(
      call(h.client, 'ReportStraggler', { job_id: 's', dp_rank: 1, slowdown: 1.5 }),
    );
    expect(early.code).toBe(status.FAILED_PRECONDITION);
    const st = await call<{ straggler_dp_ranks: number[] }>(h.client, 'GetJobStatus', {
      job_id: 's',
    });
    expect(st.straggler_dp_ranks).toEqual([]);
  });

  test('iteration reports with a time of 5e-324 s or an energy of 1e300 J are refused', async () => {
    await call(h.client, 'RegisterJob', jobRequest('r', {}));
    await call(h.client, 'RegisterRank', {
      job_id: 'r',
      rank: { rank: 0 },
      node: 'n',
      supported_frequencies_mhz: CLOCKS,
    });
    const base = { job_id: 'r', rank: { rank: 0 }, iteration: '1', schedule_version: '1' };
    const t = await failure(
      call(h.client, 'ReportIteration', { ...base, time_s: 5e-324, energy_j: 1 }),
    );
    expect(t).toMatchObject({ code: status.INVALID_ARGUMENT, fields: ['time_s'] });
    const e = await failure(
      call(h.client, 'ReportIteration', { ...base, time_s: 1, energy_j: 1e300 }),
    );
    expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, fields: ['energy_j'] });
  });
});

/** A planner whose calls wait until released (or aborted). */
class GatedPlanner implements FrontierPlanner {
  calls = 0;
  plan(_input: unknown, _progress?: unknown, signal?: AbortSignal): Promise<PlannedFrontier> {
    this.calls++;
    return new Promise((_resolve, reject) => {
      signal?.addEventListener('abort', () => reject(new PlanAbortedError()));
    });
  }
  async close(): Promise<void> {}
}

test("a job's planning never waits behind a PlanOffline request", async () => {
  const offlinePlanner = new GatedPlanner();
  const planner = new WorkerFrontierPlanner(0);
  const core = new Optimizer({
    store: new OptimizerStore(':memory:'),
    planner,
    offlinePlanner,
    profileSource: () => undefined,
    importedProfiles: [{ profile: { stages: gpt3Profile().stages.slice(0, 4) } }],
    logger: createLogger('t', 'silent'),
  });
  try {
    core.restore();
    const abort = new AbortController();
    const pending = core.planOffline(
      {
        profile: { stages: gpt3Profile().stages.slice(0, 4) },
        pipeline: { schedule: '1f1b', numStages: 4, numMicrobatches: 4 },
        blockingPowerW: 83.64,
        unitTimeS: 0.01,
        includePlans: false,
      },
      abort.signal,
    );
    core.registerJob('j', {
      pipeline: { schedule: '1f1b', numStages: 4, numMicrobatches: 4 },
      dpDegree: 1,
      tpDegree: 1,
      worldSize: 4,
      gpuModel: 'A100',
      unitTimeS: 0.01,
      blockingPowerW: 83.64,
      profiling: { iterationsPerFrequency: 1, floorFrequencyMhz: 0, frequencyStride: 1 },
    });
    for (const r of [0, 1, 2, 3])
      core.registerRank({
        jobId: 'j',
        rank: { rank: r, dpRank: 0, ppRank: r, tpRank: 0 },
        node: 'n',
        deviceIndex: r,
        supportedFrequenciesMhz: CLOCKS,
        simulated: false,
        expectedSpecHash: '',
      });
    const deadline = Date.now() + 60_000;
    while (core.getJobStatus('j').phase !== 'DEPLOYED' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(core.getJobStatus('j').phase).toBe('DEPLOYED');
    expect(offlinePlanner.calls).toBe(1);
    // The offline caller going away cancels its planning.
    abort.abort();
    await expect(pending).rejects.toBeInstanceOf(PlanAbortedError);
  } finally {
    await core.close();
  }
}, 90_000);

test('aborting a running plan stops the worker; the next request is served', async () => {
  const planner = new WorkerFrontierPlanner(0);
  try {
    // Large enough to run for many seconds (a 4 × 4 plan at τ = 1e-5 finished in ~0.2 s, before a
    // timed abort could land on a fast machine); the abort is sent once the worker reports progress,
    // so it always hits a running plan.
    const profile = gpt3Profile();
    const input = {
      profile,
      pipeline: {
        schedule: '1f1b' as const,
        numStages: profile.stages.length,
        numMicrobatches: 64,
      },
      blockingPowerW: 83.64,
      unitTimeS: 1e-5,
    };
    const abort = new AbortController();
    let progressed = 0;
    const slow = planner.plan(
      input,
      () => {
        progressed++;
        abort.abort();
      },
      abort.signal,
    );
    await expect(slow).rejects.toBeInstanceOf(PlanAbortedError);
    expect(progressed).toBeGreaterThan(0);
    const small = { stages: profile.stages.slice(0, 4) };
    const { frontier } = await planner.plan({
      ...input,
      profile: small,
      pipeline: { schedule: '1f1b' as const, numStages: 4, numMicrobatches: 4 },
      unitTimeS: 0.01,
    });
    expect(frontier.points.length).toBeGreaterThan(1);
  } finally {
    await planner.close();
  }
}, 90_000);
