import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import type { profilerV1 } from '@perseus/proto';
import { chunksOf } from '@perseus/planner';
import type { InstructionKind, PipelineSpec } from '@perseus/planner';
import { instructionFromWire } from '@perseus/service-kit';
import { SCHEDULE_TO_PROTO } from './wire';

/** Aggregated measurements of one (stage, instruction, clock) cell. */
export interface ProfileCellStat {
  stage: number;
  kind: InstructionKind;
  frequencyMhz: number;
  /** Samples kept by the profiler. */
  count: number;
  /** Robust time of one microbatch, seconds. */
  timeS: number;
  /**
   * Mean energy of one microbatch (summed over the stage's TP ranks), joules: the mean, not the
   * median, because the planner adds energies up and a GPU energy counter that advances in coarse
   * steps (seen: ~100 ms on an H200) makes per-instruction readings skewed — their median
   * understates the energy an iteration really burns, while their mean adds up to it.
   */
  energyJ: number;
  /**
   * Standard error of `energyJ` (stddev / √count), joules; undefined when unknown (fewer than two
   * kept samples, or an imported cell). The sweep's stop rule weighs rises by it.
   */
  energyStderrJ?: number | undefined;
}

/** Which clocks of each (stage, instruction) have enough samples. */
export interface ProfileCoverage {
  complete: boolean;
  entries: Array<{
    stage: number;
    kind: InstructionKind;
    coveredMhz: number[];
    missingMhz: number[];
  }>;
}

/** What the optimizer tells the profiler about a job. */
export interface ProfileJobShape {
  jobId: string;
  pipeline: PipelineSpec;
  dpDegree: number;
  tpDegree: number;
  supportedFrequenciesMhz: number[];
}

/**
 * Where the optimizer reads measured profiles from: the profiler service in production
 * ({@link GrpcProfileSource}), anything else in tests or embeddings ({@link MemoryProfileSource}).
 * Unknown jobs yield no cells (not an error).
 */
export interface ProfileSource {
  /** Declares the job so the profiler accepts its measurements (idempotent). */
  registerJob(job: ProfileJobShape): Promise<void>;
  /** Aggregated cells of a job (all pipelines pooled). */
  getProfile(jobId: string, opts?: { minCount?: number }): Promise<ProfileCellStat[]>;
  /** Coverage of a job's cells. */
  getCoverage(jobId: string, opts?: { minCount?: number }): Promise<ProfileCoverage>;
  close(): void;
}

/** How the optimizer authenticates to a profiler that requires TLS and a token. */
export interface ProfilerLinkSecurity {
  /** PEM roots that sign the profiler's certificate; undefined = plaintext (local profiler). */
  tlsCaPem?: Buffer;
  /** Bearer token the profiler's token file knows. */
  token?: string;
}

function unary<Req, Res>(
  fn: (
    req: Req,
    metadata: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: Res) => void,
  ) => unknown,
  req: Req,
  metadata: grpc.Metadata,
  timeoutMs: number,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    fn(req, metadata, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    );
  });
}

/** {@link ProfileSource} over the `perseus.profiler.v1.Profiler` gRPC service. */
export class GrpcProfileSource implements ProfileSource {
  private readonly client: InstanceType<
    ReturnType<typeof perseusGrpc>['perseus']['profiler']['v1']['Profiler']
  >;

  private readonly metadata = new grpc.Metadata();

  /**
   * `link.tlsCaPem`: dial the profiler over TLS trusting these roots (a profiler on a non-local
   * address only serves TLS); `link.token`: sent as `authorization: Bearer <token>` on every call
   * (the profiler's token file must give it the read and report scopes for the job).
   */
  constructor(
    readonly address: string,
    private readonly timeoutMs = 10_000,
    link: ProfilerLinkSecurity = {},
  ) {
    const Ctor = perseusGrpc().perseus.profiler.v1.Profiler;
    const creds =
      link.tlsCaPem === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(link.tlsCaPem);
    this.client = new Ctor(address, creds);
    if (link.token !== undefined) this.metadata.set('authorization', `Bearer ${link.token}`);
  }

  async registerJob(job: ProfileJobShape): Promise<void> {
    const req: profilerV1.RegisterJobRequest = {
      job_id: job.jobId,
      pipeline: {
        schedule: SCHEDULE_TO_PROTO[job.pipeline.schedule],
        num_stages: job.pipeline.numStages,
        num_microbatches: job.pipeline.numMicrobatches,
        num_chunks: job.pipeline.numChunks ?? 0,
      },
      dp_degree: job.dpDegree,
      tp_degree: job.tpDegree,
      supported_frequencies_mhz: job.supportedFrequenciesMhz,
    };
    try {
      await unary(this.client.RegisterJob.bind(this.client), req, this.metadata, this.timeoutMs);
    } catch (err) {
      // Already known with another shape (e.g. created by ImportProfile): its cells still serve.
      if ((err as grpc.ServiceError).code !== grpc.status.FAILED_PRECONDITION) throw err;
    }
  }

  async getProfile(jobId: string, opts: { minCount?: number } = {}): Promise<ProfileCellStat[]> {
    let res: profilerV1.GetProfileResponse__Output;
    try {
      res = await unary(
        this.client.GetProfile.bind(this.client),
        { job_id: jobId, min_count: opts.minCount ?? 0 },
        this.metadata,
        this.timeoutMs,
      );
    } catch (err) {
      if ((err as grpc.ServiceError).code === grpc.status.NOT_FOUND) return [];
      throw err;
    }
    const out: ProfileCellStat[] = [];
    for (const c of res.cells) {
      const kind = instructionFromWire(c.instruction);
      if (kind === undefined) continue;
      out.push({
        stage: c.stage,
        kind,
        frequencyMhz: c.frequency_mhz,
        count: c.count,
        timeS: c.time_robust_s > 0 ? c.time_robust_s : c.time_mean_s,
        energyJ: c.energy_mean_j > 0 ? c.energy_mean_j : c.energy_robust_j,
        energyStderrJ:
          c.count >= 2 && c.energy_mean_j > 0 ? c.energy_stddev_j / Math.sqrt(c.count) : undefined,
      });
    }
    return out;
  }

  async getCoverage(jobId: string, opts: { minCount?: number } = {}): Promise<ProfileCoverage> {
    let res: profilerV1.GetCoverageResponse__Output;
    try {
      res = await unary(
        this.client.GetCoverage.bind(this.client),
        { job_id: jobId, min_count: opts.minCount ?? 0 },
        this.metadata,
        this.timeoutMs,
      );
    } catch (err) {
      if ((err as grpc.ServiceError).code === grpc.status.NOT_FOUND)
        return { complete: false, entries: [] };
      throw err;
    }
    return {
      complete: res.complete,
      entries: res.entries.flatMap((e) => {
        const kind = instructionFromWire(e.instruction);
        return kind === undefined
          ? []
          : [
              {
                stage: e.stage,
                kind,
                coveredMhz: e.covered_frequencies_mhz,
                missingMhz: e.missing_frequencies_mhz,
              },
            ];
      }),
    };
  }

  close(): void {
    this.client.close();
  }
}

/**
 * In-memory {@link ProfileSource}: cells put in by the embedder (tests, benchmarks, an emulator).
 * Coverage is complete when every (stage, kind) of a registered shape has a cell.
 */
export class MemoryProfileSource implements ProfileSource {
  private readonly cells = new Map<string, Map<string, ProfileCellStat>>();
  private readonly shapes = new Map<string, ProfileJobShape>();
  /** Set to make every call fail (to test the optimizer's behaviour when the profiler is down). */
  failing = false;

  async registerJob(job: ProfileJobShape): Promise<void> {
    this.check();
    this.shapes.set(job.jobId, job);
  }

  /** Adds or replaces cells of a job. */
  putCells(jobId: string, cells: readonly ProfileCellStat[]): void {
    let m = this.cells.get(jobId);
    if (m === undefined) this.cells.set(jobId, (m = new Map()));
    for (const c of cells) m.set(`${c.stage}:${c.kind}:${c.frequencyMhz}`, { ...c });
  }

  async getProfile(jobId: string, opts: { minCount?: number } = {}): Promise<ProfileCellStat[]> {
    this.check();
    return [...(this.cells.get(jobId)?.values() ?? [])].filter(
      (c) => c.count >= (opts.minCount ?? 0),
    );
  }

  async getCoverage(jobId: string, opts: { minCount?: number } = {}): Promise<ProfileCoverage> {
    this.check();
    const shape = this.shapes.get(jobId);
    const cells = await this.getProfile(jobId, { minCount: Math.max(1, opts.minCount ?? 1) });
    if (shape === undefined) return { complete: false, entries: [] };
    const entries: ProfileCoverage['entries'] = [];
    for (let stage = 0; stage < shape.pipeline.numStages * chunksOf(shape.pipeline); stage++) {
      for (const kind of ['forward', 'backward'] as const) {
        const covered = new Set(
          cells.filter((c) => c.stage === stage && c.kind === kind).map((c) => c.frequencyMhz),
        );
        entries.push({
          stage,
          kind,
          coveredMhz: [...covered].sort((a, b) => b - a),
          missingMhz: shape.supportedFrequenciesMhz
            .filter((f) => !covered.has(f))
            .sort((a, b) => b - a),
        });
      }
    }
    return { complete: entries.every((e) => e.coveredMhz.length > 0), entries };
  }

  private check(): void {
    if (this.failing) throw new Error('profile source unavailable');
  }

  close(): void {}
}
