/**
 * Straggler detection under data parallelism (issue 12 §2): every pipeline's wall time is the same
 * (they all wait in the gradient all-reduce), so the optimizer must compare each pipeline's own
 * compute time (ReportIteration.compute_time_s) to find the slow one — and clear it on recovery.
 */
import type { optimizerV1 } from '@perseus/proto';
import type { Harness } from './helpers';
import {
  Watch,
  call,
  gpt3Profile,
  jobRequest,
  rankOf,
  registerAll,
  startOptimizer,
} from './helpers';

const CLOCKS = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i);
const N = 8;
const DP = 2;

let h: Harness;
beforeEach(async () => {
  h = await startOptimizer({ importedProfiles: [{ profile: gpt3Profile() }] });
});
afterEach(async () => {
  await h.close();
});

test('a 1.2x pipeline behind the all-reduce barrier is detected from compute times and cleared', async () => {
  await call(h.client, 'RegisterJob', jobRequest('dp', { dp: DP }));
  const w = new Watch(h.client, 'dp', 0);
  const w1 = new Watch(h.client, 'dp', N); // a rank of pipeline 1
  try {
    await registerAll(h.client, 'dp', N, DP, 1, CLOCKS);
    const deployed = await w.until((s) => s.phase === 'PHASE_DEPLOYED');
    // Pipeline 1's rank must run the deployed schedule too, or its first iteration would compute
    // for the previous schedule's time (0: unknown) instead of 1.2× the plan's.
    await w1.until((s) => s.version === deployed.version);
    const t = deployed.expected_iteration_time_s;
    let version = deployed.version;
    let iteration = 0;
    /**
     * One iteration of every rank: each pipeline computes for its current schedule's predicted
     * time, pipeline 1 `slow` × longer; everyone waits for the slowest in the all-reduce.
     */
    const step = async (slow: number): Promise<void> => {
      iteration++;
      const own = [w.last!.expected_iteration_time_s, w1.last!.expected_iteration_time_s * slow];
      const wall = Math.max(...own);
      for (let r = 0; r < N * DP; r++) {
        const id = rankOf(r, N, 1);
        const compute = own[id.dp_rank]!;
        const res = await call<optimizerV1.ReportIterationResponse__Output>(
          h.client,
          'ReportIteration',
          {
            job_id: 'dp',
            rank: id,
            iteration: String(iteration),
            time_s: wall, // the barrier: every rank's wall time is the slowest's
            compute_time_s: compute,
            energy_j: 100,
            schedule_version: version,
          },
        );
        version = res.schedule_version;
      }
    };
    let detectedAfter = 0;
    for (let i = 1; i <= 20 && detectedAfter === 0; i++) {
      await step(1.2);
      const st = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
        job_id: 'dp',
      });
      if (st.straggler_dp_ranks.includes(1)) detectedAfter = i;
    }
    // window 5 + 3 confirmations: the 7th iteration is the first that can decide.
    expect(detectedAfter).toBe(7);
    const slowed = await w.until((s) => s.reason.startsWith('straggler dp=1'));
    await w1.until((s) => s.version === slowed.version);
    expect(slowed.expected_iteration_time_s).toBeGreaterThan(t);
    let clearedAfter = 0;
    for (let i = 1; i <= 30 && clearedAfter === 0; i++) {
      await step(1);
      const st = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
        job_id: 'dp',
      });
      if (st.straggler_dp_ranks.length === 0) clearedAfter = i;
    }
    expect(clearedAfter).toBeGreaterThan(0);
    expect(clearedAfter).toBeLessThanOrEqual(7);
    await w.until((s) => s.reason === 'intrinsic' && Number(s.version) > Number(slowed.version));
  } finally {
    w.cancel();
    w1.cancel();
  }
}, 60_000);
