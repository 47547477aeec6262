import * as grpc from '@grpc/grpc-js';
import { Option, type Command } from 'commander';
import { perseusGrpc } from '@perseus/proto';
import { decodeFieldViolations, normalizeListenAddress } from '@perseus/service-kit';

/** Flags every command that talks to the optimizer shares. */
export interface OptimizerFlags {
  server: string;
  timeoutS: string;
}

export const DEFAULT_OPTIMIZER_URL = '127.0.0.1:50051';

/** Adds `--server` (env PERSEUS_OPTIMIZER_URL) and `--timeout-s` to a command. */
export function addOptimizerClientFlags(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--server <address>', 'optimizer (or all-in-one) host:port or unix:/path')
        .env('PERSEUS_OPTIMIZER_URL')
        .default(DEFAULT_OPTIMIZER_URL),
    )
    .addOption(new Option('--timeout-s <s>', 'deadline of each call, seconds').default('5'));
}

type Unary = (
  req: unknown,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: unknown) => void,
) => unknown;

/** A connected optimizer client whose errors name the address and the call. */
export class OptimizerConnection {
  readonly address: string;
  private readonly client: grpc.Client;
  private readonly timeoutMs: number;

  private constructor(address: string, timeoutS: number) {
    this.address = address;
    this.timeoutMs = timeoutS * 1000;
    const { Optimizer } = perseusGrpc().perseus.optimizer.v1;
    this.client = new Optimizer(address, grpc.credentials.createInsecure());
  }

  /** Connects within the timeout, or throws an error naming the address it tried. */
  static async open(flags: OptimizerFlags): Promise<OptimizerConnection> {
    const timeoutS = Number(flags.timeoutS);
    if (!(timeoutS > 0))
      throw new Error(`--timeout-s must be a positive number, got '${flags.timeoutS}'`);
    const conn = new OptimizerConnection(normalizeListenAddress(flags.server), timeoutS);
    try {
      await new Promise<void>((resolve, reject) =>
        conn.client.waitForReady(Date.now() + conn.timeoutMs, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    } catch (err) {
      conn.close();
      throw new Error(
        `cannot reach the optimizer at ${conn.address} within ${timeoutS} s (${(err as Error).message}); is it running? (--server or PERSEUS_OPTIMIZER_URL)`,
      );
    }
    return conn;
  }

  /** One unary RPC; a failure names the method, the address, the status and any field violations. */
  call<Res>(method: string, request: unknown): Promise<Res> {
    const fn = (this.client as unknown as Record<string, Unary | undefined>)[method];
    if (fn === undefined)
      return Promise.reject(new Error(`the optimizer client has no method ${method}`));
    return new Promise<Res>((resolve, reject) =>
      fn.call(
        this.client,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (err, res) => (err ? reject(this.describe(method, err)) : resolve(res as Res)),
      ),
    );
  }

  close(): void {
    this.client.close();
  }

  private describe(method: string, err: grpc.ServiceError): Error {
    const code = grpc.status[err.code] ?? String(err.code);
    const fields = decodeFieldViolations(err.metadata).map(
      (v) => `\n  ${v.field}: ${v.description}`,
    );
    return new Error(`${method} at ${this.address}: ${code}: ${err.details}${fields.join('')}`);
  }
}

/**
 * Runs `body` with a connection, printing any failure as `perseus <name>: <message>` and setting
 * exit code 1; the connection is closed either way.
 */
export async function withOptimizer(
  name: string,
  flags: OptimizerFlags,
  body: (conn: OptimizerConnection) => Promise<void>,
): Promise<void> {
  let conn: OptimizerConnection | undefined;
  try {
    conn = await OptimizerConnection.open(flags);
    await body(conn);
  } catch (err) {
    process.stderr.write(`perseus ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  } finally {
    conn?.close();
  }
}

/** `PHASE_DEPLOYED` → `deployed`. */
export const enumWord = (value: string, prefix: string): string =>
  value.startsWith(prefix) ? value.slice(prefix.length).toLowerCase() : value.toLowerCase();
