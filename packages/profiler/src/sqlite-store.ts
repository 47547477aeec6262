/**
 * The embedded profile store: SQLite through better-sqlite3, WAL journal.
 *
 * Durability: a commit returns only after its WAL frames are written. With `synchronous = FULL`
 * (the default) the WAL is also fsync'd on every commit, so an acknowledged batch survives a
 * process kill AND an OS crash or power loss. With `synchronous = NORMAL` the WAL is fsync'd only
 * at checkpoints: acknowledged batches still survive SIGKILL of the process (the frames are in the
 * OS page cache), but an OS crash or power loss may lose the most recent commits.
 * The ingest path groups concurrent batches into one transaction, so the fsync is paid once per
 * group, not once per batch.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { mergeCellStats } from './aggregate';
import type { DirtyKey } from './aggregation-thread';
import { AggregationThread } from './aggregation-thread';
import type {
  BatchOutcome,
  CellAggregator,
  CellQuery,
  DirtyFilter,
  ProfileStore,
  StoreStats,
} from './store';
import type { IterationRecord, JobSpec, MeasurementBatch, ProfileCell } from './types';
import { instructionCode, instructionFromCode } from './types';
import type { CellRow, Statements } from './sqlite-schema';
import {
  SCHEMA,
  SCHEMA_VERSION,
  SCOPE_CODE,
  cellFromRow,
  cellParams,
  prepareStatements,
  readRawRows,
  readTpGroups,
} from './sqlite-schema';

export type SynchronousMode = 'full' | 'normal';

export interface SqliteProfileStoreOptions {
  /** Directory holding `profiler.db` (created if missing), or ':memory:' for a throwaway store. */
  dataDir: string;
  /** See the module comment. Default 'full'. */
  synchronous?: SynchronousMode;
  /** Clock, for tests. */
  now?: () => number;
  /**
   * Aggregate big cells in a worker thread with its own read connection, so reads never stall
   * ingestion (file-backed stores only; ':memory:' is always in-thread). Default true.
   */
  aggregationWorker?: boolean;
}

interface JobEntry {
  key: number;
  spec: JobSpec;
}

/** {@link ProfileStore} on embedded SQLite (see the module comment for durability). */
export class SqliteProfileStore implements ProfileStore {
  /** The database file, or ':memory:'. */
  readonly file: string;
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly jobs = new Map<string, JobEntry>();
  private rawRows = 0;
  private closed = false;
  private readonly stmt: Statements;
  private readonly worker: AggregationThread | undefined;
  /** Last commit stamp (ms); stamps strictly increase so a dirty stamp names one snapshot. */
  private lastStamp = 0;

  constructor(options: SqliteProfileStoreOptions) {
    this.now = options.now ?? Date.now;
    if (options.dataDir === ':memory:') {
      this.file = ':memory:';
    } else {
      fs.mkdirSync(options.dataDir, { recursive: true });
      this.file = path.join(options.dataDir, 'profiler.db');
    }
    this.db = new Database(this.file);
    try {
      if (this.file !== ':memory:') this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${(options.synchronous ?? 'full').toUpperCase()}`);
      this.db.pragma('busy_timeout = 5000');
      this.db.exec(SCHEMA);
      const version = this.db
        .prepare(`SELECT value FROM meta WHERE key = 'schema_version'`)
        .pluck()
        .get() as string | undefined;
      if (version === undefined) {
        this.db
          .prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`)
          .run(String(SCHEMA_VERSION));
      } else if (Number(version) !== SCHEMA_VERSION) {
        throw new Error(
          `profiler store ${this.file} has schema version ${version}, this build reads ${SCHEMA_VERSION}`,
        );
      }
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.stmt = prepareStatements(this.db);
    this.rawRows = this.stmt.countRaw.get() as number;
    this.worker =
      this.file !== ':memory:' && options.aggregationWorker !== false
        ? new AggregationThread(this.file)
        : undefined;
  }

  /** Resolves once the aggregation worker (if any) runs. */
  async ready(): Promise<void> {
    await this.worker?.ready;
  }

  private stamp(): number {
    this.lastStamp = Math.max(this.now(), this.lastStamp + 1);
    return this.lastStamp;
  }

  private job(jobId: string): JobEntry | undefined {
    const cached = this.jobs.get(jobId);
    if (cached) return cached;
    const row = this.stmt.jobByName.get(jobId) as { id: number; spec: string } | undefined;
    if (!row) return undefined;
    // Specs stored before interleaved 1F1B have no numChunks: one chunk per GPU.
    const stored = JSON.parse(row.spec) as Omit<JobSpec, 'numChunks'> & { numChunks?: number };
    const entry = { key: row.id, spec: { ...stored, numChunks: stored.numChunks ?? 1 } };
    this.jobs.set(jobId, entry);
    return entry;
  }

  private check(): void {
    if (this.closed) throw new Error('profile store is closed');
  }

  async getJob(jobId: string): Promise<JobSpec | undefined> {
    this.check();
    return this.job(jobId)?.spec;
  }

  private putJobSync(spec: JobSpec): number {
    const existing = this.job(spec.jobId);
    if (existing) {
      this.stmt.updateJob.run(JSON.stringify(spec), existing.key);
      this.jobs.set(spec.jobId, { key: existing.key, spec });
      return existing.key;
    }
    const key = Number(
      this.stmt.insertJob.run(spec.jobId, JSON.stringify(spec), this.now()).lastInsertRowid,
    );
    this.jobs.set(spec.jobId, { key, spec });
    return key;
  }

  async putJob(spec: JobSpec): Promise<void> {
    this.check();
    const tx = this.db.transaction(() => this.putJobSync(spec));
    try {
      tx();
    } catch (err) {
      this.jobs.delete(spec.jobId);
      throw err;
    }
  }

  private readonly storeOneBatch = (
    jobKey: number,
    numStages: number,
    batch: MeasurementBatch,
    nowMs: number,
  ): BatchOutcome => {
    if (this.stmt.batchSeen.get(jobKey, batch.batchId) !== undefined) {
      return { batchId: batch.batchId, storedCount: 0, duplicate: true };
    }
    let stored = 0;
    const touched = new Set<number>();
    const ins = this.stmt.insertMeasurement;
    for (const m of batch.measurements) {
      const instr = m.instruction === 'forward' ? 0 : 1;
      // Cells are per (virtual) stage: chunk c of pp_rank r is stage c·N + r (interleaved 1F1B).
      const stage = m.chunk * numStages + m.ppRank;
      stored += ins.run(
        jobKey,
        stage,
        instr,
        m.frequencyMhz,
        m.dpRank,
        m.iteration,
        m.microbatch,
        m.tpRank,
        m.rank,
        m.timeS,
        m.energyJ,
      ).changes;
      // Cell key packed in one number: stage < 2^20, instr 1 bit, freq < 2^17.
      touched.add((stage * 2 + instr) * 131072 + m.frequencyMhz);
    }
    for (const t of touched) {
      const freq = t % 131072;
      const si = (t - freq) / 131072;
      this.stmt.markDirty.run(jobKey, Math.floor(si / 2), si % 2, freq, nowMs, nowMs);
      this.stmt.markRankDirty.run(jobKey, Math.floor(si / 2), si % 2, freq);
    }
    this.stmt.insertBatch.run(jobKey, batch.batchId, stored, nowMs);
    return { batchId: batch.batchId, storedCount: stored, duplicate: false };
  };

  async commitBatches(batches: readonly MeasurementBatch[]): Promise<BatchOutcome[]> {
    this.check();
    const nowMs = this.stamp();
    const outcomes: BatchOutcome[] = [];
    let added = 0;
    // One outer transaction = one durable commit for the group; each batch in a savepoint so a
    // failure rolls back that batch alone.
    const perBatch = this.db.transaction(
      (jobKey: number, numStages: number, batch: MeasurementBatch) =>
        this.storeOneBatch(jobKey, numStages, batch, nowMs),
    );
    const group = this.db.transaction(() => {
      const touchedJobs = new Set<number>();
      for (const batch of batches) {
        const entry = this.job(batch.jobId);
        if (!entry) {
          outcomes.push({
            batchId: batch.batchId,
            error: new Error(`job ${batch.jobId} not found`),
          });
          continue;
        }
        try {
          const o = perBatch(entry.key, entry.spec.numStages, batch);
          outcomes.push(o);
          if ('storedCount' in o) added += o.storedCount;
          touchedJobs.add(entry.key);
        } catch (err) {
          outcomes.push({
            batchId: batch.batchId,
            error: err instanceof Error ? err : new Error(String(err)),
          });
        }
      }
      for (const key of touchedJobs) this.stmt.touchJob.run(nowMs, key);
    });
    group();
    this.rawRows += added;
    return outcomes;
  }

  async storeIterations(jobId: string, records: readonly IterationRecord[]): Promise<number> {
    this.check();
    const entry = this.job(jobId);
    if (!entry) throw new Error(`job ${jobId} not found`);
    const tx = this.db.transaction(() => {
      let n = 0;
      for (const r of records) {
        n += this.stmt.insertIteration.run(
          entry.key,
          r.rank.rank,
          r.iteration,
          r.rank.dpRank,
          r.rank.ppRank,
          r.rank.tpRank,
          r.timeS,
          r.energyJ,
        ).changes;
      }
      return n;
    });
    return tx();
  }

  /**
   * Recomputes one dirty (stage, instruction, frequency) in its own transaction: its pooled and
   * pipeline cells (`rankScope` false) or its rank cells (`rankScope` true), merged with what was
   * kept from pruned rows.
   */
  private refreshKey(
    entry: JobEntry,
    k: { stage: number; instr: number; freq: number },
    aggregate: CellAggregator,
    rankScope: boolean,
  ): void {
    this.db.transaction(() => {
      const key = {
        stage: k.stage,
        instruction: instructionFromCode(k.instr),
        frequencyMhz: k.freq,
      };
      const fresh = rankScope
        ? aggregate.ranks(readRawRows(this.stmt.rawOfCell, entry.key, k), key, entry.spec)
        : aggregate.groups(readTpGroups(this.stmt.groupsOfCell, entry.key, k), key, entry.spec);
      this.writeFresh(entry, k, fresh, rankScope);
    })();
  }

  /**
   * Stores freshly aggregated cells of one key (merged with what was kept from pruned rows) and
   * clears its dirty mark — with `stamp`, only if nothing was committed to it since that snapshot.
   * Runs inside the caller's transaction.
   */
  private writeFresh(
    entry: JobEntry,
    k: DirtyKey,
    fresh: readonly ProfileCell[],
    rankScope: boolean,
    stamp?: number,
  ): void {
    const scopeFlag = rankScope ? 1 : 0;
    const base = (
      this.stmt.baseOfCell.all(entry.key, k.stage, k.instr, k.freq, scopeFlag) as CellRow[]
    ).map(cellFromRow);
    const merged = new Map<string, ProfileCell>();
    const id = (c: ProfileCell): string => `${c.scope}/${c.dpRank}/${c.rank}`;
    for (const b of base) merged.set(id(b), b);
    for (const f of fresh) {
      const b = merged.get(id(f));
      merged.set(id(f), b ? { ...f, ...mergeCellStats(b, f) } : f);
    }
    // Measured data replaces imported cells of the same key (all scopes).
    this.stmt.deleteImportedOfKey.run(entry.key, k.stage, k.instr, k.freq);
    this.stmt.deleteScopeCellsOfKey.run(entry.key, k.stage, k.instr, k.freq, scopeFlag);
    for (const c of merged.values()) this.stmt.insertCell.run(...cellParams(entry.key, c));
    if (rankScope) this.stmt.clearRankDirty.run(entry.key, k.stage, k.instr, k.freq);
    else if (stamp !== undefined)
      this.stmt.clearDirtyAt.run(entry.key, k.stage, k.instr, k.freq, stamp);
    else this.stmt.clearDirty.run(entry.key, k.stage, k.instr, k.freq);
  }

  private dirtyKeys(entry: JobEntry, only?: DirtyFilter): DirtyKey[] {
    const quiet = only?.quietBeforeMs ?? Number.MAX_SAFE_INTEGER;
    const since = only?.dirtySinceBeforeMs ?? Number.MAX_SAFE_INTEGER;
    return this.stmt.dirtyOfJob.all(entry.key, quiet, since) as Array<{
      stage: number;
      instr: number;
      freq: number;
    }>;
  }

  async refreshCells(
    jobId: string,
    aggregate: CellAggregator,
    only?: DirtyFilter,
  ): Promise<number> {
    this.check();
    const entry = this.job(jobId);
    if (!entry) return 0;
    const keys = this.dirtyKeys(entry, only);
    if (keys.length === 0) return 0;
    if (this.worker !== undefined && aggregate.options !== undefined) {
      // Off the main thread: the worker reads a snapshot and aggregates; here only the writes.
      let results;
      try {
        results = await this.worker.aggregate({
          jobKey: entry.key,
          keys,
          tpDegree: entry.spec.tpDegree,
          options: aggregate.options,
        });
      } catch (err) {
        if (this.closed) return 0;
        throw err;
      }
      if (this.closed) return 0;
      const spec = this.job(jobId)?.spec;
      // The job's shape changed meanwhile (an imported job re-registered): aggregate again later.
      if (spec === undefined || spec.tpDegree !== entry.spec.tpDegree) return 0;
      for (const r of results)
        this.db.transaction(() => this.writeFresh(entry, r.key, r.fresh, false, r.stamp))();
      return results.length;
    }
    for (const k of keys) {
      // One cell per turn of the event loop, so a large refresh never stalls ingestion for long.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.closed) break;
      this.refreshKey(entry, k, aggregate, false);
    }
    return keys.length;
  }

  async refreshRankCells(jobId: string, aggregate: CellAggregator): Promise<number> {
    this.check();
    const entry = this.job(jobId);
    if (!entry) return 0;
    const keys = this.stmt.rankDirtyOfJob.all(entry.key) as Array<{
      stage: number;
      instr: number;
      freq: number;
    }>;
    for (const k of keys) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.closed) break;
      this.refreshKey(entry, k, aggregate, true);
    }
    return keys.length;
  }

  async getCells(jobId: string, query: CellQuery): Promise<ProfileCell[]> {
    this.check();
    const entry = this.job(jobId);
    if (!entry) return [];
    const rows =
      query.scope === 'pipeline' && query.dpRank !== undefined
        ? (this.stmt.cellsOfPipeline.all(entry.key, query.dpRank) as CellRow[])
        : (this.stmt.cellsOfScope.all(entry.key, SCOPE_CODE[query.scope]) as CellRow[]);
    return rows.map(cellFromRow);
  }

  async importCells(job: JobSpec, cells: readonly ProfileCell[]): Promise<void> {
    this.check();
    const tx = this.db.transaction(() => {
      const key = this.putJobSync(job);
      const cleared = new Set<string>();
      for (const c of cells) {
        const k = `${c.stage}/${c.instruction}/${c.frequencyMhz}`;
        if (!cleared.has(k)) {
          cleared.add(k);
          this.stmt.deleteCellsOfKey.run(
            key,
            c.stage,
            instructionCode(c.instruction),
            c.frequencyMhz,
          );
        }
        this.stmt.insertCell.run(...cellParams(key, c));
      }
    });
    try {
      tx();
    } catch (err) {
      this.jobs.delete(job.jobId);
      throw err;
    }
  }

  async pruneRawMeasurements(jobId: string, aggregate: CellAggregator): Promise<number> {
    this.check();
    const entry = this.job(jobId);
    if (!entry) return 0;
    const tx = this.db.transaction(() => {
      for (const k of this.dirtyKeys(entry)) this.refreshKey(entry, k, aggregate, false);
      for (const k of this.stmt.rankDirtyOfJob.all(entry.key) as Array<{
        stage: number;
        instr: number;
        freq: number;
      }>)
        this.refreshKey(entry, k, aggregate, true);
      this.stmt.foldBase.run(entry.key);
      return this.stmt.deleteRawOfJob.run(entry.key).changes;
    });
    const deleted = tx();
    this.rawRows -= deleted;
    return deleted;
  }

  async dirtyJobs(): Promise<string[]> {
    this.check();
    return this.stmt.dirtyJobs.all() as string[];
  }

  async jobsIdleSince(cutoffMs: number): Promise<string[]> {
    this.check();
    return this.stmt.idleJobs.all(cutoffMs) as string[];
  }

  async stats(): Promise<StoreStats> {
    this.check();
    const d = this.stmt.dirtyStats.get() as { n: number; oldest: number | null };
    return {
      jobs: this.stmt.countJobs.get() as number,
      rawRows: this.rawRows,
      cells: this.stmt.countCells.get() as number,
      dirtyCells: d.n,
      oldestDirtyAgeS: d.oldest === null ? 0 : Math.max(0, (this.now() - d.oldest) / 1000),
      iterationRecords: this.stmt.countIterations.get() as number,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker?.close();
    if (this.file !== ':memory:') this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}
