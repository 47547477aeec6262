import { Frontier, PlannerInputError, frontierWorkEstimate } from '@perseus/planner';
import type { FrontierPoint, PlannerInput, Profile, StagePlan } from '@perseus/planner';
import {
  FailedPreconditionError,
  NotFoundError,
  ResourceExhaustedError,
  ValidationError,
} from '@perseus/service-kit';
import type { Logger } from '@perseus/service-kit';
import type { FrontierPlanner, PlannedFrontier } from './planner-pool';
import type { ProfileCellStat, ProfileSource } from './profile-source';
import type { JobState, OptimizerStore } from './store';
import { DEFAULT_DETECTOR } from './stragglers';
import type { StragglerDetectorOptions } from './stragglers';
import { advanceSweep, newSweep, sweepClocks, sweepCost, sweepVariant } from './sweep';
import type {
  Deployment,
  JobPhase,
  JobSpec,
  PlanVariant,
  Policy,
  RankInfo,
  Straggler,
} from './types';
import type {
  IterationReport,
  PlanOfflineInput,
  RegisterRankInput,
  StragglerReport,
} from './validate';
import { WatchHub } from './watch-hub';
import {
  activeStragglers,
  identityOf,
  jobDetails,
  jobLastSeenMs,
  jobStatus,
  jobSummary,
  liveRanks,
  newJob,
  newSweepStep,
  isSimulated,
  predictedSaving,
} from './job';
import type { Job, JobDetails, JobStatus, JobSummary, RegisteredJob, RegisteredRank } from './job';
import {
  knownBlockingPowerW,
  measuredBlockingPowerW,
  profileFromCells,
  restrictToClocks,
} from './profile-assembly';
import type { SweepStep } from './sweep-step';
import { choosePlans, policyPoint } from './policy';
import { profileJobIdFor, specHash } from './job-identity';
import type { EncodedSchedule } from './watch-hub';

/** What the {@link Optimizer} core needs (the module wires these from flags/env). */
export interface OptimizerCoreOptions {
  store: OptimizerStore;
  planner: FrontierPlanner;
  /** Planner for PlanOffline (default: `planner`); its own worker keeps jobs from waiting on it. */
  offlinePlanner?: FrontierPlanner;
  /** Resolved lazily: the all-in-one server only knows its profiler address once bound. */
  profileSource: () => ProfileSource | undefined;
  /** Imported profiles: for one job id, or (jobId undefined) for any job with that many stages. */
  importedProfiles?: Array<{ jobId?: string | undefined; profile: Profile }>;
  logger: Logger;
  detector?: Partial<StragglerDetectorOptions>;
  /** Clocks an imported/profiled (stage, instruction) must cover to skip the sweep. Default 3. */
  minCoveredClocks?: number;
  /** Delay before re-trying a failed planning attempt, ms. Default 5000. */
  planRetryMs?: number;
  /**
   * Least time a sweep step waits for silent ranks once every stage has K iterations, ms
   * (the wait is at least 3 × the longest reported iteration). Default 5000.
   */
  sweepGraceMs?: number;
  /**
   * A rank without an open WatchSchedule stream counts as alive for this long after its last RPC,
   * ms. Default 60000. While any rank of a job is alive its id cannot start a new generation.
   */
  rankTimeoutMs?: number;
  /** Finished jobs (no live rank) are deleted this long after their last RPC, ms. Default 7 days. */
  finishedRetentionMs?: number;
  /** Told of every accepted iteration report (the dashboard's live time and energy). */
  onIteration?: (rep: IterationReport) => void;
  now?: () => number;
}

const MAX_IDLE_SAMPLES = 4096;
const MAX_OFFLINE_PLAN_INSTRUCTIONS = 2_000_000;
/**
 * Most τ-samples a frontier may take (the planner's work is about one plan per sample: ~1 ms each
 * for a small pipeline on the 2-core CI box, so this bounds one planning to tens of seconds).
 */
export const MAX_FRONTIER_SAMPLES = 20_000;

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

  constructor(private readonly opts: OptimizerCoreOptions) {
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    this.detectorOpts = { ...DEFAULT_DETECTOR, ...opts.detector };
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
      this.armExpiry(job);
      if (job.state.phase === 'PLANNING') this.enqueue(job, () => this.planJob(job));
      if (job.state.phase === 'REGISTERING' && job.ranks.size === job.spec.worldSize)
        this.enqueue(job, () => this.beginProfiling(job));
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
    state.deployment = this.defaultDeployment(spec, 1, 'REGISTERING');
    const identity = { generation, profileJobId: profileJobIdFor(jobId, generation) };
    const job = newJob(jobId, spec, this.now(), state, identity, this.detectorOpts);
    const imported =
      this.opts.importedProfiles?.find(
        (p) =>
          (p.jobId === jobId || p.jobId === undefined) &&
          p.profile.stages.length === spec.pipeline.numStages,
      )?.profile ??
      // A profile kept by DeleteJob(keep_profile) for this id, when its shape still fits.
      (existing === undefined && kept?.stages.length === spec.pipeline.numStages ? kept : null);
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
    clearTimeout(job.expiryTimer);
    clearTimeout(job.retryTimer);
    job.sweepStep.dispose();
    this.hub.closeJob(job.jobId);
    this.jobs.delete(job.jobId);
  }

  private persistState(job: Job): void {
    if (!job.dropped) this.opts.store.putState(job.jobId, job.state);
  }

  /** Gives a job a profile so its sweep is skipped (CSV import or PlanOffline-style rows). */
  setImportedProfile(jobId: string, profile: Profile): void {
    const job = this.job(jobId);
    if (profile.stages.length !== job.spec.pipeline.numStages) {
      throw ValidationError.field(
        'profile',
        `has ${profile.stages.length} stages, job ${jobId} has ${job.spec.pipeline.numStages}`,
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
    if (input.expectedSpecHash !== '' && input.expectedSpecHash !== job.specHash) {
      throw new FailedPreconditionError(
        `job ${job.jobId} generation ${job.generation} has spec hash ${job.specHash}, not the expected ${input.expectedSpecHash}: it was registered with a different spec`,
      );
    }
    const v: Array<{ field: string; description: string }> = [];
    if (r.rank >= spec.worldSize)
      v.push({
        field: 'rank.rank',
        description: `must be < world_size ${spec.worldSize}, got ${r.rank}`,
      });
    if (r.dpRank >= spec.dpDegree)
      v.push({
        field: 'rank.dp_rank',
        description: `must be < dp_degree ${spec.dpDegree}, got ${r.dpRank}`,
      });
    if (r.ppRank >= spec.pipeline.numStages)
      v.push({
        field: 'rank.pp_rank',
        description: `must be < num_stages ${spec.pipeline.numStages}, got ${r.ppRank}`,
      });
    if (r.tpRank >= spec.tpDegree)
      v.push({
        field: 'rank.tp_rank',
        description: `must be < tp_degree ${spec.tpDegree}, got ${r.tpRank}`,
      });
    if (v.length > 0) throw new ValidationError(v);
    const posKey = `${r.dpRank}/${r.ppRank}/${r.tpRank}`;
    const holder = job.positions.get(posKey);
    if (holder !== undefined && holder !== r.rank) {
      throw new FailedPreconditionError(
        `position dp=${r.dpRank} pp=${r.ppRank} tp=${r.tpRank} of job ${job.jobId} is held by rank ${holder}`,
      );
    }
    const prev = job.ranks.get(r.rank);
    if (
      prev !== undefined &&
      (prev.dpRank !== r.dpRank || prev.ppRank !== r.ppRank || prev.tpRank !== r.tpRank)
    ) {
      throw new FailedPreconditionError(
        `rank ${r.rank} of job ${job.jobId} is registered at another position`,
      );
    }
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
      this.hub.publishRank(job.jobId, r.rank, this.encodedScheduleFor(job, r.rank));
      if (job.state.phase === 'REGISTERING') {
        job.state.detail = `${job.ranks.size}/${spec.worldSize} ranks registered`;
        if (job.ranks.size === spec.worldSize) this.enqueue(job, () => this.beginProfiling(job));
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

  private defaultDeployment(
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

  /** Persists a new version of the job's schedules, then announces it to every watcher. */
  private deploy(
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
      this.opts.store.putFrontierAndState(job.jobId, frontierToStore, job.state, this.now());
    else this.persistState(job);
    job.schedules.clear();
    job.sweepStep.dispose();
    job.sweepStep = newSweepStep(job.spec);
    job.detector.reset();
    const t0 = performance.now();
    this.hub.publish(job.jobId, (rank) => this.encodedScheduleFor(job, rank));
    const publishMs = performance.now() - t0;
    job.lastPublishMs = publishMs;
    this.log.info(
      {
        jobId: job.jobId,
        phase,
        version,
        reasons: variants.map((x) => x.reason),
        watchers: this.hub.watcherCount(job.jobId),
        publishMs,
      },
      'schedule deployed',
    );
  }

  private async beginProfiling(job: Job): Promise<void> {
    if (job.state.phase !== 'REGISTERING') return;
    const clocks = sweepClocks(
      [...job.ranks.values()].map((r) => r.supportedFrequenciesMhz),
      job.spec.profiling.floorFrequencyMhz,
      job.spec.profiling.frequencyStride,
    );
    const source = this.opts.profileSource();
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
        this.log.warn(
          { err, jobId: job.jobId },
          'profiler registration failed; measurements may be rejected',
        );
      }
    }
    if (await this.profileCoversJob(job)) {
      this.log.info({ jobId: job.jobId }, 'profile already covers the job; skipping the sweep');
      job.state.detail = 'profile imported; sweep skipped';
      this.enterPlanning(job);
      await this.planJob(job);
      return;
    }
    if (clocks.length === 0) {
      job.state.detail =
        'no clock is supported by every rank above the floor; running at default clocks';
      this.persistState(job);
      this.log.warn({ jobId: job.jobId }, 'empty sweep clock list');
      return;
    }
    const sweep = newSweep(job.spec.pipeline.numStages, clocks);
    job.state.sweep = sweep;
    job.state.detail = `profiling ${clocks[0]} MHz (1/${clocks.length})`;
    this.deploy(
      job,
      'PROFILING',
      [sweepVariant(job.spec, sweep)],
      job.state.deployment!.variantOfPipeline.map(() => 0),
    );
  }

  private async profileCoversJob(job: Job): Promise<boolean> {
    const need = this.opts.minCoveredClocks ?? 3;
    if (job.importedProfile !== null) return true;
    const source = this.opts.profileSource();
    if (source === undefined) return false;
    try {
      const cov = await source.getCoverage(job.profileJobId);
      const n = job.spec.pipeline.numStages;
      return (
        cov.complete &&
        cov.entries.length >= 2 * n &&
        cov.entries.every((e) => e.coveredMhz.length >= need)
      );
    } catch (err) {
      this.log.warn({ err, jobId: job.jobId }, 'profiler coverage unavailable');
      return false;
    }
  }

  private async stepSweep(job: Job): Promise<void> {
    const sweep = job.state.sweep;
    if (job.state.phase !== 'PROFILING' || sweep === null) return;
    const source = this.opts.profileSource();
    let cells: ProfileCellStat[] = [];
    if (source !== undefined) {
      try {
        cells = await source.getProfile(job.profileJobId);
      } catch (err) {
        this.log.warn(
          { err, jobId: job.jobId },
          'profiler unavailable during the sweep; stop rule sees no energy this step',
        );
      }
    }
    // The stop rule weighs energy net of blocking power (the spec's, else the GPU's known value).
    const blockingPowerW =
      job.spec.blockingPowerW > 0
        ? job.spec.blockingPowerW
        : knownBlockingPowerW(job.spec.gpuModel);
    const byKey = new Map(
      cells.map((c) => [
        `${c.stage}:${c.kind}:${c.frequencyMhz}`,
        sweepCost({ energyJ: c.energyJ, stderrJ: c.energyStderrJ }, c.timeS, blockingPowerW),
      ]),
    );
    const { sweep: next, done } = advanceSweep(sweep, (s, k, f) => byKey.get(`${s}:${k}:${f}`));
    job.state.sweep = next;
    if (done) {
      this.enterPlanning(job);
      await this.planJob(job);
      return;
    }
    job.state.detail = `profiling ${next.clocksMhz[next.step]} MHz (${next.step + 1}/${next.clocksMhz.length})`;
    this.deploy(
      job,
      'PROFILING',
      [sweepVariant(job.spec, next)],
      job.state.deployment!.variantOfPipeline.map(() => 0),
    );
  }

  /** PLANNING: ranks go back to default clocks (never slower than untouched training). */
  private enterPlanning(job: Job): void {
    job.state.detail = 'planning';
    job.planningStartedMs = this.now();
    const d = this.defaultDeployment(job.spec, 0, 'PLANNING', 'planning');
    this.deploy(job, 'PLANNING', d.variants, d.variantOfPipeline);
  }

  /**
   * The profile to plan with (imported, or the profiler's cells) restricted to clocks every rank
   * supports, and the per-pipeline blocking power scale; or why there is none.
   */
  private async plannerProfile(job: Job): Promise<{ profile: Profile; tpScale: number } | string> {
    let profile: Profile;
    let tpScale = 1;
    if (job.importedProfile !== null) {
      profile = job.importedProfile;
    } else {
      const source = this.opts.profileSource();
      if (source === undefined) return 'no profiler configured and no imported profile';
      try {
        const cells = await source.getProfile(job.profileJobId, { minCount: 1 });
        profile = profileFromCells(cells, job.spec.pipeline.numStages);
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
  private blockingPower(job: Job, profile: Profile, tpScale: number): number {
    if (job.spec.blockingPowerW > 0) return job.spec.blockingPowerW;
    const measured = measuredBlockingPowerW(
      job.idleSamples,
      profile,
      job.spec.pipeline.numMicrobatches,
      tpScale,
    );
    if (measured !== undefined) return measured;
    this.log.warn(
      { jobId: job.jobId, gpuModel: job.spec.gpuModel },
      'blocking power not measurable; using a known or fallback value',
    );
    return knownBlockingPowerW(job.spec.gpuModel);
  }

  private async planJob(job: Job): Promise<void> {
    if (job.state.phase !== 'PLANNING') return;
    const got = await this.plannerProfile(job);
    if (typeof got === 'string') return this.planFailed(job, got);
    const blockingPowerW = this.blockingPower(job, got.profile, got.tpScale);
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
        this.log.warn(
          { jobId: job.jobId, unitTimeS: input.unitTimeS, samples },
          'frontier over the planning budget; planning with a coarser unit time',
        );
      }
    } catch (err) {
      return this.planFailed(job, `profile rejected by the planner: ${(err as Error).message}`);
    }
    const started = this.now();
    let planned: PlannedFrontier;
    try {
      planned = await this.opts.planner.plan(input, (done, total) => {
        job.state.detail = `planning ${Math.min(100, Math.round((100 * done) / Math.max(1, total)))}%`;
      });
    } catch (err) {
      if (this.closed || job.dropped) return;
      return this.planFailed(job, `planner failed: ${(err as Error).message}`);
    }
    if (this.closed || job.dropped || job.state.phase !== 'PLANNING') return;
    const { frontier } = planned;
    job.frontier = frontier;
    job.state.blockingPowerW = blockingPowerW;
    job.lastPlanningMs = this.now() - started;
    job.state.detail = `frontier of ${frontier.points.length} points in ${job.lastPlanningMs} ms`;
    this.log.info(
      {
        jobId: job.jobId,
        points: frontier.points.length,
        planningMs: job.lastPlanningMs,
        blockingPowerW,
      },
      'frontier planned',
    );
    this.deployPolicy(job, planned.json);
  }

  private planFailed(job: Job, why: string): void {
    job.state.detail = `planning failed, retrying: ${why}`;
    this.persistState(job);
    this.log.warn({ jobId: job.jobId, why }, 'planning failed; ranks stay at default clocks');
    if (this.closed || job.dropped) return;
    clearTimeout(job.retryTimer);
    job.retryTimer = setTimeout(
      () => this.enqueue(job, () => this.planJob(job)),
      this.opts.planRetryMs ?? 5000,
    );
    job.retryTimer.unref();
  }

  // ---- deployment ---------------------------------------------------------------------------

  /**
   * DEPLOYED: each pipeline's plan ({@link choosePlans}). Bumps the version only when some
   * pipeline's plan changes. Returns the time the healthy pipelines now target (0 = policy point).
   */
  private deployPolicy(job: Job, newFrontierJson?: string): number {
    const force = newFrontierJson !== undefined;
    const f = job.frontier;
    if (f === null || (job.state.phase !== 'DEPLOYED' && job.state.phase !== 'PLANNING')) return 0;
    const choice = choosePlans(
      f,
      job.state.policy,
      activeStragglers(job, this.now()),
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
    this.deploy(job, 'DEPLOYED', variants, variantOfPipeline, newFrontierJson);
    return choice.targetIterationTimeS;
  }

  // ---- schedules ----------------------------------------------------------------------------

  /** One rank's schedule at the job's current version, as wire bytes. */
  private encodedScheduleFor(job: Job, rank: number): EncodedSchedule {
    return job.schedules.encode(job, job.state.deployment!, rank, job.ranks.get(rank));
  }

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
    return this.encodedScheduleFor(job, rank);
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
    if (d.phase === 'PROFILING') this.countSweepIteration(job, info, rep);
    else if (d.phase === 'DEPLOYED') this.observeForStragglers(job, info, rep);
    return { scheduleVersion: job.state.version };
  }

  private countSweepIteration(job: Job, info: RankInfo, rep: IterationReport): void {
    const variant = job.state.deployment!.variants[0]!;
    const stage = variant.stages[info.ppRank] ?? [];
    job.idleSamples.push({
      stage: info.ppRank,
      timeS: rep.timeS,
      energyJ: rep.energyJ,
      forwardMhz: stage.find((x) => x.kind === 'forward')?.frequencyMhz ?? 0,
      backwardMhz: stage.find((x) => x.kind === 'backward')?.frequencyMhz ?? 0,
    });
    if (job.idleSamples.length > MAX_IDLE_SAMPLES) job.idleSamples.shift();
    const step = job.sweepStep;
    const progress = step.record(info.rank, info.ppRank, rep.timeS);
    if (progress === 'complete') {
      this.endSweepStep(job, step);
    } else if (progress === 'stagesCovered') {
      // Every stage has been measured K times, but some ranks are silent (dead, or slow to report).
      // A silent rank must not keep the whole job at a low profiling clock: after a grace period of
      // a few iterations the step ends without it.
      step.armGrace(step.graceMs(this.opts.sweepGraceMs ?? 5000), () => {
        const silent = step.silentRanks(job.ranks.keys());
        this.log.warn(
          {
            jobId: job.jobId,
            version: job.state.version,
            silentRanks: silent.slice(0, 16),
            silentCount: silent.length,
          },
          'sweep step ended without every rank',
        );
        this.endSweepStep(job, step);
      });
    }
  }

  private endSweepStep(job: Job, step: SweepStep): void {
    if (step.end()) this.enqueue(job, () => this.stepSweep(job));
  }

  private observeForStragglers(job: Job, info: RankInfo, rep: IterationReport): void {
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
      this.log.info(
        { jobId: job.jobId, dpRank: ev.dpRank, iterationTimeS: ev.iterationTimeS },
        'straggler detected',
      );
    } else {
      job.state.stragglers = job.state.stragglers.filter(
        (s) => !(s.dpRank === ev.dpRank && s.source === 'detected'),
      );
      this.log.info({ jobId: job.jobId, dpRank: ev.dpRank }, 'straggler recovered (detected)');
    }
    this.persistState(job);
    this.deployPolicy(job);
  }

  reportStraggler(rep: StragglerReport): { scheduleVersion: number; targetIterationTimeS: number } {
    const job = this.job(rep.jobId);
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
        expiresAtMs: rep.expiresAfterS > 0 ? this.now() + rep.expiresAfterS * 1000 : null,
        source: 'reported',
      };
      if (sev.kind === 'slowdown') s.slowdown = sev.factor;
      job.state.stragglers.push(s);
    }
    this.log.info({ jobId: job.jobId, dpRank: rep.dpRank, severity: sev }, 'straggler report');
    this.persistState(job);
    this.armExpiry(job);
    const target = this.deployPolicy(job);
    return { scheduleVersion: job.state.version, targetIterationTimeS: target };
  }

  private armExpiry(job: Job): void {
    clearTimeout(job.expiryTimer);
    const next = Math.min(...job.state.stragglers.map((s) => s.expiresAtMs ?? Infinity));
    if (!Number.isFinite(next) || this.closed) return;
    job.expiryTimer = setTimeout(
      () => {
        const now = this.now();
        job.state.stragglers = job.state.stragglers.filter(
          (s) => s.expiresAtMs === null || s.expiresAtMs > now,
        );
        this.persistState(job);
        this.deployPolicy(job);
        this.armExpiry(job);
      },
      Math.max(0, next - this.now()) + 1,
    );
    job.expiryTimer.unref();
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
    this.deployPolicy(job);
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

  /**
   * Stateless planning (PlanOffline). With `includePlans`, refuses a frontier whose plans would
   * exceed the response budget.
   */
  async planOffline(input: PlanOfflineInput, signal?: AbortSignal): Promise<Frontier> {
    const plannerInput: PlannerInput = {
      profile: input.profile,
      pipeline: input.pipeline,
      blockingPowerW: input.blockingPowerW,
      unitTimeS: input.unitTimeS,
    };
    let f: Frontier;
    try {
      // The work is known before planning starts: refuse what would plan for minutes.
      const samples = frontierWorkEstimate(plannerInput).samples;
      if (samples > MAX_FRONTIER_SAMPLES) {
        throw ValidationError.field(
          'unit_time_s',
          `the frontier would take ${samples.toExponential(2)} samples of unit_time_s (limit ${MAX_FRONTIER_SAMPLES}): use unit_time_s ≥ ${((input.unitTimeS * samples) / MAX_FRONTIER_SAMPLES).toPrecision(3)} s for this profile`,
        );
      }
      // Offline planning has its own worker: a job's planning never waits behind it.
      const planner = this.opts.offlinePlanner ?? this.opts.planner;
      ({ frontier: f } = await planner.plan(plannerInput, undefined, signal));
    } catch (err) {
      if (err instanceof PlannerInputError) throw ValidationError.field(err.field, err.message);
      throw err;
    }
    if (input.includePlans) {
      const perPlan = 2 * input.pipeline.numStages * input.pipeline.numMicrobatches;
      if (perPlan * f.points.length > MAX_OFFLINE_PLAN_INSTRUCTIONS) {
        throw new ResourceExhaustedError(
          `include_plans would return ${perPlan * f.points.length} instructions (limit ${MAX_OFFLINE_PLAN_INSTRUCTIONS}); use a larger unit_time_s or omit plans`,
        );
      }
    }
    return f;
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

function variantFromPlan(reason: string, plan: StagePlan[], point: FrontierPoint): PlanVariant {
  const stages = plan.map((sp) =>
    sp.instructions.map((x) => ({
      kind: x.kind,
      microbatch: x.microbatch,
      frequencyMhz: x.frequencyMhz,
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
