import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Option, type Command } from 'commander';
import type { agentV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';
import { decodeFieldViolations, normalizeListenAddress } from '@perseus/service-kit';

/**
 * `perseus agent check` and `perseus agent reset`: a node's scheduler hooks (Slurm prolog and
 * epilog, deploy/slurm) and its operators talk to the node's GPU agent. `reset` is the privileged
 * AdminReset: on the agent's Unix socket it passes for root (or the agent's own uid), elsewhere only
 * with a token that has the `admin` scope.
 */

interface AgentFlags {
  agent: string;
  timeoutS: string;
  tokenFile?: string;
  tlsCa?: string;
}

interface CheckFlags extends AgentFlags {
  json?: boolean;
}

interface ResetFlags extends AgentFlags {
  job?: string;
  devices?: string;
  all?: boolean;
  reason?: string;
}

export const DEFAULT_AGENT_URL = 'unix:/run/perseus/agent.sock';

function addAgentClientFlags(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--agent <address>',
        "the node's agent: unix:/path, or host:port of its TLS listener",
      )
        .env('PERSEUS_AGENT_URL')
        .default(DEFAULT_AGENT_URL),
    )
    .addOption(
      new Option(
        '--token-file <path>',
        'file (mode 0600) holding a bearer token for the agent (reset: one with the admin scope)',
      ).env('PERSEUS_AGENT_ADMIN_TOKEN_FILE'),
    )
    .addOption(new Option('--tls-ca <pem>', 'dial a TCP agent over TLS trusting this CA'))
    .addOption(new Option('--timeout-s <s>', 'deadline of each call, seconds').default('10'));
}

/** Reads a token file, refusing one that group or others can read (as the services do). */
function readToken(path: string): string {
  const mode = fs.statSync(path).mode;
  if ((mode & 0o077) !== 0)
    throw new Error(
      `token file ${path} is readable by group or others (mode 0${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  const token = fs.readFileSync(path, 'utf8').trim();
  if (token === '') throw new Error(`token file ${path} is empty`);
  return token;
}

/** One agent client; errors name the method, the address and the status. */
class AgentConnection {
  private readonly client: grpc.Client;
  private readonly metadata = new grpc.Metadata();
  private readonly timeoutMs: number;
  readonly address: string;

  constructor(flags: AgentFlags) {
    const timeoutS = Number(flags.timeoutS);
    if (!(timeoutS > 0))
      throw new Error(`--timeout-s must be a positive number, got '${flags.timeoutS}'`);
    this.timeoutMs = timeoutS * 1000;
    this.address = normalizeListenAddress(flags.agent);
    const local = this.address.startsWith('unix:');
    if (flags.tlsCa !== undefined && local)
      throw new Error('--tls-ca applies to a TCP agent address, not a Unix socket');
    const creds =
      flags.tlsCa !== undefined
        ? grpc.credentials.createSsl(fs.readFileSync(flags.tlsCa))
        : grpc.credentials.createInsecure();
    if (flags.tokenFile !== undefined)
      this.metadata.set('authorization', `Bearer ${readToken(flags.tokenFile)}`);
    const { GpuAgent } = perseusGrpc().perseus.agent.v1;
    this.client = new GpuAgent(this.address, creds);
  }

  call<Res>(method: 'ListDevices' | 'AdminReset', request: object): Promise<Res> {
    const fn = (
      this.client as unknown as Record<
        string,
        (
          req: object,
          md: grpc.Metadata,
          opts: grpc.CallOptions,
          cb: (err: grpc.ServiceError | null, res?: Res) => void,
        ) => unknown
      >
    )[method]!;
    return new Promise<Res>((resolve, reject) =>
      fn.call(
        this.client,
        request,
        this.metadata,
        { deadline: Date.now() + this.timeoutMs },
        (err, res) => {
          if (!err) return resolve(res as Res);
          const code = grpc.status[err.code] ?? String(err.code);
          const fields = decodeFieldViolations(err.metadata).map(
            (v) => `\n  ${v.field}: ${v.description}`,
          );
          reject(
            new Error(`${method} at ${this.address}: ${code}: ${err.details}${fields.join('')}`),
          );
        },
      ),
    );
  }

  close(): void {
    this.client.close();
  }
}

async function withAgent(
  name: string,
  flags: AgentFlags,
  body: (conn: AgentConnection) => Promise<boolean>,
): Promise<void> {
  let conn: AgentConnection | undefined;
  try {
    conn = new AgentConnection(flags);
    if (!(await body(conn))) process.exitCode = 1;
  } catch (err) {
    process.stderr.write(
      `perseus agent ${name}: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exitCode = 1;
  } finally {
    conn?.close();
  }
}

function holder(l: agentV1.LeaseHolder__Output | null): string {
  return l ? `job ${l.job_id} rank ${l.rank?.rank ?? 0}` : 'none';
}

/** `device 2: default clocks, lease none` — what `agent check` prints per device. */
export function deviceLine(d: agentV1.Device__Output): string {
  const clock =
    d.locked_sm_clock_mhz === 0 ? 'default clocks' : `SM locked at ${d.locked_sm_clock_mhz} MHz`;
  return `device ${d.index}: ${clock}, lease ${holder(d.lease)}${d.simulated ? ' (simulated)' : ''}`;
}

/** `device 2: reset ok, default clocks (ended job x rank 3)` — what `agent reset` prints. */
export function resetLine(r: agentV1.ResetDevice__Output): string {
  const ended = r.ended_lease ? ` (ended ${holder(r.ended_lease)})` : '';
  if (!r.ok) return `device ${r.index}: reset FAILED: ${r.error}${ended}`;
  const clock =
    r.locked_sm_clock_mhz === 0
      ? 'default clocks'
      : `SM still locked at ${r.locked_sm_clock_mhz} MHz`;
  return `device ${r.index}: reset ok, ${clock}${ended}`;
}

/** The AdminReset request of `agent reset`'s flags: exactly one of --job, --devices, --all. */
export function resetRequest(flags: ResetFlags): agentV1.AdminResetRequest {
  const given = [flags.job !== undefined, flags.devices !== undefined, flags.all === true];
  if (given.filter(Boolean).length !== 1)
    throw new Error('give exactly one of --job <id>, --devices <i,j,…> or --all');
  const reason = flags.reason ?? '';
  if (flags.job !== undefined) return { job_id: flags.job, reason };
  if (flags.devices !== undefined) {
    const items = flags.devices.split(',').map((v) => v.trim());
    if (items.some((v) => !/^\d{1,5}$/.test(v)))
      throw new Error(`--devices must be device indices like 0,1,3, got '${flags.devices}'`);
    return { devices: { indices: items.map(Number) }, reason };
  }
  return { all_devices: true, reason };
}

/** Registers `perseus agent check` and `perseus agent reset`. */
export function registerAgentCommand(program: Command): void {
  const agent = program
    .command('agent')
    .description("this node's GPU agent: check that it serves; reset devices (admin)");
  addAgentClientFlags(
    agent
      .command('check')
      .description(
        'exit 0 when the agent answers ListDevices with at least one device; print each device',
      )
      .option('--json', 'print the devices as one JSON line'),
  ).action((flags: CheckFlags) =>
    withAgent('check', flags, async (conn) => {
      const res = await conn.call<agentV1.ListDevicesResponse__Output>('ListDevices', {});
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(res.devices)}\n`);
      } else {
        process.stdout.write(`agent ${conn.address}: serving ${res.devices.length} devices\n`);
        for (const d of res.devices) process.stdout.write(`  ${deviceLine(d)}\n`);
      }
      if (res.devices.length === 0) {
        process.stderr.write(`perseus agent check: the agent at ${conn.address} has no devices\n`);
        return false;
      }
      return true;
    }),
  );
  addAgentClientFlags(
    agent
      .command('reset')
      .description(
        "reset devices to default clocks whoever holds them (ends their sessions); needs the agent's admin credential",
      )
      .option('--job <id>', 'every device of this job id and of its steps (<id>.<step>)')
      .option('--devices <list>', 'these device indices, e.g. 0,1')
      .option('--all', 'every device of the node')
      .option('--reason <text>', 'for the audit log and the ended sessions (printable ASCII)'),
  ).action((flags: ResetFlags) =>
    withAgent('reset', flags, async (conn) => {
      const res = await conn.call<agentV1.AdminResetResponse__Output>(
        'AdminReset',
        resetRequest(flags),
      );
      if (res.devices.length === 0)
        process.stdout.write(`agent ${conn.address}: no device held by job ${flags.job ?? '?'}\n`);
      for (const r of res.devices) process.stdout.write(`${resetLine(r)}\n`);
      return res.devices.every((r) => r.ok && r.locked_sm_clock_mhz === 0);
    }),
  );
}
