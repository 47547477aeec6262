import { envBool, envNumber, envString } from '@perseus/service-kit';
import type { SimulatedModel } from './profile-table';
import { DEFAULT_PROFILE_DIR, SIMULATED_MODELS } from './profile-table';

/**
 * Backend selection: `auto` probes NVML, then AMD SMI; it falls back to simulated GPUs only on a
 * host without GPU device nodes (with them, a library that fails to load stops the agent).
 */
export type BackendChoice = 'auto' | 'nvml' | 'amdsmi' | 'simulated';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'nvml', 'amdsmi', 'simulated'];

/**
 * Everything the agent module needs. Every field has a documented default (see README); the
 * `perseus serve agent` flags and `PERSEUS_AGENT_*` variables map one to one onto these fields.
 */
export interface AgentOptions {
  /** Default `auto` (env PERSEUS_AGENT_BACKEND). */
  backend: BackendChoice;
  /** Simulated GPU model. Default `a100-sxm` (PERSEUS_AGENT_SIM_MODEL). */
  simulatedModel: SimulatedModel;
  /** Number of simulated GPUs. Default 8 (PERSEUS_AGENT_SIM_DEVICES). */
  simulatedDevices: number;
  /** Artificial latency of each simulated driver call, ms. Default 0 (PERSEUS_AGENT_SIM_DRIVER_LATENCY_MS). */
  simulatedDriverLatencyMs: number;
  /**
   * Wall seconds per simulated second of the simulated GPUs' clock; must equal the time scale of
   * the emulated trainer that talks to them. Default 1 (PERSEUS_AGENT_SIM_TIME_SCALE).
   */
  simulatedTimeScale: number;
  /**
   * Energy counter update period of the simulated GPUs, ms of their clock; 0 = exact counter.
   * ~100 is what NVML shows on an H100/H200. Default 0 (PERSEUS_AGENT_SIM_COUNTER_PERIOD_MS).
   */
  simulatedCounterPeriodMs: number;
  /**
   * Relative standard deviation of simulated power per instruction / idle gap (measurement noise).
   * Default 0 (PERSEUS_AGENT_SIM_POWER_JITTER).
   */
  simulatedPowerJitter: number;
  /** Directory of the stage-profile CSVs. Default `<repo>/data/sosp24/stage_profile` (PERSEUS_AGENT_PROFILE_DIR). */
  profileDir: string;
  /** State file. Default `/var/lib/perseus/agent-state.json` (PERSEUS_AGENT_STATE_FILE). */
  stateFile: string;
  /** Default lease TTL, s. Default 30 (PERSEUS_AGENT_LEASE_TTL_S). */
  leaseTtlDefaultS: number;
  /** Maximum lease TTL, s. Default 300 (PERSEUS_AGENT_LEASE_TTL_MAX_S). */
  leaseTtlMaxS: number;
  /** Energy sampling period during sessions, ms. Default 10 (PERSEUS_AGENT_ENERGY_SAMPLE_MS). */
  energySampleIntervalMs: number;
  /** Lock memory clock at max during a lease. Default true (PERSEUS_AGENT_LOCK_MEMORY_CLOCK). */
  lockMemoryClock: boolean;
  /** Unix socket mode. Default 0o660 (PERSEUS_AGENT_SOCKET_MODE, octal). */
  socketMode: number;
  /** Unix socket group (name or gid). Default none (PERSEUS_AGENT_SOCKET_GROUP). */
  socketGroup: string | undefined;
  /** Prometheus metrics `host:port`; empty = off. Default off (PERSEUS_AGENT_METRICS_LISTEN). */
  metricsListen: string | undefined;
  /** Extra TCP listener with TLS + tokens, `host:port`. Default off (PERSEUS_AGENT_TCP_LISTEN). */
  tcpListen: string | undefined;
  /** PEM certificate chain for the TCP listener (PERSEUS_AGENT_TLS_CERT). */
  tlsCertFile: string | undefined;
  /** PEM private key (PERSEUS_AGENT_TLS_KEY). */
  tlsKeyFile: string | undefined;
  /** PEM CA to require client certificates (mTLS); optional (PERSEUS_AGENT_TLS_CLIENT_CA). */
  tlsClientCaFile: string | undefined;
  /** Token file: lines `<name> <read|control> <token>`. Required for TCP (PERSEUS_AGENT_TOKEN_FILE). */
  tokenFile: string | undefined;
  /**
   * Serve insecure (no TLS, no token) TCP on a loopback `--listen`. Default: allowed only with the
   * simulated backend (demos, tests, all-in-one dev); real GPUs need this set explicitly
   * (PERSEUS_AGENT_ALLOW_INSECURE_LOOPBACK).
   */
  allowInsecureLoopback: boolean | undefined;
  /**
   * Uids whose processes may call AdminReset on the Unix socket without a token (SO_PEERCRED).
   * Default root and the agent's own uid (PERSEUS_AGENT_ADMIN_UIDS, comma-separated; `none` = no
   * uid, tokens only).
   */
  adminUids: number[];
  /** Audit log file (JSON lines); empty = service log only (PERSEUS_AGENT_AUDIT_LOG). */
  auditLogFile: string | undefined;
  /** NVML library path. Default `libnvidia-ml.so.1` (PERSEUS_AGENT_NVML_LIBRARY). */
  nvmlLibrary: string;
  /** AMD SMI library path. Default `libamd_smi.so` (PERSEUS_AGENT_AMDSMI_LIBRARY). */
  amdsmiLibrary: string;
  /**
   * Where `auto` looks for GPU device nodes (`<root>/dev/nvidia*`, `<root>/dev/kfd`, render nodes
   * with `<root>/sys/class/drm`): a container with the host's /dev and /sys mounted elsewhere.
   * Default `/` (PERSEUS_AGENT_DEVICE_ROOT).
   */
  deviceRoot: string;
}

export const DEFAULT_STATE_FILE = '/var/lib/perseus/agent-state.json';

function optional(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const v = envString(name, '', env);
  return v === '' ? undefined : v;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new Error(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

/** Root and the agent's own uid: who may reset any device over the Unix socket by default. */
export function defaultAdminUids(): number[] {
  const own = process.getuid?.();
  return own === undefined || own === 0 ? [0] : [0, own];
}

/**
 * Parses a comma-separated uid list such as "0,998" (each 0 .. 2^32 - 2), or `none`: no uid is an
 * admin by itself (AdminReset then needs an `admin` token), for hosts whose socket users may be root
 * (containers).
 */
export function parseUidList(name: string, value: string): number[] {
  if (value.trim() === 'none') return [];
  const items = value.split(',').map((v) => v.trim());
  const uids = items.map(Number);
  if (
    items.some((v) => !/^\d{1,10}$/.test(v)) ||
    uids.some((u) => u > 0xfffffffe) ||
    new Set(uids).size !== uids.length
  )
    throw new Error(
      `${name} must be distinct uids like 0,998, or none, got ${JSON.stringify(value)}`,
    );
  return uids;
}

/** Parses an octal mode such as "660" or "0o660". */
export function parseMode(name: string, value: string): number {
  const m = /^(?:0o?)?([0-7]{3,4})$/.exec(value.trim());
  if (!m) throw new Error(`${name} must be an octal mode like 0660, got ${JSON.stringify(value)}`);
  return parseInt(m[1]!, 8);
}

/**
 * Defaults of the all-in-one `perseus serve` (a developer's machine: simulated GPUs, state beside
 * the other services' `./.perseus-data`), where `perseus serve agent` keeps the production ones.
 */
export const ALL_IN_ONE_DEFAULTS: Readonly<Pick<AgentOptions, 'backend' | 'stateFile'>> = {
  backend: 'simulated',
  stateFile: '.perseus-data/agent/state.json',
};

/**
 * The options from `PERSEUS_AGENT_*` (the one place the agent reads the environment); `defaults`
 * replaces the built-in default of a field (env still wins over it).
 */
export function agentOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  defaults: Partial<Pick<AgentOptions, 'backend' | 'stateFile'>> = {},
): AgentOptions {
  const insecure = optional('PERSEUS_AGENT_ALLOW_INSECURE_LOOPBACK', env);
  return {
    backend: oneOf(
      'PERSEUS_AGENT_BACKEND',
      envString('PERSEUS_AGENT_BACKEND', defaults.backend ?? 'auto', env),
      BACKEND_CHOICES,
    ),
    simulatedModel: oneOf(
      'PERSEUS_AGENT_SIM_MODEL',
      envString('PERSEUS_AGENT_SIM_MODEL', 'a100-sxm', env),
      SIMULATED_MODELS,
    ),
    simulatedDevices: envNumber('PERSEUS_AGENT_SIM_DEVICES', 8, env),
    simulatedDriverLatencyMs: envNumber('PERSEUS_AGENT_SIM_DRIVER_LATENCY_MS', 0, env),
    simulatedTimeScale: envNumber('PERSEUS_AGENT_SIM_TIME_SCALE', 1, env),
    simulatedCounterPeriodMs: envNumber('PERSEUS_AGENT_SIM_COUNTER_PERIOD_MS', 0, env),
    simulatedPowerJitter: envNumber('PERSEUS_AGENT_SIM_POWER_JITTER', 0, env),
    profileDir: envString('PERSEUS_AGENT_PROFILE_DIR', DEFAULT_PROFILE_DIR, env),
    stateFile: envString('PERSEUS_AGENT_STATE_FILE', defaults.stateFile ?? DEFAULT_STATE_FILE, env),
    leaseTtlDefaultS: envNumber('PERSEUS_AGENT_LEASE_TTL_S', 30, env),
    leaseTtlMaxS: envNumber('PERSEUS_AGENT_LEASE_TTL_MAX_S', 300, env),
    energySampleIntervalMs: envNumber('PERSEUS_AGENT_ENERGY_SAMPLE_MS', 10, env),
    lockMemoryClock: envBool('PERSEUS_AGENT_LOCK_MEMORY_CLOCK', true, env),
    socketMode: parseMode(
      'PERSEUS_AGENT_SOCKET_MODE',
      envString('PERSEUS_AGENT_SOCKET_MODE', '0660', env),
    ),
    socketGroup: optional('PERSEUS_AGENT_SOCKET_GROUP', env),
    metricsListen: optional('PERSEUS_AGENT_METRICS_LISTEN', env),
    tcpListen: optional('PERSEUS_AGENT_TCP_LISTEN', env),
    tlsCertFile: optional('PERSEUS_AGENT_TLS_CERT', env),
    tlsKeyFile: optional('PERSEUS_AGENT_TLS_KEY', env),
    tlsClientCaFile: optional('PERSEUS_AGENT_TLS_CLIENT_CA', env),
    tokenFile: optional('PERSEUS_AGENT_TOKEN_FILE', env),
    allowInsecureLoopback:
      insecure === undefined
        ? undefined
        : envBool('PERSEUS_AGENT_ALLOW_INSECURE_LOOPBACK', false, env),
    adminUids: (() => {
      const v = optional('PERSEUS_AGENT_ADMIN_UIDS', env);
      return v === undefined ? defaultAdminUids() : parseUidList('PERSEUS_AGENT_ADMIN_UIDS', v);
    })(),
    auditLogFile: optional('PERSEUS_AGENT_AUDIT_LOG', env),
    nvmlLibrary: envString('PERSEUS_AGENT_NVML_LIBRARY', 'libnvidia-ml.so.1', env),
    amdsmiLibrary: envString('PERSEUS_AGENT_AMDSMI_LIBRARY', 'libamd_smi.so', env),
    deviceRoot: envString('PERSEUS_AGENT_DEVICE_ROOT', '/', env),
  };
}

/** Checks option values that env/flags could get wrong; throws naming the option. */
export function checkAgentOptions(o: AgentOptions): void {
  const problems: string[] = [];
  if (!Number.isInteger(o.simulatedDevices) || o.simulatedDevices < 1 || o.simulatedDevices > 64)
    problems.push(`simulatedDevices must be 1-64, got ${o.simulatedDevices}`);
  if (!(o.leaseTtlDefaultS > 0))
    problems.push(`leaseTtlDefaultS must be > 0, got ${o.leaseTtlDefaultS}`);
  if (!(o.leaseTtlMaxS >= o.leaseTtlDefaultS))
    problems.push(`leaseTtlMaxS must be ≥ leaseTtlDefaultS, got ${o.leaseTtlMaxS}`);
  if (!(o.energySampleIntervalMs >= 1))
    problems.push(`energySampleIntervalMs must be ≥ 1, got ${o.energySampleIntervalMs}`);
  if (!(o.simulatedDriverLatencyMs >= 0))
    problems.push(`simulatedDriverLatencyMs must be ≥ 0, got ${o.simulatedDriverLatencyMs}`);
  if (!(o.simulatedTimeScale >= 0.01 && o.simulatedTimeScale <= 100))
    problems.push(`simulatedTimeScale must be 0.01-100, got ${o.simulatedTimeScale}`);
  if (!(o.simulatedCounterPeriodMs >= 0 && o.simulatedCounterPeriodMs <= 10_000))
    problems.push(`simulatedCounterPeriodMs must be 0-10000, got ${o.simulatedCounterPeriodMs}`);
  if (!(o.simulatedPowerJitter >= 0 && o.simulatedPowerJitter <= 0.5))
    problems.push(`simulatedPowerJitter must be 0-0.5, got ${o.simulatedPowerJitter}`);
  if (o.tcpListen !== undefined) {
    if (!o.tlsCertFile || !o.tlsKeyFile)
      problems.push(
        'tcpListen needs tlsCertFile and tlsKeyFile (the agent serves TCP only with TLS)',
      );
    if (!o.tokenFile)
      problems.push('tcpListen needs tokenFile (the agent serves TCP only with tokens)');
  }
  if (problems.length > 0) throw new Error(`invalid agent options: ${problems.join('; ')}`);
}
