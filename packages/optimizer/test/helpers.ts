import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { parseProfileCsv } from '@perseus/planner';
import type { Profile, StagePlan } from '@perseus/planner';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import {
  GPT3_A100_CSV,
  PerseusServer,
  createLogger,
  decodeFieldViolations,
  unaryCall,
} from '@perseus/service-kit';
import { createOptimizerModule } from '../src';
import type { OptimizerModule, OptimizerModuleOptions } from '../src';
import type { ProfileCellStat } from '../src/profile-source';

export { GPT3_A100_CSV };
export const gpt3Profile = (): Profile => parseProfileCsv(readFileSync(GPT3_A100_CSV, 'utf8'));
/** The clocks of the GPT-3 A100 profile: 1410 … 855 MHz in 15 MHz steps. */
/**
 * The profiler's cells for stages 0 … numStages − 1 of `profile` at one clock, as a sweep step at
 * that clock would aggregate them (2 samples each).
 */
export function cellsAtClock(
  profile: Profile,
  numStages: number,
  clock: number,
): ProfileCellStat[] {
  return Array.from({ length: numStages }, (_, stage) => stage).flatMap((stage) =>
    (['forward', 'backward'] as const).map((kind) => {
      const o = profile.stages[stage]![kind].find((x) => x.frequencyMhz === clock)!;
      return { stage, kind, frequencyMhz: clock, count: 2, timeS: o.timeS, energyJ: o.energyJ };
    }),
  );
}

export const CLOCKS = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i);
export const KIND = {
  forward: 'INSTRUCTION_KIND_FORWARD',
  backward: 'INSTRUCTION_KIND_BACKWARD',
} as const;

/** One stage's instructions of a plan as a Schedule carries them. */
export function wireInstructions(
  plan: StagePlan[],
  stage: number,
): Array<{ instruction: string; microbatch: number; frequency_mhz: number; chunk: number }> {
  return plan[stage]!.instructions.map((x) => ({
    instruction: KIND[x.kind],
    microbatch: x.microbatch,
    frequency_mhz: x.frequencyMhz,
    chunk: x.chunk ?? 0,
  }));
}

export type OptimizerClient = InstanceType<
  ReturnType<typeof perseusGrpc>['perseus']['optimizer']['v1']['Optimizer']
>;

export interface Harness {
  module: OptimizerModule;
  server: PerseusServer;
  client: OptimizerClient;
  address: string;
  close(): Promise<void>;
}

/** A real server on 127.0.0.1:0 hosting only the optimizer module. */
export async function startOptimizer(opts: Partial<OptimizerModuleOptions> = {}): Promise<Harness> {
  const logger = createLogger('optimizer-test', 'silent');
  // No exact polish unless a test asks: a polished redeploy would add versions other tests count.
  const module = await createOptimizerModule({
    logger,
    dataDir: ':memory:',
    exactBudgetS: 0,
    ...opts,
  });
  const server = new PerseusServer({ address: '127.0.0.1:0', logger, shutdownGraceMs: 500 });
  for (const s of module.services) server.addService(s);
  server.onShutdown(() => module.close());
  const address = await server.start();
  await module.onListening?.(address);
  const Ctor = perseusGrpc().perseus.optimizer.v1.Optimizer;
  const client = new Ctor(address, grpc.credentials.createInsecure());
  return {
    module,
    server,
    client,
    address,
    async close() {
      client.close();
      await server.shutdown(500);
    },
  };
}

/** Promisified unary call: `call(client, 'RegisterJob', req)`. */
export function call<Res>(
  client: OptimizerClient,
  method: keyof OptimizerClient & string,
  req: unknown,
): Promise<Res> {
  return unaryCall<Res>(client, method, req);
}

/** Polls `cond` until it holds; fails after a deadline generous enough for a slow CI machine. */
export async function pollUntil(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The status code and violated fields of a failed call. */
export async function failure(
  p: Promise<unknown>,
): Promise<{ code: grpc.status; fields: string[]; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return {
      code: e.code,
      fields: decodeFieldViolations(e.metadata).map((v) => v.field),
      details: e.details,
    };
  }
  throw new Error('expected the call to fail');
}

export function jobRequest(
  jobId: string,
  over: {
    dp?: number;
    tp?: number;
    n?: number;
    m?: number;
    blockingPowerW?: number;
    k?: number;
    floor?: number;
  } = {},
): optimizerV1.RegisterJobRequest {
  const n = over.n ?? 8;
  const dp = over.dp ?? 1;
  const tp = over.tp ?? 1;
  return {
    job_id: jobId,
    spec: {
      pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: n, num_microbatches: over.m ?? 4 },
      dp_degree: dp,
      tp_degree: tp,
      world_size: n * dp * tp,
      gpu_model: 'A100-SXM4',
      unit_time_s: 0.001,
      blocking_power_w: over.blockingPowerW ?? 83.64,
      profiling: {
        iterations_per_frequency: over.k ?? 1,
        floor_frequency_mhz: over.floor ?? 0,
        frequency_stride: 1,
      },
    },
  };
}

/** Rank r of a (dp, pp, tp) layout numbered rank = (dp·N + pp)·TP + tp. */
export function rankOf(
  r: number,
  n: number,
  tp: number,
): { rank: number; dp_rank: number; pp_rank: number; tp_rank: number } {
  return {
    rank: r,
    tp_rank: r % tp,
    pp_rank: Math.floor(r / tp) % n,
    dp_rank: Math.floor(r / (tp * n)),
  };
}

export async function registerAll(
  client: OptimizerClient,
  jobId: string,
  n: number,
  dp: number,
  tp: number,
  clocks: number[],
): Promise<void> {
  for (let r = 0; r < n * dp * tp; r++) {
    await call(client, 'RegisterRank', {
      job_id: jobId,
      rank: rankOf(r, n, tp),
      node: `node${Math.floor(r / 8)}`,
      device_index: r % 8,
      supported_frequencies_mhz: clocks,
    });
  }
}

/** Collects the schedules of one WatchSchedule stream. */
export class Watch {
  readonly got: optimizerV1.Schedule__Output[] = [];
  readonly stream: grpc.ClientReadableStream<optimizerV1.Schedule__Output>;
  private waiters: Array<() => void> = [];
  error: grpc.ServiceError | undefined;
  constructor(client: OptimizerClient, jobId: string, rank: number, knownVersion = 0) {
    this.stream = client.WatchSchedule({
      job_id: jobId,
      rank,
      known_version: String(knownVersion),
    });
    this.stream.on('data', (s: optimizerV1.Schedule__Output) => {
      this.got.push(s);
      for (const w of this.waiters.splice(0)) w();
    });
    this.stream.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      for (const w of this.waiters.splice(0)) w();
    });
  }
  get last(): optimizerV1.Schedule__Output | undefined {
    return this.got[this.got.length - 1];
  }
  /** Waits until a schedule satisfies `pred` (bounded). */
  async until(
    pred: (s: optimizerV1.Schedule__Output) => boolean,
    timeoutMs = 20_000,
  ): Promise<optimizerV1.Schedule__Output> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.got.find(pred);
      if (hit) return hit;
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out; last schedule: ${JSON.stringify(this.last && { v: this.last.version, phase: this.last.phase, reason: this.last.reason })}`,
        );
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  cancel(): void {
    this.stream.cancel();
  }
}
