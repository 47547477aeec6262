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
  /** Generation of the job id (>= 1). */
  generation: number;
  /** Job id under which this generation's measurements go to the profiler. */
  profileJobId: string;
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
      CREATE TABLE IF NOT EXISTS deleted_jobs (job_id TEXT PRIMARY KEY, generation INTEGER NOT NULL);
    `);
    // Stores written before generations existed: every job is generation 1, profiled under its id.
    const columns = new Set(
      (this.db.prepare('PRAGMA table_info(jobs)').all() as Array<{ name: string }>).map(
        (c) => c.name,
      ),
    );
    if (!columns.has('generation'))
      this.db.exec('ALTER TABLE jobs ADD COLUMN generation INTEGER NOT NULL DEFAULT 1');
    if (!columns.has('profile_job_id'))
      this.db.exec('ALTER TABLE jobs ADD COLUMN profile_job_id TEXT');
    this.stmts = {
      insertJob: this.db.prepare(
        'INSERT OR REPLACE INTO jobs (job_id, spec, created_ms, generation, profile_job_id) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteJob: this.db.prepare('DELETE FROM jobs WHERE job_id = ?'),
      deleteRanks: this.db.prepare('DELETE FROM ranks WHERE job_id = ?'),
      deleteState: this.db.prepare('DELETE FROM job_state WHERE job_id = ?'),
      deleteProfile: this.db.prepare('DELETE FROM imported_profiles WHERE job_id = ?'),
      upsertDeleted: this.db.prepare(
        'INSERT OR REPLACE INTO deleted_jobs (job_id, generation) VALUES (?, ?)',
      ),
      deleted: this.db.prepare('SELECT generation FROM deleted_jobs WHERE job_id = ?'),
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
        'SELECT job_id, spec, created_ms, generation, profile_job_id FROM jobs ORDER BY created_ms, job_id',
      ),
      ranks: this.db.prepare('SELECT info FROM ranks WHERE job_id = ? ORDER BY rank'),
      state: this.db.prepare('SELECT state FROM job_state WHERE job_id = ?'),
      frontier: this.db.prepare('SELECT frontier FROM frontiers WHERE job_id = ?'),
      profile: this.db.prepare('SELECT profile FROM imported_profiles WHERE job_id = ?'),
    };
  }

  /**
   * Creates a job, or a new generation of it, with its initial state (one transaction). A new
   * generation drops everything of the previous one: ranks, frontier and imported profile.
   */
  createJob(
    jobId: string,
    identity: { generation: number; profileJobId: string },
    spec: JobSpec,
    createdMs: number,
    state: JobState,
  ): void {
    this.db.transaction(() => {
      this.stmts.deleteRanks.run(jobId);
      this.stmts.deleteFrontier.run(jobId);
      this.stmts.deleteProfile.run(jobId);
      this.stmts.insertJob.run(
        jobId,
        JSON.stringify(spec),
        createdMs,
        identity.generation,
        identity.profileJobId,
      );
      this.stmts.upsertState.run(jobId, JSON.stringify(state));
    })();
  }

  /**
   * Deletes a job with its ranks, state and frontier; its imported profile unless `keepProfile`.
   * The id's last generation is remembered so a later registration of the id starts the next one
   * (and a fresh profile) instead of generation 1 again.
   */
  deleteJob(jobId: string, generation: number, keepProfile: boolean): void {
    this.db.transaction(() => {
      this.stmts.deleteJob.run(jobId);
      this.stmts.deleteRanks.run(jobId);
      this.stmts.deleteState.run(jobId);
      this.stmts.deleteFrontier.run(jobId);
      if (!keepProfile) this.stmts.deleteProfile.run(jobId);
      this.stmts.upsertDeleted.run(jobId, generation);
    })();
  }

  /** The last generation of a deleted job id (0 = never deleted). */
  deletedGeneration(jobId: string): number {
    const row = this.stmts.deleted.get(jobId) as { generation: number } | undefined;
    return row?.generation ?? 0;
  }

  /** An imported profile kept for a deleted (or any) job id. */
  importedProfile(jobId: string): Profile | null {
    const pr = this.stmts.profile.get(jobId) as { profile: string } | undefined;
    return pr ? (JSON.parse(pr.profile) as Profile) : null;
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
      generation: number;
      profile_job_id: string | null;
    }>;
    return rows.map((r) => {
      const st = this.stmts.state.get(r.job_id) as { state: string } | undefined;
      const fr = this.stmts.frontier.get(r.job_id) as { frontier: string } | undefined;
      const pr = this.stmts.profile.get(r.job_id) as { profile: string } | undefined;
      return {
        jobId: r.job_id,
        spec: JSON.parse(r.spec) as JobSpec,
        createdMs: r.created_ms,
        generation: r.generation,
        profileJobId: r.profile_job_id ?? r.job_id,
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
