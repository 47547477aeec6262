import { status } from '@grpc/grpc-js';
import { computeFrontier } from '@perseus/planner';
import type { Frontier, PlannerInput } from '@perseus/planner';
import type { optimizerV1 } from '@perseus/proto';
import type { Harness } from './helpers';
import {
  CLOCKS,
  Watch,
  call,
  failure,
  gpt3Profile,
  jobRequest,
  rankOf,
  registerAll,
  startOptimizer,
  wireInstructions,
} from './helpers';

describe('a job with an imported profile (sweep skipped)', () => {
  let h: Harness;
  let frontier: Frontier;
  const watches: Watch[] = [];
  const N = 8;
  const M = 4;
  const DP = 2;

  const profile = gpt3Profile();
  beforeAll(() => {
    const input: PlannerInput = {
      profile,
      pipeline: { schedule: '1f1b', numStages: N, numMicrobatches: M },
      blockingPowerW: 83.64,
      unitTimeS: 0.001,
    };
    frontier = computeFrontier(input);
  });
  // Every test gets a fresh server; all but the registration test start from the deployed job
  // (rank 0 and rank 9 watching), so no test depends on another's leftovers.
  beforeEach(async () => {
    h = await startOptimizer({ importedProfiles: [{ profile }] });
    if (expect.getState().currentTestName?.includes('registration is idempotent') === true) return;
    await call(h.client, 'RegisterJob', jobRequest('imp', { m: M, dp: DP }));
    const w0 = new Watch(h.client, 'imp', 0);
    const w9 = new Watch(h.client, 'imp', 9);
    watches.push(w0, w9);
    await registerAll(h.client, 'imp', N, DP, 1, CLOCKS);
    await w0.until((s) => s.phase === 'PHASE_DEPLOYED');
    await w9.until((s) => s.phase === 'PHASE_DEPLOYED');
  });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.cancel();
    await h.close();
  });

  test('registration is idempotent and leads to the intrinsic plan on every rank', async () => {
    const reg = await call<optimizerV1.RegisterJobResponse__Output>(
      h.client,
      'RegisterJob',
      jobRequest('imp', { m: M, dp: DP }),
    );
    expect(reg).toEqual({
      created: true,
      phase: 'PHASE_REGISTERING',
      generation: '1',
      profile_job_id: 'imp',
      spec_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    // Watchers may connect before their rank registers: they get the current version at once.
    const w0 = new Watch(h.client, 'imp', 0);
    const w9 = new Watch(h.client, 'imp', 9); // dp 1, stage 1
    watches.push(w0, w9);
    const first = await w0.until(() => true);
    expect(first).toMatchObject({ version: '1', phase: 'PHASE_REGISTERING', instructions: [] });
    await registerAll(h.client, 'imp', N, DP, 1, CLOCKS);
    const again = await call<optimizerV1.RegisterJobResponse__Output>(
      h.client,
      'RegisterJob',
      jobRequest('imp', { m: M, dp: DP }),
    );
    expect(again.created).toBe(false);
    const rr = await call<optimizerV1.RegisterRankResponse__Output>(h.client, 'RegisterRank', {
      job_id: 'imp',
      rank: rankOf(3, N, 1),
      node: 'node0',
      device_index: 3,
      supported_frequencies_mhz: CLOCKS,
    });
    expect(rr).toEqual({
      created: false,
      registered_ranks: 16,
      generation: '1',
      profile_job_id: 'imp',
      spec_hash: reg.spec_hash,
    });

    const s0 = await w0.until((s) => s.phase === 'PHASE_DEPLOYED');
    const s9 = await w9.until((s) => s.phase === 'PHASE_DEPLOYED');
    const intrinsic = frontier.intrinsic();
    expect(s0.instructions).toEqual(wireInstructions(intrinsic.plan, 0));
    expect(s9.instructions).toEqual(wireInstructions(intrinsic.plan, 1));
    expect(s0.version).toBe(s9.version);
    expect(s0.reason).toBe('intrinsic');
    expect(s0.expected_iteration_time_s).toBeCloseTo(intrinsic.point.timeS, 12);
    expect(s0.expected_iteration_energy_j).toBeCloseTo(intrinsic.point.energyJ, 9);
    // The phases were announced in order: REGISTERING → PLANNING → DEPLOYED (sweep skipped).
    expect([...new Set(w0.got.map((s) => s.phase))]).toEqual([
      'PHASE_REGISTERING',
      'PHASE_PLANNING',
      'PHASE_DEPLOYED',
    ]);

    const st = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
      job_id: 'imp',
    });
    expect(st).toMatchObject({
      phase: 'PHASE_DEPLOYED',
      schedule_version: s0.version,
      registered_ranks: 16,
      world_size: 16,
      straggler_dp_ranks: [],
    });
    expect(st.predicted_saving_percent).toBeCloseTo(
      100 * (1 - intrinsic.point.energyJ / frontier.allMax.energyJ),
      9,
    );
    expect(st.predicted_saving_percent).toBeGreaterThan(5);
    // Certified against the planner's LP relaxation at the deployed plan's iteration time.
    const boundJ = frontier.lowerBoundJ(intrinsic.point.timeS);
    expect(st.certified_gap_percent).toBeCloseTo(
      (100 * (intrinsic.point.energyJ - boundJ)) / intrinsic.point.energyJ,
      9,
    );
    expect(st.certified_gap_percent).toBeGreaterThanOrEqual(0);
  });

  test('GetFrontier returns the frontier and the intrinsic choice', async () => {
    const f = await call<optimizerV1.GetFrontierResponse__Output>(h.client, 'GetFrontier', {
      job_id: 'imp',
    });
    expect(f.points.length).toBe(frontier.points.length);
    expect(f.points[3]).toEqual({
      index: 3,
      time_s: frontier.points[3]!.timeS,
      energy_j: frontier.points[3]!.energyJ,
      model_energy_j: frontier.points[3]!.modelEnergyJ,
    });
    expect(f.chosen_index).toBe(frontier.intrinsic().point.index);
    expect(f.all_max_time_s).toBe(frontier.allMax.timeS);
    expect(f.min_energy_time_s).toBe(frontier.minEnergyTimeS);
  });

  test('a straggler slows the other pipelines to planFor(T′); recovery restores intrinsic', async () => {
    const [w0, w9] = watches as [Watch, Watch];
    const before = Number(w0.last!.version);
    const tIntr = frontier.intrinsic().point.timeS;
    const r = await call<optimizerV1.ReportStragglerResponse__Output>(h.client, 'ReportStraggler', {
      job_id: 'imp',
      dp_rank: 1,
      slowdown: 1.1,
    });
    const expected = frontier.planFor(1.1 * tIntr);
    expect(Number(r.schedule_version)).toBe(before + 1);
    expect(r.target_iteration_time_s).toBe(expected.point.timeS);
    const s0 = await w0.until((s) => Number(s.version) === before + 1);
    expect(s0.instructions).toEqual(wireInstructions(expected.plan, 0));
    expect(s0.reason).toBe(`straggler dp=1 T'=${(1.1 * tIntr).toFixed(4)}s`);
    const s9 = await w9.until((s) => Number(s.version) === before + 1);
    expect(s9.instructions).toEqual(wireInstructions(frontier.intrinsic().plan, 1)); // the straggler keeps running fast
    const st = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
      job_id: 'imp',
    });
    expect(st.straggler_dp_ranks).toEqual([1]);

    // A slower straggler than T* is capped at T*.
    await call(h.client, 'ReportStraggler', { job_id: 'imp', dp_rank: 1, iteration_time_s: 100 });
    const capped = await w0.until((s) => Number(s.version) === before + 2);
    expect(capped.expected_iteration_time_s).toBe(
      frontier.points[frontier.points.length - 1]!.timeS,
    );

    const rec = await call<optimizerV1.ReportStragglerResponse__Output>(
      h.client,
      'ReportStraggler',
      { job_id: 'imp', dp_rank: 1, recovered: true },
    );
    expect(rec.target_iteration_time_s).toBe(0);
    const back = await w0.until((s) => Number(s.version) === before + 3);
    expect(back.instructions).toEqual(wireInstructions(frontier.intrinsic().plan, 0));
    expect(back.reason).toBe('intrinsic');
  });

  test('a straggler report that expires lapses by itself', async () => {
    const [w0] = watches as [Watch];
    const v = Number(w0.last!.version);
    await call(h.client, 'ReportStraggler', {
      job_id: 'imp',
      dp_rank: 0,
      slowdown: 1.05,
      expires_after_s: 0.3,
    });
    await w0.until((s) => Number(s.version) === v + 1);
    const back = await w0.until((s) => Number(s.version) === v + 2, 5000);
    expect(back.reason).toBe('intrinsic');
  });

  test('SetPolicy moves every pipeline to the policy point', async () => {
    const [w0] = watches as [Watch];
    const last = frontier.points.length - 1;
    const r = await call<optimizerV1.SetPolicyResponse__Output>(h.client, 'SetPolicy', {
      job_id: 'imp',
      policy: { min_energy: true },
    });
    expect(r.chosen?.index).toBe(last);
    const s = await w0.until((x) => x.version === r.schedule_version);
    expect(s.instructions).toEqual(wireInstructions(frontier.plan(last), 0));
    const target = frontier.intrinsic().point.timeS * 1.05;
    const r2 = await call<optimizerV1.SetPolicyResponse__Output>(h.client, 'SetPolicy', {
      job_id: 'imp',
      policy: { max_slowdown_percent: 5 },
    });
    expect(r2.chosen?.index).toBe(frontier.planFor(target).point.index);
    const f = await call<optimizerV1.GetFrontierResponse__Output>(h.client, 'GetFrontier', {
      job_id: 'imp',
    });
    expect(f.chosen_index).toBe(frontier.planFor(target).point.index);
    const r3 = await call<optimizerV1.SetPolicyResponse__Output>(h.client, 'SetPolicy', {
      job_id: 'imp',
      policy: { intrinsic: true },
    });
    expect(r3.chosen?.index).toBe(frontier.intrinsic().point.index);
  });

  test('invalid input names the field and changes nothing; conflicts are FAILED_PRECONDITION', async () => {
    const st0 = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
      job_id: 'imp',
    });
    const cases: Array<[string, unknown, string[]]> = [
      [
        'RegisterRank',
        {
          job_id: 'imp',
          rank: { rank: 0, dp_rank: 5, pp_rank: 9, tp_rank: 0 },
          node: 'n',
          device_index: 0,
          supported_frequencies_mhz: [1410],
        },
        ['rank.dp_rank', 'rank.pp_rank'],
      ],
      ['ReportStraggler', { job_id: 'imp', dp_rank: 7, slowdown: 1.2 }, ['dp_rank']],
      ['ReportStraggler', { job_id: 'imp', dp_rank: 0, slowdown: 0.5 }, ['slowdown']],
      [
        'SetPolicy',
        { job_id: 'imp', policy: { target_iteration_time_s: -1 } },
        ['policy.target_iteration_time_s'],
      ],
      [
        'ReportIteration',
        {
          job_id: 'imp',
          rank: rankOf(0, 8, 1),
          iteration: 1,
          time_s: -1,
          energy_j: 1,
          schedule_version: st0.schedule_version,
        },
        ['time_s'],
      ],
      [
        'ReportIteration',
        {
          job_id: 'imp',
          rank: { rank: 0, dp_rank: 1, pp_rank: 0, tp_rank: 0 },
          iteration: 1,
          time_s: 1,
          energy_j: 1,
          schedule_version: st0.schedule_version,
        },
        ['rank'],
      ],
    ];
    for (const [method, req, fields] of cases) {
      const f = await failure(call(h.client, method as never, req));
      expect([method, f.code, f.fields]).toEqual([method, status.INVALID_ARGUMENT, fields]);
    }
    const conflict = await failure(
      call(h.client, 'RegisterJob', jobRequest('imp', { m: M + 1, dp: DP })),
    );
    expect(conflict.code).toBe(status.FAILED_PRECONDITION);
    const taken = await failure(
      call(h.client, 'RegisterRank', {
        job_id: 'imp',
        rank: { ...rankOf(0, 8, 1), rank: 5 },
        node: 'n',
        device_index: 0,
        supported_frequencies_mhz: [1410],
      }),
    );
    expect(taken.code).toBe(status.FAILED_PRECONDITION);
    const st1 = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
      job_id: 'imp',
    });
    expect(st1).toEqual(st0);
  });

  test('unknown job is NOT_FOUND on every job RPC', async () => {
    const nf: Array<[string, unknown]> = [
      [
        'RegisterRank',
        {
          job_id: 'nope',
          rank: rankOf(0, 8, 1),
          node: 'n',
          device_index: 0,
          supported_frequencies_mhz: [1410],
        },
      ],
      [
        'ReportIteration',
        {
          job_id: 'nope',
          rank: rankOf(0, 8, 1),
          iteration: 1,
          time_s: 1,
          energy_j: 1,
          schedule_version: 1,
        },
      ],
      ['ReportStraggler', { job_id: 'nope', dp_rank: 0, recovered: true }],
      ['GetFrontier', { job_id: 'nope' }],
      ['SetPolicy', { job_id: 'nope', policy: { intrinsic: true } }],
      ['GetJobStatus', { job_id: 'nope' }],
    ];
    for (const [method, req] of nf)
      expect([method, (await failure(call(h.client, method as never, req))).code]).toEqual([
        method,
        status.NOT_FOUND,
      ]);
    const w = new Watch(h.client, 'nope', 0);
    await expect(w.until(() => false, 5000)).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  test('plans use only clocks every rank supports', async () => {
    await call(h.client, 'RegisterJob', jobRequest('few', { m: 4 }));
    const w = new Watch(h.client, 'few', 0);
    const few = [1410, 1395, 1380, 1365];
    for (let r = 0; r < 8; r++) {
      await call(h.client, 'RegisterRank', {
        job_id: 'few',
        rank: rankOf(r, 8, 1),
        node: 'n',
        device_index: r,
        supported_frequencies_mhz: r === 3 ? [...few, 1200] : few,
      });
    }
    const dep = await w.until((s) => s.phase === 'PHASE_DEPLOYED');
    const restricted = {
      stages: gpt3Profile().stages.map((st) => ({
        forward: st.forward.filter((o) => few.includes(o.frequencyMhz)),
        backward: st.backward.filter((o) => few.includes(o.frequencyMhz)),
      })),
    };
    const f = computeFrontier({
      profile: restricted,
      pipeline: { schedule: '1f1b', numStages: N, numMicrobatches: M },
      blockingPowerW: 83.64,
      unitTimeS: 0.001,
    });
    expect(dep.instructions).toEqual(wireInstructions(f.intrinsic().plan, 0));
    expect(dep.instructions.every((i) => few.includes(i.frequency_mhz))).toBe(true);
    w.cancel();
  });

  test('the metrics text carries phase, version and predicted saving per job', async () => {
    await call(h.client, 'RegisterJob', jobRequest('other', { m: M }));
    const st = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
      job_id: 'imp',
    });
    const text = await h.module.metricsText();
    expect(text).toContain('perseus_optimizer_job_phase{job_id="imp",phase="DEPLOYED"} 1');
    expect(text).toContain('perseus_optimizer_job_phase{job_id="imp",phase="PROFILING"} 0');
    expect(text).toContain(
      `perseus_optimizer_schedule_version{job_id="imp"} ${st.schedule_version}`,
    );
    expect(text).toContain(
      `perseus_optimizer_predicted_saving_ratio{job_id="imp",simulated="false"} ${st.predicted_saving_percent / 100}`,
    );
    expect(text).toContain('perseus_optimizer_job_watchers{job_id="imp"} 2');
    expect(text).toContain('perseus_optimizer_jobs 2');
  });
});

describe('straggler detection from iteration reports', () => {
  test('a pipeline 25% slower is detected, the others slow down, and it recovers without flapping', async () => {
    const profile = gpt3Profile();
    const h = await startOptimizer({
      importedProfiles: [{ profile }],
      stragglerWindow: 3,
      stragglerConfirmations: 2,
    });
    try {
      const frontier = computeFrontier({
        profile,
        pipeline: { schedule: '1f1b', numStages: 8, numMicrobatches: 4 },
        blockingPowerW: 83.64,
        unitTimeS: 0.001,
      });
      await call(h.client, 'RegisterJob', jobRequest('det', { m: 4, dp: 3 }));
      const w0 = new Watch(h.client, 'det', 0);
      await registerAll(h.client, 'det', 8, 3, 1, CLOCKS);
      const dep = await w0.until((s) => s.phase === 'PHASE_DEPLOYED');
      const tIntr = frontier.intrinsic().point.timeS;
      let version = dep.version;
      let it = 0;
      const runIterations = async (
        count: number,
        slowFactor: number,
        expectTimes: number[],
      ): Promise<void> => {
        for (let i = 0; i < count; i++, it++) {
          for (let r = 0; r < 24; r++) {
            const dp = Math.floor(r / 8);
            const t = dp === 2 ? tIntr * slowFactor : expectTimes[dp]!;
            const res = await call<optimizerV1.ReportIterationResponse__Output>(
              h.client,
              'ReportIteration',
              {
                job_id: 'det',
                rank: rankOf(r, 8, 1),
                iteration: it,
                time_s: t,
                energy_j: 100,
                schedule_version: version,
              },
            );
            if (res.schedule_version !== version) return;
          }
        }
      };
      await runIterations(10, 1.25, [tIntr, tIntr]);
      const slowed = await w0.until((s) => s.reason.startsWith('straggler dp=2'));
      const target = frontier.planFor(1.25 * tIntr);
      expect(slowed.expected_iteration_time_s).toBe(target.point.timeS);
      expect(slowed.instructions).toEqual(wireInstructions(target.plan, 0));
      version = slowed.version;
      // Healthy pipelines now take T′ on purpose; the straggler stays slow: nothing changes.
      await runIterations(10, 1.25, [target.point.timeS, target.point.timeS]);
      expect(w0.last!.version).toBe(version);
      // The straggler recovers.
      await runIterations(10, 1.0, [target.point.timeS, target.point.timeS]);
      const back = await w0.until((s) => Number(s.version) > Number(version));
      expect(back.reason).toBe('intrinsic');
      w0.cancel();
    } finally {
      await h.close();
    }
  });
});
