/**
 * Stragglers of a deployed job (docs/architecture.md §3): detected from iteration reports, or
 * reported by a caller (optionally expiring); each change redeploys the policy's plans.
 */
import { FailedPreconditionError, ValidationError } from '@perseus/service-kit';
import { deployPolicy } from './deployment';
import type { Job } from './job';
import { persistState } from './job-context';
import type { JobContext } from './job-context';
import type { RankInfo, Straggler } from './types';
import type { IterationReport, StragglerReport } from './validate';

/** Feeds one current-version iteration report of a DEPLOYED job to its straggler detector. */
export function observeForStragglers(
  ctx: JobContext,
  job: Job,
  info: RankInfo,
  rep: IterationReport,
): void {
  const d = job.state.deployment!;
  const variant = d.variants[d.variantOfPipeline[info.dpRank] ?? 0]!;
  const detected = new Set(
    job.state.stragglers.filter((s) => s.source === 'detected').map((s) => s.dpRank),
  );
  const ev = job.detector.observe(
    info.dpRank,
    rep.iteration,
    rep.computeTimeS > 0 ? Math.min(rep.computeTimeS, rep.timeS) : rep.timeS,
    variant.expectedTimeS,
    detected,
  );
  if (ev === undefined) return;
  if (ev.type === 'enter') {
    if (job.state.stragglers.some((s) => s.dpRank === ev.dpRank)) return;
    job.state.stragglers.push({
      dpRank: ev.dpRank,
      iterationTimeS: ev.iterationTimeS,
      expiresAtMs: null,
      source: 'detected',
    });
    ctx.log.info(
      { jobId: job.jobId, dpRank: ev.dpRank, iterationTimeS: ev.iterationTimeS },
      'straggler detected',
    );
  } else {
    job.state.stragglers = job.state.stragglers.filter(
      (s) => !(s.dpRank === ev.dpRank && s.source === 'detected'),
    );
    ctx.log.info({ jobId: job.jobId, dpRank: ev.dpRank }, 'straggler recovered (detected)');
  }
  persistState(ctx, job);
  deployPolicy(ctx, job);
}

/** Applies a ReportStraggler call to its job; returns the time healthy pipelines now target. */
export function applyStragglerReport(ctx: JobContext, job: Job, rep: StragglerReport): number {
  if (rep.dpRank >= job.spec.dpDegree)
    throw ValidationError.field(
      'dp_rank',
      `must be < dp_degree ${job.spec.dpDegree}, got ${rep.dpRank}`,
    );
  if (job.ranks.size < job.spec.worldSize)
    throw new FailedPreconditionError(
      `job ${job.jobId} is still registering ranks (${job.ranks.size}/${job.spec.worldSize}); report stragglers once every rank has registered`,
    );
  job.state.stragglers = job.state.stragglers.filter((s) => s.dpRank !== rep.dpRank);
  const sev = rep.severity;
  if (sev.kind !== 'recovered') {
    const s: Straggler = {
      dpRank: rep.dpRank,
      iterationTimeS: sev.kind === 'iterationTime' ? sev.timeS : 0,
      expiresAtMs: rep.expiresAfterS > 0 ? ctx.now() + rep.expiresAfterS * 1000 : null,
      source: 'reported',
    };
    if (sev.kind === 'slowdown') s.slowdown = sev.factor;
    job.state.stragglers.push(s);
  }
  ctx.log.info({ jobId: job.jobId, dpRank: rep.dpRank, severity: sev }, 'straggler report');
  persistState(ctx, job);
  armStragglerExpiry(ctx, job);
  return deployPolicy(ctx, job);
}

/** Arms a timer for the job's earliest expiring reported straggler. */
export function armStragglerExpiry(ctx: JobContext, job: Job): void {
  clearTimeout(job.expiryTimer);
  const next = Math.min(...job.state.stragglers.map((s) => s.expiresAtMs ?? Infinity));
  if (!Number.isFinite(next) || ctx.isClosed()) return;
  job.expiryTimer = setTimeout(
    () => {
      const now = ctx.now();
      job.state.stragglers = job.state.stragglers.filter(
        (s) => s.expiresAtMs === null || s.expiresAtMs > now,
      );
      persistState(ctx, job);
      deployPolicy(ctx, job);
      armStragglerExpiry(ctx, job);
    },
    Math.max(0, next - ctx.now()) + 1,
  );
  job.expiryTimer.unref();
}
