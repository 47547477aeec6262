import { Frontier } from '@perseus/planner';
import type { FrontierPoint, Profile } from '@perseus/planner';
import { FailedPreconditionError, NotFoundError, ValidationError } from '@perseus/service-kit';
import type { Logger } from '@perseus/service-kit';
import { defaultDeployment, deployPolicy, encodedScheduleFor } from './deployment';
import {
  activeStragglers,
  dropPolishes,
  identityOf,
  jobDetails,
  jobLastSeenMs,
  jobStatus,
  jobSummary,
  liveRanks,
  newJob,
  isSimulated,
  predictedSaving,
} from './job';
import type { Job, JobDetails, JobStatus, JobSummary, RegisteredJob, RegisteredRank } from './job';
import type { JobContext, OptimizerCoreOptions } from './job-context';
import { profileJobIdFor, specHash } from './job-identity';
import { checkRankPlacement } from './rank-placement';
import { planOffline } from './plan-offline';
import { planJob } from './planning';
import { policyPoint } from './policy';
import { beginProfiling, countSweepIteration } from './profiling';
import type { JobState } from './store';
import {
  applyStragglerReport,
  armStragglerExpiry,
  observeForStragglers,
} from './straggler-reports';
import { DEFAULT_DETECTOR } from './stragglers';
import type { StragglerDetectorOptions } from './stragglers';
import { virtualStages } from './sweep';
import type { JobPhase, JobSpec, Policy, RankInfo } from './types';
import type {
  IterationReport,
  PlanOfflineInput,
  RegisterRankInput,
  StragglerReport,
} from './validate';
import { WatchHub } from './watch-hub';
import type { EncodedSchedule } from './watch-hub';

export type { OptimizerCoreOptions } from './job-context';

/** The numbers a metrics scrape reports per job. */
export interface JobMetrics {
  jobId: string;
  phase: JobPhase;
  version: number;
  registeredRanks: number;
  worldSize: number;
  predictedSavingPercent: number;
  /** Some rank's GPU is simulated: the job's energies and savings are emulated. */
  simulated: boolean;
  stragglers: number;
  watchers: number;
  frontierPoints: number;
  lastPlanningSeconds: number;
  lastPublishSeconds: number;
}

/**
 * The optimizer's policy core (docs/architecture.md §3): jobs and ranks, the phase machine
 * REGISTERING → PROFILING → PLANNING → DEPLOYED, versioned per-rank schedules, stragglers and
 * policies. Plain methods over validated values; the gRPC adapter is in `service.ts`.
 */
export class Optimizer {
  readonly hub = new WatchHub();
  private readonly jobs = new Map<string, Job>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly detectorOpts: StragglerDetectorOptions;
  private closed = false;
  private retentionTimer: NodeJS.Timeout | undefined;
  /** This core as the phase machine's steps (profiling, planning, deployment) see it. */
  private readonly ctx: JobContext;

  constructor(private readonly opts: OptimizerCoreOptions) {
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    this.detectorOpts = { ...DEFAULT_DETECTOR, ...opts.detector };
    this.ctx = {
      opts,
      hub: this.hub,
      log: this.log,
      now: () => this.now(),
      isClosed: () => this.closed,
      enqueue: (job, fn) => this.enqueue(job, fn),
    };
  }

  /** Restores every job from the store; resumes interrupted profiling or planning. */
  restore(): void {
    const retention = this.opts.finishedRetentionMs ?? 7 * 86_400_000;
    this.retentionTimer = setInterval(
      () => this.expireFinishedJobs(),
      Math.max(1000, Math.min(60_000, retention / 10)),
    );
    this.retentionTimer.unref();
    for (const stored of this.opts.store.loadAll()) {
      const job = newJob(
        stored.jobId,
        stored.spec,
        stored.createdMs,
        stored.state,
        {
          generation: stored.generation,
          profileJobId: stored.profileJobId,
        },
        this.detectorOpts,
      );
      // After a restart every rank gets a full timeout to reconnect before it counts as gone.
      const now = this.now();
      for (const r of stored.ranks) {
        this.addRankToJob(job, r);
        job.lastSeenMs.set(r.rank, now);
      }
      job.importedProfile = stored.importedProfile;
      job.frontier = stored.frontier === null ? null : Frontier.fromJSON(stored.frontier);
      this.jobs.set(job.jobId, job);
      armStragglerExpiry(this.ctx, job);
      if (job.state.phase === 'PLANNING') this.enqueue(job, () => planJob(this.ctx, job));
      if (job.state.phase === 'REGISTERING' && job.ranks.size === job.spec.worldSize)
        this.enqueue(job, () => beginProfiling(this.ctx, job));
      this.log.info(
        { jobId: job.jobId, phase: job.state.phase, version: job.state.version },
        'job restored',
      );
    }
  }

  private job(jobId: string): Job {
    const j = this.jobs.get(jobId);
    if (j === undefined) throw new NotFoundError(`job ${jobId} is not registered`);
    return j;
  }

  private addRankToJob(job: Job, info: RankInfo): void {
    job.ranks.set(info.rank, info);
    job.positions.set(`${info.dpRank}/${info.ppRank}/${info.tpRank}`, info.rank);
  }

  // ---- registration -------------------------------------------------------------------------

  registerJob(jobId: string, spec: JobSpec): RegisteredJob {
    const existing = this.jobs.get(jobId);
    let generation: number;
    if (existing !== undefined) {
      if (existing.specHash === specHash(spec))
        return { created: false, phase: existing.state.phase, ...identityOf(existing) };
      const live = this.liveRanks(existing);
      if (live.length > 0) {
        throw new FailedPreconditionError(
          `job ${jobId} generation ${existing.generation} is registered with a different spec and ${live.length} of its ranks are alive (e.g. rank ${live[0]}); stop them, wait ${Math.round(this.rankTimeoutMs / 1000)} s after their last call, or use another job id`,
        );
      }
      this.log.info(
        { jobId, previousGeneration: existing.generation },
        'job re-registered with a new spec: new generation',
      );
      this.dropJob(existing);
      generation = existing.generation + 1;
    } else {
      generation = this.opts.store.deletedGeneration(jobId) + 1;
    }
    const kept = this.opts.store.importedProfile(jobId);
    const state: JobState = {
      phase: 'REGISTERING',
      version: 1,
      policy: { kind: 'intrinsic' },
      deployment: null,
      sweep: null,
      stragglers: [],
      blockingPowerW: spec.blockingPowerW,
      detail: `waiting for ${spec.worldSize} ranks`,
    };
    state.deployment = defaultDeployment(spec, 1, 'REGISTERING');
    const identity = { generation, profileJobId: profileJobIdFor(jobId, generation) };
    const job = newJob(jobId, spec, this.now(), state, identity, this.detectorOpts);
    const imported =
      this.opts.importedProfiles?.find(
        (p) =>
          (p.jobId === jobId || p.jobId === undefined) &&
          p.profile.stages.length === virtualStages(spec.pipeline),
      )?.profile ??
      // A profile kept by DeleteJob(keep_profile) for this id, when its shape still fits.
      (existing === undefined && kept?.stages.length === virtualStages(spec.pipeline)
        ? kept
        : null);
    this.opts.store.createJob(jobId, identity, spec, job.createdMs, state);
    if (imported !== null) this.importProfile(job, imported);
    this.jobs.set(jobId, job);
    this.log.info(
      { jobId, generation, worldSize: spec.worldSize, pipeline: spec.pipeline },
      'job registered',
    );
    return { created: true, phase: 'REGISTERING', ...identityOf(job) };
  }

  private get rankTimeoutMs(): number {
    return this.opts.rankTimeoutMs ?? 60_000;
  }

  private liveRanks(job: Job): number[] {
    return liveRanks(job, this.hub.watchingRanks(job.jobId), this.now(), this.rankTimeoutMs);
  }

  private touch(job: Job, rank: number): void {
    job.lastSeenMs.set(rank, this.now());
  }

  /** Forgets a job's runtime state: timers, streams, pending transitions. */
  private dropJob(job: Job): void {
    job.dropped = true;
    dropPolishes(job);
    clearTimeout(job.expiryTimer);
    clearTimeout(job.retryTimer);
    job.sweepStep.dispose();
    this.hub.closeJob(job.jobId);
    this.jobs.delete(job.jobId);
  }

  /** Gives a job a profile so its sweep is skipped (CSV import or PlanOffline-style rows). */
  setImportedProfile(jobId: string, profile: Profile): void {
    const job = this.job(jobId);
    if (profile.stages.length !== virtualStages(job.spec.pipeline)) {
      throw ValidationError.field(
        'profile',
        `has ${profile.stages.length} stages, job ${jobId} has ${virtualStages(job.spec.pipeline)}`,
      );
    }
    this.importProfile(job, profile);
  }

  private importProfile(job: Job, profile: Profile): void {
    job.importedProfile = profile;
    this.opts.store.putImportedProfile(job.jobId, profile);
  }

  registerRank(input: RegisterRankInput): RegisteredRank {
    const job = this.job(input.jobId);
    const { spec } = job;
    const r = input.rank;
    const prev = checkRankPlacement(job, input);
    const info: RankInfo = {
      ...r,
      node: input.node,
      deviceIndex: input.deviceIndex,
      supportedFrequenciesMhz: input.supportedFrequenciesMhz,
      simulated: input.simulated,
    };
    this.touch(job, r.rank);
    const same = prev !== undefined && JSON.stringify(prev) === JSON.stringify(info);
    if (!same) {
      this.opts.store.putRank(job.jobId, info);
      this.addRankToJob(job, info);
    }
    if (prev === undefined) {
      // A newly registered rank learns its stage's schedule at once if it is already watching.
      this.hub.publishRank(job.jobId, r.rank, encodedScheduleFor(job, r.rank));
      if (job.state.phase === 'REGISTERING') {
        job.state.detail = `${job.ranks.size}/${spec.worldSize} ranks registered`;
        if (job.ranks.size === spec.worldSize)
          this.enqueue(job, () => beginProfiling(this.ctx, job));
      }
    }
    return { created: prev === undefined, registeredRanks: job.ranks.size, ...identityOf(job) };
  }

  // ---- phases -------------------------------------------------------------------------------

  private enqueue(job: Job, fn: () => Promise<void>): void {
    job.chain = job.chain
      .then(async () => {
        if (!this.closed && !job.dropped) await fn();
      })
      .catch((err: unknown) => this.log.error({ err, jobId: job.jobId }, 'job transition failed'));
  }

  // ---- deployment ---------------------------------------------------------------------------

  // ---- schedules ----------------------------------------------------------------------------

  /** Current schedule of a rank (the first message of a WatchSchedule stream). */
  currentSchedule(jobId: string, rank: number, generation = 0): EncodedSchedule {
    const job = this.job(jobId);
    this.checkGeneration(job, generation);
    if (rank >= job.spec.worldSize)
      throw ValidationError.field(
        'rank',
        `must be < world_size ${job.spec.worldSize}, got ${rank}`,
      );
    if (job.ranks.has(rank)) this.touch(job, rank);
    return encodedScheduleFor(job, rank);
  }

  /** A caller of another generation than the current one (0 = any) is refused. */
  private checkGeneration(job: Job, generation: number): void {
    if (generation !== 0 && generation !== job.generation)
      throw new FailedPreconditionError(
        `job ${job.jobId} is at generation ${job.generation}, not ${generation}: it was re-registered with a different spec`,
      );
  }

  // ---- reports ------------------------------------------------------------------------------

  reportIteration(rep: IterationReport): { scheduleVersion: number } {
    const job = this.job(rep.jobId);
    this.checkGeneration(job, rep.generation);
    const info = job.ranks.get(rep.rank.rank);
    if (info === undefined)
      throw new FailedPreconditionError(
        `rank ${rep.rank.rank} of job ${job.jobId} is not registered`,
      );
    if (
      info.dpRank !== rep.rank.dpRank ||
      info.ppRank !== rep.rank.ppRank ||
      info.tpRank !== rep.rank.tpRank
    ) {
      throw ValidationError.field(
        'rank',
        `does not match the registration of rank ${info.rank} (dp=${info.dpRank} pp=${info.ppRank} tp=${info.tpRank})`,
      );
    }
    this.touch(job, info.rank);
    this.opts.onIteration?.(rep);
    const d = job.state.deployment!;
    if (rep.scheduleVersion !== d.version) return { scheduleVersion: d.version };
    if (d.phase === 'PROFILING') countSweepIteration(this.ctx, job, info, rep);
    else if (d.phase === 'DEPLOYED') observeForStragglers(this.ctx, job, info, rep);
    return { scheduleVersion: job.state.version };
  }

  reportStraggler(rep: StragglerReport): { scheduleVersion: number; targetIterationTimeS: number } {
    const job = this.job(rep.jobId);
    const target = applyStragglerReport(this.ctx, job, rep);
    return { scheduleVersion: job.state.version, targetIterationTimeS: target };
  }

  // ---- policies, frontier, status -----------------------------------------------------------

  setPolicy(
    jobId: string,
    policy: Policy,
  ): { scheduleVersion: number; chosen: FrontierPoint | undefined } {
    const job = this.job(jobId);
    job.state.policy = policy;
    this.opts.store.putState(jobId, job.state);
    if (job.frontier === null || job.state.phase !== 'DEPLOYED')
      return { scheduleVersion: job.state.version, chosen: undefined };
    deployPolicy(this.ctx, job);
    return {
      scheduleVersion: job.state.version,
      chosen: policyPoint(job.state.policy, job.frontier),
    };
  }

  getFrontier(jobId: string): { frontier: Frontier; chosenIndex: number } {
    const job = this.job(jobId);
    if (job.frontier === null)
      throw new FailedPreconditionError(
        `job ${jobId} has no frontier yet (phase ${job.state.phase})`,
      );
    return {
      frontier: job.frontier,
      chosenIndex: policyPoint(job.state.policy, job.frontier).index,
    };
  }

  getJobStatus(jobId: string): JobStatus {
    return jobStatus(this.job(jobId), this.now());
  }

  private summary(job: Job): JobSummary {
    return jobSummary(job, this.liveRanks(job), this.now(), this.rankTimeoutMs);
  }

  /** Jobs ordered by id, after `afterJobId` (exclusive), at most `limit`. */
  listJobs(limit: number, afterJobId: string): { jobs: JobSummary[]; more: boolean } {
    const ids = [...this.jobs.keys()].filter((id) => id > afterJobId).sort();
    return {
      jobs: ids.slice(0, limit).map((id) => this.summary(this.jobs.get(id)!)),
      more: ids.length > limit,
    };
  }

  getJob(jobId: string): JobDetails {
    const job = this.job(jobId);
    return jobDetails(job, this.liveRanks(job), this.now(), this.rankTimeoutMs);
  }

  /**
   * Deletes a job (its current generation; earlier ones were dropped when superseded) with its
   * plans, and its imported profile unless `keepProfile`. Refused while a rank is alive unless
   * `force`.
   */
  deleteJob(
    jobId: string,
    opts: { keepProfile: boolean; force: boolean },
  ): { generation: number; profileDeleted: boolean } {
    const job = this.job(jobId);
    const live = this.liveRanks(job);
    if (live.length > 0 && !opts.force) {
      throw new FailedPreconditionError(
        `job ${jobId} has ${live.length} live ranks (e.g. rank ${live[0]}); stop them first or set force`,
      );
    }
    const profileDeleted = !opts.keepProfile && job.importedProfile !== null;
    this.dropJob(job);
    this.opts.store.deleteJob(jobId, job.generation, opts.keepProfile);
    this.log.info(
      { jobId, generation: job.generation, keepProfile: opts.keepProfile, liveRanks: live.length },
      'job deleted',
    );
    return { generation: job.generation, profileDeleted };
  }

  /** Deletes finished jobs whose last RPC is older than the retention period. */
  private expireFinishedJobs(): void {
    const retention = this.opts.finishedRetentionMs ?? 7 * 86_400_000;
    const now = this.now();
    for (const job of [...this.jobs.values()]) {
      if (this.liveRanks(job).length > 0 || now - jobLastSeenMs(job) < retention) continue;
      this.dropJob(job);
      this.opts.store.deleteJob(job.jobId, job.generation, false);
      this.log.info({ jobId: job.jobId, generation: job.generation }, 'finished job expired');
    }
  }

  /** Stateless planning (PlanOffline), on its own worker: a job's planning never waits behind it. */
  planOffline(input: PlanOfflineInput, signal?: AbortSignal): Promise<Frontier> {
    return planOffline(this.opts.offlinePlanner ?? this.opts.planner, input, signal);
  }

  /** Per-job numbers for the metrics endpoint. */
  metrics(): JobMetrics[] {
    return [...this.jobs.values()].map((job) => ({
      jobId: job.jobId,
      phase: job.state.phase,
      version: job.state.version,
      registeredRanks: job.ranks.size,
      worldSize: job.spec.worldSize,
      predictedSavingPercent: predictedSaving(job),
      simulated: isSimulated(job),
      stragglers: activeStragglers(job, this.now()).length,
      watchers: this.hub.watcherCount(job.jobId),
      frontierPoints: job.frontier?.points.length ?? 0,
      lastPlanningSeconds: job.lastPlanningMs / 1000,
      lastPublishSeconds: job.lastPublishMs / 1000,
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.retentionTimer);
    for (const job of this.jobs.values()) {
      clearTimeout(job.expiryTimer);
      clearTimeout(job.retryTimer);
      job.sweepStep.dispose();
    }
    this.hub.closeAll();
    await this.opts.planner.close();
    await this.opts.offlinePlanner?.close();
    // Transitions stop at their next step once closed; do not hold shutdown for a slow profiler call.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.jobs.values()].map((j) => j.chain)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 2000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
}
