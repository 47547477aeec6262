import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { agentV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';
import { PerseusServer, createLogger, unaryCall } from '@perseus/service-kit';
import type { AgentModule, AgentModuleOptions } from '../src';
import { createAgentModule } from '../src';

export type AgentClient = agentV1.GpuAgentClient;

export function tempDir(prefix = 'perseus-agent-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface RunningAgent {
  dir: string;
  address: string;
  module: AgentModule;
  server: PerseusServer;
  client: AgentClient;
  stop(): Promise<void>;
}

/** An agent with simulated GPUs on a Unix socket in a temp dir (in-process). */
export async function startAgent(
  opts: Partial<AgentModuleOptions> = {},
  dir = tempDir(),
  grpcOptions?: grpc.ServerOptions,
  socketPath = path.join(dir, 'a.sock'),
): Promise<RunningAgent> {
  const logger = createLogger('agent-test', 'silent');
  const address = `unix:${socketPath}`;
  const module = await createAgentModule({
    backend: 'simulated',
    simulatedDevices: 2,
    stateFile: path.join(dir, 'state.json'),
    listenAddress: address,
    env: {},
    ...opts,
    logger,
  });
  const server = new PerseusServer({ address, logger, shutdownGraceMs: 1000, grpcOptions });
  for (const s of module.services) server.addService(s);
  server.onShutdown(() => module.close());
  const bound = await server.start();
  await module.onListening?.(bound);
  const client = new (perseusGrpc().perseus.agent.v1.GpuAgent)(
    bound,
    grpc.credentials.createInsecure(),
  );
  return {
    dir,
    address: bound,
    module,
    server,
    client,
    async stop() {
      client.close();
      await server.shutdown(1000);
    },
  };
}

interface UnaryMethods {
  ListDevices: [agentV1.ListDevicesRequest, agentV1.ListDevicesResponse__Output];
  ReadEnergy: [agentV1.ReadEnergyRequest, agentV1.ReadEnergyResponse__Output];
  SetClocks: [agentV1.SetClocksRequest, agentV1.SetClocksResponse__Output];
  ResetClocks: [agentV1.ResetClocksRequest, agentV1.ResetClocksResponse__Output];
  AdminReset: [agentV1.AdminResetRequest, agentV1.AdminResetResponse__Output];
}

/** A typed unary call by method name. */
export function call<M extends keyof UnaryMethods>(
  client: AgentClient,
  method: M,
  req: UnaryMethods[M][0],
  metadata = new grpc.Metadata(),
): Promise<UnaryMethods[M][1]> {
  return unaryCall<UnaryMethods[M][1]>(client, method, req, { metadata });
}

export async function expectGrpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

/** A session stream with a message inbox and a promise of its final status. */
export class SessionClient {
  readonly messages: agentV1.SessionResponse__Output[] = [];
  readonly stream: grpc.ClientDuplexStream<agentV1.SessionRequest, agentV1.SessionResponse__Output>;
  readonly done: Promise<grpc.StatusObject>;
  private waiters: Array<() => void> = [];

  constructor(client: AgentClient, md = new grpc.Metadata()) {
    this.stream = client.OpenSession(md);
    this.stream.on('data', (m: agentV1.SessionResponse__Output) => {
      this.messages.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
    this.done = new Promise((resolve) => {
      this.stream.on('status', (s: grpc.StatusObject) => {
        resolve(s);
        for (const w of this.waiters.splice(0)) w();
      });
      this.stream.on('error', () => undefined);
    });
  }

  send(msg: agentV1.SessionRequest): void {
    this.stream.write(msg);
  }

  open(jobId: string, deviceIndex: number, extra: Partial<agentV1.OpenSession> = {}): void {
    this.send({
      open: {
        job_id: jobId,
        rank: { rank: 3, pp_rank: 1, dp_rank: 0, tp_rank: 0 },
        device_index: deviceIndex,
        ...extra,
      },
    });
  }

  /** Waits until `pred` holds over the inbox (bounded generously). */
  async waitFor<T>(
    pred: (msgs: agentV1.SessionResponse__Output[]) => T | undefined,
    timeoutMs = 20_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = pred(this.messages);
      if (v !== undefined && v !== false) return v;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out; inbox: ${JSON.stringify(this.messages).slice(0, 2000)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  opened(): Promise<agentV1.SessionOpened__Output> {
    return this.waitFor((m) => m.find((x) => x.opened)?.opened ?? undefined);
  }

  measurement(seq: number): Promise<agentV1.Measurement__Output> {
    return this.waitFor(
      (m) => m.find((x) => x.measurement?.seq === String(seq))?.measurement ?? undefined,
    );
  }

  error(seq: number): Promise<agentV1.SessionEventError__Output> {
    return this.waitFor((m) => m.find((x) => x.error?.seq === String(seq))?.error ?? undefined);
  }
}

export function nowNs(): string {
  return String(process.hrtime.bigint());
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns true (bounded generously: CI may be much slower than a dev box). */
export async function until(
  fn: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
  stepMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(stepMs);
  }
}
