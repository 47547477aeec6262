import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { profilerV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';
import {
  PerseusServer,
  callFailure,
  createLogger,
  streamExchange,
  unaryCall,
} from '@perseus/service-kit';
import type { ProfilerModule } from '../src/module';
import { createProfilerModule } from '../src/module';
import { syntheticMeasurements, toWire } from './helpers';
import { REFERENCE_PROFILE_DIR } from '@perseus/service-kit';

const logger = createLogger('test', 'silent');
type Client = InstanceType<ReturnType<typeof perseusGrpc>['perseus']['profiler']['v1']['Profiler']>;

let server: PerseusServer;
let mod: ProfilerModule;
let client: Client;

function unary<Req, Res>(method: string, req: Req): Promise<Res> {
  return unaryCall<Res, Req>(client, method, req);
}
const failure = callFailure;

/** Sends `batches` on one stream and collects the acks. */
function stream(batches: unknown[]): Promise<profilerV1.BatchAck__Output[]> {
  return streamExchange(client.ReportMeasurements(), batches as profilerV1.MeasurementBatch[]);
}

const spec = {
  pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 2, num_microbatches: 4 },
  dp_degree: 2,
  tp_degree: 2,
  supported_frequencies_mhz: [1410, 1395],
};
const ms = syntheticMeasurements({
  dp: 2,
  stages: 2,
  tp: 2,
  iterations: 10,
  microbatches: 4,
  frequencyMhz: 1410,
}).map(toWire);

// Every test gets a fresh server and store: no test depends on another one's data or order.
beforeEach(async () => {
  mod = await createProfilerModule({
    logger,
    config: { dataDir: ':memory:', metricsListen: '127.0.0.1:0', aggregateIntervalMs: 0 },
    env: {},
  });
  server = new PerseusServer({ address: '127.0.0.1:0', logger });
  for (const s of mod.services) server.addService(s);
  server.onShutdown(() => mod.close());
  const address = await server.start();
  await mod.onListening?.(address);
  client = new (perseusGrpc().perseus.profiler.v1.Profiler)(
    address,
    grpc.credentials.createInsecure(),
  );
});

afterEach(async () => {
  client.close();
  await server.shutdown(1000);
});

/** Job g1 registered, and with `measured` every synthetic measurement stored. */
async function jobG1(measured: boolean): Promise<void> {
  expect(await unary('RegisterJob', { job_id: 'g1', ...spec })).toEqual({ created: true });
  if (measured) {
    const acks = await stream([{ batch_id: 'all', job_id: 'g1', measurements: ms }]);
    expect(acks.map((a) => a.stored_count)).toEqual([ms.length]);
  }
}

/** Good, bad and duplicate batches of g1 on one stream (job registered first); the acks. */
async function mixedStream(): Promise<profilerV1.BatchAck__Output[]> {
  await jobG1(false);
  const good1 = { batch_id: 'r1', job_id: 'g1', measurements: ms.slice(0, 100) };
  const nan = {
    batch_id: 'r2',
    job_id: 'g1',
    measurements: [...ms.slice(100, 110), { ...ms[110], time_s: NaN }],
  };
  const unknownJob = { batch_id: 'r3', job_id: 'nope', measurements: ms.slice(100, 110) };
  const outOfRange = {
    batch_id: 'r4',
    job_id: 'g1',
    measurements: [ms[100], { ...ms[101], rank: { rank: 1, dp_rank: 0, pp_rank: 2, tp_rank: 1 } }],
  };
  const badClock = {
    batch_id: 'r5',
    job_id: 'g1',
    measurements: [{ ...ms[100], frequency_mhz: 1000 }],
  };
  const negEnergy = {
    batch_id: 'r6',
    job_id: 'g1',
    measurements: [{ ...ms[100], energy_j: -1 }],
  };
  const inf = { batch_id: 'r7', job_id: 'g1', measurements: [{ ...ms[100], time_s: Infinity }] };
  const empty = { batch_id: 'r8', job_id: 'g1', measurements: [] };
  const oversize = { batch_id: 'r9', job_id: 'g1', measurements: new Array(10_001).fill(ms[0]) };
  const rest = { batch_id: 'r10', job_id: 'g1', measurements: ms.slice(100) };
  return stream([
    good1,
    nan,
    unknownJob,
    outOfRange,
    badClock,
    negEnergy,
    inf,
    empty,
    oversize,
    rest,
    good1,
  ]);
}

describe('RegisterJob', () => {
  it('creates, is idempotent, and refuses a different spec', async () => {
    await jobG1(false);
    expect(await unary('RegisterJob', { job_id: 'g1', ...spec })).toEqual({ created: false });
    expect(
      (await failure(unary('RegisterJob', { job_id: 'g1', ...spec, dp_degree: 4 }))).code,
    ).toBe(grpc.status.FAILED_PRECONDITION);
  });
  it('names the invalid field', async () => {
    expect(await failure(unary('RegisterJob', { job_id: 'g2', ...spec, tp_degree: 0 }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      fields: ['tp_degree: must be ≥ 1, got 0'],
    });
  });
});

describe('ReportMeasurements', () => {
  it('acks each batch after commit; bad batches get in-stream errors and store nothing; the stream goes on', async () => {
    const acks = await mixedStream();
    const brief = acks.map((a) => [
      a.batch_id,
      a.stored_count,
      a.duplicate,
      a.error?.code ?? 0,
      a.error?.violations.map((v) => `${v.field}: ${v.description}`) ?? [],
    ]);
    expect(brief).toEqual([
      ['r1', 100, false, 0, []],
      ['r2', 0, false, 3, ['measurements[10].time_s: must be a finite number, got NaN']],
      ['r3', 0, false, 5, []],
      ['r4', 0, false, 3, ['measurements[1].rank.pp_rank: must be < num_stages 2, got 2']],
      [
        'r5',
        0,
        false,
        3,
        ['measurements[0].frequency_mhz: 1000 is not a supported clock of job g1'],
      ],
      ['r6', 0, false, 3, ['measurements[0].energy_j: must be ≥ 0, got -1']],
      ['r7', 0, false, 3, ['measurements[0].time_s: must be a finite number, got Infinity']],
      ['r8', 0, false, 3, ['measurements: must not be empty']],
      ['r9', 0, false, 3, ['measurements: must have at most 10000 entries, got 10001']],
      ['r10', ms.length - 100, false, 0, []],
      ['r1', 0, true, 0, []],
    ]);
    expect(acks[2]!.error!.message).toBe('job nope is not registered with the profiler');
    const profile = await unary<unknown, profilerV1.GetProfileResponse__Output>('GetProfile', {
      job_id: 'g1',
      min_count: 0,
    });
    expect(
      profile.cells.map((c) => [
        c.stage,
        c.instruction,
        c.frequency_mhz,
        c.count,
        c.raw_count,
        c.energy_robust_j,
      ]),
    ).toEqual([
      [0, 'INSTRUCTION_KIND_FORWARD', 1410, 72, 80, 40],
      [1, 'INSTRUCTION_KIND_FORWARD', 1410, 72, 80, 40],
    ]);
    expect(profile.cells[0]!.time_robust_s).toBeCloseTo(0.05, 12);
    const pipe = await unary<unknown, profilerV1.GetProfileResponse__Output>('GetProfile', {
      job_id: 'g1',
      min_count: 0,
      dp_rank: 1,
    });
    expect(pipe.cells.map((c) => c.count)).toEqual([36, 36]);
  });

  it('exposes ingest counters, rows and lag in Prometheus text format', async () => {
    await mixedStream();
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(`http://${mod.metricsAddress()}/metrics`, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    expect(body).toContain(`perseus_profiler_measurements_stored_total ${ms.length}`);
    expect(body).toContain(`perseus_profiler_raw_rows ${ms.length}`);
    expect(body).toContain('perseus_profiler_batches_total{result="stored"} 2');
    expect(body).toContain('perseus_profiler_batches_total{result="duplicate"} 1');
    expect(body).toContain('perseus_profiler_batches_total{result="rejected"} 8');
    expect(body).toContain('perseus_profiler_commit_lag_seconds_count 3');
    expect(body).toContain('# TYPE perseus_profiler_aggregation_lag_seconds gauge');
  });
});

describe('ReportIterations', () => {
  const it0 = {
    rank: { rank: 0, dp_rank: 0, pp_rank: 0, tp_rank: 0 },
    iteration: '5',
    time_s: 2.8,
    energy_j: 7339,
  };
  beforeEach(() => jobG1(false));
  it('stores new records once', async () => {
    expect(
      await unary('ReportIterations', {
        job_id: 'g1',
        iterations: [it0, { ...it0, iteration: '6' }],
      }),
    ).toEqual({ stored_count: 2 });
    expect(await unary('ReportIterations', { job_id: 'g1', iterations: [it0] })).toEqual({
      stored_count: 0,
    });
  });
  it.each([
    [
      { job_id: 'g1', iterations: [{ ...it0, time_s: -1 }] },
      grpc.status.INVALID_ARGUMENT,
      ['iterations[0].time_s: must be > 0, got -1'],
    ],
    [
      { job_id: 'g1', iterations: [{ ...it0, rank: { ...it0.rank, dp_rank: 2 } }] },
      grpc.status.INVALID_ARGUMENT,
      ['iterations[0].rank.dp_rank: must be < dp_degree 2, got 2'],
    ],
    [{ job_id: 'nope', iterations: [it0] }, grpc.status.NOT_FOUND, []],
  ])('%j → %i', async (req, code, fields) => {
    expect(await failure(unary('ReportIterations', req))).toEqual({ code, fields });
  });
});

describe('queries', () => {
  beforeEach(() => jobG1(true));
  it.each([
    ['GetProfile', { job_id: '' }, grpc.status.INVALID_ARGUMENT, ['job_id: is required']],
    [
      'GetProfile',
      { job_id: 'g1', dp_rank: 2 },
      grpc.status.INVALID_ARGUMENT,
      ['dp_rank: must be < dp_degree 2, got 2'],
    ],
    ['GetProfile', { job_id: 'nope' }, grpc.status.NOT_FOUND, []],
    [
      'GetCoverage',
      { job_id: 'a/b' },
      grpc.status.INVALID_ARGUMENT,
      ['job_id: must match [A-Za-z0-9._-]{1,128}, got "a/b"'],
    ],
    ['GetCoverage', { job_id: 'nope' }, grpc.status.NOT_FOUND, []],
    [
      'ExportProfile',
      { job_id: 'g1' },
      grpc.status.INVALID_ARGUMENT,
      [
        'format: must be one of PROFILE_FORMAT_STAGE, PROFILE_FORMAT_RANK, got PROFILE_FORMAT_UNSPECIFIED',
      ],
    ],
    [
      'ExportProfile',
      { job_id: 'nope', format: 'PROFILE_FORMAT_STAGE' },
      grpc.status.NOT_FOUND,
      [],
    ],
    [
      'ImportProfile',
      {
        job_id: 'i1',
        format: 'PROFILE_FORMAT_STAGE',
        csv: 'stage,instruction,frequency,time,energy\n0,forward,1410,1,-2\n',
      },
      grpc.status.INVALID_ARGUMENT,
      ['csv: line 2: energy must be ≥ 0, got -2'],
    ],
  ])('%s %j → %i', async (method, req, code, fields) => {
    expect(await failure(unary(method, req))).toEqual({ code, fields });
  });

  it('coverage of the measured job', async () => {
    const cov = await unary<unknown, profilerV1.GetCoverageResponse__Output>('GetCoverage', {
      job_id: 'g1',
      min_count: 0,
    });
    expect(cov.complete).toBe(false);
    expect(cov.entries[0]).toEqual({
      stage: 0,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      covered_frequencies_mhz: [1410],
      missing_frequencies_mhz: [1395],
    });
  });
});

describe('interleaved 1F1B', () => {
  // 2 GPUs × 2 chunks: chunk c of pp_rank r is virtual stage c·2 + r. Each measurement's time
  // names its virtual stage, so a cell filed under the wrong stage shows.
  const shape = {
    pipeline: {
      schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
      num_stages: 2,
      num_microbatches: 2,
      num_chunks: 2,
    },
    dp_degree: 1,
    tp_degree: 1,
    supported_frequencies_mhz: [1410],
  };
  const measurement = (ppRank: number, chunk: number, mb: number, iteration: number) => ({
    rank: { rank: ppRank, dp_rank: 0, pp_rank: ppRank, tp_rank: 0 },
    instruction: 'INSTRUCTION_KIND_FORWARD',
    microbatch: mb,
    chunk,
    frequency_mhz: 1410,
    time_s: 0.01 * (1 + chunk * 2 + ppRank),
    energy_j: 1 + chunk * 2 + ppRank,
    iteration: String(iteration),
  });

  it('files each chunk under its virtual stage and covers N·V stages', async () => {
    await unary('RegisterJob', { job_id: 'v1', ...shape });
    const all = [];
    for (let it = 0; it < 4; it++)
      for (let r = 0; r < 2; r++)
        for (let c = 0; c < 2; c++)
          for (let mb = 0; mb < 2; mb++) all.push(measurement(r, c, mb, it));
    const acks = await stream([{ batch_id: 'v', job_id: 'v1', measurements: all }]);
    expect(acks.map((a) => a.stored_count)).toEqual([all.length]);
    const profile = await unary<unknown, profilerV1.GetProfileResponse__Output>('GetProfile', {
      job_id: 'v1',
    });
    expect(profile.cells.map((c) => [c.stage, c.energy_mean_j])).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
    ]);
    const cov = await unary<unknown, profilerV1.GetCoverageResponse__Output>('GetCoverage', {
      job_id: 'v1',
      min_count: 1,
    });
    expect(cov.entries.map((e) => `${e.stage}/${e.instruction}`)).toHaveLength(8);
    expect(cov.entries.filter((e) => e.covered_frequencies_mhz.length > 0)).toHaveLength(4);
    const csv = await unary<unknown, profilerV1.ExportProfileResponse__Output>('ExportProfile', {
      job_id: 'v1',
      format: 'PROFILE_FORMAT_RANK',
    });
    // Rank level: virtual stage 3 is chunk 1 of pp_rank 1.
    expect(csv.csv.split('\n').filter((l) => l.includes(',3,forward,'))).toEqual([
      expect.stringMatching(/^1,0,1,0,3,forward,1410,/),
    ]);
  });

  it('refuses a chunk the job does not have, storing nothing of the batch', async () => {
    await unary('RegisterJob', { job_id: 'v2', ...shape });
    const acks = await stream([
      {
        batch_id: 'x',
        job_id: 'v2',
        measurements: [measurement(0, 0, 0, 0), measurement(1, 2, 0, 0)],
      },
    ]);
    expect(acks).toHaveLength(1);
    expect(acks[0]!.stored_count).toBe(0);
    expect(acks[0]!.error?.violations).toEqual([
      { field: 'measurements[1].chunk', description: 'must be < num_chunks 2, got 2' },
    ]);
  });

  it('refuses an interleaved spec whose microbatches are not a multiple of the GPUs', async () => {
    expect(
      await failure(
        unary('RegisterJob', {
          job_id: 'v3',
          ...shape,
          pipeline: { ...shape.pipeline, num_microbatches: 3 },
        }),
      ),
    ).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      fields: [
        'pipeline.num_microbatches: must be a multiple of num_stages (2) for interleaved 1F1B, got 3',
      ],
    });
  });
});

describe('ImportProfile / ExportProfile', () => {
  it.each(['gpt3-175b+a100_sxm_bf16.csv', 'gpt3-175b+a40_bf16.csv'])(
    '%s round-trips through the service',
    async (file) => {
      const csv = fs.readFileSync(path.join(REFERENCE_PROFILE_DIR, file), 'utf8');
      const jobId = file.replace(/[^A-Za-z0-9._-]/g, '_');
      const rows = csv.trim().split('\n').length - 1;
      expect(
        await unary('ImportProfile', { job_id: jobId, format: 'PROFILE_FORMAT_STAGE', csv }),
      ).toEqual({ row_count: rows });
      const out = await unary<unknown, profilerV1.ExportProfileResponse__Output>('ExportProfile', {
        job_id: jobId,
        format: 'PROFILE_FORMAT_STAGE',
      });
      expect(out.csv).toBe(`${csv.replace(/\r\n/g, '\n').trimEnd()}\n`);
      const profile = await unary<unknown, profilerV1.GetProfileResponse__Output>('GetProfile', {
        job_id: jobId,
        min_count: 1000,
      });
      expect(profile.cells).toHaveLength(rows);
      const cov = await unary<unknown, profilerV1.GetCoverageResponse__Output>('GetCoverage', {
        job_id: jobId,
      });
      expect(cov.complete).toBe(true);
      expect(cov.entries).toHaveLength(16);
    },
  );

  it('a100 stage 0 forward at 1410 MHz keeps the artifact numbers', async () => {
    const file = 'gpt3-175b+a100_sxm_bf16.csv';
    const csv = fs.readFileSync(path.join(REFERENCE_PROFILE_DIR, file), 'utf8');
    await unary('ImportProfile', {
      job_id: 'gpt3-175b_a100_sxm_bf16.csv',
      format: 'PROFILE_FORMAT_STAGE',
      csv,
    });
    const profile = await unary<unknown, profilerV1.GetProfileResponse__Output>('GetProfile', {
      job_id: 'gpt3-175b_a100_sxm_bf16.csv',
    });
    expect(profile.cells[0]).toMatchObject({
      stage: 0,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      frequency_mhz: 1410,
      time_robust_s: 0.05016166687011708,
      energy_robust_j: 23.80547200000007,
    });
  });

  it('rank-level import combines TP ranks (time max, energy sum) and exports back', async () => {
    const csv =
      'rank,dp_rank,pp_rank,tp_rank,stage,instruction,frequency,time,energy\n' +
      '0,0,0,0,0,forward,1410,0.05,20\n1,0,0,1,0,forward,1410,0.06,22\n' +
      '2,1,0,0,0,forward,1410,0.07,21\n3,1,0,1,0,forward,1410,0.05,19\n';
    expect(
      await unary('ImportProfile', { job_id: 'rk', format: 'PROFILE_FORMAT_RANK', csv }),
    ).toEqual({ row_count: 4 });
    const pooled = await unary<unknown, profilerV1.GetProfileResponse__Output>('GetProfile', {
      job_id: 'rk',
    });
    expect(pooled.cells).toHaveLength(1);
    expect(pooled.cells[0]!.time_robust_s).toBeCloseTo(0.065, 12);
    expect(pooled.cells[0]!.energy_robust_j).toBeCloseTo(41, 12);
    const pipe1 = await unary<unknown, profilerV1.GetProfileResponse__Output>('GetProfile', {
      job_id: 'rk',
      dp_rank: 1,
    });
    expect(pipe1.cells[0]).toMatchObject({ time_robust_s: 0.07, energy_robust_j: 40 });
    const out = await unary<unknown, profilerV1.ExportProfileResponse__Output>('ExportProfile', {
      job_id: 'rk',
      format: 'PROFILE_FORMAT_RANK',
    });
    expect(out.csv).toBe(csv);
    const stage = await unary<unknown, profilerV1.ExportProfileResponse__Output>('ExportProfile', {
      job_id: 'rk',
      format: 'PROFILE_FORMAT_STAGE',
    });
    expect(stage.csv).toBe('stage,instruction,frequency,time,energy\n0,forward,1410,0.065,20.5\n');
  });

  it('exports measured profiles at both levels', async () => {
    await jobG1(true);
    const stage = await unary<unknown, profilerV1.ExportProfileResponse__Output>('ExportProfile', {
      job_id: 'g1',
      format: 'PROFILE_FORMAT_STAGE',
    });
    expect(stage.csv).toBe(
      `stage,instruction,frequency,time,energy\n0,forward,1410,0.05,20\n1,forward,1410,${0.05 * 1.1},20\n`,
    );
    const rank = await unary<unknown, profilerV1.ExportProfileResponse__Output>('ExportProfile', {
      job_id: 'g1',
      format: 'PROFILE_FORMAT_RANK',
    });
    const lines = rank.csv.trim().split('\n');
    expect(lines).toHaveLength(1 + 8);
    expect(lines[1]).toBe('0,0,0,0,0,forward,1410,0.05,20');
    expect(lines[8]).toBe(`7,1,1,1,1,forward,1410,${0.05 * 1.1},20`);
  });
});
