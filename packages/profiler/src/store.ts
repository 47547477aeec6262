/**
 * The storage interface of the profiler. {@link SqliteProfileStore} (embedded, WAL) is the default;
 * a server database can implement the same contract. Methods are async so such a store fits.
 *
 * Contract every implementation keeps:
 * - {@link ProfileStore.commitBatches} stores each batch all-or-nothing and records its
 *   (job, batch_id) in the same transaction, so a retried batch is recognised and stores nothing;
 *   the returned promise resolves only once the batches are durable (an acknowledgement may then
 *   be sent).
 * - A measurement is identified by (job, stage, instruction, frequency, dp_rank, iteration,
 *   microbatch, tp_rank); a second copy of one (sent under another batch id) is not stored again.
 * - Cells touched by new measurements are marked dirty in the same transaction;
 *   {@link ProfileStore.refreshCells} recomputes exactly those.
 */
import type { AggregationOptions, RawRow, TpGroup } from './aggregate';
import type {
  BatchResult,
  CellKey,
  CellScope,
  IterationRecord,
  JobSpec,
  MeasurementBatch,
  ProfileCell,
} from './types';

/**
 * Computes the cells of one (stage, instruction, frequency): pooled and pipeline cells from its
 * TP groups, rank cells from its raw rows (see aggregate.ts).
 */
export interface CellAggregator {
  groups(groups: readonly TpGroup[], key: CellKey, job: JobSpec): ProfileCell[];
  ranks(rows: readonly RawRow[], key: CellKey, job: JobSpec): ProfileCell[];
  /**
   * When `groups` is aggregate.ts's `aggregateTpGroups` with these options: a store may then run it
   * off the main thread (the SQLite store's aggregation worker). Absent: always in-thread.
   */
  readonly options?: AggregationOptions;
}

/** Result of one batch in a group commit: stored/duplicate, or the error that rolled it back. */
export type BatchOutcome = BatchResult | { batchId: string; error: Error };

/**
 * Which dirty cells a background refresh takes: those that received nothing since
 * `quietBeforeMs` (their window has moved on) or that have been dirty since before
 * `dirtySinceBeforeMs` (bounds the aggregation lag). Epoch ms.
 */
export interface DirtyFilter {
  quietBeforeMs?: number;
  dirtySinceBeforeMs?: number;
}

export interface CellQuery {
  scope: CellScope;
  /** For `pipeline` scope: only this pipeline. */
  dpRank?: number;
}

export interface StoreStats {
  jobs: number;
  /** Raw measurement rows held (after pruning). */
  rawRows: number;
  /** Aggregated cells held (all scopes). */
  cells: number;
  /** Cells waiting for aggregation. */
  dirtyCells: number;
  /** Age of the oldest dirty cell, seconds (0 when none): how far aggregates lag ingest. */
  oldestDirtyAgeS: number;
  iterationRecords: number;
}

export interface ProfileStore {
  /** The job, or undefined. */
  getJob(jobId: string): Promise<JobSpec | undefined>;
  /** Creates the job or replaces its spec. */
  putJob(spec: JobSpec): Promise<void>;
  /**
   * Stores batches of known jobs in one durable commit (group commit), each batch atomic and
   * idempotent by (job, batch_id). Outcomes are in input order.
   */
  commitBatches(batches: readonly MeasurementBatch[]): Promise<BatchOutcome[]>;
  /** Stores iteration records (idempotent by job, rank, iteration); returns how many were new. */
  storeIterations(jobId: string, records: readonly IterationRecord[]): Promise<number>;
  /**
   * Recomputes the job's dirty pooled and pipeline cells with `aggregate` (all of them, or those
   * `only` selects); returns how many (stage, instruction, frequency) were refreshed.
   */
  refreshCells(jobId: string, aggregate: CellAggregator, only?: DirtyFilter): Promise<number>;
  /** Recomputes the job's dirty rank cells (kept lazily: only the rank-level export reads them). */
  refreshRankCells(jobId: string, aggregate: CellAggregator): Promise<number>;
  /** The job's cells of one scope, ordered by stage, instruction (forward first), frequency descending. */
  getCells(jobId: string, query: CellQuery): Promise<ProfileCell[]>;
  /**
   * Atomically creates or updates the job and replaces the cells of every (stage, instruction,
   * frequency) that `cells` mention with them.
   */
  importCells(job: JobSpec, cells: readonly ProfileCell[]): Promise<void>;
  /**
   * Retention: folds the job's raw rows into kept aggregates (`aggregate` refreshes dirty cells
   * first) and deletes the raw rows. Returns the rows deleted.
   */
  pruneRawMeasurements(jobId: string, aggregate: CellAggregator): Promise<number>;
  /** Jobs that have cells waiting for aggregation. */
  dirtyJobs(): Promise<string[]>;
  /** Jobs whose latest measurement commit is older than `cutoffMs` (epoch ms) and that still hold raw rows. */
  jobsIdleSince(cutoffMs: number): Promise<string[]>;
  stats(): Promise<StoreStats>;
  close(): Promise<void>;
}
