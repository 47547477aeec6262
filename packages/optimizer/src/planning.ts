/**
 * The PLANNING phase (docs/architecture.md §3): the profile to plan with, the blocking power, the
 * frontier from the planner worker, and a retry after a failed attempt. Ranks run at default clocks
 * meanwhile; a planned frontier is deployed at once by the job's policy.
 */
import { frontierWorkEstimate } from '@perseus/planner';
import type { PlannerInput, Profile } from '@perseus/planner';
import { defaultDeployment, deploy, deployPolicy } from './deployment';
import { dropPolishes, type Job } from './job';
import { persistState } from './job-context';
import type { JobContext } from './job-context';
import type { PlannedFrontier } from './planner-pool';
import {
  knownBlockingPowerW,
  measuredBlockingPowerW,
  profileFromCells,
  restrictToClocks,
} from './profile-assembly';
import { sweepClocks, virtualStages } from './sweep';

/**
 * Most τ-samples a frontier may take (the planner's work is about one plan per sample: ~1 ms each
 * for a small pipeline on the 2-core CI box, so this bounds one planning to tens of seconds).
 */
export const MAX_FRONTIER_SAMPLES = 20_000;

/** PLANNING: ranks go back to default clocks (never slower than untouched training). */
export function enterPlanning(ctx: JobContext, job: Job): void {
  job.state.detail = 'planning';
  job.planningStartedMs = ctx.now();
  const d = defaultDeployment(job.spec, 0, 'PLANNING', 'planning');
  deploy(ctx, job, 'PLANNING', d.variants, d.variantOfPipeline);
}

/**
 * The profile to plan with (imported, or the profiler's cells) restricted to clocks every rank
 * supports, and the per-pipeline blocking power scale; or why there is none.
 */
async function plannerProfile(
  ctx: JobContext,
  job: Job,
): Promise<{ profile: Profile; tpScale: number } | string> {
  let profile: Profile;
  let tpScale = 1;
  if (job.importedProfile !== null) {
    profile = job.importedProfile;
  } else {
    const source = ctx.opts.profileSource();
    if (source === undefined) return 'no profiler configured and no imported profile';
    try {
      const cells = await source.getProfile(job.profileJobId, { minCount: 1 });
      profile = profileFromCells(cells, virtualStages(job.spec.pipeline));
    } catch (err) {
      return `profiler unavailable: ${(err as Error).message}`;
    }
    // The profiler sums energy over a stage's TP ranks, so the idle power of the stage is tp × P_b.
    tpScale = job.spec.tpDegree;
  }
  const common = sweepClocks(
    [...job.ranks.values()].map((r) => r.supportedFrequenciesMhz),
    0,
    1,
  );
  const restricted = restrictToClocks(profile, new Set(common));
  return typeof restricted === 'string' ? restricted : { profile: restricted, tpScale };
}

/** Blocking power: given in the spec, else measured while profiling, else a known GPU's value. */
function blockingPower(ctx: JobContext, job: Job, profile: Profile, tpScale: number): number {
  if (job.spec.blockingPowerW > 0) return job.spec.blockingPowerW;
  const measured = measuredBlockingPowerW(
    job.idleSamples,
    profile,
    job.spec.pipeline.numMicrobatches,
    tpScale,
  );
  if (measured !== undefined) return measured;
  ctx.log.warn(
    { jobId: job.jobId, gpuModel: job.spec.gpuModel },
    'blocking power not measurable; using a known or fallback value',
  );
  return knownBlockingPowerW(job.spec.gpuModel);
}

/** Plans the job's frontier and deploys its policy's choice; on failure retries later. */
export async function planJob(ctx: JobContext, job: Job): Promise<void> {
  if (job.state.phase !== 'PLANNING') return;
  const got = await plannerProfile(ctx, job);
  if (typeof got === 'string') return planFailed(ctx, job, got);
  const blockingPowerW = blockingPower(ctx, job, got.profile, got.tpScale);
  const input: PlannerInput = {
    profile: got.profile,
    pipeline: job.spec.pipeline,
    blockingPowerW: blockingPowerW * got.tpScale,
    unitTimeS: job.spec.unitTimeS,
  };
  try {
    // A job's frontier stays within the planning budget: a coarser τ, never hours of planning.
    const samples = frontierWorkEstimate(input).samples;
    if (samples > MAX_FRONTIER_SAMPLES) {
      input.unitTimeS = (input.unitTimeS * samples) / MAX_FRONTIER_SAMPLES;
      ctx.log.warn(
        { jobId: job.jobId, unitTimeS: input.unitTimeS, samples },
        'frontier over the planning budget; planning with a coarser unit time',
      );
    }
  } catch (err) {
    return planFailed(ctx, job, `profile rejected by the planner: ${(err as Error).message}`);
  }
  const started = ctx.now();
  let planned: PlannedFrontier;
  try {
    planned = await ctx.opts.planner.plan(
      input,
      (done, total) => {
        job.state.detail = `planning ${Math.min(100, Math.round((100 * done) / Math.max(1, total)))}%`;
      },
      undefined,
      { polishBudgetS: ctx.opts.exactBudgetS ?? 10 },
    );
  } catch (err) {
    if (ctx.isClosed() || job.dropped) return;
    return planFailed(ctx, job, `planner failed: ${(err as Error).message}`);
  }
  if (ctx.isClosed() || job.dropped || job.state.phase !== 'PLANNING') return;
  const { frontier, exact } = planned;
  dropPolishes(job);
  job.frontier = frontier;
  job.plannerInput = input;
  if (exact !== undefined) {
    // The frontier holds the polished intrinsic plan; its certificate serves the policy's
    // deadline for it (no second polish).
    const intrinsic = frontier.intrinsic();
    job.polishes.set(intrinsic.point.timeS, {
      abort: new AbortController(),
      result: { ...exact, plan: intrinsic.plan },
    });
  }
  job.state.blockingPowerW = blockingPowerW;
  job.lastPlanningMs = ctx.now() - started;
  job.state.detail = `frontier of ${frontier.points.length} points in ${job.lastPlanningMs} ms`;
  ctx.log.info(
    {
      jobId: job.jobId,
      points: frontier.points.length,
      planningMs: job.lastPlanningMs,
      blockingPowerW,
      ...(exact === undefined
        ? {}
        : {
            intrinsicSavingPct: exact.savingPct,
            certifiedGapPp: exact.gapPp,
            polishS: exact.polish.seconds,
            polishImproved: exact.polish.improved,
          }),
    },
    'frontier planned',
  );
  deployPolicy(ctx, job, planned.json);
}

function planFailed(ctx: JobContext, job: Job, why: string): void {
  job.state.detail = `planning failed, retrying: ${why}`;
  persistState(ctx, job);
  ctx.log.warn({ jobId: job.jobId, why }, 'planning failed; ranks stay at default clocks');
  if (ctx.isClosed() || job.dropped) return;
  clearTimeout(job.retryTimer);
  job.retryTimer = setTimeout(
    () => ctx.enqueue(job, () => planJob(ctx, job)),
    ctx.opts.planRetryMs ?? 5000,
  );
  job.retryTimer.unref();
}
