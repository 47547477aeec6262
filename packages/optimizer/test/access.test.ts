/**
 * Issue 13: any local process could SetPolicy or report a straggler on another job. With a token
 * file, each RPC needs its scope (read / report / control) and report/control calls only for the
 * token's jobs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import { callFailure, unaryCall } from '@perseus/service-kit';
import type { Harness } from './helpers';
import { jobRequest, startOptimizer } from './helpers';

let dir: string;
let h: Harness;
const clients: grpc.Client[] = [];

function client(secret?: string): grpc.Client {
  const bearer: grpc.Interceptor = (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${secret}`);
        next(metadata, listener);
      },
    });
  const c = new (perseusGrpc().perseus.optimizer.v1.Optimizer)(
    h.address,
    grpc.credentials.createInsecure(),
    secret === undefined ? {} : { interceptors: [bearer] },
  );
  clients.push(c);
  return c;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-optimizer-access-'));
  const tokenFile = path.join(dir, 'tokens');
  fs.writeFileSync(
    tokenFile,
    'viewer read v-secret-0123456789\nattacker report,control,read x-secret-0123456789 jobs=mine\nvictim report,control,read y-secret-0123456789 jobs=victim\n',
    { mode: 0o600 },
  );
  h = await startOptimizer({ tokenFile });
  await unaryCall(client('y-secret-0123456789'), 'RegisterJob', jobRequest('victim'));
});

afterAll(async () => {
  for (const c of clients) c.close();
  await h.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('refuses calls without a token', async () => {
  expect((await callFailure(unaryCall(client(), 'GetJobStatus', { job_id: 'victim' }))).code).toBe(
    grpc.status.UNAUTHENTICATED,
  );
});

it('another job’s token may not set the victim’s policy or report a straggler on it', async () => {
  const attacker = client('x-secret-0123456789');
  expect(
    (
      await callFailure(
        unaryCall(attacker, 'SetPolicy', {
          job_id: 'victim',
          policy: { max_slowdown_percent: 50 },
        }),
      )
    ).code,
  ).toBe(grpc.status.PERMISSION_DENIED);
  expect(
    (
      await callFailure(
        unaryCall(attacker, 'ReportStraggler', { job_id: 'victim', dp_rank: 0, slowdown: 1000 }),
      )
    ).code,
  ).toBe(grpc.status.PERMISSION_DENIED);
  // A read-only token reads, and nothing more.
  const viewer = client('v-secret-0123456789');
  await expect(unaryCall(viewer, 'GetJobStatus', { job_id: 'victim' })).resolves.toBeDefined();
  expect((await callFailure(unaryCall(viewer, 'RegisterJob', jobRequest('v2')))).code).toBe(
    grpc.status.PERMISSION_DENIED,
  );
});
