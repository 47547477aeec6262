/**
 * Interleaved 1F1B (Megatron-LM's virtual pipeline) through the real optimizer server: the sweep
 * over every virtual stage, blocking power measured per GPU, the chunk-tagged plan each rank
 * receives, and extrinsic plans for a straggler.
 */
import { status } from '@grpc/grpc-js';
import { computeFrontier, scheduleOrder } from '@perseus/planner';
import type { Frontier, PipelineSpec, Profile } from '@perseus/planner';
import type { optimizerV1 } from '@perseus/proto';
import { MemoryProfileSource } from '../src';
import {
  cellsAtClock,
  CLOCKS,
  KIND,
  Watch,
  call,
  failure,
  gpt3Profile,
  jobRequest,
  rankOf,
  registerAll,
  startOptimizer,
  wireInstructions as wire,
} from './helpers';

/** An interleaved job: N GPUs × V chunks (the profile's first N·V stages are its virtual stages). */
function interleavedJob(
  jobId: string,
  o: { n: number; v: number; m: number; dp?: number; k?: number; floor?: number; pb?: number },
): optimizerV1.RegisterJobRequest {
  const req = jobRequest(jobId, {
    n: o.n,
    m: o.m,
    dp: o.dp ?? 1,
    k: o.k ?? 1,
    floor: o.floor ?? 0,
    blockingPowerW: o.pb ?? 83.64,
  });
  req.spec!.pipeline = {
    schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
    num_stages: o.n,
    num_microbatches: o.m,
    num_chunks: o.v,
  };
  return req;
}

const firstStages = (p: Profile, count: number, floorMhz = 0): Profile => ({
  stages: p.stages.slice(0, count).map((st) => ({
    forward: st.forward.filter((o) => o.frequencyMhz >= floorMhz),
    backward: st.backward.filter((o) => o.frequencyMhz >= floorMhz),
  })),
});

describe('an interleaved job profiled online', () => {
  test('sweeps all N·V virtual stages, measures blocking power per GPU and deploys each rank its chunk-tagged plan', async () => {
    const full = gpt3Profile();
    const N = 2;
    const V = 2;
    const M = 2;
    const FLOOR = 1350; // 5 clocks: 1410 … 1350
    const PB = 70.5; // what the emulated GPUs draw while blocked
    const pipeline: PipelineSpec = {
      schedule: 'interleaved',
      numStages: N,
      numMicrobatches: M,
      numChunks: V,
    };
    const source = new MemoryProfileSource();
    const h = await startOptimizer({ profileSource: source });
    try {
      await call(
        h.client,
        'RegisterJob',
        interleavedJob('il', { n: N, v: V, m: M, k: 2, floor: FLOOR, pb: 0 }),
      );
      const w1 = new Watch(h.client, 'il', 1);
      await registerAll(h.client, 'il', N, 1, 1, CLOCKS);
      let s = await w1.until((x) => x.phase === 'PHASE_PROFILING');
      // GPU 1 runs Megatron's order over its two chunks (virtual stages 1 and 3), every
      // instruction at the sweep's first clock.
      expect(s.instructions).toEqual(
        scheduleOrder(pipeline, 1).map((slot) => ({
          instruction: KIND[slot.kind],
          microbatch: slot.microbatch,
          chunk: slot.chunk,
          frequency_mhz: 1410,
        })),
      );
      expect(new Set(s.instructions.map((x) => x.chunk))).toEqual(new Set([0, 1]));
      const swept: number[] = [];
      let it = 0;
      while (s.phase === 'PHASE_PROFILING') {
        const clock = s.instructions[0]!.frequency_mhz;
        swept.push(clock);
        const at = (stage: number, kind: 'forward' | 'backward') =>
          full.stages[stage]![kind].find((o) => o.frequencyMhz === clock)!;
        // The profiler's cells: one per virtual stage.
        source.putCells('il', cellsAtClock(full, 4, clock));
        for (let k = 0; k < 2; k++, it++) {
          for (let r = 0; r < N; r++) {
            // GPU r computes both of its chunks (virtual stages r and N + r), then idles at PB.
            const mine = [r, N + r];
            const busyS = mine.reduce(
              (a, v) => a + M * (at(v, 'forward').timeS + at(v, 'backward').timeS),
              0,
            );
            const busyJ = mine.reduce(
              (a, v) => a + M * (at(v, 'forward').energyJ + at(v, 'backward').energyJ),
              0,
            );
            const idleS = 0.4 * busyS;
            await call(h.client, 'ReportIteration', {
              job_id: 'il',
              rank: rankOf(r, N, 1),
              iteration: it,
              time_s: busyS + idleS,
              energy_j: busyJ + PB * idleS,
              schedule_version: s.version,
            });
          }
        }
        const v = Number(s.version);
        s = await w1.until((x) => Number(x.version) > v);
      }
      expect(swept).toEqual(CLOCKS.filter((c) => c >= FLOOR));
      const dep = await w1.until((x) => x.phase === 'PHASE_DEPLOYED');
      // Planned from the four virtual stages with the blocking power measured per GPU (both chunks
      // counted as busy): exactly the planner's own frontier at PB.
      const expected = computeFrontier({
        profile: firstStages(full, N * V, FLOOR),
        pipeline,
        blockingPowerW: PB,
        unitTimeS: 0.001,
      });
      expect(dep.instructions).toEqual(wire(expected.intrinsic().plan, 1));
      const got = await call<optimizerV1.GetFrontierResponse__Output>(h.client, 'GetFrontier', {
        job_id: 'il',
      });
      expect(got.all_max_energy_j).toBeCloseTo(expected.allMax.energyJ, 6);
      expect(got.points[0]!.energy_j).toBeCloseTo(expected.points[0]!.energyJ, 6);
      const job = await call<optimizerV1.GetJobResponse__Output>(h.client, 'GetJob', {
        job_id: 'il',
      });
      expect(job.spec?.pipeline).toEqual({
        schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
        num_stages: N,
        num_microbatches: M,
        num_chunks: V,
      });
      expect(job.blocking_power_w).toBeCloseTo(PB, 6);
      w1.cancel();
    } finally {
      await h.close();
    }
  });
});

describe('an interleaved job with an imported profile', () => {
  const N = 2;
  const V = 2;
  const M = 4;
  const DP = 2;
  const profile = firstStages(gpt3Profile(), N * V);
  let frontier: Frontier;
  beforeAll(() => {
    frontier = computeFrontier({
      profile,
      pipeline: { schedule: 'interleaved', numStages: N, numMicrobatches: M, numChunks: V },
      blockingPowerW: 83.64,
      unitTimeS: 0.001,
    });
  });

  test('deploys the intrinsic plan, and a straggler moves the other pipeline to planFor(T′) and back', async () => {
    const h = await startOptimizer({ importedProfiles: [{ profile }] });
    const watches: Watch[] = [];
    try {
      await call(h.client, 'RegisterJob', interleavedJob('ilx', { n: N, v: V, m: M, dp: DP }));
      const w0 = new Watch(h.client, 'ilx', 0); // dp 0, GPU 0
      const w3 = new Watch(h.client, 'ilx', 3); // dp 1, GPU 1
      watches.push(w0, w3);
      await registerAll(h.client, 'ilx', N, DP, 1, CLOCKS);
      const d0 = await w0.until((s) => s.phase === 'PHASE_DEPLOYED');
      expect(d0.instructions).toEqual(wire(frontier.intrinsic().plan, 0));
      expect(d0.instructions).toHaveLength(2 * M * V);
      expect(d0.expected_iteration_time_s).toBe(frontier.intrinsic().point.timeS);
      const before = Number(d0.version);

      const tIntr = frontier.intrinsic().point.timeS;
      const r = await call<optimizerV1.ReportStragglerResponse__Output>(
        h.client,
        'ReportStraggler',
        {
          job_id: 'ilx',
          dp_rank: 1,
          slowdown: 1.1,
        },
      );
      const slowed = frontier.planFor(1.1 * tIntr);
      expect(r.target_iteration_time_s).toBe(slowed.point.timeS);
      expect(slowed.point.energyJ).toBeLessThan(frontier.intrinsic().point.energyJ);
      const s0 = await w0.until((s) => Number(s.version) === before + 1);
      expect(s0.instructions).toEqual(wire(slowed.plan, 0));
      const s3 = await w3.until((s) => Number(s.version) === before + 1);
      expect(s3.instructions).toEqual(wire(frontier.intrinsic().plan, 1)); // the straggler runs fast

      await call(h.client, 'ReportStraggler', { job_id: 'ilx', dp_rank: 1, recovered: true });
      const back = await w0.until((s) => Number(s.version) === before + 2);
      expect(back.instructions).toEqual(wire(frontier.intrinsic().plan, 0));
    } finally {
      for (const w of watches) w.cancel();
      await h.close();
    }
  });
});

describe('PlanOffline of an interleaved pipeline', () => {
  test('plans the profile as N·V virtual stages, each plan with its chunks, identical to the planner', async () => {
    const profile = gpt3Profile(); // 8 stages = 4 GPUs × 2 chunks
    const rows = profile.stages.flatMap((st, stage) =>
      (['forward', 'backward'] as const).flatMap((kind) =>
        st[kind].map((o) => ({
          stage,
          instruction: KIND[kind],
          frequency_mhz: o.frequencyMhz,
          time_s: o.timeS,
          energy_j: o.energyJ,
        })),
      ),
    );
    const pipeline = {
      schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
      num_stages: 4,
      num_microbatches: 4,
      num_chunks: 2,
    };
    const h = await startOptimizer();
    try {
      const res = await call<optimizerV1.PlanOfflineResponse__Output>(h.client, 'PlanOffline', {
        profile: rows,
        pipeline,
        blocking_power_w: 83.64,
        include_plans: true,
      });
      const f = computeFrontier({
        profile,
        pipeline: { schedule: 'interleaved', numStages: 4, numMicrobatches: 4, numChunks: 2 },
        blockingPowerW: 83.64,
        unitTimeS: 0.001,
      });
      expect(res.points.map((p) => [p.time_s, p.energy_j])).toEqual(
        f.points.map((p) => [p.timeS, p.energyJ]),
      );
      expect(res.plans[0]!.stages).toHaveLength(4); // one StagePlan per GPU
      expect(res.plans[0]!.stages[1]!.instructions).toEqual(wire(f.plan(0), 1));
      expect(new Set(res.plans[0]!.stages[1]!.instructions.map((x) => x.chunk))).toEqual(
        new Set([0, 1]),
      );
      // M = 6 is not a multiple of the 4 GPUs: Megatron's rule, refused before planning.
      const refused = await failure(
        call(h.client, 'PlanOffline', {
          profile: rows,
          pipeline: { ...pipeline, num_microbatches: 6 },
          blocking_power_w: 83.64,
        }),
      );
      expect(refused.code).toBe(status.INVALID_ARGUMENT);
      expect(refused.fields).toEqual(['pipeline.num_microbatches']);
    } finally {
      await h.close();
    }
  });
});
