import { thrownViolations as violations } from '@perseus/service-kit';
import {
  validateGetFrontier,
  validateGetJobStatus,
  validatePlanOffline,
  validateRegisterJob,
  validateRegisterRank,
  validateReportIteration,
  validateReportStraggler,
  validateSetPolicy,
  validateWatchSchedule,
} from '../src/validate';

const goodSpec = {
  pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 4, num_microbatches: 8 },
  dp_degree: 2,
  tp_degree: 1,
  world_size: 8,
  gpu_model: 'A100',
  unit_time_s: 0,
  blocking_power_w: 83.64,
  profiling: null,
};
const job = (over: object): never => ({ job_id: 'j1', spec: { ...goodSpec, ...over } }) as never;
const rank = { rank: 0, dp_rank: 0, pp_rank: 0, tp_rank: 0 };
const row = {
  stage: 0,
  instruction: 'INSTRUCTION_KIND_FORWARD',
  frequency_mhz: 1410,
  time_s: 0.01,
  energy_j: 2,
};
const rows1 = [row, { ...row, instruction: 'INSTRUCTION_KIND_BACKWARD' }];
const offline = (over: object): never =>
  ({
    profile: rows1,
    pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 1, num_microbatches: 2 },
    blocking_power_w: 80,
    unit_time_s: 0,
    include_plans: false,
    ...over,
  }) as never;

const cases: Array<[string, () => unknown, Array<[string, string]>]> = [
  [
    'RegisterJob: missing job id',
    () => validateRegisterJob({ job_id: '', spec: goodSpec } as never),
    [['job_id', 'is required']],
  ],
  [
    'RegisterJob: bad job id',
    () => validateRegisterJob({ job_id: 'a/b', spec: goodSpec } as never),
    [['job_id', 'must match [A-Za-z0-9._-]{1,128}, got "a/b"']],
  ],
  [
    'RegisterJob: missing spec',
    () => validateRegisterJob({ job_id: 'j', spec: null } as never),
    [['spec', 'is required']],
  ],
  [
    'RegisterJob: missing pipeline',
    () => validateRegisterJob(job({ pipeline: null, world_size: 0 })),
    [
      ['spec.pipeline', 'is required'],
      ['spec.world_size', 'must be ≥ 1, got 0'],
    ],
  ],
  [
    'RegisterJob: zero microbatches',
    () => validateRegisterJob(job({ pipeline: { ...goodSpec.pipeline, num_microbatches: 0 } })),
    [['spec.pipeline.num_microbatches', 'must be ≥ 1, got 0']],
  ],
  [
    'RegisterJob: unspecified schedule',
    () =>
      validateRegisterJob(
        job({ pipeline: { ...goodSpec.pipeline, schedule: 'SCHEDULE_KIND_UNSPECIFIED' } }),
      ),
    [
      [
        'spec.pipeline.schedule',
        'must be one of SCHEDULE_KIND_1F1B, SCHEDULE_KIND_GPIPE, SCHEDULE_KIND_INTERLEAVED_1F1B, got SCHEDULE_KIND_UNSPECIFIED',
      ],
    ],
  ],
  [
    'RegisterJob: interleaved',
    () =>
      validateRegisterJob(
        job({ pipeline: { ...goodSpec.pipeline, schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B' } }),
      ),
    [['spec.pipeline.num_chunks', 'must be ≥ 2 for interleaved 1F1B, got 0']],
  ],
  [
    'RegisterJob: interleaved with M not a multiple of N',
    () =>
      validateRegisterJob(
        job({
          pipeline: {
            schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
            num_stages: 4,
            num_microbatches: 6,
            num_chunks: 2,
          },
        }),
      ),
    [
      [
        'spec.pipeline.num_microbatches',
        'must be a multiple of num_stages (4) for interleaved 1F1B, got 6',
      ],
    ],
  ],
  [
    'RegisterJob: interleaved over the virtual-stage limit',
    () =>
      validateRegisterJob(
        job({
          pipeline: {
            schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
            num_stages: 4,
            num_microbatches: 8,
            num_chunks: 65,
          },
        }),
      ),
    [
      [
        'spec.pipeline.num_chunks',
        'num_stages × num_chunks (virtual stages) must be ≤ 256, got 4 × 65 = 260',
      ],
    ],
  ],
  [
    'RegisterJob: chunks on 1F1B',
    () => validateRegisterJob(job({ pipeline: { ...goodSpec.pipeline, num_chunks: 2 } })),
    [['spec.pipeline.num_chunks', 'must be 0 or 1 unless the schedule is interleaved 1F1B, got 2']],
  ],
  [
    'PlanOffline: interleaved needs a row for every virtual stage',
    () =>
      validatePlanOffline(
        offline({
          pipeline: {
            schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
            num_stages: 1,
            num_microbatches: 2,
            num_chunks: 2,
          },
        }),
      ),
    [
      ['profile', 'stage 1 forward has no rows'],
      ['profile', 'stage 1 backward has no rows'],
    ],
  ],
  [
    'RegisterJob: world size mismatch',
    () => validateRegisterJob(job({ world_size: 9 })),
    [['spec.world_size', 'must equal pipeline.num_stages × dp_degree × tp_degree = 8, got 9']],
  ],
  [
    'RegisterJob: dp 0',
    () => validateRegisterJob(job({ dp_degree: 0 })),
    [['spec.dp_degree', 'must be ≥ 1, got 0']],
  ],
  [
    'RegisterJob: negative blocking power',
    () => validateRegisterJob(job({ blocking_power_w: -1 })),
    [['spec.blocking_power_w', 'must be ≥ 0, got -1']],
  ],
  [
    'RegisterJob: NaN unit time',
    () => validateRegisterJob(job({ unit_time_s: NaN })),
    [['spec.unit_time_s', 'must be a finite number, got NaN']],
  ],
  [
    'RegisterJob: no gpu model',
    () => validateRegisterJob(job({ gpu_model: '' })),
    [['spec.gpu_model', 'is required']],
  ],
  [
    'RegisterJob: K too large',
    () =>
      validateRegisterJob(
        job({
          profiling: {
            iterations_per_frequency: 5000,
            floor_frequency_mhz: 0,
            frequency_stride: 0,
          },
        }),
      ),
    [['spec.profiling.iterations_per_frequency', 'must be ≤ 1000, got 5000']],
  ],
  [
    'RegisterRank: missing rank',
    () =>
      validateRegisterRank({
        job_id: 'j',
        rank: null,
        node: 'n',
        device_index: 0,
        supported_frequencies_mhz: [1410],
      } as never),
    [['rank', 'is required']],
  ],
  [
    'RegisterRank: no clocks',
    () =>
      validateRegisterRank({
        job_id: 'j',
        rank,
        node: 'n',
        device_index: 0,
        supported_frequencies_mhz: [],
      } as never),
    [['supported_frequencies_mhz', 'must not be empty']],
  ],
  [
    'RegisterRank: zero clock',
    () =>
      validateRegisterRank({
        job_id: 'j',
        rank,
        node: 'n',
        device_index: 0,
        supported_frequencies_mhz: [1410, 0],
      } as never),
    [['supported_frequencies_mhz[1]', 'must be ≥ 1, got 0']],
  ],
  [
    'RegisterRank: duplicate clock',
    () =>
      validateRegisterRank({
        job_id: 'j',
        rank,
        node: 'n',
        device_index: 0,
        supported_frequencies_mhz: [1410, 1410],
      } as never),
    [['supported_frequencies_mhz[1]', 'duplicate clock 1410']],
  ],
  [
    'RegisterRank: no node',
    () =>
      validateRegisterRank({
        job_id: 'j',
        rank,
        node: '',
        device_index: 0,
        supported_frequencies_mhz: [1410],
      } as never),
    [['node', 'is required']],
  ],
  [
    'WatchSchedule: no job',
    () => validateWatchSchedule({ job_id: '', rank: 0, known_version: '0' } as never),
    [['job_id', 'is required']],
  ],
  [
    'WatchSchedule: bad version',
    () =>
      validateWatchSchedule({
        job_id: 'j',
        rank: 0,
        known_version: '18446744073709551615',
      } as never),
    [['known_version', 'must be an integer below 2^53, got 18446744073709551615']],
  ],
  [
    'ReportIteration: zero time',
    () =>
      validateReportIteration({
        job_id: 'j',
        rank,
        iteration: '1',
        time_s: 0,
        energy_j: 1,
        schedule_version: '1',
      } as never),
    [['time_s', 'must be ≥ 0.000001, got 0']],
  ],
  [
    'ReportIteration: negative energy',
    () =>
      validateReportIteration({
        job_id: 'j',
        rank,
        iteration: '1',
        time_s: 1,
        energy_j: -2,
        schedule_version: '1',
      } as never),
    [['energy_j', 'must be ≥ 0, got -2']],
  ],
  [
    'ReportIteration: missing rank',
    () =>
      validateReportIteration({
        job_id: 'j',
        rank: null,
        iteration: '1',
        time_s: 1,
        energy_j: 0,
        schedule_version: '1',
      } as never),
    [['rank', 'is required']],
  ],
  [
    'ReportStraggler: no severity',
    () => validateReportStraggler({ job_id: 'j', dp_rank: 0, expires_after_s: 0 } as never),
    [['severity', 'is required: set iteration_time_s, slowdown or recovered']],
  ],
  [
    'ReportStraggler: slowdown ≤ 1',
    () =>
      validateReportStraggler({
        job_id: 'j',
        dp_rank: 0,
        severity: 'slowdown',
        slowdown: 0.9,
        expires_after_s: 0,
      } as never),
    [['slowdown', 'must be > 1, got 0.9']],
  ],
  [
    'ReportStraggler: time 0',
    () =>
      validateReportStraggler({
        job_id: 'j',
        dp_rank: 0,
        severity: 'iteration_time_s',
        iteration_time_s: 0,
        expires_after_s: 0,
      } as never),
    [['iteration_time_s', 'must be ≥ 0.000001, got 0']],
  ],
  [
    'ReportStraggler: negative expiry',
    () =>
      validateReportStraggler({
        job_id: 'j',
        dp_rank: 0,
        severity: 'recovered',
        recovered: true,
        expires_after_s: -1,
      } as never),
    [['expires_after_s', 'must be ≥ 0, got -1']],
  ],
  [
    'ReportStraggler: recovered false',
    () =>
      validateReportStraggler({
        job_id: 'j',
        dp_rank: 0,
        severity: 'recovered',
        recovered: false,
        expires_after_s: 0,
      } as never),
    [['recovered', 'must be true when set']],
  ],
  [
    'GetFrontier: no job',
    () => validateGetFrontier({ job_id: '' } as never),
    [['job_id', 'is required']],
  ],
  [
    'GetJobStatus: bad job',
    () => validateGetJobStatus({ job_id: 'x y' } as never),
    [['job_id', 'must match [A-Za-z0-9._-]{1,128}, got "x y"']],
  ],
  [
    'SetPolicy: no policy',
    () => validateSetPolicy({ job_id: 'j', policy: null } as never),
    [['policy', 'is required']],
  ],
  [
    'SetPolicy: empty policy',
    () => validateSetPolicy({ job_id: 'j', policy: {} } as never),
    [
      [
        'policy.kind',
        'is required: set intrinsic, max_slowdown_percent, target_iteration_time_s or min_energy',
      ],
    ],
  ],
  [
    'SetPolicy: negative slowdown',
    () =>
      validateSetPolicy({
        job_id: 'j',
        policy: { kind: 'max_slowdown_percent', max_slowdown_percent: -5 },
      } as never),
    [['policy.max_slowdown_percent', 'must be ≥ 0, got -5']],
  ],
  [
    'SetPolicy: zero target',
    () =>
      validateSetPolicy({
        job_id: 'j',
        policy: { kind: 'target_iteration_time_s', target_iteration_time_s: 0 },
      } as never),
    [['policy.target_iteration_time_s', 'must be > 0, got 0']],
  ],
  [
    'PlanOffline: no rows',
    () => validatePlanOffline(offline({ profile: [] })),
    [['profile', 'must not be empty']],
  ],
  [
    'PlanOffline: no pipeline',
    () => validatePlanOffline(offline({ pipeline: null })),
    [['pipeline', 'is required']],
  ],
  [
    'PlanOffline: zero blocking power',
    () => validatePlanOffline(offline({ blocking_power_w: 0 })),
    [['blocking_power_w', 'must be > 0, got 0']],
  ],
  [
    'PlanOffline: stage out of range',
    () => validatePlanOffline(offline({ profile: [...rows1, { ...row, stage: 3 }] })),
    [['profile[2].stage', 'must be ≤ 0, got 3']],
  ],
  [
    'PlanOffline: negative time',
    () => validatePlanOffline(offline({ profile: [{ ...row, time_s: -1 }, rows1[1]] })),
    [['profile[0].time_s', 'must be > 0, got -1']],
  ],
  [
    'PlanOffline: unknown instruction',
    () =>
      validatePlanOffline(
        offline({ profile: [{ ...row, instruction: 'INSTRUCTION_KIND_UNSPECIFIED' }, rows1[1]] }),
      ),
    [
      [
        'profile[0].instruction',
        'must be one of INSTRUCTION_KIND_FORWARD, INSTRUCTION_KIND_BACKWARD, got INSTRUCTION_KIND_UNSPECIFIED',
      ],
    ],
  ],
  [
    'PlanOffline: missing backward',
    () => validatePlanOffline(offline({ profile: [row] })),
    [['profile', 'stage 0 backward has no rows']],
  ],
  [
    'PlanOffline: duplicate row',
    () => validatePlanOffline(offline({ profile: [...rows1, row] })),
    [['profile[2].frequency_mhz', 'duplicate row for stage 0 forward at 1410 MHz']],
  ],
];

describe('validators name every bad field with its value', () => {
  test.each(cases)('%s', (_name, fn, expected) => {
    expect(violations(fn)).toEqual(expected);
  });
});

describe('valid requests become strict values with defaults filled in', () => {
  test('RegisterJob fills tau, K and stride', () => {
    const { jobId, spec } = validateRegisterJob(job({}));
    expect(jobId).toBe('j1');
    expect(spec).toEqual({
      pipeline: { schedule: '1f1b', numStages: 4, numMicrobatches: 8 },
      dpDegree: 2,
      tpDegree: 1,
      worldSize: 8,
      gpuModel: 'A100',
      unitTimeS: 0.001,
      blockingPowerW: 83.64,
      profiling: { iterationsPerFrequency: 3, floorFrequencyMhz: 0, frequencyStride: 1 },
    });
  });
  test('RegisterJob keeps an interleaved spec with its chunks', () => {
    const { spec } = validateRegisterJob(
      job({
        pipeline: {
          schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
          num_stages: 4,
          num_microbatches: 8,
          num_chunks: 2,
        },
      }),
    );
    expect(spec.pipeline).toEqual({
      schedule: 'interleaved',
      numStages: 4,
      numMicrobatches: 8,
      numChunks: 2,
    });
  });
  test('RegisterRank sorts clocks descending', () => {
    expect(
      validateRegisterRank({
        job_id: 'j',
        rank,
        node: 'n',
        device_index: 2,
        supported_frequencies_mhz: [1200, 1410, 1300],
      } as never).supportedFrequenciesMhz,
    ).toEqual([1410, 1300, 1200]);
  });
  test('PlanOffline builds a planner profile', () => {
    const v = validatePlanOffline(offline({}));
    expect(v.profile.stages).toEqual([
      {
        forward: [{ frequencyMhz: 1410, timeS: 0.01, energyJ: 2 }],
        backward: [{ frequencyMhz: 1410, timeS: 0.01, energyJ: 2 }],
      },
    ]);
    expect(v.unitTimeS).toBe(0.001);
  });
});
