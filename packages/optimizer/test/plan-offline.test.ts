/** PlanOffline through the real server: stateless planning from profile rows, without a job. */
import { status } from '@grpc/grpc-js';
import { computeFrontier } from '@perseus/planner';
import type { optimizerV1 } from '@perseus/proto';
import type { Harness } from './helpers';
import { KIND, call, failure, gpt3Profile, startOptimizer, wireInstructions } from './helpers';

describe('PlanOffline', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startOptimizer();
  });
  afterAll(() => h.close());

  test('plans from profile rows without a job, identical to the planner', async () => {
    const profile = gpt3Profile();
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
    const res = await call<optimizerV1.PlanOfflineResponse__Output>(h.client, 'PlanOffline', {
      profile: rows,
      pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 8, num_microbatches: 4 },
      blocking_power_w: 83.64,
      include_plans: true,
    });
    const f = computeFrontier({
      profile,
      pipeline: { schedule: '1f1b', numStages: 8, numMicrobatches: 4 },
      blockingPowerW: 83.64,
      unitTimeS: 0.001,
    });
    expect(res.points.map((p) => [p.time_s, p.energy_j])).toEqual(
      f.points.map((p) => [p.timeS, p.energyJ]),
    );
    expect(res.intrinsic_index).toBe(f.intrinsic().point.index);
    expect(res.all_max_energy_j).toBe(f.allMax.energyJ);
    expect(res.plans.length).toBe(f.points.length);
    expect(res.plans[0]!.stages[5]!.instructions).toEqual(wireInstructions(f.plan(0), 5));
  });

  test('a bad row is INVALID_ARGUMENT naming it', async () => {
    const r = await failure(
      call(h.client, 'PlanOffline', {
        profile: [
          {
            stage: 0,
            instruction: 'INSTRUCTION_KIND_FORWARD',
            frequency_mhz: 1410,
            time_s: 0.1,
            energy_j: 0,
          },
        ],
        pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 1, num_microbatches: 1 },
        blocking_power_w: 80,
      }),
    );
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.fields).toEqual(['profile[0].energy_j']);
  });
});
