import { thrownViolations } from '@perseus/service-kit';
import type { JobSpec, MeasurementBatch } from '../src/types';
import {
  checkBatchAgainstJob,
  checkImportAgainstJob,
  checkIterationsAgainstJob,
  validateExportProfile,
  validateGetCoverage,
  validateGetProfile,
  validateImportProfile,
  validateMeasurementBatch,
  validateRegisterJob,
  validateReportIterations,
} from '../src/validate';

/** The thrown violations as `field: description` lines. */
function violations(fn: () => unknown): string[] {
  return thrownViolations(fn).map(([field, description]) => `${field}: ${description}`);
}

const rank = { rank: 0, dp_rank: 0, pp_rank: 0, tp_rank: 0 };
const m = {
  rank,
  instruction: 'INSTRUCTION_KIND_FORWARD',
  microbatch: 0,
  frequency_mhz: 1410,
  time_s: 0.05,
  energy_j: 20,
  iteration: '3',
};
const job: JobSpec = {
  jobId: 'j1',
  schedule: '1f1b',
  numStages: 2,
  numChunks: 1,
  numMicrobatches: 4,
  dpDegree: 2,
  tpDegree: 2,
  supportedFrequenciesMhz: [1395, 1410],
  origin: 'register',
};
const registerOk = {
  job_id: 'j1',
  pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 2, num_microbatches: 4 },
  dp_degree: 2,
  tp_degree: 2,
  supported_frequencies_mhz: [1410, 1395],
};

describe('validateRegisterJob', () => {
  it('turns a good request into a spec with sorted clocks', () => {
    expect(validateRegisterJob(registerOk as never)).toEqual(job);
  });
  it.each([
    [{ ...registerOk, job_id: '' }, ['job_id: is required']],
    [{ ...registerOk, job_id: 'a b' }, ['job_id: must match [A-Za-z0-9._-]{1,128}, got "a b"']],
    [{ ...registerOk, pipeline: null }, ['pipeline: is required']],
    [
      {
        ...registerOk,
        pipeline: { ...registerOk.pipeline, schedule: 'SCHEDULE_KIND_UNSPECIFIED' },
      },
      [
        'pipeline.schedule: must be one of SCHEDULE_KIND_1F1B, SCHEDULE_KIND_GPIPE, SCHEDULE_KIND_INTERLEAVED_1F1B, got SCHEDULE_KIND_UNSPECIFIED',
      ],
    ],
    [
      {
        ...registerOk,
        pipeline: { ...registerOk.pipeline, schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B' },
      },
      ['pipeline.num_chunks: must be ≥ 2 for interleaved 1F1B, got 0'],
    ],
    [
      {
        ...registerOk,
        pipeline: {
          schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
          num_stages: 2,
          num_microbatches: 3,
          num_chunks: 2,
        },
      },
      [
        'pipeline.num_microbatches: must be a multiple of num_stages (2) for interleaved 1F1B, got 3',
      ],
    ],
    [
      { ...registerOk, pipeline: { ...registerOk.pipeline, num_stages: 0 } },
      ['pipeline.num_stages: must be ≥ 1, got 0'],
    ],
    [
      { ...registerOk, pipeline: { ...registerOk.pipeline, num_microbatches: 0 } },
      ['pipeline.num_microbatches: must be ≥ 1, got 0'],
    ],
    [{ ...registerOk, dp_degree: 0 }, ['dp_degree: must be ≥ 1, got 0']],
    [{ ...registerOk, tp_degree: 0 }, ['tp_degree: must be ≥ 1, got 0']],
    [
      { ...registerOk, supported_frequencies_mhz: [1410, 0] },
      ['supported_frequencies_mhz[1]: must be ≥ 1, got 0'],
    ],
    [
      { ...registerOk, supported_frequencies_mhz: [1410, 1410] },
      ['supported_frequencies_mhz[1]: duplicate clock 1410'],
    ],
  ])('%j → %j', (req, expected) => {
    expect(violations(() => validateRegisterJob(req as never))).toEqual(expected);
  });
});

describe('validateMeasurementBatch', () => {
  const ok = { batch_id: 'b1', job_id: 'j1', measurements: [m] };
  it('converts a good batch', () => {
    expect(validateMeasurementBatch(ok as never)).toEqual({
      batchId: 'b1',
      jobId: 'j1',
      measurements: [
        {
          rank: 0,
          dpRank: 0,
          ppRank: 0,
          tpRank: 0,
          instruction: 'forward',
          microbatch: 0,
          chunk: 0,
          frequencyMhz: 1410,
          timeS: 0.05,
          energyJ: 20,
          iteration: 3,
        },
      ],
    });
  });
  it.each([
    [{ ...ok, batch_id: '' }, ['batch_id: is required']],
    [{ ...ok, job_id: '' }, ['job_id: is required']],
    [{ ...ok, measurements: [] }, ['measurements: must not be empty']],
    [
      { ...ok, measurements: [m, { ...m, time_s: NaN }] },
      ['measurements[1].time_s: must be a finite number, got NaN'],
    ],
    [
      { ...ok, measurements: [{ ...m, time_s: Infinity }] },
      ['measurements[0].time_s: must be a finite number, got Infinity'],
    ],
    [
      { ...ok, measurements: [{ ...m, time_s: 0 }] },
      ['measurements[0].time_s: must be > 0, got 0'],
    ],
    [
      { ...ok, measurements: [{ ...m, time_s: -0.1 }] },
      ['measurements[0].time_s: must be > 0, got -0.1'],
    ],
    [
      { ...ok, measurements: [{ ...m, energy_j: -1 }] },
      ['measurements[0].energy_j: must be ≥ 0, got -1'],
    ],
    [
      { ...ok, measurements: [{ ...m, energy_j: -Infinity }] },
      ['measurements[0].energy_j: must be a finite number, got -Infinity'],
    ],
    [{ ...ok, measurements: [{ ...m, rank: null }] }, ['measurements[0].rank: is required']],
    [
      { ...ok, measurements: [{ ...m, instruction: 'INSTRUCTION_KIND_UNSPECIFIED' }] },
      [
        'measurements[0].instruction: must be one of INSTRUCTION_KIND_FORWARD, INSTRUCTION_KIND_BACKWARD, got INSTRUCTION_KIND_UNSPECIFIED',
      ],
    ],
    [
      { ...ok, measurements: [{ ...m, frequency_mhz: 0 }] },
      ['measurements[0].frequency_mhz: must be ≥ 1, got 0'],
    ],
    [
      { ...ok, measurements: [{ ...m, iteration: '18446744073709551615' }] },
      ['measurements[0].iteration: must be an integer below 2^53, got 18446744073709551615'],
    ],
  ])('%j → %j', (req, expected) => {
    expect(violations(() => validateMeasurementBatch(req as never))).toEqual(expected);
  });
  it('rejects an oversize batch naming the limit', () => {
    expect(
      violations(() => validateMeasurementBatch({ ...ok, measurements: [m, m, m] } as never, 2)),
    ).toEqual(['measurements: must have at most 2 entries, got 3']);
    expect(
      violations(() =>
        validateMeasurementBatch({ ...ok, measurements: new Array(10_001).fill(m) } as never),
      ),
    ).toEqual(['measurements: must have at most 10000 entries, got 10001']);
  });
});

describe('checkBatchAgainstJob', () => {
  const batch = (over: Partial<MeasurementBatch['measurements'][number]>): MeasurementBatch => ({
    jobId: 'j1',
    batchId: 'b',
    measurements: [
      {
        rank: 0,
        dpRank: 0,
        ppRank: 0,
        tpRank: 0,
        instruction: 'forward',
        microbatch: 0,
        chunk: 0,
        frequencyMhz: 1410,
        timeS: 1,
        energyJ: 1,
        iteration: 0,
        ...over,
      },
    ],
  });
  it.each([
    [{ rank: 8 }, ['measurements[0].rank.rank: must be < world size 8, got 8']],
    [{ dpRank: 2 }, ['measurements[0].rank.dp_rank: must be < dp_degree 2, got 2']],
    [{ ppRank: 2 }, ['measurements[0].rank.pp_rank: must be < num_stages 2, got 2']],
    [{ tpRank: 5 }, ['measurements[0].rank.tp_rank: must be < tp_degree 2, got 5']],
    [{ microbatch: 4 }, ['measurements[0].microbatch: must be < num_microbatches 4, got 4']],
    [
      { frequencyMhz: 1000 },
      ['measurements[0].frequency_mhz: 1000 is not a supported clock of job j1'],
    ],
    [{ chunk: 1 }, ['measurements[0].chunk: must be 0: job j1 is not interleaved 1F1B, got 1']],
  ])('%j → %j', (over, expected) => {
    expect(violations(() => checkBatchAgainstJob(batch(over), job))).toEqual(expected);
  });
  it('checks the chunk against an interleaved job (2 GPUs × 3 chunks)', () => {
    const interleaved: JobSpec = { ...job, schedule: 'interleaved', numChunks: 3 };
    expect(() => checkBatchAgainstJob(batch({ chunk: 2 }), interleaved)).not.toThrow();
    expect(violations(() => checkBatchAgainstJob(batch({ chunk: 3 }), interleaved))).toEqual([
      'measurements[0].chunk: must be < num_chunks 3, got 3',
    ]);
  });
  it('refuses a chunk over the virtual-stage limit before the job is known', () => {
    expect(
      violations(() =>
        validateMeasurementBatch({
          batch_id: 'b',
          job_id: 'j1',
          measurements: [{ ...m, chunk: 256 }],
        } as never),
      ),
    ).toEqual(['measurements[0].chunk: must be ≤ 255, got 256']);
  });
  it('accepts a measurement inside the shape', () => {
    expect(() =>
      checkBatchAgainstJob(
        batch({ rank: 7, dpRank: 1, ppRank: 1, tpRank: 1, microbatch: 3, frequencyMhz: 1395 }),
        job,
      ),
    ).not.toThrow();
  });
});

describe('validateReportIterations', () => {
  const it0 = { rank, iteration: '1', time_s: 2.5, energy_j: 900 };
  it.each([
    [{ job_id: '', iterations: [it0] }, ['job_id: is required']],
    [{ job_id: 'j1', iterations: [] }, ['iterations: must not be empty']],
    [
      { job_id: 'j1', iterations: [{ ...it0, time_s: 0 }] },
      ['iterations[0].time_s: must be > 0, got 0'],
    ],
    [
      { job_id: 'j1', iterations: [{ ...it0, energy_j: NaN }] },
      ['iterations[0].energy_j: must be a finite number, got NaN'],
    ],
    [{ job_id: 'j1', iterations: [{ ...it0, rank: null }] }, ['iterations[0].rank: is required']],
  ])('%j → %j', (req, expected) => {
    expect(violations(() => validateReportIterations(req as never))).toEqual(expected);
  });
  it('checks ranks against the job', () => {
    const r = validateReportIterations({
      job_id: 'j1',
      iterations: [{ ...it0, rank: { ...rank, pp_rank: 3 } }],
    } as never);
    expect(violations(() => checkIterationsAgainstJob(r, job))).toEqual([
      'iterations[0].rank.pp_rank: must be < num_stages 2, got 3',
    ]);
  });
});

describe('queries and import/export', () => {
  it.each([
    [() => validateGetProfile({ job_id: '', min_count: 0 } as never), ['job_id: is required']],
    [
      () => validateGetProfile({ job_id: 'j', min_count: -1 } as never),
      ['min_count: must be ≥ 0, got -1'],
    ],
    [
      () => validateGetProfile({ job_id: 'j', max_relative_stderr: -0.1 } as never),
      ['max_relative_stderr: must be ≥ 0, got -0.1'],
    ],
    [
      () => validateGetProfile({ job_id: 'j', max_relative_stderr: Number.NaN } as never),
      ['max_relative_stderr: must be a finite number, got NaN'],
    ],
    [() => validateGetCoverage({ job_id: '' } as never), ['job_id: is required']],
    [
      () => validateExportProfile({ job_id: 'j', format: 'PROFILE_FORMAT_UNSPECIFIED' } as never),
      [
        'format: must be one of PROFILE_FORMAT_STAGE, PROFILE_FORMAT_RANK, got PROFILE_FORMAT_UNSPECIFIED',
      ],
    ],
    [
      () =>
        validateImportProfile({ job_id: 'j', format: 'PROFILE_FORMAT_STAGE', csv: '' } as never),
      ['csv: is required'],
    ],
    [
      () =>
        validateImportProfile({
          job_id: 'j',
          format: 'PROFILE_FORMAT_UNSPECIFIED',
          csv: 'x',
        } as never),
      [
        'format: must be one of PROFILE_FORMAT_STAGE, PROFILE_FORMAT_RANK, got PROFILE_FORMAT_UNSPECIFIED',
      ],
    ],
    [
      () =>
        validateImportProfile({
          job_id: 'j',
          format: 'PROFILE_FORMAT_STAGE',
          csv: 'stage,instruction,frequency,time,energy\n0,forward,1410,0,1',
        } as never),
      ['csv: line 2: time must be > 0, got 0'],
    ],
  ])('case %#', (fn, expected) => {
    expect(violations(fn)).toEqual(expected);
  });
  it('keeps the optional dp_rank', () => {
    expect(
      validateGetProfile({ job_id: 'j', min_count: 3, dp_rank: 1, _dp_rank: 'dp_rank' } as never),
    ).toEqual({ jobId: 'j', minCount: 3, dpRank: 1 });
    expect(validateGetProfile({ job_id: 'j', min_count: 0 } as never)).toEqual({
      jobId: 'j',
      minCount: 0,
    });
    expect(
      validateGetProfile({ job_id: 'j', min_count: 0, max_relative_stderr: 0.02 } as never),
    ).toEqual({ jobId: 'j', minCount: 0, maxRelativeStderr: 0.02 });
  });
  it('checks imported rows against an existing job', () => {
    const cmd = validateImportProfile({
      job_id: 'j1',
      format: 'PROFILE_FORMAT_STAGE',
      csv: 'stage,instruction,frequency,time,energy\n2,forward,1410,1,1\n0,forward,1000,1,1',
    } as never);
    expect(violations(() => checkImportAgainstJob(cmd, job))).toEqual([
      'csv: row 1: stage must be < num_stages 2, got 2',
      'csv: row 2: frequency 1000 is not a supported clock of job j1',
    ]);
  });
});
