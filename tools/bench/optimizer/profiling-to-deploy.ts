/**
 * Time from the end of online profiling to the intrinsic plan deployed, GPT-3 175B on A100 SXM
 * (8 stages, 1F1B, M=96, P_b = 83.64 W, τ = 1 ms). The optimizer runs the real sweep (K = 1,
 * every clock 1410 … 855 until the stop rule or the floor); an emulated client puts the profile's
 * measurements for each clock into the profile source and reports the iterations. The clock starts
 * just before the ReportIteration that completes the sweep and stops when a watching rank receives
 * the DEPLOYED schedule; the planner's own share is printed beside it.
 *   node --import tsx tools/bench/optimizer/profiling-to-deploy.ts [--microbatches 96] [--repeat 3]
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { parseProfileCsv } from '@perseus/planner';
import { createOptimizerModule, MemoryProfileSource } from '@perseus/optimizer';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { PerseusServer, createLogger } from '@perseus/service-kit';
import { GPT3_A100_CSV, registerJob, unary } from './lib';
import type { OptimizerClient } from './lib';

const args = process.argv.slice(2);
const opt = (name: string, d: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const M = opt('--microbatches', 96);
const REPEAT = opt('--repeat', 3);
const N = 8;

async function once(
  run: number,
): Promise<{ totalMs: number; plannerS: number; steps: number; points: number; saving: number }> {
  const profile = parseProfileCsv(readFileSync(GPT3_A100_CSV, 'utf8'));
  const source = new MemoryProfileSource();
  const logger = createLogger('bench', process.env['PERSEUS_LOG_LEVEL'] ?? 'warn');
  const mod = await createOptimizerModule({ logger, dataDir: ':memory:', profileSource: source });
  const server = new PerseusServer({ address: '127.0.0.1:0', logger });
  for (const s of mod.services) server.addService(s);
  server.onShutdown(() => mod.close());
  const address = await server.start();
  const Ctor = perseusGrpc().perseus.optimizer.v1.Optimizer;
  const c = new Ctor(address, grpc.credentials.createInsecure()) as OptimizerClient;
  const jobId = `gpt3-${run}`;
  try {
    let latest: optimizerV1.Schedule__Output | undefined;
    let onSchedule: (() => void) | undefined;
    const next = (
      pred: (s: optimizerV1.Schedule__Output) => boolean,
    ): Promise<optimizerV1.Schedule__Output> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (latest !== undefined && pred(latest)) resolve(latest);
          else onSchedule = check;
        };
        check();
      });
    await registerJob(c, jobId, N, M, 1);
    const watch = c.WatchSchedule({ job_id: jobId, rank: 0, known_version: '0' });
    watch.on('data', (s: optimizerV1.Schedule__Output) => {
      latest = s;
      const f = onSchedule;
      onSchedule = undefined;
      f?.();
    });
    watch.on('error', () => undefined);
    let it = 0;
    let steps = 0;
    let s = await next((x) => x.phase === 'PHASE_PROFILING');
    let t0 = 0;
    for (;;) {
      const version = s.version;
      // What the ranks measured at this step: every still-sweeping instruction at the sweep's clock.
      const st = await unary<optimizerV1.GetJobStatusResponse__Output>(c, 'GetJobStatus', {
        job_id: jobId,
      });
      const clock = Number(/profiling (\d+) MHz/.exec(st.detail)?.[1] ?? 0);
      source.putCells(
        jobId,
        profile.stages.flatMap((stp, stage) =>
          (['forward', 'backward'] as const).flatMap((kind) => {
            const o = stp[kind].find((x) => x.frequencyMhz === clock);
            return o
              ? [{ stage, kind, frequencyMhz: clock, count: 3, timeS: o.timeS, energyJ: o.energyJ }]
              : [];
          }),
        ),
      );
      steps++;
      for (let r = 0; r < N; r++) {
        if (r === N - 1) t0 = performance.now();
        await unary(c, 'ReportIteration', {
          job_id: jobId,
          rank: { rank: r, dp_rank: 0, pp_rank: r, tp_rank: 0 },
          iteration: it,
          time_s: 10,
          energy_j: 1000,
          schedule_version: version,
        });
      }
      it++;
      s = await next((x) => x.version !== version);
      if (s.phase !== 'PHASE_PROFILING') break;
    }
    const deployed = await next((x) => x.phase === 'PHASE_DEPLOYED');
    const totalMs = performance.now() - t0;
    const st = await unary<optimizerV1.GetJobStatusResponse__Output>(c, 'GetJobStatus', {
      job_id: jobId,
    });
    const m = mod.optimizer.metrics().find((x) => x.jobId === jobId)!;
    watch.cancel();
    void deployed;
    return {
      totalMs,
      plannerS: m.lastPlanningSeconds,
      steps,
      points: m.frontierPoints,
      saving: st.predicted_saving_percent,
    };
  } finally {
    c.close();
    await server.shutdown(500);
  }
}

async function main(): Promise<void> {
  const totals: number[] = [];
  for (let run = 0; run < REPEAT; run++) {
    const r = await once(run);
    totals.push(r.totalMs);
    console.log(
      `run ${run}: sweep of ${r.steps} clocks; end of profiling → intrinsic plan deployed ${(r.totalMs / 1000).toFixed(2)} s ` +
        `(planner ${r.plannerS.toFixed(2)} s, ${r.points} frontier points, predicted saving ${r.saving.toFixed(2)} %)`,
    );
  }
  totals.sort((a, b) => a - b);
  console.log(
    `RESULT profiling-to-deploy gpt3-175b a100_sxm M=${M}: median ${(totals[totals.length >> 1]! / 1000).toFixed(2)} s, min ${(totals[0]! / 1000).toFixed(2)} s, max ${(totals[totals.length - 1]! / 1000).toFixed(2)} s over ${REPEAT} runs`,
  );
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
