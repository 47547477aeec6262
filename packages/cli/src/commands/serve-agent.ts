import type { Command } from 'commander';
import { Option } from 'commander';
import type { AgentOptions } from '@perseus/gpu-agent';
import {
  agentOptionsFromEnv,
  ALL_IN_ONE_DEFAULTS,
  BACKEND_CHOICES,
  createAgentModule,
  parseMode,
} from '@perseus/gpu-agent';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';

/**
 * Agent flags of `perseus serve agent` (and of the all-in-one `perseus serve`). Each maps onto one
 * {@link AgentOptions} field; unset flags fall back to PERSEUS_AGENT_* and then to the defaults
 * documented in packages/gpu-agent/README.md.
 */
export function addAgentFlags(cmd: Command): Command {
  // The all-in-one `perseus serve` is a developer's setup: simulated GPUs and a state file under
  // ./.perseus-data unless flags or env say otherwise. `perseus serve agent` keeps production defaults.
  if (cmd.name() === 'serve')
    cmd.addOption(new Option('--agent-all-in-one').hideHelp().default(true));
  return cmd
    .option(
      '--agent-backend <name>',
      `GPU backend: ${BACKEND_CHOICES.join('|')} (env PERSEUS_AGENT_BACKEND; default auto, all-in-one serve: simulated)`,
    )
    .option(
      '--agent-sim-model <model>',
      'simulated GPU model: a100-sxm|a40|h100-sxm (default a100-sxm)',
    )
    .option('--agent-sim-devices <n>', 'number of simulated GPUs (default 8)')
    .option(
      '--agent-sim-driver-latency-ms <ms>',
      'artificial latency of every simulated driver call (default 0)',
    )
    .option(
      '--agent-profile-dir <dir>',
      'stage-profile CSV directory for simulated GPUs (default <repo>/data/sosp24/stage_profile)',
    )
    .option(
      '--agent-state-file <path>',
      'state file (default /var/lib/perseus/agent-state.json; all-in-one serve: .perseus-data/agent/state.json)',
    )
    .option('--agent-lease-ttl-s <s>', 'default lease TTL without traffic, seconds (default 30)')
    .option('--agent-lease-ttl-max-s <s>', 'maximum lease TTL, seconds (default 300)')
    .option(
      '--agent-energy-sample-ms <ms>',
      'energy sampling period during sessions (default 10; stepped counters need it)',
    )
    .option('--agent-no-lock-memory-clock', 'do not lock the memory clock at max during a lease')
    .option('--agent-socket-mode <octal>', 'Unix socket mode (default 0660)')
    .option('--agent-socket-group <group>', 'Unix socket group, name or gid (default: unchanged)')
    .option('--agent-metrics-listen <host:port>', 'Prometheus metrics endpoint (default off)')
    .option('--agent-tcp-listen <host:port>', 'extra TCP listener, TLS + token only (default off)')
    .option('--agent-tls-cert <path>', 'PEM certificate chain for --agent-tcp-listen')
    .option('--agent-tls-key <path>', 'PEM private key for --agent-tcp-listen')
    .option(
      '--agent-tls-client-ca <path>',
      'PEM CA; when set, clients of --agent-tcp-listen need certificates (mTLS)',
    )
    .option('--agent-token-file <path>', 'tokens, one "<name> <read|control> <secret>" per line')
    .option(
      '--agent-allow-insecure-loopback',
      'allow control over loopback TCP without tokens for real GPUs (simulated: allowed by default)',
    )
    .option('--agent-audit-log <path>', 'append one JSON line per control action to this file')
    .option('--agent-nvml-library <path>', 'NVML library (default libnvidia-ml.so.1)')
    .option('--agent-amdsmi-library <path>', 'AMD SMI library (default libamd_smi.so)');
}

function num(flags: Record<string, unknown>, key: string, name: string): number | undefined {
  const v = flags[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

function str(flags: Record<string, unknown>, key: string): string | undefined {
  const v = flags[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The options named by flags (only those given; the module fills the rest from env and defaults). */
export function agentOptionsFromFlags(flags: Record<string, unknown>): Partial<AgentOptions> {
  const backend = str(flags, 'agentBackend');
  if (backend !== undefined && !(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new Error(
      `--agent-backend must be one of ${BACKEND_CHOICES.join(', ')}, got ${JSON.stringify(backend)}`,
    );
  }
  const mode = str(flags, 'agentSocketMode');
  return {
    backend: backend as AgentOptions['backend'] | undefined,
    simulatedModel: str(flags, 'agentSimModel') as AgentOptions['simulatedModel'] | undefined,
    simulatedDevices: num(flags, 'agentSimDevices', '--agent-sim-devices'),
    simulatedDriverLatencyMs: num(
      flags,
      'agentSimDriverLatencyMs',
      '--agent-sim-driver-latency-ms',
    ),
    profileDir: str(flags, 'agentProfileDir'),
    stateFile: str(flags, 'agentStateFile'),
    leaseTtlDefaultS: num(flags, 'agentLeaseTtlS', '--agent-lease-ttl-s'),
    leaseTtlMaxS: num(flags, 'agentLeaseTtlMaxS', '--agent-lease-ttl-max-s'),
    energySampleIntervalMs: num(flags, 'agentEnergySampleMs', '--agent-energy-sample-ms'),
    lockMemoryClock: flags['agentNoLockMemoryClock'] === true ? false : undefined,
    socketMode: mode === undefined ? undefined : parseMode('--agent-socket-mode', mode),
    socketGroup: str(flags, 'agentSocketGroup'),
    metricsListen: str(flags, 'agentMetricsListen'),
    tcpListen: str(flags, 'agentTcpListen'),
    tlsCertFile: str(flags, 'agentTlsCert'),
    tlsKeyFile: str(flags, 'agentTlsKey'),
    tlsClientCaFile: str(flags, 'agentTlsClientCa'),
    tokenFile: str(flags, 'agentTokenFile'),
    allowInsecureLoopback: flags['agentAllowInsecureLoopback'] === true ? true : undefined,
    auditLogFile: str(flags, 'agentAuditLog'),
    nvmlLibrary: str(flags, 'agentNvmlLibrary'),
    amdsmiLibrary: str(flags, 'agentAmdsmiLibrary'),
  };
}

/** Builds the agent module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function agentModuleFromFlags(
  flags: Record<string, unknown>,
  ctx: ModuleContext,
): Promise<ServiceModule> {
  // With --listen the auth policy of the main listener is checked before anything starts; without
  // it (serve.ts picks the default) the module decides once it learns the bound address.
  const listenAddress = str(flags, 'listen');
  const defaults = flags['agentAllInOne'] === true ? ALL_IN_ONE_DEFAULTS : undefined;
  const options = agentOptionsFromFlags(flags);
  try {
    return await createAgentModule({
      ...options,
      logger: ctx.logger,
      metrics: ctx.metrics,
      listenAddress,
      defaults,
    });
  } catch (err) {
    throw withLibraryName(err, options);
  }
}

/**
 * A driver library that failed to load is named in the error (the FFI layer says only "cannot
 * open shared object file"), with the flag that points at another copy.
 */
function withLibraryName(err: unknown, options: Partial<AgentOptions>): unknown {
  if (!(err instanceof Error) || !/shared (library|object)/i.test(err.message)) return err;
  const env = agentOptionsFromEnv();
  const backend = options.backend ?? env.backend;
  const which =
    backend === 'amdsmi'
      ? `AMD SMI library ${options.amdsmiLibrary ?? env.amdsmiLibrary} (--agent-amdsmi-library)`
      : `NVML library ${options.nvmlLibrary ?? env.nvmlLibrary} (--agent-nvml-library)`;
  return new Error(`--agent-backend ${backend}: cannot load the ${which}: ${err.message}`);
}
