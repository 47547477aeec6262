/**
 * The PROFILING phase (docs/architecture.md §3): the online clock sweep. Each sweep step is a
 * schedule version that runs every stage at one clock; ranks' iteration reports end a step, the
 * profiler's cells decide the next clock or the end of the sweep, then the job plans.
 */
import { deploy } from './deployment';
import type { Job } from './job';
import { persistState } from './job-context';
import type { JobContext } from './job-context';
import { enterPlanning, planJob } from './planning';
import { knownBlockingPowerW } from './profile-assembly';
import type { ProfileCellStat } from './profile-source';
import { chunksOf } from '@perseus/planner';
import {
  advanceSweep,
  newSweep,
  sweepClocks,
  sweepCost,
  sweepVariant,
  virtualStages,
} from './sweep';
import type { SweepStep } from './sweep-step';
import type { RankInfo } from './types';
import type { IterationReport } from './validate';

const MAX_IDLE_SAMPLES = 4096;

/** Once every rank has registered: skips to planning if a profile covers the job, else sweeps. */
export async function beginProfiling(ctx: JobContext, job: Job): Promise<void> {
  if (job.state.phase !== 'REGISTERING') return;
  const clocks = sweepClocks(
    [...job.ranks.values()].map((r) => r.supportedFrequenciesMhz),
    job.spec.profiling.floorFrequencyMhz,
    job.spec.profiling.frequencyStride,
  );
  const source = ctx.opts.profileSource();
  const allClocks = [
    ...new Set([...job.ranks.values()].flatMap((r) => r.supportedFrequenciesMhz)),
  ].sort((a, b) => b - a);
  if (source !== undefined) {
    try {
      await source.registerJob({
        jobId: job.profileJobId,
        pipeline: job.spec.pipeline,
        dpDegree: job.spec.dpDegree,
        tpDegree: job.spec.tpDegree,
        supportedFrequenciesMhz: allClocks,
      });
    } catch (err) {
      ctx.log.warn(
        { err, jobId: job.jobId },
        'profiler registration failed; measurements may be rejected',
      );
    }
  }
  if (await profileCoversJob(ctx, job)) {
    ctx.log.info({ jobId: job.jobId }, 'profile already covers the job; skipping the sweep');
    job.state.detail = 'profile imported; sweep skipped';
    enterPlanning(ctx, job);
    await planJob(ctx, job);
    return;
  }
  if (clocks.length === 0) {
    job.state.detail =
      'no clock is supported by every rank above the floor; running at default clocks';
    persistState(ctx, job);
    ctx.log.warn({ jobId: job.jobId }, 'empty sweep clock list');
    return;
  }
  const sweep = newSweep(virtualStages(job.spec.pipeline), clocks);
  job.state.sweep = sweep;
  job.state.detail = `profiling ${clocks[0]} MHz (1/${clocks.length})`;
  deploy(
    ctx,
    job,
    'PROFILING',
    [sweepVariant(job.spec, sweep)],
    job.state.deployment!.variantOfPipeline.map(() => 0),
  );
}

async function profileCoversJob(ctx: JobContext, job: Job): Promise<boolean> {
  const need = ctx.opts.minCoveredClocks ?? 3;
  if (job.importedProfile !== null) return true;
  const source = ctx.opts.profileSource();
  if (source === undefined) return false;
  try {
    const cov = await source.getCoverage(job.profileJobId);
    const n = virtualStages(job.spec.pipeline);
    return (
      cov.complete &&
      cov.entries.length >= 2 * n &&
      cov.entries.every((e) => e.coveredMhz.length >= need)
    );
  } catch (err) {
    ctx.log.warn({ err, jobId: job.jobId }, 'profiler coverage unavailable');
    return false;
  }
}

/** After a sweep step: the next clock, or planning once the stop rule ends the sweep. */
async function stepSweep(ctx: JobContext, job: Job): Promise<void> {
  const sweep = job.state.sweep;
  if (job.state.phase !== 'PROFILING' || sweep === null) return;
  const source = ctx.opts.profileSource();
  let cells: ProfileCellStat[] = [];
  if (source !== undefined) {
    try {
      cells = await source.getProfile(job.profileJobId);
    } catch (err) {
      ctx.log.warn(
        { err, jobId: job.jobId },
        'profiler unavailable during the sweep; stop rule sees no energy this step',
      );
    }
  }
  // The stop rule weighs energy net of blocking power (the spec's, else the GPU's known value).
  const blockingPowerW =
    job.spec.blockingPowerW > 0 ? job.spec.blockingPowerW : knownBlockingPowerW(job.spec.gpuModel);
  const byKey = new Map(
    cells.map((c) => [
      `${c.stage}:${c.kind}:${c.frequencyMhz}`,
      sweepCost({ energyJ: c.energyJ, stderrJ: c.energyStderrJ }, c.timeS, blockingPowerW),
    ]),
  );
  const { sweep: next, done } = advanceSweep(sweep, (s, k, f) => byKey.get(`${s}:${k}:${f}`));
  job.state.sweep = next;
  if (done) {
    enterPlanning(ctx, job);
    await planJob(ctx, job);
    return;
  }
  job.state.detail = `profiling ${next.clocksMhz[next.step]} MHz (${next.step + 1}/${next.clocksMhz.length})`;
  deploy(
    ctx,
    job,
    'PROFILING',
    [sweepVariant(job.spec, next)],
    job.state.deployment!.variantOfPipeline.map(() => 0),
  );
}

/** Counts one current-version iteration report toward the sweep step (and the idle samples). */
export function countSweepIteration(
  ctx: JobContext,
  job: Job,
  info: RankInfo,
  rep: IterationReport,
): void {
  const variant = job.state.deployment!.variants[0]!;
  const stage = variant.stages[info.ppRank] ?? [];
  // One entry per model chunk of the GPU (its virtual stage c·N + r), each at its sweep clock.
  const n = job.spec.pipeline.numStages;
  const clockOf = (chunk: number, kind: 'forward' | 'backward'): number =>
    stage.find((x) => x.kind === kind && (x.chunk ?? 0) === chunk)?.frequencyMhz ?? 0;
  job.idleSamples.push({
    timeS: rep.timeS,
    energyJ: rep.energyJ,
    stages: Array.from({ length: chunksOf(job.spec.pipeline) }, (_, c) => ({
      stage: c * n + info.ppRank,
      forwardMhz: clockOf(c, 'forward'),
      backwardMhz: clockOf(c, 'backward'),
    })),
  });
  if (job.idleSamples.length > MAX_IDLE_SAMPLES) job.idleSamples.shift();
  const step = job.sweepStep;
  const progress = step.record(info.rank, info.ppRank, rep.timeS);
  if (progress === 'complete') {
    endSweepStep(ctx, job, step);
  } else if (progress === 'stagesCovered') {
    // Every stage has been measured K times, but some ranks are silent (dead, or slow to report).
    // A silent rank must not keep the whole job at a low profiling clock: after a grace period of
    // a few iterations the step ends without it.
    step.armGrace(step.graceMs(ctx.opts.sweepGraceMs ?? 5000), () => {
      const silent = step.silentRanks(job.ranks.keys());
      ctx.log.warn(
        {
          jobId: job.jobId,
          version: job.state.version,
          silentRanks: silent.slice(0, 16),
          silentCount: silent.length,
        },
        'sweep step ended without every rank',
      );
      endSweepStep(ctx, job, step);
    });
  }
}

function endSweepStep(ctx: JobContext, job: Job, step: SweepStep): void {
  if (step.end()) ctx.enqueue(job, () => stepSweep(ctx, job));
}
