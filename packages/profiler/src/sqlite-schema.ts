/**
 * The SQLite store's schema, statements and row mapping (sqlite-store.ts holds the behaviour).
 * `measurements` is keyed so a re-sent measurement is stored once; `dirty`/`dirty_rank` mark cells
 * to re-aggregate (`last_ms` is the commit stamp of the cell's latest data); `cell_base` keeps the
 * aggregates of pruned raw rows.
 */
import type Database from 'better-sqlite3';
import type { RawRow, TpGroup } from './aggregate';
import type { CellScope, ProfileCell } from './types';
import { instructionCode, instructionFromCode } from './types';

export const SCHEMA_VERSION = 1;

export const SCOPE_CODE: Record<CellScope, number> = { pooled: 0, pipeline: 1, rank: 2 };
const SCOPE_FROM_CODE: readonly CellScope[] = ['pooled', 'pipeline', 'rank'];

export type CellRow = {
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

export function cellFromRow(r: CellRow): ProfileCell {
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

export function cellParams(jobKey: number, c: ProfileCell): unknown[] {
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

export const SCHEMA = `
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

/** Names of the prepared statements (explicit, so the built declaration files can name the type). */
export type StatementName =
  | 'jobByName'
  | 'insertJob'
  | 'updateJob'
  | 'touchJob'
  | 'batchSeen'
  | 'insertBatch'
  | 'insertMeasurement'
  | 'markDirty'
  | 'insertIteration'
  | 'markRankDirty'
  | 'rankDirtyOfJob'
  | 'clearRankDirty'
  | 'groupsOfCell'
  | 'dirtyOfJob'
  | 'clearDirty'
  | 'clearDirtyAt'
  | 'rawOfCell'
  | 'baseOfCell'
  | 'deleteCellsOfKey'
  | 'deleteImportedOfKey'
  | 'deleteScopeCellsOfKey'
  | 'insertCell'
  | 'cellsOfScope'
  | 'cellsOfPipeline'
  | 'foldBase'
  | 'deleteRawOfJob'
  | 'idleJobs'
  | 'dirtyJobs'
  | 'countRaw'
  | 'countCells'
  | 'countJobs'
  | 'countIterations'
  | 'dirtyStats';

/**
 * The TP groups of one (stage, instruction, frequency) cell: one row per (pipeline, iteration,
 * microbatch) with the slowest TP rank's time, the summed energy and the rank count. Read by the
 * store and by the aggregation worker's own connection.
 */
export const GROUPS_OF_CELL_SQL =
  'SELECT dp, iteration, mb, MAX(time), SUM(energy), COUNT(*) FROM measurements WHERE job = ? AND stage = ? AND instr = ? AND freq = ? GROUP BY dp, iteration, mb';

/** A dirty cell's key as the tables store it (instruction as its code). */
export interface CellKeyRow {
  stage: number;
  instr: number;
  freq: number;
}

/** Reads a cell's TP groups through a raw statement of {@link GROUPS_OF_CELL_SQL}. */
export function readTpGroups(stmt: Database.Statement, job: number, k: CellKeyRow): TpGroup[] {
  const groups: TpGroup[] = [];
  for (const g of stmt.iterate(job, k.stage, k.instr, k.freq) as IterableIterator<number[]>) {
    groups.push({
      dpRank: g[0]!,
      iteration: g[1]!,
      microbatch: g[2]!,
      timeS: g[3]!,
      energyJ: g[4]!,
      ranks: g[5]!,
    });
  }
  return groups;
}

/** Reads a cell's raw per-rank measurements through the `rawOfCell` statement. */
export function readRawRows(stmt: Database.Statement, job: number, k: CellKeyRow): RawRow[] {
  const rows: RawRow[] = [];
  for (const r of stmt.iterate(job, k.stage, k.instr, k.freq) as IterableIterator<number[]>) {
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
  return rows;
}

export function prepareStatements(
  db: Database.Database,
): Record<StatementName, Database.Statement> {
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
    groupsOfCell: db.prepare(GROUPS_OF_CELL_SQL).raw(),
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

export type Statements = ReturnType<typeof prepareStatements>;
