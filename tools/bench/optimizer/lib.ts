/** Shared helpers of the optimizer benchmarks. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import { GPT3_A100_CSV } from '@perseus/service-kit';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export { GPT3_A100_CSV };
export const A100_CLOCKS = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i);

export type OptimizerClient = InstanceType<
  ReturnType<typeof perseusGrpc>['perseus']['optimizer']['v1']['Optimizer']
>;

/** Wall-clock milliseconds with sub-ms resolution, comparable across processes on one host. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function summary(xs: readonly number[]): string {
  return `n=${xs.length} p50=${percentile(xs, 50).toFixed(2)} p90=${percentile(xs, 90).toFixed(2)} p99=${percentile(xs, 99).toFixed(2)} max=${percentile(xs, 100).toFixed(2)} ms`;
}

export function client(address: string, key = 0): OptimizerClient {
  const Ctor = perseusGrpc().perseus.optimizer.v1.Optimizer;
  // A distinct channel option gives each key its own HTTP/2 connection.
  return new Ctor(address, grpc.credentials.createInsecure(), {
    'grpc.bench_key': key,
    'grpc.use_local_subchannel_pool': 1,
  });
}

export function unary<Res>(
  c: OptimizerClient,
  method: string,
  req: unknown,
  timeoutMs = 60_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    (
      c as unknown as Record<
        string,
        (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void
      >
    )[method]!.call(c, req, { deadline: Date.now() + timeoutMs }, (e, r) =>
      e ? reject(e) : resolve(r),
    );
  });
}

/** Starts tools/bench/optimizer/server.ts in a child process; resolves with its address. */
export function startServer(
  args: string[],
): Promise<{ child: ChildProcess; address: string; metrics?: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'server.ts'), ...args],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PERSEUS_LOG_LEVEL: process.env['PERSEUS_LOG_LEVEL'] ?? 'warn' },
    },
  );
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const m = JSON.parse(line) as { event?: string; address?: string; metrics?: string };
        if (m.event === 'serving' && m.address)
          resolve({ child, address: m.address, ...(m.metrics ? { metrics: m.metrics } : {}) });
      } catch {
        // not JSON
      }
    });
    child.on('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
  });
}

/** Registers a job and its ranks (rank = dp·N + pp, tp = 1), `concurrency` RPCs in flight. */
export async function registerJob(
  c: OptimizerClient,
  jobId: string,
  n: number,
  m: number,
  dp: number,
  concurrency = 64,
): Promise<void> {
  await unary(c, 'RegisterJob', {
    job_id: jobId,
    spec: {
      pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: n, num_microbatches: m },
      dp_degree: dp,
      tp_degree: 1,
      world_size: n * dp,
      gpu_model: 'A100-SXM4',
      unit_time_s: 0.001,
      blocking_power_w: 83.64,
      profiling: { iterations_per_frequency: 1 },
    },
  });
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let r = next++; r < n * dp; r = next++) {
      await unary(c, 'RegisterRank', {
        job_id: jobId,
        rank: { rank: r, dp_rank: Math.floor(r / n), pp_rank: r % n, tp_rank: 0 },
        node: `node${Math.floor(r / 8)}`,
        device_index: r % 8,
        supported_frequencies_mhz: A100_CLOCKS,
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** One gauge value from a Prometheus text endpoint. */
export async function scrape(address: string, series: string): Promise<number> {
  const res = await fetch(`http://${address}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}
