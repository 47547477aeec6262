/**
 * The optimizer's online phases through the real server: the profiling sweep (clocks, stop rule,
 * energies from the profile source), a silent rank's grace period, and blocking power measured while
 * profiling. (Jobs with imported profiles, stragglers, policies and PlanOffline: service.test.ts.)
 */
import { computeFrontier } from '@perseus/planner';
import type { optimizerV1 } from '@perseus/proto';
import { MemoryProfileSource } from '../src';
import {
  cellsAtClock,
  CLOCKS,
  Watch,
  call,
  gpt3Profile,
  jobRequest,
  rankOf,
  registerAll,
  startOptimizer,
  wireInstructions,
} from './helpers';

describe('online profiling sweep', () => {
  test('sweeps clocks from the highest, reads energies from the profile source, plans and deploys', async () => {
    const full = gpt3Profile();
    const N = 2;
    const floor = 1245; // 12 clocks: 1410 … 1245
    const source = new MemoryProfileSource();
    const h = await startOptimizer({ profileSource: source });
    try {
      await call(h.client, 'RegisterJob', jobRequest('sweep', { n: N, m: 2, k: 2, floor }));
      const w1 = new Watch(h.client, 'sweep', 1);
      await registerAll(h.client, 'sweep', N, 1, 1, CLOCKS);
      const swept: number[] = [];
      let it = 0;
      for (let guard = 0; guard < 40; guard++) {
        const s = guard === 0 ? await w1.until((x) => x.phase === 'PHASE_PROFILING') : w1.last!;
        if (s.phase !== 'PHASE_PROFILING') break;
        const clock = s.instructions[0]!.frequency_mhz;
        if (swept[swept.length - 1] !== clock) swept.push(clock);
        // The "client" measured every instruction at this clock: the profiler aggregates it.
        source.putCells('sweep', cellsAtClock(full, N, clock));
        for (let k = 0; k < 2; k++, it++) {
          for (let r = 0; r < N; r++)
            await call(h.client, 'ReportIteration', {
              job_id: 'sweep',
              rank: rankOf(r, N, 1),
              iteration: it,
              time_s: 1,
              energy_j: 300,
              schedule_version: s.version,
            });
        }
        await w1.until((x) => Number(x.version) > Number(s.version));
      }
      expect(swept).toEqual(CLOCKS.filter((c) => c >= floor));
      const dep = await w1.until((s) => s.phase === 'PHASE_DEPLOYED');
      const profiled = {
        stages: full.stages.slice(0, N).map((st) => ({
          forward: st.forward.filter((o) => o.frequencyMhz >= floor),
          backward: st.backward.filter((o) => o.frequencyMhz >= floor),
        })),
      };
      const frontier = computeFrontier({
        profile: profiled,
        pipeline: { schedule: '1f1b', numStages: N, numMicrobatches: 2 },
        blockingPowerW: 83.64,
        unitTimeS: 0.001,
      });
      expect(dep.instructions).toEqual(wireInstructions(frontier.intrinsic().plan, 1));
      expect(w1.got.some((s) => s.phase === 'PHASE_PLANNING' && s.instructions.length === 0)).toBe(
        true,
      );
      w1.cancel();
    } finally {
      await h.close();
    }
  });
});

describe('a silent rank during the sweep', () => {
  test('does not hold the job at a profiling clock: the step ends after a grace period', async () => {
    const full = gpt3Profile();
    const source = new MemoryProfileSource();
    const h = await startOptimizer({ profileSource: source, sweepGraceMs: 300 });
    try {
      // Two pipelines of two stages; pipeline 1 never reports.
      await call(
        h.client,
        'RegisterJob',
        jobRequest('quiet', { n: 2, m: 2, dp: 2, k: 2, floor: 1380 }),
      );
      const w = new Watch(h.client, 'quiet', 0);
      await registerAll(h.client, 'quiet', 2, 2, 1, CLOCKS);
      let s = await w.until((x) => x.phase === 'PHASE_PROFILING');
      let it = 0;
      const started = Date.now();
      while (s.phase === 'PHASE_PROFILING') {
        const clock = s.instructions[0]!.frequency_mhz;
        source.putCells('quiet', cellsAtClock(full, 2, clock));
        for (let k = 0; k < 2; k++, it++) {
          for (const r of [0, 1])
            await call(h.client, 'ReportIteration', {
              job_id: 'quiet',
              rank: rankOf(r, 2, 1),
              iteration: it,
              time_s: 0.05,
              energy_j: 10,
              schedule_version: s.version,
            });
        }
        const v = Number(s.version);
        s = await w.until((x) => Number(x.version) > v);
      }
      await w.until((x) => x.phase === 'PHASE_DEPLOYED');
      // Three clocks, each ended by the grace timer (≥ 300 ms), not by the silent ranks.
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      w.cancel();
    } finally {
      await h.close();
    }
  });
});

describe('blocking power "measure it"', () => {
  test('is measured from profiling iterations: energy beyond the instructions per second of idle time', async () => {
    const full = gpt3Profile();
    const N = 2;
    const M = 2;
    const PB = 70.5; // what the emulated GPUs draw while blocked
    const source = new MemoryProfileSource();
    const h = await startOptimizer({ profileSource: source });
    try {
      await call(
        h.client,
        'RegisterJob',
        jobRequest('pb', { n: N, m: M, k: 2, floor: 1350, blockingPowerW: 0 }),
      );
      const w = new Watch(h.client, 'pb', 0);
      await registerAll(h.client, 'pb', N, 1, 1, CLOCKS);
      let s = await w.until((x) => x.phase === 'PHASE_PROFILING');
      let it = 0;
      while (s.phase === 'PHASE_PROFILING') {
        const clock = s.instructions[0]!.frequency_mhz;
        const at = (stage: number, kind: 'forward' | 'backward') =>
          full.stages[stage]![kind].find((o) => o.frequencyMhz === clock)!;
        source.putCells('pb', cellsAtClock(full, 2, clock));
        for (let k = 0; k < 2; k++, it++) {
          for (let r = 0; r < N; r++) {
            const busyS = M * (at(r, 'forward').timeS + at(r, 'backward').timeS);
            const busyJ = M * (at(r, 'forward').energyJ + at(r, 'backward').energyJ);
            const idleS = 0.4 * busyS;
            await call(h.client, 'ReportIteration', {
              job_id: 'pb',
              rank: rankOf(r, N, 1),
              iteration: it,
              time_s: busyS + idleS,
              energy_j: busyJ + PB * idleS,
              schedule_version: s.version,
            });
          }
        }
        const v = Number(s.version);
        s = await w.until((x) => Number(x.version) > v);
      }
      await w.until((x) => x.phase === 'PHASE_DEPLOYED');
      const profiled = {
        stages: full.stages.slice(0, N).map((st) => ({
          forward: st.forward.filter((o) => o.frequencyMhz >= 1350),
          backward: st.backward.filter((o) => o.frequencyMhz >= 1350),
        })),
      };
      const expected = computeFrontier({
        profile: profiled,
        pipeline: { schedule: '1f1b', numStages: N, numMicrobatches: M },
        blockingPowerW: PB,
        unitTimeS: 0.001,
      });
      const got = await call<optimizerV1.GetFrontierResponse__Output>(h.client, 'GetFrontier', {
        job_id: 'pb',
      });
      expect(got.all_max_energy_j).toBeCloseTo(expected.allMax.energyJ, 6);
      expect(got.points[0]!.energy_j).toBeCloseTo(expected.points[0]!.energyJ, 6);
      w.cancel();
    } finally {
      await h.close();
    }
  });
});
