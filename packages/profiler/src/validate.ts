/**
 * Boundary validation: one `validateXxx` per request message of perseus.profiler.v1 turns the loose
 * wire message into a strict internal value or throws a ValidationError naming each bad field with
 * its value. Checks that need the job's registered shape (ranks in range, supported clocks) are the
 * `check…AgainstJob` functions, run once the job is known.
 */
import type { profilerV1 } from '@perseus/proto';
import {
  Checker,
  INSTRUCTION_FROM_WIRE,
  SIZE_LIMITS,
  checkRankIdentity,
  checkRankInShape,
  checkSupportedClocks,
  checkWirePipeline,
  rankFits,
  type SpecifiedEnum,
} from '@perseus/service-kit';
import { parseProfileCsv } from './profile-csv';
import type { ProfileCsvRow } from './profile-csv';
import type {
  IterationRecord,
  JobSpec,
  Measurement,
  MeasurementBatch,
  ProfileFormatName,
  ScheduleName,
} from './types';

/**
 * Upper bounds that keep one request's cost bounded: the contract's sizes (service-kit's
 * SIZE_LIMITS, shared by every service) plus the CSV text length.
 */
export const LIMITS = {
  ...SIZE_LIMITS,
  /** CSV text of one ImportProfile, characters (a message is at most 4 MiB anyway). */
  maxCsvChars: SIZE_LIMITS.maxMessageBytes,
} as const;

const FORMATS: Readonly<
  Record<SpecifiedEnum<profilerV1.ProfileFormat__Output>, ProfileFormatName>
> = {
  PROFILE_FORMAT_STAGE: 'stage',
  PROFILE_FORMAT_RANK: 'rank',
};

type Wire<T> = T | null | undefined;

export function validateRegisterJob(req: Wire<profilerV1.RegisterJobRequest>): JobSpec {
  const c = new Checker();
  const jobId = c.id('job_id', req?.job_id);
  let schedule: ScheduleName = 'unspecified';
  let numStages = 0;
  let numMicrobatches = 0;
  let numChunks = 1;
  if (c.present('pipeline', req?.pipeline)) {
    const p = checkWirePipeline(c.at('pipeline'), req.pipeline);
    if (p) ({ schedule, numStages, numMicrobatches, numChunks } = p);
  }
  const dpDegree = c.uint('dp_degree', req?.dp_degree, { min: 1, max: LIMITS.maxDegree });
  const tpDegree = c.uint('tp_degree', req?.tp_degree, { min: 1, max: LIMITS.maxDegree });
  if (c.ok && numStages * dpDegree * tpDegree > LIMITS.maxWorldSize)
    c.fail(
      'dp_degree',
      `world size num_stages × dp_degree × tp_degree must be ≤ ${LIMITS.maxWorldSize}, got ${numStages * dpDegree * tpDegree}`,
    );
  const clocks = checkSupportedClocks(
    c,
    'supported_frequencies_mhz',
    req?.supported_frequencies_mhz,
  );
  c.done();
  return {
    jobId,
    schedule,
    numStages,
    numChunks,
    numMicrobatches,
    dpDegree,
    tpDegree,
    supportedFrequenciesMhz: clocks.sort((a, b) => a - b),
    origin: 'register',
  };
}

function isUint32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/**
 * Fast path for the hot ingest loop: converts a well-formed measurement without building field
 * paths, or returns undefined so the caller re-runs the full Checker for the messages.
 */
function fastMeasurement(m: profilerV1.InstructionMeasurement): Measurement | undefined {
  const r = m.rank;
  if (
    !r ||
    !isUint32(r.rank) ||
    !isUint32(r.dp_rank) ||
    !isUint32(r.pp_rank) ||
    !isUint32(r.tp_rank) ||
    r.rank >= LIMITS.maxWorldSize ||
    r.dp_rank >= LIMITS.maxDegree ||
    r.pp_rank >= LIMITS.maxStages ||
    r.tp_rank >= LIMITS.maxDegree
  )
    return undefined;
  const instruction =
    m.instruction === 'INSTRUCTION_KIND_FORWARD'
      ? 'forward'
      : m.instruction === 'INSTRUCTION_KIND_BACKWARD'
        ? 'backward'
        : undefined;
  if (instruction === undefined) return undefined;
  const f = m.frequency_mhz;
  if (
    !isUint32(f) ||
    f < 1 ||
    f > LIMITS.maxFrequencyMhz ||
    !isUint32(m.microbatch) ||
    m.microbatch >= LIMITS.maxMicrobatches
  )
    return undefined;
  const t = Number(m.time_s);
  const e = Number(m.energy_j);
  if (!(Number.isFinite(t) && t > 0 && Number.isFinite(e) && e >= 0)) return undefined;
  const it = Number(m.iteration === undefined ? 0 : String(m.iteration));
  if (!Number.isSafeInteger(it) || it < 0) return undefined;
  const chunk = m.chunk ?? 0;
  if (!isUint32(chunk) || chunk >= LIMITS.maxStages) return undefined;
  return {
    rank: r.rank,
    dpRank: r.dp_rank,
    ppRank: r.pp_rank,
    tpRank: r.tp_rank,
    instruction,
    microbatch: m.microbatch,
    chunk,
    frequencyMhz: f,
    timeS: t,
    energyJ: e,
    iteration: it,
  };
}

function checkedMeasurement(c: Checker, m: Wire<profilerV1.InstructionMeasurement>): Measurement {
  const r = checkRankIdentity(c, 'rank', m?.rank);
  return {
    rank: r.rank,
    dpRank: r.dpRank,
    ppRank: r.ppRank,
    tpRank: r.tpRank,
    instruction: c.enumValue('instruction', m?.instruction, INSTRUCTION_FROM_WIRE) ?? 'forward',
    microbatch: c.uint('microbatch', m?.microbatch, { max: LIMITS.maxMicrobatches - 1 }),
    chunk: c.uint('chunk', m?.chunk, { max: LIMITS.maxStages - 1 }),
    frequencyMhz: c.uint('frequency_mhz', m?.frequency_mhz, {
      min: 1,
      max: LIMITS.maxFrequencyMhz,
    }),
    timeS: c.positive('time_s', m?.time_s === undefined ? undefined : Number(m.time_s)),
    energyJ: c.number('energy_j', m?.energy_j === undefined ? undefined : Number(m.energy_j), {
      min: 0,
    }),
    iteration: c.uint64('iteration', m?.iteration),
  };
}

/** Structural checks of one batch (the job's shape is checked by {@link checkBatchAgainstJob}). */
export function validateMeasurementBatch(
  req: Wire<profilerV1.MeasurementBatch>,
  maxMeasurements: number = LIMITS.maxBatchMeasurements,
): MeasurementBatch {
  const c = new Checker();
  const batchId = c.id('batch_id', req?.batch_id);
  const jobId = c.id('job_id', req?.job_id);
  const list = c.list('measurements', req?.measurements, { min: 1, max: maxMeasurements });
  const measurements: Measurement[] = [];
  if (list.length <= maxMeasurements) {
    for (let i = 0; i < list.length; i++) {
      const m = list[i]!;
      measurements.push(fastMeasurement(m) ?? checkedMeasurement(c.at(`measurements[${i}]`), m));
    }
  }
  c.done();
  return { batchId, jobId, measurements };
}

/**
 * Violations of a batch against its job: ranks in range, clocks supported, microbatch < M, chunk
 * < V (the job's chunks; 1 unless interleaved 1F1B).
 */
export function checkBatchAgainstJob(batch: MeasurementBatch, job: JobSpec): void {
  const c = new Checker();
  const supported =
    job.supportedFrequenciesMhz.length > 0 ? new Set(job.supportedFrequenciesMhz) : undefined;
  batch.measurements.forEach((m, i) => {
    if (
      !rankFits(m, job) ||
      (job.numMicrobatches > 0 && m.microbatch >= job.numMicrobatches) ||
      m.chunk >= job.numChunks ||
      (supported && !supported.has(m.frequencyMhz))
    ) {
      const mc = c.at(`measurements[${i}]`);
      checkRankInShape(mc, 'rank', m, job);
      if (job.numMicrobatches > 0 && m.microbatch >= job.numMicrobatches)
        mc.fail(
          'microbatch',
          `must be < num_microbatches ${job.numMicrobatches}, got ${m.microbatch}`,
        );
      if (m.chunk >= job.numChunks)
        mc.fail(
          'chunk',
          job.numChunks === 1
            ? `must be 0: job ${job.jobId} is not interleaved 1F1B, got ${m.chunk}`
            : `must be < num_chunks ${job.numChunks}, got ${m.chunk}`,
        );
      if (supported && !supported.has(m.frequencyMhz))
        mc.fail('frequency_mhz', `${m.frequencyMhz} is not a supported clock of job ${job.jobId}`);
    }
  });
  c.done();
}

export interface ReportIterations {
  jobId: string;
  iterations: IterationRecord[];
}

export function validateReportIterations(
  req: Wire<profilerV1.ReportIterationsRequest>,
): ReportIterations {
  const c = new Checker();
  const jobId = c.id('job_id', req?.job_id);
  const list = c.list('iterations', req?.iterations, { min: 1, max: LIMITS.maxIterationRecords });
  const iterations: IterationRecord[] = [];
  if (list.length <= LIMITS.maxIterationRecords) {
    list.forEach((it, i) => {
      const ic = c.at(`iterations[${i}]`);
      iterations.push({
        rank: checkRankIdentity(ic, 'rank', it?.rank),
        iteration: ic.uint64('iteration', it?.iteration),
        timeS: ic.positive('time_s', it?.time_s === undefined ? undefined : Number(it.time_s)),
        energyJ: ic.number(
          'energy_j',
          it?.energy_j === undefined ? undefined : Number(it.energy_j),
          { min: 0 },
        ),
      });
    });
  }
  c.done();
  return { jobId, iterations };
}

export function checkIterationsAgainstJob(req: ReportIterations, job: JobSpec): void {
  const c = new Checker();
  req.iterations.forEach((it, i) =>
    checkRankInShape(c.at(`iterations[${i}]`), 'rank', it.rank, job),
  );
  c.done();
}

export interface GetProfileQuery {
  jobId: string;
  minCount: number;
  /** One pipeline's cells; undefined = pooled. */
  dpRank?: number;
  /** Confidence filter (relative standard error of the means); 0 = none. */
  maxRelativeStderr?: number;
}

export function validateGetProfile(req: Wire<profilerV1.GetProfileRequest>): GetProfileQuery {
  const c = new Checker();
  const jobId = c.id('job_id', req?.job_id);
  const minCount = c.uint('min_count', req?.min_count);
  const hasDp =
    req?._dp_rank === 'dp_rank' || (req?.dp_rank !== undefined && req?.dp_rank !== null);
  const dpRank = hasDp ? c.uint('dp_rank', req?.dp_rank, { max: LIMITS.maxDegree - 1 }) : undefined;
  const rawStderr = req?.max_relative_stderr;
  const maxRelativeStderr = c.number(
    'max_relative_stderr',
    rawStderr === undefined || rawStderr === null ? undefined : Number(rawStderr),
    { min: 0 },
  );
  c.done();
  return {
    jobId,
    minCount,
    ...(dpRank === undefined ? {} : { dpRank }),
    ...(maxRelativeStderr > 0 ? { maxRelativeStderr } : {}),
  };
}

export interface GetCoverageQuery {
  jobId: string;
  /** 0 = the service default. */
  minCount: number;
}

export function validateGetCoverage(req: Wire<profilerV1.GetCoverageRequest>): GetCoverageQuery {
  const c = new Checker();
  const jobId = c.id('job_id', req?.job_id);
  const minCount = c.uint('min_count', req?.min_count);
  c.done();
  return { jobId, minCount };
}

export interface ImportProfileCommand {
  jobId: string;
  format: ProfileFormatName;
  rows: ProfileCsvRow[];
}

export function validateImportProfile(
  req: Wire<profilerV1.ImportProfileRequest>,
): ImportProfileCommand {
  const c = new Checker();
  const jobId = c.id('job_id', req?.job_id);
  const format = c.enumValue('format', req?.format, FORMATS);
  const csv = c.string('csv', req?.csv, { max: LIMITS.maxCsvChars });
  c.done();
  return { jobId, format: format!, rows: parseProfileCsv(csv, format!, 'csv') };
}

export interface ExportProfileQuery {
  jobId: string;
  format: ProfileFormatName;
  minCount: number;
}

export function validateExportProfile(
  req: Wire<profilerV1.ExportProfileRequest>,
): ExportProfileQuery {
  const c = new Checker();
  const jobId = c.id('job_id', req?.job_id);
  const format = c.enumValue('format', req?.format, FORMATS);
  const minCount = c.uint('min_count', req?.min_count);
  c.done();
  return { jobId, format: format!, minCount };
}

/** Checks imported rows against an existing job's shape. */
export function checkImportAgainstJob(cmd: ImportProfileCommand, job: JobSpec): void {
  const c = new Checker();
  const supported =
    job.supportedFrequenciesMhz.length > 0 ? new Set(job.supportedFrequenciesMhz) : undefined;
  const worldSize = job.numStages * job.dpDegree * job.tpDegree;
  let reported = 0;
  cmd.rows.forEach((r, i) => {
    if (reported >= 20) return;
    const problems: string[] = [];
    if (r.stage >= job.numStages * job.numChunks)
      problems.push(
        job.numChunks === 1
          ? `stage must be < num_stages ${job.numStages}, got ${r.stage}`
          : `stage must be < num_stages × num_chunks ${job.numStages * job.numChunks} (virtual stages), got ${r.stage}`,
      );
    if (supported && !supported.has(r.frequencyMhz))
      problems.push(`frequency ${r.frequencyMhz} is not a supported clock of job ${job.jobId}`);
    if (cmd.format === 'rank') {
      if (r.rank >= worldSize)
        problems.push(`rank must be < world size ${worldSize}, got ${r.rank}`);
      if (r.dpRank >= job.dpDegree)
        problems.push(`dp_rank must be < dp_degree ${job.dpDegree}, got ${r.dpRank}`);
      if (r.tpRank >= job.tpDegree)
        problems.push(`tp_rank must be < tp_degree ${job.tpDegree}, got ${r.tpRank}`);
    }
    for (const p of problems) {
      c.fail('csv', `row ${i + 1}: ${p}`);
      reported++;
    }
  });
  c.done();
}
