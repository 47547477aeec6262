import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { GPT3_A100_CSV as CSV, unaryCall } from '@perseus/service-kit';
import { startServeProcess } from './support/serve-process';

const CLOCKS = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i);

type Client = InstanceType<
  ReturnType<typeof perseusGrpc>['perseus']['optimizer']['v1']['Optimizer']
>;

const startOptimizer = (args: string[]): ReturnType<typeof startServeProcess> =>
  startServeProcess(['serve', 'optimizer', ...args]);
const unary = <Res>(client: Client, method: string, req: unknown): Promise<Res> =>
  unaryCall<Res>(client, method, req, { deadlineMs: 20_000 });

/** First schedule of a watch satisfying `pred`; cancels the stream. */
function watchUntil(
  client: Client,
  rank: number,
  pred: (s: optimizerV1.Schedule__Output) => boolean,
  knownVersion = 0,
): Promise<optimizerV1.Schedule__Output> {
  return new Promise((resolve, reject) => {
    const stream = client.WatchSchedule(
      { job_id: 'gpt3', rank, known_version: String(knownVersion) },
      { deadline: Date.now() + 30_000 },
    );
    stream.on('data', (s: optimizerV1.Schedule__Output) => {
      if (pred(s)) {
        resolve(s);
        stream.cancel();
      }
    });
    stream.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) reject(e);
    });
  });
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

describe('perseus serve optimizer', () => {
  let dir: string;
  const children: ChildProcessWithoutNullStreams[] = [];
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-serve-opt-'));
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('survives SIGKILL: jobs, frontier, stragglers, plans and versions come back; watchers get the same version', async () => {
    const dataDir = path.join(dir, 'data');
    const metricsPort = await freePort();
    const first = await startOptimizer([
      '--optimizer-data-dir',
      dataDir,
      '--optimizer-profile-csv',
      CSV,
      '--optimizer-metrics-listen',
      `127.0.0.1:${metricsPort}`,
    ]);
    children.push(first.child);
    const Ctor = perseusGrpc().perseus.optimizer.v1.Optimizer;
    const c1 = new Ctor(first.address, grpc.credentials.createInsecure());
    await unary(c1, 'RegisterJob', {
      job_id: 'gpt3',
      spec: {
        pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 8, num_microbatches: 4 },
        dp_degree: 2,
        tp_degree: 1,
        world_size: 16,
        gpu_model: 'A100-SXM4',
        blocking_power_w: 83.64,
      },
    });
    for (let r = 0; r < 16; r++) {
      await unary(c1, 'RegisterRank', {
        job_id: 'gpt3',
        rank: { rank: r, dp_rank: Math.floor(r / 8), pp_rank: r % 8, tp_rank: 0 },
        node: 'n0',
        device_index: r % 8,
        supported_frequencies_mhz: CLOCKS,
      });
    }
    await watchUntil(c1, 3, (s) => s.phase === 'PHASE_DEPLOYED');
    const rep = await unary<optimizerV1.ReportStragglerResponse__Output>(c1, 'ReportStraggler', {
      job_id: 'gpt3',
      dp_rank: 1,
      slowdown: 1.15,
    });
    const before = await watchUntil(c1, 3, (s) => s.version === rep.schedule_version);
    expect(before.reason).toMatch(/^straggler dp=1 /);
    expect(before.instructions).toHaveLength(8);
    const frontierBefore = await unary<optimizerV1.GetFrontierResponse__Output>(c1, 'GetFrontier', {
      job_id: 'gpt3',
    });
    const statusBefore = await unary<optimizerV1.GetJobStatusResponse__Output>(c1, 'GetJobStatus', {
      job_id: 'gpt3',
    });
    const metrics = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics).toContain('perseus_optimizer_job_phase{job_id="gpt3",phase="DEPLOYED"} 1');
    expect(metrics).toContain(
      `perseus_optimizer_schedule_version{job_id="gpt3"} ${statusBefore.schedule_version}`,
    );
    // A watcher open across the crash.
    const open = c1.WatchSchedule({ job_id: 'gpt3', rank: 3, known_version: '0' });
    const ended = new Promise<grpc.status>((resolve) =>
      open.on('error', (e: grpc.ServiceError) => resolve(e.code)),
    );
    open.on('data', () => undefined);

    first.child.kill('SIGKILL');
    expect(await ended).toBe(grpc.status.UNAVAILABLE);
    c1.close();

    // Restart with only the data dir (no CSV): everything comes from the store.
    const second = await startOptimizer(['--optimizer-data-dir', dataDir]);
    children.push(second.child);
    const c2 = new Ctor(second.address, grpc.credentials.createInsecure());
    try {
      const again = await watchUntil(c2, 3, () => true, Number(before.version));
      expect(again).toEqual(before);
      expect(await unary(c2, 'GetFrontier', { job_id: 'gpt3' })).toEqual(frontierBefore);
      expect(await unary(c2, 'GetJobStatus', { job_id: 'gpt3' })).toEqual(statusBefore);
      const reReg = await unary<optimizerV1.RegisterRankResponse__Output>(c2, 'RegisterRank', {
        job_id: 'gpt3',
        rank: { rank: 3, dp_rank: 0, pp_rank: 3, tp_rank: 0 },
        node: 'n0',
        device_index: 3,
        supported_frequencies_mhz: CLOCKS,
      });
      expect(reReg).toMatchObject({ created: false, registered_ranks: 16, generation: '1' });
    } finally {
      c2.close();
      second.child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((r) =>
      second.child.exitCode !== null
        ? r(second.child.exitCode)
        : second.child.on('exit', (c) => r(c)),
    );
    expect(code).toBe(0);
  });
});
