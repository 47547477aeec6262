/**
 * Deploying a job's schedules (docs/architecture.md §3): every change of what the ranks run is a
 * new version, persisted first and then announced to every watcher; DEPLOYED versions come from
 * the policy's choice of frontier points per pipeline.
 */
import type { FrontierPoint, StagePlan } from '@perseus/planner';
import { activeStragglers, newSweepStep } from './job';
import type { Job } from './job';
import { persistState } from './job-context';
import type { JobContext } from './job-context';
import { choosePlans } from './policy';
import type { Deployment, JobPhase, JobSpec, PlanVariant } from './types';
import type { EncodedSchedule } from './watch-hub';

/** The deployment of a job at default clocks: one variant with no instruction for any stage. */
export function defaultDeployment(
  spec: JobSpec,
  version: number,
  phase: JobPhase,
  reason = phase.toLowerCase(),
): Deployment {
  return {
    version,
    phase,
    variants: [
      {
        reason,
        stages: Array.from({ length: spec.pipeline.numStages }, () => []),
        pointIndex: -1,
        expectedTimeS: 0,
        expectedEnergyJ: 0,
      },
    ],
    variantOfPipeline: Array.from({ length: spec.dpDegree }, () => 0),
  };
}

/** One rank's schedule at the job's current version, as wire bytes. */
export function encodedScheduleFor(job: Job, rank: number): EncodedSchedule {
  return job.schedules.encode(job, job.state.deployment!, rank, job.ranks.get(rank));
}

/** Persists a new version of the job's schedules, then announces it to every watcher. */
export function deploy(
  ctx: JobContext,
  job: Job,
  phase: JobPhase,
  variants: PlanVariant[],
  variantOfPipeline: number[],
  frontierToStore?: string,
): void {
  if (job.dropped) return;
  const version = job.state.version + 1;
  job.state.phase = phase;
  job.state.version = version;
  job.state.deployment = { version, phase, variants, variantOfPipeline };
  if (frontierToStore !== undefined)
    ctx.opts.store.putFrontierAndState(job.jobId, frontierToStore, job.state, ctx.now());
  else persistState(ctx, job);
  job.schedules.clear();
  job.sweepStep.dispose();
  job.sweepStep = newSweepStep(job.spec);
  job.detector.reset();
  const t0 = performance.now();
  ctx.hub.publish(job.jobId, (rank) => encodedScheduleFor(job, rank));
  const publishMs = performance.now() - t0;
  job.lastPublishMs = publishMs;
  ctx.log.info(
    {
      jobId: job.jobId,
      phase,
      version,
      reasons: variants.map((x) => x.reason),
      watchers: ctx.hub.watcherCount(job.jobId),
      publishMs,
    },
    'schedule deployed',
  );
}

/**
 * DEPLOYED: each pipeline's plan ({@link choosePlans}). Bumps the version only when some
 * pipeline's plan changes, or when `newFrontierJson` (a new frontier, stored with the version)
 * is given. Returns the time the healthy pipelines now target (0 = policy point).
 */
export function deployPolicy(ctx: JobContext, job: Job, newFrontierJson?: string): number {
  const force = newFrontierJson !== undefined;
  const f = job.frontier;
  if (f === null || (job.state.phase !== 'DEPLOYED' && job.state.phase !== 'PLANNING')) return 0;
  const choice = choosePlans(
    f,
    job.state.policy,
    activeStragglers(job, ctx.now()),
    job.spec.dpDegree,
  );
  const { variantPoints, variantOfPipeline } = choice;
  const cur = job.state.deployment;
  const unchanged =
    !force &&
    cur !== null &&
    cur.phase === 'DEPLOYED' &&
    cur.variantOfPipeline.every(
      (v, dp) => cur.variants[v]!.pointIndex === variantPoints[variantOfPipeline[dp]!]!.index,
    );
  if (unchanged) return choice.targetIterationTimeS;
  const policyName = job.state.policy.kind;
  const variants = variantPoints.map((point, i) => {
    const reason =
      i === 0
        ? policyName === 'intrinsic'
          ? 'intrinsic'
          : `policy ${policyName}`
        : `straggler dp=${choice.stragglers.join(',')} T'=${choice.stragglerTimeS.toFixed(4)}s`;
    return variantFromPlan(reason, f.plan(point.index), point);
  });
  const chosen = variants[variantOfPipeline.includes(1) ? 1 : 0]!;
  job.state.detail = `${chosen.reason}: point ${chosen.pointIndex} of ${f.points.length}`;
  deploy(ctx, job, 'DEPLOYED', variants, variantOfPipeline, newFrontierJson);
  return choice.targetIterationTimeS;
}

function variantFromPlan(reason: string, plan: StagePlan[], point: FrontierPoint): PlanVariant {
  const stages = plan.map((sp) =>
    sp.instructions.map((x) => ({
      kind: x.kind,
      microbatch: x.microbatch,
      frequencyMhz: x.frequencyMhz,
      // The model chunk (interleaved 1F1B) travels with the instruction to its rank.
      ...(x.chunk !== undefined ? { chunk: x.chunk } : {}),
    })),
  );
  return {
    reason,
    stages,
    pointIndex: point.index,
    expectedTimeS: point.timeS,
    expectedEnergyJ: point.energyJ,
  };
}
