import type { Command } from 'commander';
import { Option } from 'commander';
import type { AgentOptions } from '@perseus/gpu-agent';
import {
  agentOptionsFromEnv,
  ALL_IN_ONE_DEFAULTS,
  BACKEND_CHOICES,
  createAgentModule,
  parseMode,
  parseUidList,
} from '@perseus/gpu-agent';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';
import { envOption, flagNumber, flagString } from './flag-values';

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
    .addOption(
      envOption(
        '--agent-backend <name>',
        'PERSEUS_AGENT_BACKEND',
        `GPU backend: ${BACKEND_CHOICES.join('|')} (default auto, all-in-one serve: simulated)`,
      ),
    )
    .addOption(
      envOption(
        '--agent-sim-model <model>',
        'PERSEUS_AGENT_SIM_MODEL',
        'simulated GPU model: a100-sxm|a40|h100-sxm (default a100-sxm)',
      ),
    )
    .addOption(
      envOption(
        '--agent-sim-devices <n>',
        'PERSEUS_AGENT_SIM_DEVICES',
        'number of simulated GPUs (default 8)',
      ),
    )
    .addOption(
      envOption(
        '--agent-sim-driver-latency-ms <ms>',
        'PERSEUS_AGENT_SIM_DRIVER_LATENCY_MS',
        'artificial latency of every simulated driver call (default 0)',
      ),
    )
    .addOption(
      envOption(
        '--agent-sim-time-scale <x>',
        'PERSEUS_AGENT_SIM_TIME_SCALE',
        "wall seconds per simulated second of the simulated GPUs' clock; must equal the emulated trainer's --time-scale (default 1)",
      ),
    )
    .addOption(
      envOption(
        '--agent-sim-counter-period-ms <ms>',
        'PERSEUS_AGENT_SIM_COUNTER_PERIOD_MS',
        "simulated energy counter update period, ms of the GPUs' clock (default 0 = exact; ~100 as NVML on H100/H200)",
      ),
    )
    .addOption(
      envOption(
        '--agent-sim-power-jitter <x>',
        'PERSEUS_AGENT_SIM_POWER_JITTER',
        'relative standard deviation of simulated power per instruction, as measurement noise (default 0)',
      ),
    )
    .addOption(
      envOption(
        '--agent-profile-dir <dir>',
        'PERSEUS_AGENT_PROFILE_DIR',
        'stage-profile CSV directory for simulated GPUs (default <repo>/data/sosp24/stage_profile)',
      ),
    )
    .addOption(
      envOption(
        '--agent-state-file <path>',
        'PERSEUS_AGENT_STATE_FILE',
        'state file (default /var/lib/perseus/agent-state.json; all-in-one serve: .perseus-data/agent/state.json)',
      ),
    )
    .addOption(
      envOption(
        '--agent-lease-ttl-s <s>',
        'PERSEUS_AGENT_LEASE_TTL_S',
        'default lease TTL without traffic, seconds (default 30)',
      ),
    )
    .addOption(
      envOption(
        '--agent-lease-ttl-max-s <s>',
        'PERSEUS_AGENT_LEASE_TTL_MAX_S',
        'maximum lease TTL, seconds (default 300)',
      ),
    )
    .addOption(
      envOption(
        '--agent-energy-sample-ms <ms>',
        'PERSEUS_AGENT_ENERGY_SAMPLE_MS',
        'energy sampling period during sessions (default 10; stepped counters need it)',
      ),
    )
    .option('--agent-no-lock-memory-clock', 'do not lock the memory clock at max during a lease')
    .addOption(
      envOption(
        '--agent-socket-mode <octal>',
        'PERSEUS_AGENT_SOCKET_MODE',
        'Unix socket mode (default 0660)',
      ),
    )
    .addOption(
      envOption(
        '--agent-socket-group <group>',
        'PERSEUS_AGENT_SOCKET_GROUP',
        'Unix socket group, name or gid (default: unchanged)',
      ),
    )
    .addOption(
      envOption(
        '--agent-metrics-listen <host:port>',
        'PERSEUS_AGENT_METRICS_LISTEN',
        'Prometheus metrics endpoint (default off)',
      ),
    )
    .addOption(
      envOption(
        '--agent-tcp-listen <host:port>',
        'PERSEUS_AGENT_TCP_LISTEN',
        'extra TCP listener, TLS + token only (default off)',
      ),
    )
    .addOption(
      envOption(
        '--agent-tls-cert <path>',
        'PERSEUS_AGENT_TLS_CERT',
        'PEM certificate chain for --agent-tcp-listen',
      ),
    )
    .addOption(
      envOption(
        '--agent-tls-key <path>',
        'PERSEUS_AGENT_TLS_KEY',
        'PEM private key for --agent-tcp-listen',
      ),
    )
    .addOption(
      envOption(
        '--agent-tls-client-ca <path>',
        'PERSEUS_AGENT_TLS_CLIENT_CA',
        'PEM CA; when set, clients of --agent-tcp-listen need certificates (mTLS)',
      ),
    )
    .addOption(
      envOption(
        '--agent-token-file <path>',
        'PERSEUS_AGENT_TOKEN_FILE',
        'tokens, one "<name> <read|control|admin> <secret>" per line',
      ),
    )
    .option(
      '--agent-allow-insecure-loopback',
      'allow control over loopback TCP without tokens for real GPUs (simulated: allowed by default)',
    )
    .addOption(
      envOption(
        '--agent-admin-uids <uids>',
        'PERSEUS_AGENT_ADMIN_UIDS',
        "uids that may reset any device (AdminReset) over the Unix socket (default: 0 and the agent's own)",
      ),
    )
    .addOption(
      envOption(
        '--agent-audit-log <path>',
        'PERSEUS_AGENT_AUDIT_LOG',
        'append one JSON line per control action to this file',
      ),
    )
    .addOption(
      envOption(
        '--agent-nvml-library <path>',
        'PERSEUS_AGENT_NVML_LIBRARY',
        'NVML library (default libnvidia-ml.so.1)',
      ),
    )
    .addOption(
      envOption(
        '--agent-amdsmi-library <path>',
        'PERSEUS_AGENT_AMDSMI_LIBRARY',
        'AMD SMI library (default libamd_smi.so)',
      ),
    );
}

/** The options named by flags (only those given; the module fills the rest from env and defaults). */
export function agentOptionsFromFlags(flags: Record<string, unknown>): Partial<AgentOptions> {
  const backend = flagString(flags, 'agentBackend');
  if (backend !== undefined && !(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new Error(
      `--agent-backend must be one of ${BACKEND_CHOICES.join(', ')}, got ${JSON.stringify(backend)}`,
    );
  }
  const mode = flagString(flags, 'agentSocketMode');
  const adminUids = flagString(flags, 'agentAdminUids');
  return {
    backend: backend as AgentOptions['backend'] | undefined,
    simulatedModel: flagString(flags, 'agentSimModel') as
      | AgentOptions['simulatedModel']
      | undefined,
    simulatedDevices: flagNumber(flags, 'agentSimDevices'),
    simulatedDriverLatencyMs: flagNumber(flags, 'agentSimDriverLatencyMs'),
    simulatedTimeScale: flagNumber(flags, 'agentSimTimeScale'),
    simulatedCounterPeriodMs: flagNumber(flags, 'agentSimCounterPeriodMs'),
    simulatedPowerJitter: flagNumber(flags, 'agentSimPowerJitter'),
    profileDir: flagString(flags, 'agentProfileDir'),
    stateFile: flagString(flags, 'agentStateFile'),
    leaseTtlDefaultS: flagNumber(flags, 'agentLeaseTtlS'),
    leaseTtlMaxS: flagNumber(flags, 'agentLeaseTtlMaxS'),
    energySampleIntervalMs: flagNumber(flags, 'agentEnergySampleMs'),
    lockMemoryClock: flags['agentNoLockMemoryClock'] === true ? false : undefined,
    socketMode: mode === undefined ? undefined : parseMode('--agent-socket-mode', mode),
    socketGroup: flagString(flags, 'agentSocketGroup'),
    metricsListen: flagString(flags, 'agentMetricsListen'),
    tcpListen: flagString(flags, 'agentTcpListen'),
    tlsCertFile: flagString(flags, 'agentTlsCert'),
    tlsKeyFile: flagString(flags, 'agentTlsKey'),
    tlsClientCaFile: flagString(flags, 'agentTlsClientCa'),
    tokenFile: flagString(flags, 'agentTokenFile'),
    allowInsecureLoopback: flags['agentAllowInsecureLoopback'] === true ? true : undefined,
    adminUids: adminUids === undefined ? undefined : parseUidList('--agent-admin-uids', adminUids),
    auditLogFile: flagString(flags, 'agentAuditLog'),
    nvmlLibrary: flagString(flags, 'agentNvmlLibrary'),
    amdsmiLibrary: flagString(flags, 'agentAmdsmiLibrary'),
  };
}

/** Builds the agent module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function agentModuleFromFlags(
  flags: Record<string, unknown>,
  ctx: ModuleContext,
): Promise<ServiceModule> {
  // With --listen the auth policy of the main listener is checked before anything starts; without
  // it (serve.ts picks the default) the module decides once it learns the bound address.
  const listenAddress = flagString(flags, 'listen');
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
