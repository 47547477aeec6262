import type { agentV1 } from '@perseus/proto';
import { thrownViolations as violations } from '@perseus/service-kit';
import type { DeviceInfo } from '../src';
import {
  validateBegin,
  validateEnd,
  validateOpenSession,
  validateReadEnergy,
  validateResetClocks,
  validateSessionRequest,
  validateSetClocks,
} from '../src';

const device: DeviceInfo = {
  index: 0,
  uuid: 'GPU-0',
  pciBusId: '00000000:00:00.0',
  name: 'test',
  supportedSmClocksMhz: [1410, 1395, 1380, 990, 975],
  supportedMemoryClocksMhz: [1215],
  energyCounterAvailable: true,
  defaultPowerLimitW: 400,
  powerLimitRangeW: [100, 400],
};
const devices = [device, { ...device, index: 1 }];

const rank = { rank: 0, dp_rank: 0, pp_rank: 0, tp_rank: 0 };
const open = (o: Partial<agentV1.OpenSession__Output>): agentV1.OpenSession__Output => ({
  job_id: 'j',
  rank,
  device_index: 0,
  lease_ttl_s: 0,
  num_stages: 0,
  ...o,
});
const begin = (b: Partial<agentV1.Begin__Output>): agentV1.Begin__Output => ({
  seq: '1',
  instruction: 'INSTRUCTION_KIND_FORWARD',
  microbatch: 0,
  frequency_mhz: 1410,
  t_ns: '1000',
  chunk: 0,
  ...b,
});

test.each<[string, () => unknown, Array<[string, string]>]>([
  ['open missing', () => validateOpenSession(null), [['open', 'is required']]],
  [
    'job_id empty',
    () => validateOpenSession(open({ job_id: '' })),
    [['open.job_id', 'is required']],
  ],
  [
    'job_id bad chars',
    () => validateOpenSession(open({ job_id: 'a b' })),
    [['open.job_id', 'must match [A-Za-z0-9._-]{1,128}, got "a b"']],
  ],
  [
    'job_id too long',
    () => validateOpenSession(open({ job_id: 'x'.repeat(129) })),
    [['open.job_id', 'must have at most 128 characters, got 129']],
  ],
  ['rank missing', () => validateOpenSession(open({ rank: null })), [['open.rank', 'is required']]],
  [
    'rank.pp_rank not integer',
    () => validateOpenSession(open({ rank: { ...rank, pp_rank: 1.5 } })),
    [['open.rank.pp_rank', 'must be an integer, got 1.5']],
  ],
  [
    'device_index unknown',
    () => validateOpenSession(open({ device_index: 7 }), devices),
    [['open.device_index', 'no device 7 on this node (it has 2: 0-1)']],
  ],
  [
    'lease_ttl_s negative',
    () => validateOpenSession(open({ lease_ttl_s: -1 })),
    [['open.lease_ttl_s', 'must be ≥ 0, got -1']],
  ],
  [
    'lease_ttl_s NaN',
    () => validateOpenSession(open({ lease_ttl_s: Number.NaN })),
    [['open.lease_ttl_s', 'must be a finite number, got NaN']],
  ],
  [
    'lease_ttl_s huge',
    () => validateOpenSession(open({ lease_ttl_s: 1e9 })),
    [['open.lease_ttl_s', 'must be ≤ 86400, got 1000000000']],
  ],
  ['begin missing', () => validateBegin(null), [['begin', 'is required']]],
  [
    'begin.seq zero',
    () => validateBegin(begin({ seq: '0' })),
    [['begin.seq', 'must be ≥ 1, got 0']],
  ],
  [
    'begin.seq beyond 2^53',
    () => validateBegin(begin({ seq: '18446744073709551615' })),
    [['begin.seq', 'must be an integer below 2^53, got 18446744073709551615']],
  ],
  [
    'begin.instruction unspecified',
    () => validateBegin(begin({ instruction: 'INSTRUCTION_KIND_UNSPECIFIED' })),
    [
      [
        'begin.instruction',
        'must be one of INSTRUCTION_KIND_FORWARD, INSTRUCTION_KIND_BACKWARD, got INSTRUCTION_KIND_UNSPECIFIED',
      ],
    ],
  ],
  [
    'begin.frequency_mhz unsupported',
    () => validateBegin(begin({ frequency_mhz: 1000 }), device),
    [
      [
        'begin.frequency_mhz',
        '1000 MHz is not a supported SM clock of device 0; nearest supported: 990, 1380 MHz',
      ],
    ],
  ],
  [
    'begin.frequency_mhz above max',
    () => validateBegin(begin({ frequency_mhz: 5000 }), device),
    [
      [
        'begin.frequency_mhz',
        '5000 MHz is not a supported SM clock of device 0; nearest supported: 1410 MHz',
      ],
    ],
  ],
  [
    'begin.t_ns zero',
    () => validateBegin(begin({ t_ns: '0' })),
    [['begin.t_ns', 'must be 1 .. 2^62-1 ns (client CLOCK_MONOTONIC), got 0']],
  ],
  [
    'begin.t_ns negative',
    () => validateBegin(begin({ t_ns: '-5' })),
    [['begin.t_ns', 'must be 1 .. 2^62-1 ns (client CLOCK_MONOTONIC), got -5']],
  ],
  [
    'begin: several fields at once',
    () => validateBegin(begin({ seq: '0', instruction: 'INSTRUCTION_KIND_UNSPECIFIED' })),
    [
      ['begin.seq', 'must be ≥ 1, got 0'],
      [
        'begin.instruction',
        'must be one of INSTRUCTION_KIND_FORWARD, INSTRUCTION_KIND_BACKWARD, got INSTRUCTION_KIND_UNSPECIFIED',
      ],
    ],
  ],
  ['end missing', () => validateEnd(undefined), [['end', 'is required']]],
  ['end.seq zero', () => validateEnd({ seq: '0', t_ns: '5' }), [['end.seq', 'must be ≥ 1, got 0']]],
  [
    'end.t_ns zero',
    () => validateEnd({ seq: '1', t_ns: '0' }),
    [['end.t_ns', 'must be 1 .. 2^62-1 ns (client CLOCK_MONOTONIC), got 0']],
  ],
  [
    'event missing',
    () => validateSessionRequest({}, { first: false }),
    [['event', 'is required: one of open, begin, end, heartbeat']],
  ],
  [
    'first message not open',
    () => validateSessionRequest({ event: 'begin', begin: begin({}) }, { first: true }),
    [['open', 'is required as the first message of a session, got begin']],
  ],
  [
    'open twice',
    () => validateSessionRequest({ event: 'open', open: open({}) }, { first: false }),
    [['open', 'is allowed only as the first message of a session']],
  ],
  [
    'SetClocks lease_id missing',
    () => validateSetClocks({ lease_id: '', device_index: 0, sm_clock_mhz: 1410 }),
    [['lease_id', 'is required']],
  ],
  [
    'SetClocks lease_id bad',
    () => validateSetClocks({ lease_id: 'a;b', device_index: 0, sm_clock_mhz: 1410 }),
    [['lease_id', 'must match [A-Za-z0-9-]{1,64}, got "a;b"']],
  ],
  [
    'SetClocks sm_clock_mhz zero',
    () => validateSetClocks({ lease_id: 'l', device_index: 0, sm_clock_mhz: 0 }),
    [['sm_clock_mhz', 'must be ≥ 1, got 0']],
  ],
  [
    'SetClocks sm_clock_mhz unsupported',
    () => validateSetClocks({ lease_id: 'l', device_index: 1, sm_clock_mhz: 1400 }, devices),
    [
      [
        'sm_clock_mhz',
        '1400 MHz is not a supported SM clock of device 1; nearest supported: 1395, 1410 MHz',
      ],
    ],
  ],
  [
    'SetClocks device_index unknown',
    () => validateSetClocks({ lease_id: 'l', device_index: 2, sm_clock_mhz: 1410 }, devices),
    [['device_index', 'no device 2 on this node (it has 2: 0-1)']],
  ],
  [
    'ResetClocks lease_id missing',
    () => validateResetClocks({ lease_id: '', device_index: 0 }),
    [['lease_id', 'is required']],
  ],
  [
    'ResetClocks device_index unknown',
    () => validateResetClocks({ lease_id: 'l', device_index: 9 }, devices),
    [['device_index', 'no device 9 on this node (it has 2: 0-1)']],
  ],
  [
    'ReadEnergy device_index unknown',
    () => validateReadEnergy({ device_index: 3 }, devices),
    [['device_index', 'no device 3 on this node (it has 2: 0-1)']],
  ],
])('%s', (_name, fn, expected) => {
  expect(violations(fn)).toEqual(expected);
});

test('valid inputs become strict values', () => {
  expect(
    validateOpenSession(
      open({
        job_id: 'job-1',
        lease_ttl_s: 5,
        device_index: 1,
        rank: { rank: 9, dp_rank: 1, pp_rank: 2, tp_rank: 3 },
      }),
      devices,
    ),
  ).toEqual({
    jobId: 'job-1',
    rank: { rank: 9, dpRank: 1, ppRank: 2, tpRank: 3 },
    deviceIndex: 1,
    leaseTtlS: 5,
    numStages: 0,
  });
  expect(
    validateBegin(begin({ seq: '7', frequency_mhz: 0, t_ns: '123456789012345678' }), device),
  ).toEqual({
    seq: 7,
    instruction: 'forward',
    microbatch: 0,
    frequencyMhz: 0,
    tNs: 123456789012345678n,
    chunk: 0,
  });
  expect(validateEnd({ seq: '7', t_ns: '9' })).toEqual({ seq: 7, tNs: 9n });
  expect(
    validateSetClocks({ lease_id: 'abc-1', device_index: 0, sm_clock_mhz: 975 }, devices),
  ).toEqual({ leaseId: 'abc-1', deviceIndex: 0, smClockMhz: 975 });
  expect(validateReadEnergy({ device_index: 1 }, devices)).toEqual({ deviceIndex: 1 });
});
