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
import type { RawRow, TpGroup } from './aggregate';
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
import type { CellScope, IterationRecord, JobSpec, MeasurementBatch, ProfileCell } from './types';
import { instructionCode, instructionFromCode } from './types';

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

const SCHEMA_VERSION = 1;

const SCOPE_CODE: Record<CellScope, number> = { pooled: 0, pipeline: 1, rank: 2 };
const SCOPE_FROM_CODE: readonly CellScope[] = ['pooled', 'pipeline', 'rank'];

type CellRow = {
  stage: number;
  instr: number;
  freq: number;
  scope: number;
  dp: number;
  rank: number;
  tp: number;
  count: number;
  raw_count: number;
  time_mean: number;
  time_std: number;
  time_robust: number;
  energy_mean: number;
  energy_std: number;
  energy_robust: number;
  imported: number;
};

function cellFromRow(r: CellRow): ProfileCell {
  return {
    scope: SCOPE_FROM_CODE[r.scope] ?? 'pooled',
    dpRank: r.dp,
    rank: r.rank,
    tpRank: r.tp,
    stage: r.stage,
    instruction: instructionFromCode(r.instr),
    frequencyMhz: r.freq,
    count: r.count,
    rawCount: r.raw_count,
    timeMeanS: r.time_mean,
    timeStddevS: r.time_std,
    timeRobustS: r.time_robust,
    energyMeanJ: r.energy_mean,
    energyStddevJ: r.energy_std,
    energyRobustJ: r.energy_robust,
    imported: r.imported !== 0,
  };
}

function cellParams(jobKey: number, c: ProfileCell): unknown[] {
  return [
    jobKey,
    c.stage,
    instructionCode(c.instruction),
    c.frequencyMhz,
    SCOPE_CODE[c.scope],
    c.dpRank,
    c.rank,
    c.tpRank,
    c.count,
    c.rawCount,
    c.timeMeanS,
    c.timeStddevS,
    c.timeRobustS,
    c.energyMeanJ,
    c.energyStddevJ,
    c.energyRobustJ,
    c.imported ? 1 : 0,
  ];
}

const CELL_COLUMNS = `job INTEGER NOT NULL, stage INTEGER NOT NULL, instr INTEGER NOT NULL, freq INTEGER NOT NULL,
  scope INTEGER NOT NULL, dp INTEGER NOT NULL, rank INTEGER NOT NULL, tp INTEGER NOT NULL,
  count INTEGER NOT NULL, raw_count INTEGER NOT NULL,
  time_mean REAL NOT NULL, time_std REAL NOT NULL, time_robust REAL NOT NULL,
  energy_mean REAL NOT NULL, energy_std REAL NOT NULL, energy_robust REAL NOT NULL,
  imported INTEGER NOT NULL,
  PRIMARY KEY (job, stage, instr, freq, scope, dp, rank)`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, spec TEXT NOT NULL,
  created_ms INTEGER NOT NULL, last_ingest_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS batches (
  job INTEGER NOT NULL, batch_id TEXT NOT NULL, stored_count INTEGER NOT NULL, committed_ms INTEGER NOT NULL,
  PRIMARY KEY (job, batch_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS measurements (
  job INTEGER NOT NULL, stage INTEGER NOT NULL, instr INTEGER NOT NULL, freq INTEGER NOT NULL,
  dp INTEGER NOT NULL, iteration INTEGER NOT NULL, mb INTEGER NOT NULL, tp INTEGER NOT NULL,
  rank INTEGER NOT NULL, time REAL NOT NULL, energy REAL NOT NULL,
  PRIMARY KEY (job, stage, instr, freq, dp, iteration, mb, tp)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS iterations (
  job INTEGER NOT NULL, rank INTEGER NOT NULL, iteration INTEGER NOT NULL,
  dp INTEGER NOT NULL, pp INTEGER NOT NULL, tp INTEGER NOT NULL, time REAL NOT NULL, energy REAL NOT NULL,
  PRIMARY KEY (job, rank, iteration)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirty (
  job INTEGER NOT NULL, stage INTEGER NOT NULL, instr INTEGER NOT NULL, freq INTEGER NOT NULL,
  since_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, PRIMARY KEY (job, stage, instr, freq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirty_rank (
  job INTEGER NOT NULL, stage INTEGER NOT NULL, instr INTEGER NOT NULL, freq INTEGER NOT NULL,
  PRIMARY KEY (job, stage, instr, freq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cells (${CELL_COLUMNS}) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cell_base (${CELL_COLUMNS}) WITHOUT ROWID;
`;

function prepareStatements(db: Database.Database) {
  return {
    jobByName: db.prepare('SELECT id, spec FROM jobs WHERE job_id = ?'),
    insertJob: db.prepare('INSERT INTO jobs (job_id, spec, created_ms) VALUES (?, ?, ?)'),
    updateJob: db.prepare('UPDATE jobs SET spec = ? WHERE id = ?'),
    touchJob: db.prepare('UPDATE jobs SET last_ingest_ms = ? WHERE id = ?'),
    batchSeen: db.prepare('SELECT 1 FROM batches WHERE job = ? AND batch_id = ?').pluck(),
    insertBatch: db.prepare(
      'INSERT INTO batches (job, batch_id, stored_count, committed_ms) VALUES (?, ?, ?, ?)',
    ),
    // ON CONFLICT (not OR IGNORE): only a re-sent measurement is skipped; any other constraint
    insertMeasurement:
      // failure aborts the batch.
      db.prepare(
        'INSERT INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
    markDirty: db.prepare(
      'INSERT INTO dirty (job, stage, instr, freq, since_ms, last_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET last_ms = excluded.last_ms',
    ),
    insertIteration: db.prepare(
      'INSERT INTO iterations VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    markRankDirty: db.prepare(
      'INSERT OR IGNORE INTO dirty_rank (job, stage, instr, freq) VALUES (?, ?, ?, ?)',
    ),
    rankDirtyOfJob: db.prepare('SELECT stage, instr, freq FROM dirty_rank WHERE job = ?'),
    clearRankDirty: db.prepare(
      'DELETE FROM dirty_rank WHERE job = ? AND stage = ? AND instr = ? AND freq = ?',
    ),
    groupsOfCell: db
      .prepare(
        'SELECT dp, iteration, mb, MAX(time), SUM(energy), COUNT(*) FROM measurements WHERE job = ? AND stage = ? AND instr = ? AND freq = ? GROUP BY dp, iteration, mb',
      )
      .raw(),
    dirtyOfJob: db.prepare(
      'SELECT stage, instr, freq FROM dirty WHERE job = ? AND (last_ms <= ? OR since_ms <= ?)',
    ),
    clearDirty: db.prepare(
      'DELETE FROM dirty WHERE job = ? AND stage = ? AND instr = ? AND freq = ?',
    ),
    // Only if nothing was committed to the cell after the snapshot the worker aggregated.
    clearDirtyAt: db.prepare(
      'DELETE FROM dirty WHERE job = ? AND stage = ? AND instr = ? AND freq = ? AND last_ms = ?',
    ),
    rawOfCell: db
      .prepare(
        'SELECT dp, iteration, mb, tp, rank, time, energy FROM measurements WHERE job = ? AND stage = ? AND instr = ? AND freq = ?',
      )
      .raw(),
    baseOfCell: db.prepare(
      'SELECT * FROM cell_base WHERE job = ? AND stage = ? AND instr = ? AND freq = ? AND (scope = 2) = ?',
    ),
    deleteCellsOfKey: db.prepare(
      'DELETE FROM cells WHERE job = ? AND stage = ? AND instr = ? AND freq = ?',
    ),
    deleteImportedOfKey: db.prepare(
      'DELETE FROM cells WHERE job = ? AND stage = ? AND instr = ? AND freq = ? AND imported = 1',
    ),
    deleteScopeCellsOfKey: db.prepare(
      'DELETE FROM cells WHERE job = ? AND stage = ? AND instr = ? AND freq = ? AND (scope = 2) = ?',
    ),
    insertCell: db.prepare(
      'INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    cellsOfScope: db.prepare(
      'SELECT * FROM cells WHERE job = ? AND scope = ? ORDER BY stage, instr, freq DESC, dp, rank',
    ),
    cellsOfPipeline: db.prepare(
      'SELECT * FROM cells WHERE job = ? AND scope = 1 AND dp = ? ORDER BY stage, instr, freq DESC',
    ),
    foldBase: db.prepare(
      `INSERT OR REPLACE INTO cell_base SELECT * FROM cells WHERE job = ? AND imported = 0`,
    ),
    deleteRawOfJob: db.prepare('DELETE FROM measurements WHERE job = ?'),
    idleJobs: db
      .prepare(
        'SELECT job_id FROM jobs j WHERE last_ingest_ms > 0 AND last_ingest_ms < ? AND EXISTS (SELECT 1 FROM measurements m WHERE m.job = j.id)',
      )
      .pluck(),
    dirtyJobs: db
      .prepare('SELECT job_id FROM jobs WHERE id IN (SELECT DISTINCT job FROM dirty)')
      .pluck(),
    countRaw: db.prepare('SELECT COUNT(*) FROM measurements').pluck(),
    countCells: db.prepare('SELECT COUNT(*) FROM cells').pluck(),
    countJobs: db.prepare('SELECT COUNT(*) FROM jobs').pluck(),
    countIterations: db.prepare('SELECT COUNT(*) FROM iterations').pluck(),
    dirtyStats: db.prepare('SELECT COUNT(*) AS n, MIN(since_ms) AS oldest FROM dirty'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

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
    const entry = { key: row.id, spec: JSON.parse(row.spec) as JobSpec };
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
      stored += ins.run(
        jobKey,
        m.ppRank,
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
      touched.add((m.ppRank * 2 + instr) * 131072 + m.frequencyMhz);
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
    const perBatch = this.db.transaction((jobKey: number, batch: MeasurementBatch) =>
      this.storeOneBatch(jobKey, batch, nowMs),
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
          const o = perBatch(entry.key, batch);
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
      let fresh: ProfileCell[];
      if (rankScope) {
        const rows: RawRow[] = [];
        for (const r of this.stmt.rawOfCell.iterate(
          entry.key,
          k.stage,
          k.instr,
          k.freq,
        ) as IterableIterator<number[]>) {
          rows.push({
            dpRank: r[0]!,
            iteration: r[1]!,
            microbatch: r[2]!,
            tpRank: r[3]!,
            rank: r[4]!,
            timeS: r[5]!,
            energyJ: r[6]!,
          });
        }
        fresh = aggregate.ranks(rows, key, entry.spec);
      } else {
        const groups: TpGroup[] = [];
        for (const g of this.stmt.groupsOfCell.iterate(
          entry.key,
          k.stage,
          k.instr,
          k.freq,
        ) as IterableIterator<number[]>) {
          groups.push({
            dpRank: g[0]!,
            iteration: g[1]!,
            microbatch: g[2]!,
            timeS: g[3]!,
            energyJ: g[4]!,
            ranks: g[5]!,
          });
        }
        fresh = aggregate.groups(groups, key, entry.spec);
      }
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
