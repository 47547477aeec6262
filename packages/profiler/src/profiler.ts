/**
 * The profiler's behaviour as a plain class over a {@link ProfileStore}: ingestion with group
 * commit, job registration, queries, CSV import/export, retention. The gRPC adapter
 * (grpc-service.ts) only validates, calls these methods and maps errors.
 */
import {
  FailedPreconditionError,
  NotFoundError,
  SIZE_LIMITS,
  UnavailableError,
  ValidationError,
} from '@perseus/service-kit';
import type { Logger } from '@perseus/service-kit';
import type { AggregationOptions } from './aggregate';
import { aggregateRanks, aggregateTpGroups, importedCells } from './aggregate';
import type { CommitCounters } from './commit-queue';
import { GroupCommitQueue } from './commit-queue';
import { MaintenanceTimers } from './maintenance';
import type { ProfileCsvRow } from './profile-csv';
import { formatProfileCsv } from './profile-csv';
import type { CellAggregator, DirtyFilter, ProfileStore, StoreStats } from './store';
import type { BatchResult, Instruction, JobSpec, MeasurementBatch, ProfileCell } from './types';
import { INSTRUCTIONS } from './types';
import type {
  ExportProfileQuery,
  GetCoverageQuery,
  GetProfileQuery,
  ImportProfileCommand,
  ReportIterations,
} from './validate';
import { checkBatchAgainstJob, checkImportAgainstJob, checkIterationsAgainstJob } from './validate';

export interface ProfilerOptions {
  store: ProfileStore;
  logger: Logger;
  /** Warm-up fraction and outlier k (see aggregate.ts). */
  aggregation?: AggregationOptions;
  /** Samples a cell needs to count as covered when GetCoverage asks for 0. Default 10. */
  defaultCoverageMinCount?: number;
  /** Most measurements committed in one group transaction. Default 20,000. */
  maxGroupMeasurements?: number;
  /** Background aggregation of dirty cells every this many ms (0 = only on read). Default 2000. */
  aggregateIntervalMs?: number;
  /** Longest a dirty cell waits for background aggregation while it still receives data, ms. Default 30,000. */
  maxAggregationLagMs?: number;
  /** Prune raw rows of jobs idle for this long, seconds (0 = keep raw rows). Default 0. */
  rawRetentionS?: number;
  /**
   * Longest a read (GetProfile, GetCoverage, stage-level ExportProfile) waits for the aggregation
   * of the job's dirty cells, ms; past it the read answers from the cells aggregated so far and the
   * aggregation finishes in the background. Default 500.
   */
  readWaitMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface CoverageEntry {
  stage: number;
  instruction: Instruction;
  coveredFrequenciesMhz: number[];
  missingFrequenciesMhz: number[];
}

export interface Coverage {
  entries: CoverageEntry[];
  complete: boolean;
}

/** Counters the metrics endpoint exposes. */
export interface IngestCounters extends CommitCounters {
  /** Batches queued for the next group commit. */
  queuedBatches: number;
  queuedMeasurements: number;
}

/** Two specs describe the same job. */
function sameSpec(a: JobSpec, b: JobSpec): boolean {
  return (
    a.schedule === b.schedule &&
    a.numStages === b.numStages &&
    a.numChunks === b.numChunks &&
    a.numMicrobatches === b.numMicrobatches &&
    a.dpDegree === b.dpDegree &&
    a.tpDegree === b.tpDegree &&
    a.supportedFrequenciesMhz.join(',') === b.supportedFrequenciesMhz.join(',')
  );
}

export class Profiler {
  private readonly store: ProfileStore;
  private readonly logger: Logger;
  private readonly aggregate: CellAggregator;
  private readonly defaultCoverageMinCount: number;
  private readonly now: () => number;
  private readonly maxAggregationLagMs: number;
  private readonly commits: GroupCommitQueue;
  private readonly maintenance: MaintenanceTimers;
  private closing = false;
  private readonly readWaitMs: number;
  /** Per job: the refresh queued or running last, and one not started yet (readers share it). */
  private readonly refreshes = new Map<string, { last: Promise<void>; waiting?: Promise<void> }>();
  private readonly closingListeners = new Set<() => void>();
  /** Batches accepted and not yet answered; close() waits for them. */
  private readonly submissions = new Set<Promise<BatchResult>>();

  constructor(options: ProfilerOptions) {
    this.store = options.store;
    this.logger = options.logger;
    const agg = options.aggregation ?? {};
    this.aggregate = {
      groups: (groups, key, job) => aggregateTpGroups(groups, key, job.tpDegree, agg),
      ranks: (rows, key) => aggregateRanks(rows, key, agg),
      options: agg,
    };
    this.readWaitMs = options.readWaitMs ?? 500;
    this.defaultCoverageMinCount = options.defaultCoverageMinCount ?? 10;
    this.now = options.now ?? Date.now;
    this.commits = new GroupCommitQueue({
      commit: (batches) => this.store.commitBatches(batches),
      maxGroupMeasurements: options.maxGroupMeasurements ?? 20_000,
      logger: this.logger,
      now: this.now,
    });
    this.maintenance = new MaintenanceTimers(this.logger);
    this.maxAggregationLagMs = options.maxAggregationLagMs ?? 30_000;
    const every = options.aggregateIntervalMs ?? 2000;
    if (every > 0) {
      // Duty-cycle cap: a refresh that took d ms is not followed by another for 9·d ms, so
      // background aggregation takes at most ~10% of the event loop away from ingestion.
      let notBefore = 0;
      this.maintenance.every(every, async () => {
        if (this.now() < notBefore) return;
        const t0 = this.now();
        // Cells still receiving data (the clock being profiled) are left for later: recomputing a
        // growing cell again and again would be wasted work. Nothing waits more than maxLagMs.
        await this.refreshAllDirty({
          quietBeforeMs: t0 - every,
          dirtySinceBeforeMs: t0 - this.maxAggregationLagMs,
        });
        const t1 = this.now();
        notBefore = t1 + 9 * (t1 - t0);
      });
    }
    const retentionS = options.rawRetentionS ?? 0;
    if (retentionS > 0)
      this.maintenance.every(Math.min(60_000, retentionS * 1000), () =>
        this.pruneIdleJobs(retentionS),
      );
  }

  private async requireJob(jobId: string): Promise<JobSpec> {
    const job = await this.store.getJob(jobId);
    if (!job) throw new NotFoundError(`job ${jobId} is not registered with the profiler`);
    return job;
  }

  /** RegisterJob: idempotent for an identical spec; a job created by ImportProfile takes the registered spec. */
  async registerJob(spec: JobSpec): Promise<{ created: boolean }> {
    const existing = await this.store.getJob(spec.jobId);
    if (!existing) {
      await this.store.putJob(spec);
      this.logger.info({ jobId: spec.jobId }, 'job registered');
      return { created: true };
    }
    if (sameSpec(existing, spec)) return { created: false };
    if (
      existing.origin === 'import' &&
      spec.numStages * spec.numChunks >= existing.numStages &&
      spec.dpDegree >= existing.dpDegree &&
      spec.tpDegree >= existing.tpDegree
    ) {
      await this.store.putJob(spec);
      return { created: false };
    }
    throw new FailedPreconditionError(
      `job ${spec.jobId} is already registered with a different spec (${existing.schedule}, stages ${existing.numStages}, chunks ${existing.numChunks}, microbatches ${existing.numMicrobatches}, dp ${existing.dpDegree}, tp ${existing.tpDegree}, ${existing.supportedFrequenciesMhz.length} clocks)`,
    );
  }

  /**
   * Stores one validated batch; resolves once it is durably committed. Unknown job → NOT_FOUND,
   * a measurement outside the job's shape → INVALID_ARGUMENT; in both cases nothing is stored.
   */
  submitBatch(batch: MeasurementBatch): Promise<BatchResult> {
    if (this.closing) return Promise.reject(new UnavailableError('profiler is shutting down'));
    const p = this.enqueue(batch);
    this.submissions.add(p);
    const forget = (): void => void this.submissions.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async enqueue(batch: MeasurementBatch): Promise<BatchResult> {
    try {
      const job = await this.requireJob(batch.jobId);
      checkBatchAgainstJob(batch, job);
    } catch (err) {
      this.commits.counters.batchesRejected++;
      throw err;
    }
    return this.commits.push(batch);
  }

  /** See {@link GroupCommitQueue.onCommitLatency}. */
  onCommitLatency(listener: (seconds: number) => void): () => void {
    return this.commits.onCommitLatency(listener);
  }

  /** Calls `listener` when a drain starts (streams stop reading and end once their acks are out). Returns an unsubscribe function. */
  onClosing(listener: () => void): () => void {
    this.closingListeners.add(listener);
    return () => void this.closingListeners.delete(listener);
  }

  /** Records a rejected batch that never reached {@link submitBatch} (failed structural validation). */
  countRejected(): void {
    this.commits.counters.batchesRejected++;
  }

  async reportIterations(cmd: ReportIterations): Promise<number> {
    const job = await this.requireJob(cmd.jobId);
    checkIterationsAgainstJob(cmd, job);
    return this.store.storeIterations(cmd.jobId, cmd.iterations);
  }

  /**
   * Reads never wait on ingestion beyond `readWaitMs`: the job's dirty cells are aggregated (off
   * the main thread with the SQLite store), and the read goes on when that is done or the wait is
   * over, whichever comes first. Readers arriving while a refresh runs share the next one, which
   * covers everything committed before they arrived.
   */
  private async freshCells(jobId: string): Promise<void> {
    const refresh = this.refreshJob(jobId);
    let timer: NodeJS.Timeout | undefined;
    const wait = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.readWaitMs);
    });
    try {
      await Promise.race([refresh, wait]);
    } finally {
      clearTimeout(timer);
    }
  }

  private refreshJob(jobId: string): Promise<void> {
    const entry = this.refreshes.get(jobId);
    if (entry?.waiting !== undefined) return entry.waiting;
    const previous = entry?.last ?? Promise.resolve();
    const run: Promise<void> = previous
      .then(() => {
        const e = this.refreshes.get(jobId);
        if (e?.waiting === run) delete e.waiting;
        return this.store.refreshCells(jobId, this.aggregate);
      })
      .then(
        () => undefined,
        (err: unknown) => this.logger.error({ err, jobId }, 'cell aggregation failed'),
      )
      .finally(() => {
        if (this.refreshes.get(jobId)?.last === run) this.refreshes.delete(jobId);
      });
    this.refreshes.set(jobId, { last: run, waiting: run });
    return run;
  }

  /** Cells of the job: pooled across pipelines, or one pipeline's (TP-combined). */
  async getProfile(q: GetProfileQuery): Promise<ProfileCell[]> {
    const job = await this.requireJob(q.jobId);
    if (q.dpRank !== undefined && q.dpRank >= job.dpDegree) {
      throw ValidationError.field(
        'dp_rank',
        `must be < dp_degree ${job.dpDegree}, got ${q.dpRank}`,
      );
    }
    await this.freshCells(q.jobId);
    const cells = await this.store.getCells(
      q.jobId,
      q.dpRank === undefined ? { scope: 'pooled' } : { scope: 'pipeline', dpRank: q.dpRank },
    );
    const confident = (c: ProfileCell): boolean =>
      q.maxRelativeStderr === undefined || relativeStderr(c) <= q.maxRelativeStderr;
    return cells.filter((c) => c.imported || (c.count >= q.minCount && confident(c)));
  }

  /** Per-rank cells (not TP-combined), for the rank-level CSV. */
  async getRankCells(jobId: string): Promise<ProfileCell[]> {
    await this.requireJob(jobId);
    await this.store.refreshRankCells(jobId, this.aggregate);
    return this.store.getCells(jobId, { scope: 'rank' });
  }

  async getCoverage(q: GetCoverageQuery): Promise<Coverage> {
    const job = await this.requireJob(q.jobId);
    const minCount = q.minCount === 0 ? this.defaultCoverageMinCount : q.minCount;
    await this.freshCells(q.jobId);
    const cells = await this.store.getCells(q.jobId, { scope: 'pooled' });
    const entries: CoverageEntry[] = [];
    for (let stage = 0; stage < job.numStages * job.numChunks; stage++) {
      for (const instruction of INSTRUCTIONS) {
        const mine = cells.filter((c) => c.stage === stage && c.instruction === instruction);
        const covered = new Set(
          mine.filter((c) => c.imported || c.count >= minCount).map((c) => c.frequencyMhz),
        );
        const universe = new Set([
          ...job.supportedFrequenciesMhz,
          ...mine.map((c) => c.frequencyMhz),
        ]);
        const desc = (xs: Iterable<number>): number[] => [...xs].sort((a, b) => b - a);
        entries.push({
          stage,
          instruction,
          coveredFrequenciesMhz: desc(covered),
          missingFrequenciesMhz: desc([...universe].filter((f) => !covered.has(f))),
        });
      }
    }
    return { entries, complete: entries.every((e) => e.coveredFrequenciesMhz.length > 0) };
  }

  /**
   * Imports a Zeus/Perseus CSV as the job's profile (creating the job from the CSV's shape when
   * unknown). Stage-level energies are per GPU and become per-stage (× tp_degree) cells.
   */
  async importProfile(cmd: ImportProfileCommand): Promise<number> {
    const existing = await this.store.getJob(cmd.jobId);
    let job: JobSpec;
    if (existing) {
      checkImportAgainstJob(cmd, existing);
      job = existing;
    } else {
      const max = (f: (r: ProfileCsvRow) => number): number =>
        cmd.rows.reduce((m, r) => Math.max(m, f(r)), 0) + 1;
      job = {
        jobId: cmd.jobId,
        schedule: 'unspecified',
        numStages: max((r) => r.stage),
        numChunks: 1,
        numMicrobatches: 0,
        dpDegree: cmd.format === 'rank' ? max((r) => r.dpRank) : 1,
        tpDegree: cmd.format === 'rank' ? max((r) => r.tpRank) : 1,
        supportedFrequenciesMhz: [],
        origin: 'import',
      };
      const worldSize = job.numStages * job.dpDegree * job.tpDegree;
      if (worldSize > SIZE_LIMITS.maxWorldSize)
        throw ValidationError.field(
          'csv',
          `the rows imply a world size (stages × dp × tp) of ${worldSize}, over the limit ${SIZE_LIMITS.maxWorldSize}`,
        );
    }
    await this.store.importCells(job, importedCells(cmd.rows, cmd.format, job.tpDegree));
    this.logger.info(
      { jobId: cmd.jobId, rows: cmd.rows.length, format: cmd.format },
      'profile imported',
    );
    return cmd.rows.length;
  }

  async exportProfile(q: ExportProfileQuery): Promise<string> {
    const job = await this.requireJob(q.jobId);
    const keep = (c: ProfileCell): boolean => c.count > 0 && (c.imported || c.count >= q.minCount);
    if (q.format === 'stage') {
      const cells = (await this.getProfile({ jobId: q.jobId, minCount: 0 })).filter(keep);
      return formatProfileCsv(
        cells.map((c) => ({
          rank: -1,
          dpRank: -1,
          ppRank: -1,
          tpRank: -1,
          stage: c.stage,
          instruction: c.instruction,
          frequencyMhz: c.frequencyMhz,
          timeS: c.timeRobustS,
          energyJ: c.energyRobustJ / job.tpDegree,
        })),
        'stage',
      );
    }
    const cells = (await this.getRankCells(q.jobId)).filter(keep);
    return formatProfileCsv(
      cells.map((c) => ({
        rank: c.rank,
        dpRank: c.dpRank,
        ppRank: c.stage % job.numStages,
        tpRank: c.tpRank,
        stage: c.stage,
        instruction: c.instruction,
        frequencyMhz: c.frequencyMhz,
        timeS: c.timeRobustS,
        energyJ: c.energyRobustJ,
      })),
      'rank',
    );
  }

  /** Retention: keeps the job's aggregates and deletes its raw rows. Returns rows deleted. */
  async pruneRawMeasurements(jobId: string): Promise<number> {
    await this.requireJob(jobId);
    const n = await this.store.pruneRawMeasurements(jobId, this.aggregate);
    this.logger.info({ jobId, rows: n }, 'raw measurements pruned');
    return n;
  }

  private async pruneIdleJobs(retentionS: number): Promise<void> {
    for (const jobId of await this.store.jobsIdleSince(this.now() - retentionS * 1000))
      await this.pruneRawMeasurements(jobId);
  }

  /** Aggregates every dirty cell now, or those `only` selects (the background timer does this periodically). */
  async refreshAllDirty(only?: DirtyFilter): Promise<number> {
    let n = 0;
    for (const jobId of await this.store.dirtyJobs())
      n += await this.store.refreshCells(jobId, this.aggregate, only);
    return n;
  }

  ingestCounters(): IngestCounters {
    return {
      ...this.commits.counters,
      queuedBatches: this.commits.queuedBatches,
      queuedMeasurements: this.commits.queuedMeasurements,
    };
  }

  storeStats(): Promise<StoreStats> {
    return this.store.stats();
  }

  /**
   * Graceful drain: refuses new batches, commits (and acknowledges) every queued one, stops the
   * timers, closes the store.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const l of this.closingListeners) l();
    const maintenanceStopped = this.maintenance.stop();
    await Promise.allSettled([...this.submissions]);
    await this.commits.drained();
    await maintenanceStopped;
    await Promise.allSettled([...this.refreshes.values()].map((r) => r.last));
    await this.store.close();
  }
}

/**
 * The larger of the relative standard errors of a cell's mean time and mean energy
 * (stddev / sqrt(count) / mean); Infinity when there is no estimate (fewer than 2 samples, mean 0).
 */
export function relativeStderr(
  c: Pick<ProfileCell, 'count' | 'timeMeanS' | 'timeStddevS' | 'energyMeanJ' | 'energyStddevJ'>,
): number {
  if (c.count < 2 || !(c.timeMeanS > 0) || !(c.energyMeanJ > 0)) return Infinity;
  const root = Math.sqrt(c.count);
  return Math.max(c.timeStddevS / root / c.timeMeanS, c.energyStddevJ / root / c.energyMeanJ);
}
