/**
 * RPC latency while a large frontier is planned (GPT-3 175B, A100, 8 stages, M=96): GetJobStatus
 * and ReportIteration round trips, measured back to back from a client process, first with the
 * server idle (baseline), then while the server plans — once with the planner in its worker thread
 * (what the optimizer does) and once on the main thread (what it would be without the worker).
 *   node --import tsx tools/bench/optimizer/rpc-latency.ts [--microbatches 96]
 */
import type { ChildProcess } from 'node:child_process';
import type { optimizerV1 } from '@perseus/proto';
import { GPT3_A100_CSV, client, registerJob, startServer, summary, unary, percentile } from './lib';
import type { OptimizerClient } from './lib';

const args = process.argv.slice(2);
const M = Number(args[args.indexOf('--microbatches') + 1] ?? 96) || 96;

async function sample(
  c: OptimizerClient,
  until: () => Promise<boolean> | boolean,
  maxMs: number,
): Promise<number[]> {
  const lat: number[] = [];
  const end = Date.now() + maxMs;
  let i = 0;
  while (Date.now() < end) {
    const t = performance.now();
    if (i % 2 === 0) await unary(c, 'GetJobStatus', { job_id: 'probe' });
    else
      await unary(c, 'ReportIteration', {
        job_id: 'probe',
        rank: { rank: 0, dp_rank: 0, pp_rank: 0, tp_rank: 0 },
        iteration: i,
        time_s: 1,
        energy_j: 1,
        schedule_version: 1,
      });
    lat.push(performance.now() - t);
    i++;
    if (i % 20 === 0) {
      // The phase check is an RPC too: its latency counts (without the worker it is the one that waits).
      const u = performance.now();
      const done = await until();
      lat.push(performance.now() - u);
      if (done) break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return lat;
}

async function run(
  planner: 'worker' | 'inline',
): Promise<{ idle: number[]; planning: number[]; planningS: number }> {
  let server: ChildProcess | undefined;
  try {
    const started = await startServer(['--profile-csv', GPT3_A100_CSV, '--planner', planner]);
    server = started.child;
    const c = client(started.address);
    await registerJob(c, 'probe', 8, 4, 1);
    const deployed = async (job: string): Promise<boolean> =>
      (
        await unary<optimizerV1.GetJobStatusResponse__Output>(
          c,
          'GetJobStatus',
          { job_id: job },
          600_000,
        )
      ).phase === 'PHASE_DEPLOYED';
    for (let i = 0; i < 300 && !(await deployed('probe')); i++)
      await new Promise((r) => setTimeout(r, 50));
    await sample(c, () => false, 1000); // warm-up
    const idle = await sample(c, () => false, 3000);
    const t0 = Date.now();
    // Registration runs beside the sampling: its last RegisterRank starts the planning.
    const registered = registerJob(c, 'big', 8, M, 1);
    const planning = await sample(c, () => deployed('big'), 600_000);
    await registered;
    const planningS = (Date.now() - t0) / 1000;
    c.close();
    return { idle, planning, planningS };
  } finally {
    server?.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const w = await run('worker');
  console.log(`worker planner: idle     ${summary(w.idle)}`);
  console.log(
    `worker planner: planning ${summary(w.planning)} (M=${M} frontier deployed after ${w.planningS.toFixed(1)} s)`,
  );
  const inl = await run('inline');
  console.log(`inline planner: idle     ${summary(inl.idle)}`);
  console.log(
    `inline planner: planning ${summary(inl.planning)} (deployed after ${inl.planningS.toFixed(1)} s)`,
  );
  console.log(
    `RESULT rpc-latency M=${M}: p99 while planning ${percentile(w.planning, 99).toFixed(2)} ms with the worker vs ${percentile(w.idle, 99).toFixed(2)} ms idle ` +
      `(ratio ${(percentile(w.planning, 99) / percentile(w.idle, 99)).toFixed(2)}); without the worker max ${percentile(inl.planning, 100).toFixed(0)} ms`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
