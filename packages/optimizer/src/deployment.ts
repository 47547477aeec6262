/**
 * Deploying a job's schedules (docs/architecture.md §3): every change of what the ranks run is a
 * new version, persisted first and then announced to every watcher; DEPLOYED versions come from
 * the policy's choice of frontier points per pipeline.
 */
import type { FrontierPoint, PolishedPlan, StagePlan } from '@perseus/planner';
import { activeStragglers, newSweepStep } from './job';
import type { Job } from './job';
import { PlanAbortedError } from './planner-pool';
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
  const { variantPoints, variantOfPipeline, variantDeadlinesS } = choice;
  const policyName = job.state.policy.kind;
  const variants = variantPoints.map((point, i) => {
    const reason =
      i === 0
        ? policyName === 'intrinsic'
          ? 'intrinsic'
          : `policy ${policyName}`
        : `straggler dp=${choice.stragglers.join(',')} T'=${choice.stragglerTimeS.toFixed(4)}s`;
    const polished = job.polishes.get(variantDeadlinesS[i]!)?.result ?? null;
    if (polished !== null && polished.energyJ < point.energyJ - 1e-9)
      return polishedVariant(`${reason} (exact polish)`, polished, point, f.allMax.energyJ);
    const v = variantFromPlan(reason, f.plan(point.index), point);
    // The polish found nothing better: its certificate is this plan's.
    if (polished !== null && polished.energyJ <= point.energyJ + 1e-9)
      v.certifiedGapPercent = gapPercent(polished, f.allMax.energyJ);
    return v;
  });
  const cur = job.state.deployment;
  const key = (v: PlanVariant): string => `${v.pointIndex}/${v.polishedAtS ?? ''}`;
  const unchanged =
    !force &&
    cur !== null &&
    cur.phase === 'DEPLOYED' &&
    cur.variantOfPipeline.every(
      (v, dp) => key(cur.variants[v]!) === key(variants[variantOfPipeline[dp]!]!),
    );
  if (!unchanged) {
    const chosen = variants[variantOfPipeline.includes(1) ? 1 : 0]!;
    job.state.detail = `${chosen.reason}: point ${chosen.pointIndex} of ${f.points.length}`;
    deploy(ctx, job, 'DEPLOYED', variants, variantOfPipeline, newFrontierJson);
  }
  polishDeployed(ctx, job, variantPoints, variantDeadlinesS);
  return choice.targetIterationTimeS;
}

/** Gap of a polished plan in percent of its energy (the polish reports points of all-max energy). */
function gapPercent(p: PolishedPlan, allMaxJ: number): number {
  return (p.gapPp * allMaxJ) / p.energyJ;
}

function polishedVariant(
  reason: string,
  p: PolishedPlan,
  point: FrontierPoint,
  allMaxJ: number,
): PlanVariant {
  return {
    ...variantFromPlan(reason, p.plan, { ...point, timeS: p.timeS, energyJ: p.energyJ }),
    polishedAtS: p.deadlineS,
    certifiedGapPercent: gapPercent(p, allMaxJ),
  };
}

/** Polishes kept per job beyond the deployed ones (stragglers come and go with new T′). */
const KEPT_POLISHES = 8;

/**
 * Starts the exact polish, in the planner worker, of every deployed plan whose deadline has none
 * yet, and stops the running ones no variant needs any more. A polish that finds a better plan
 * redeploys the policy (which then takes it, if its deadline is still deployed).
 */
function polishDeployed(
  ctx: JobContext,
  job: Job,
  points: FrontierPoint[],
  deadlinesS: number[],
): void {
  const budgetS = ctx.opts.exactBudgetS ?? 10;
  const planner = ctx.opts.planner;
  const f = job.frontier;
  const input = job.plannerInput;
  for (const [d, e] of job.polishes)
    if (e.result === null && !deadlinesS.includes(d)) {
      e.abort.abort();
      job.polishes.delete(d);
    }
  const polish = planner.polish?.bind(planner);
  if (budgetS <= 0 || polish === undefined || f === null || input === null) return;
  deadlinesS.forEach((deadlineS, i) => {
    if (job.polishes.has(deadlineS)) return;
    const entry = { abort: new AbortController(), result: null as PolishedPlan | null };
    job.polishes.set(deadlineS, entry);
    for (const d of job.polishes.keys())
      if (job.polishes.size > KEPT_POLISHES + deadlinesS.length && !deadlinesS.includes(d))
        job.polishes.delete(d);
    const request = {
      input,
      deadlineS,
      plan: f.plan(points[i]!.index),
      lpBoundJ: f.lowerBoundJ(deadlineS),
      allMaxJ: f.allMax.energyJ,
      budgetS,
    };
    polish(request, undefined, entry.abort.signal).then(
      (result) => {
        if (job.dropped || ctx.isClosed() || job.frontier !== f) return;
        entry.result = result;
        ctx.log.info(
          {
            jobId: job.jobId,
            deadlineS,
            improved: result.polish.improved,
            savingPct: result.savingPct,
            certifiedGapPp: result.gapPp,
            seconds: result.polish.seconds,
          },
          'deployed plan polished',
        );
        if (result.polish.improved) deployPolicy(ctx, job);
      },
      (err: unknown) => {
        if (err instanceof PlanAbortedError || job.dropped || ctx.isClosed()) return;
        // Failed (HiGHS unavailable, worker died): the frontier's plan stays, with the LP's certificate.
        ctx.log.warn({ jobId: job.jobId, deadlineS, err: String(err) }, 'exact polish failed');
      },
    );
  });
}

function variantFromPlan(
  reason: string,
  plan: StagePlan[],
  point: Pick<FrontierPoint, 'index' | 'timeS' | 'energyJ'>,
): PlanVariant {
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
