import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { optimizerV1 } from '@perseus/proto';
import { MemoryProfileSource } from '../src';
import type { FrontierPlanner } from '../src';
import {
  cellsAtClock,
  Watch,
  call,
  gpt3Profile,
  jobRequest,
  rankOf,
  registerAll,
  startOptimizer,
  CLOCKS,
} from './helpers';
import type { Harness } from './helpers';

test('a restarted optimizer restores jobs, frontier, stragglers, plans and versions from its data dir', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-opt-'));
  try {
    const profile = gpt3Profile();
    const h1 = await startOptimizer({ dataDir: dir, importedProfiles: [{ profile }] });
    await call(h1.client, 'RegisterJob', jobRequest('r', { m: 4, dp: 2 }));
    const w = new Watch(h1.client, 'r', 8); // dp 1, stage 0
    await registerAll(h1.client, 'r', 8, 2, 1, CLOCKS);
    await w.until((s) => s.phase === 'PHASE_DEPLOYED');
    await call(h1.client, 'ReportStraggler', { job_id: 'r', dp_rank: 0, slowdown: 1.1 });
    const before = await w.until((s) => s.reason.startsWith('straggler'));
    const frontierBefore = await call<optimizerV1.GetFrontierResponse__Output>(
      h1.client,
      'GetFrontier',
      { job_id: 'r' },
    );
    const statusBefore = await call<optimizerV1.GetJobStatusResponse__Output>(
      h1.client,
      'GetJobStatus',
      { job_id: 'r' },
    );
    w.cancel();
    await h1.close();

    // Only the store survives: no imported profile is configured on the second start.
    const h2 = await startOptimizer({ dataDir: dir });
    try {
      const w2 = new Watch(h2.client, 'r', 8, Number(before.version));
      const first = await w2.until(() => true);
      expect(first).toEqual(before);
      expect(await call(h2.client, 'GetFrontier', { job_id: 'r' })).toEqual(frontierBefore);
      expect(await call(h2.client, 'GetJobStatus', { job_id: 'r' })).toEqual(statusBefore);
      // The restored job keeps working: recovery bumps the version past the restored one.
      await call(h2.client, 'ReportStraggler', { job_id: 'r', dp_rank: 0, recovered: true });
      const next = await w2.until((s) => Number(s.version) === Number(before.version) + 1);
      expect(next.reason).toBe('intrinsic');
      const again = await call<optimizerV1.RegisterJobResponse__Output>(
        h2.client,
        'RegisterJob',
        jobRequest('r', { m: 4, dp: 2 }),
      );
      // Same id, same spec, after a restart: the same generation, profile id and spec hash.
      expect(again).toEqual({
        created: false,
        phase: 'PHASE_DEPLOYED',
        generation: '1',
        profile_job_id: 'r',
        spec_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      w2.cancel();
    } finally {
      await h2.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a job interrupted while PLANNING is planned again after a restart', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-opt-'));
  try {
    // A planner that never finishes: the process "dies" mid-planning.
    const stuck: FrontierPlanner = {
      plan: () => new Promise(() => undefined),
      close: async () => undefined,
    };
    const h1 = await startOptimizer({
      dataDir: dir,
      importedProfiles: [{ profile: gpt3Profile() }],
      planner: stuck,
    });
    await call(h1.client, 'RegisterJob', jobRequest('p', { m: 4 }));
    const w = new Watch(h1.client, 'p', 2);
    await registerAll(h1.client, 'p', 8, 1, 1, CLOCKS);
    const planning = await w.until((s) => s.phase === 'PHASE_PLANNING');
    expect(planning.instructions).toEqual([]); // default clocks while planning
    w.cancel();
    await h1.close();

    const h2 = await startOptimizer({ dataDir: dir });
    try {
      const w2 = new Watch(h2.client, 'p', 2);
      const dep = await w2.until((s) => s.phase === 'PHASE_DEPLOYED');
      expect(Number(dep.version)).toBe(Number(planning.version) + 1);
      expect(dep.reason).toBe('intrinsic');
      expect(dep.instructions.length).toBe(8);
      w2.cancel();
    } finally {
      await h2.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a job interrupted while PROFILING resumes its sweep at the same clock and version', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-opt-'));
  const full = gpt3Profile();
  const source = new MemoryProfileSource(); // stands for the profiler, which outlives the optimizer
  let it = 0;
  /** The emulated ranks run K = 2 iterations of `s` and report them; returns the clock. */
  const runStep = async (h: Harness, s: optimizerV1.Schedule__Output): Promise<number> => {
    const clock = s.instructions[0]!.frequency_mhz;
    source.putCells('s', cellsAtClock(full, 2, clock));
    for (let k = 0; k < 2; k++, it++) {
      for (let r = 0; r < 2; r++)
        await call(h.client, 'ReportIteration', {
          job_id: 's',
          rank: rankOf(r, 2, 1),
          iteration: it,
          time_s: 1,
          energy_j: 1,
          schedule_version: s.version,
        });
    }
    return clock;
  };
  try {
    const h1 = await startOptimizer({ dataDir: dir, profileSource: source });
    await call(h1.client, 'RegisterJob', jobRequest('s', { n: 2, m: 2, k: 2, floor: 1350 }));
    const w = new Watch(h1.client, 's', 1);
    await registerAll(h1.client, 's', 2, 1, 1, CLOCKS);
    let s = await w.until((x) => x.phase === 'PHASE_PROFILING');
    const swept = [await runStep(h1, s)];
    s = await w.until((x) => Number(x.version) > Number(s.version));
    swept.push(await runStep(h1, s));
    const interrupted = await w.until((x) => Number(x.version) > Number(s.version));
    expect(interrupted.reason).toBe('profiling 1380 MHz (3/5)');
    w.cancel();
    await h1.close();

    const h2 = await startOptimizer({ dataDir: dir, profileSource: source });
    try {
      const w2 = new Watch(h2.client, 's', 1);
      s = await w2.until(() => true);
      expect(s).toEqual(interrupted);
      while (s.phase === 'PHASE_PROFILING') {
        swept.push(await runStep(h2, s));
        const v = Number(s.version);
        s = await w2.until((x) => Number(x.version) > v);
      }
      expect(swept).toEqual([1410, 1395, 1380, 1365, 1350]);
      await w2.until((x) => x.phase === 'PHASE_DEPLOYED');
      w2.cancel();
    } finally {
      await h2.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
