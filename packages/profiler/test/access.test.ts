/**
 * Issue 13: the profiler had no auth (any local process could report for any job). With a token
 * file, every call needs a token with the method's scope, and report/control calls only for the
 * token's jobs — in-stream per batch for ReportMeasurements.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
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
import { createProfilerModule } from '../src/module';
import { syntheticMeasurements, toWire } from './helpers';

const logger = createLogger('test', 'silent');
const spec = {
  pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 1, num_microbatches: 1 },
  dp_degree: 1,
  tp_degree: 1,
  supported_frequencies_mhz: [],
};
const ms = syntheticMeasurements({
  dp: 1,
  stages: 1,
  tp: 1,
  iterations: 1,
  microbatches: 1,
  frequencyMhz: 1410,
}).map(toWire);

let dir: string;
let server: PerseusServer;
let address: string;
const clients: grpc.Client[] = [];

function client(
  secret?: string,
): InstanceType<ReturnType<typeof perseusGrpc>['perseus']['profiler']['v1']['Profiler']> {
  const bearer: grpc.Interceptor = (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${secret}`);
        next(metadata, listener);
      },
    });
  const c = new (perseusGrpc().perseus.profiler.v1.Profiler)(
    address,
    grpc.credentials.createInsecure(),
    secret === undefined ? {} : { interceptors: [bearer] },
  );
  clients.push(c);
  return c;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-profiler-access-'));
  const tokenFile = path.join(dir, 'tokens');
  fs.writeFileSync(
    tokenFile,
    'reader read r-secret-0123456789\nalice report,read a-secret-0123456789 jobs=alice\nops control,report,read o-secret-0123456789\n',
    { mode: 0o600 },
  );
  const mod = await createProfilerModule({
    logger,
    config: { dataDir: ':memory:', aggregateIntervalMs: 0, tokenFile },
    env: {},
  });
  server = new PerseusServer({ address: '127.0.0.1:0', logger });
  for (const s of mod.services) server.addService(s);
  server.onShutdown(() => mod.close());
  address = await server.start();
  await mod.onListening?.(address);
  await unaryCall(client('o-secret-0123456789'), 'RegisterJob', { job_id: 'victim', ...spec });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await server.shutdown(1000);
  fs.rmSync(dir, { recursive: true, force: true });
});

it('refuses calls without a known token', async () => {
  expect((await callFailure(unaryCall(client(), 'GetCoverage', { job_id: 'victim' }))).code).toBe(
    grpc.status.UNAUTHENTICATED,
  );
  expect(
    (
      await callFailure(
        unaryCall(client('x-secret-0123456789'), 'GetProfile', { job_id: 'victim' }),
      )
    ).code,
  ).toBe(grpc.status.UNAUTHENTICATED);
});

it('checks the scope and the job of the token', async () => {
  const reader = client('r-secret-0123456789');
  const alice = client('a-secret-0123456789');
  expect(
    (
      await unaryCall<profilerV1.GetCoverageResponse__Output>(reader, 'GetCoverage', {
        job_id: 'victim',
      })
    ).entries,
  ).toHaveLength(2);
  const iterations = [
    {
      rank: { rank: 0, dp_rank: 0, pp_rank: 0, tp_rank: 0 },
      iteration: '1',
      time_s: 1,
      energy_j: 1,
    },
  ];
  expect(
    (await callFailure(unaryCall(reader, 'ReportIterations', { job_id: 'victim', iterations })))
      .code,
  ).toBe(grpc.status.PERMISSION_DENIED);
  expect(
    (await callFailure(unaryCall(alice, 'ReportIterations', { job_id: 'victim', iterations })))
      .code,
  ).toBe(grpc.status.PERMISSION_DENIED);
  expect(await unaryCall(alice, 'RegisterJob', { job_id: 'alice', ...spec })).toEqual({
    created: true,
  });
  expect(
    (
      await callFailure(
        unaryCall(alice, 'ImportProfile', {
          job_id: 'alice',
          format: 'PROFILE_FORMAT_STAGE',
          csv: 'x',
        }),
      )
    ).code,
  ).toBe(grpc.status.PERMISSION_DENIED);
});

it('answers a batch for another job with an in-stream PERMISSION_DENIED and stores nothing', async () => {
  const alice = client('a-secret-0123456789');
  const acks = await streamExchange(alice.ReportMeasurements(), [
    { batch_id: 'b1', job_id: 'victim', measurements: ms },
    { batch_id: 'b2', job_id: 'alice', measurements: ms },
  ]);
  expect(acks.map((a) => [a.batch_id, a.stored_count, a.error?.code ?? 0])).toEqual([
    ['b1', 0, grpc.status.PERMISSION_DENIED],
    ['b2', 1, 0],
  ]);
});
