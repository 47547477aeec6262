import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { FrontierJson, Profile } from '@perseus/planner';
import type { SweepState } from './sweep';
import type { Deployment, JobPhase, JobSpec, Policy, RankInfo, Straggler } from './types';

/** Mutable per-job state persisted on every change (write-ahead of any broadcast). */
export interface JobState {
  phase: JobPhase;
  /** Last issued schedule version (0 = none yet). */
  version: number;
  policy: Policy;
  deployment: Deployment | null;
  sweep: SweepState | null;
  stragglers: Straggler[];
  /** Blocking power the frontier was planned with (measured or given), W; 0 = unknown. */
  blockingPowerW: number;
  detail: string;
}

export interface StoredJob {
  jobId: string;
  spec: JobSpec;
  createdMs: number;
  state: JobState;
  ranks: RankInfo[];
  frontier: FrontierJson | null;
  importedProfile: Profile | null;
}

/**
 * The optimizer's embedded store (better-sqlite3, WAL): jobs, ranks, per-job state, frontiers and
 * imported profiles. Everything the optimizer needs to resume after a crash — phases, versions,
 * deployed plans, stragglers — is written here before it is announced to watchers, so a restarted
 * optimizer re-announces the same version. `:memory:` keeps it in memory (tests).
 */
export class OptimizerStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(dataDir: string) {
    let file = ':memory:';
    if (dataDir !== ':memory:') {
      fs.mkdirSync(dataDir, { recursive: true });
      file = path.join(dataDir, 'optimizer.sqlite');
    }
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, spec TEXT NOT NULL, created_ms INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS ranks (
        job_id TEXT NOT NULL, rank INTEGER NOT NULL, info TEXT NOT NULL, PRIMARY KEY (job_id, rank));
      CREATE TABLE IF NOT EXISTS job_state (job_id TEXT PRIMARY KEY, state TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS frontiers (job_id TEXT PRIMARY KEY, frontier TEXT NOT NULL, planned_ms INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS imported_profiles (job_id TEXT PRIMARY KEY, profile TEXT NOT NULL);
    `);
    this.stmts = {
      insertJob: this.db.prepare('INSERT INTO jobs (job_id, spec, created_ms) VALUES (?, ?, ?)'),
      upsertRank: this.db.prepare(
        'INSERT OR REPLACE INTO ranks (job_id, rank, info) VALUES (?, ?, ?)',
      ),
      upsertState: this.db.prepare(
        'INSERT OR REPLACE INTO job_state (job_id, state) VALUES (?, ?)',
      ),
      upsertFrontier: this.db.prepare(
        'INSERT OR REPLACE INTO frontiers (job_id, frontier, planned_ms) VALUES (?, ?, ?)',
      ),
      deleteFrontier: this.db.prepare('DELETE FROM frontiers WHERE job_id = ?'),
      upsertProfile: this.db.prepare(
        'INSERT OR REPLACE INTO imported_profiles (job_id, profile) VALUES (?, ?)',
      ),
      jobs: this.db.prepare(
        'SELECT job_id, spec, created_ms FROM jobs ORDER BY created_ms, job_id',
      ),
      ranks: this.db.prepare('SELECT info FROM ranks WHERE job_id = ? ORDER BY rank'),
      state: this.db.prepare('SELECT state FROM job_state WHERE job_id = ?'),
      frontier: this.db.prepare('SELECT frontier FROM frontiers WHERE job_id = ?'),
      profile: this.db.prepare('SELECT profile FROM imported_profiles WHERE job_id = ?'),
    };
  }

  /** Creates a job with its initial state (one transaction). */
  createJob(jobId: string, spec: JobSpec, createdMs: number, state: JobState): void {
    this.db.transaction(() => {
      this.stmts.insertJob.run(jobId, JSON.stringify(spec), createdMs);
      this.stmts.upsertState.run(jobId, JSON.stringify(state));
    })();
  }

  putRank(jobId: string, info: RankInfo): void {
    this.stmts.upsertRank.run(jobId, info.rank, JSON.stringify(info));
  }

  putState(jobId: string, state: JobState): void {
    this.stmts.upsertState.run(jobId, JSON.stringify(state));
  }

  /** Frontier and the state that deploys it, atomically. */
  putFrontierAndState(
    jobId: string,
    frontierJsonText: string | null,
    state: JobState,
    nowMs: number,
  ): void {
    this.db.transaction(() => {
      if (frontierJsonText === null) this.stmts.deleteFrontier.run(jobId);
      else this.stmts.upsertFrontier.run(jobId, frontierJsonText, nowMs);
      this.stmts.upsertState.run(jobId, JSON.stringify(state));
    })();
  }

  putImportedProfile(jobId: string, profile: Profile): void {
    this.stmts.upsertProfile.run(jobId, JSON.stringify(profile));
  }

  /** Every job with its ranks, state, frontier and imported profile (on startup). */
  loadAll(): StoredJob[] {
    const rows = this.stmts.jobs.all() as Array<{
      job_id: string;
      spec: string;
      created_ms: number;
    }>;
    return rows.map((r) => {
      const st = this.stmts.state.get(r.job_id) as { state: string } | undefined;
      const fr = this.stmts.frontier.get(r.job_id) as { frontier: string } | undefined;
      const pr = this.stmts.profile.get(r.job_id) as { profile: string } | undefined;
      return {
        jobId: r.job_id,
        spec: JSON.parse(r.spec) as JobSpec,
        createdMs: r.created_ms,
        state: JSON.parse(st?.state ?? 'null') as JobState,
        ranks: (this.stmts.ranks.all(r.job_id) as Array<{ info: string }>).map(
          (x) => JSON.parse(x.info) as RankInfo,
        ),
        frontier: fr ? (JSON.parse(fr.frontier) as FrontierJson) : null,
        importedProfile: pr ? (JSON.parse(pr.profile) as Profile) : null,
      };
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
