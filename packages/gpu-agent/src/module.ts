import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger, MetricsRegistry, ServiceModule } from '@perseus/service-kit';
import {
  PerseusServer,
  createMetricsRegistry,
  isLocalAddress,
  normalizeListenAddress,
  startMetricsServer,
  unixSocketPath,
} from '@perseus/service-kit';
import type { AgentCoreOptions } from './agent';
import { GpuAgentCore } from './agent';
import { AuditLog } from './audit';
import type { Token } from './auth';
import { Authorizer, SwitchableAuthorizer, loadTokenFile } from './auth';
import type { GpuBackend } from './backend';
import { createBackend } from './backends/select';
import type { AgentOptions } from './config';
import { agentOptionsFromEnv, checkAgentOptions } from './config';
import { registerAgentMetrics } from './metrics';
import { gpuAgentService } from './service';
import { StateFile } from './state-file';
import { StateLock } from './state-lock';

/** Resolves a host name to every address it stands for. */
export type HostLookup = (host: string) => Promise<string[]>;

/** Inputs of {@link createAgentModule}: any {@link AgentOptions} field (others from env/defaults). */
export interface AgentModuleOptions extends Partial<AgentOptions> {
  logger: Logger;
  /**
   * The main listener's address (`unix:/path` or `host:port`), to pick its auth policy: Unix socket =
   * filesystem permissions; loopback TCP = tokens, or none only when allowed; other TCP = refused
   * (use `tcpListen`, which has TLS). Default: treated as a Unix socket.
   */
  listenAddress?: string;
  /** A ready backend (tests, embedding); overrides `backend`. */
  backendInstance?: GpuBackend;
  /** Core tunables beyond the options (e.g. a test clock). */
  core?: Pick<AgentCoreOptions, 'clockNs' | 'driverQueueMax'>;
  /** Environment to read PERSEUS_AGENT_* from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The process's metrics registry; default: one of the module's own. */
  metrics?: MetricsRegistry;
  /** Replacement defaults (env and explicit options still win), e.g. {@link ALL_IN_ONE_DEFAULTS}. */
  defaults?: Partial<Pick<AgentOptions, 'backend' | 'stateFile'>>;
  /** Host name resolution for the loopback check. Default: the system resolver (dns.lookup). */
  lookup?: HostLookup;
}

/** The agent as a `perseus serve` module, plus handles for tests and embedding. */
export interface AgentModule extends ServiceModule {
  readonly core: GpuAgentCore;
  readonly options: AgentOptions;
  /** Bound address of the TLS listener, when `tcpListen` is set. */
  readonly tlsAddress: string | undefined;
  /** Bound address of the metrics endpoint, when `metricsListen` is set. */
  readonly metricsAddress: string | undefined;
  /** Devices reset at startup because a previous agent left them changed. */
  readonly resetAtStartup: readonly number[];
}

/**
 * The main listener's policy: Unix socket = filesystem permissions (tokens checked only if sent);
 * loopback TCP = tokens when a token file is set, else open only when allowed (default: only with
 * simulated GPUs); any other TCP address is refused (TCP is served only with TLS, via tcpListen).
 */
async function mainListenerAuthorizer(
  address: string,
  tokens: Token[],
  options: AgentOptions,
  backendKind: GpuBackend['kind'],
  logger: Logger,
  lookup: HostLookup | undefined,
): Promise<Authorizer> {
  const main = normalizeListenAddress(address);
  if (unixSocketPath(main) !== undefined)
    return new Authorizer(tokens, {
      requireToken: false,
      anonymousIdentity: 'unix-socket',
      adminUids: new Set(options.adminUids),
    });
  if (!(await isLocalAddress(main, lookup))) {
    throw new Error(
      `the agent serves plain TCP only on loopback, got ${main} (not every address it resolves to is loopback): use a unix: socket, or --agent-tcp-listen with TLS and tokens`,
    );
  }
  if (tokens.length > 0)
    return new Authorizer(tokens, { requireToken: true, anonymousIdentity: 'none' });
  const allowed = options.allowInsecureLoopback ?? backendKind === 'simulated';
  if (!allowed) {
    throw new Error(
      `refusing unauthenticated loopback TCP (${main}) with the ${backendKind} backend: use a unix: socket, a token file, or allow it explicitly`,
    );
  }
  logger.warn(
    { address: main, backend: backendKind },
    'agent control on loopback TCP without tokens',
  );
  return new Authorizer(tokens, { requireToken: false, anonymousIdentity: 'insecure-loopback' });
}

/**
 * Makes sure the socket's directory exists (created 0750, in the socket group when one is set), or
 * says plainly why it cannot be used — instead of the bare `listen EACCES` of a later bind.
 */
function prepareSocketDirectory(socket: string, group: string | undefined, logger: Logger): void {
  const dir = path.dirname(socket);
  if (!fs.existsSync(dir)) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
      if (group !== undefined) fs.chownSync(dir, -1, resolveGroup(group));
    } catch (err) {
      throw new Error(
        `the agent socket's directory ${dir} does not exist and cannot be created (${(err as NodeJS.ErrnoException).code ?? String(err)}): create it (systemd: RuntimeDirectory=perseus) or listen on a socket in a writable directory`,
      );
    }
    logger.info({ dir }, 'created the socket directory');
    return;
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw new Error(
      `the agent cannot create its socket in ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)}: the directory is not writable by uid ${process.getuid?.() ?? '?'}): run the agent as the directory's owner or choose another socket path`,
    );
  }
}

/** Resolves a group name or numeric gid via /etc/group. */
export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const lines = fs.readFileSync('/etc/group', 'utf8').split('\n');
  for (const l of lines) {
    const [name, , gid] = l.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new Error(`socket group ${JSON.stringify(group)} not found in /etc/group`);
}

/**
 * Builds the GPU agent: backend, state file (startup reset of a crashed agent's leftovers), core,
 * the gRPC service for the main listener, and optionally a TLS listener and a metrics endpoint.
 *
 * @example
 * ```ts
 * const mod = await createAgentModule({ logger, backend: 'simulated', stateFile: '/tmp/a.json', listenAddress: 'unix:/tmp/a.sock' });
 * const server = new PerseusServer({ address: 'unix:/tmp/a.sock', logger });
 * mod.services.forEach((s) => server.addService(s));
 * server.onShutdown(() => mod.close());
 * await mod.onListening?.(await server.start());
 * ```
 */
export async function createAgentModule(input: AgentModuleOptions): Promise<AgentModule> {
  const {
    logger,
    listenAddress,
    backendInstance,
    core: coreOpts,
    env,
    defaults,
    metrics: registryOption,
    ...overrides
  } = input;
  const defined = Object.fromEntries(
    Object.entries(overrides).filter(([, v]) => v !== undefined),
  ) as Partial<AgentOptions>;
  const options: AgentOptions = {
    ...agentOptionsFromEnv(env ?? process.env, defaults),
    ...defined,
  };
  checkAgentOptions(options);

  const lookup = input.lookup;
  const tokens: Token[] = options.tokenFile ? loadTokenFile(options.tokenFile) : [];
  // Before anything else touches the state file, the socket or a device: one agent per state file.
  const lock = StateLock.acquire(options.stateFile);
  /** What this start has made so far, undone by {@link abandon}. */
  const made: { core?: GpuAgentCore; backend?: GpuBackend; stateFile?: StateFile } = {};
  const abandon = async (err: unknown): Promise<never> => {
    // A failed start leaves no lock and a clean state file: once the core started, its devices are
    // reset and the file marked clean; before, the file is given back as it was found.
    if (made.core) await made.core.close();
    else {
      await made.backend?.close();
      made.stateFile?.abandon();
    }
    lock.release();
    throw err;
  };
  let stateFile: StateFile;
  try {
    stateFile = new StateFile(options.stateFile);
    made.stateFile = stateFile;
  } catch (err) {
    return abandon(err);
  }
  const state = stateFile;
  if (stateFile.loadError)
    logger.warn(
      { path: options.stateFile, error: stateFile.loadError },
      'state file unreadable: resetting every device',
    );

  // Auth policy of the main listener: checked now when the address is known, and again with the
  // bound address in onListening. Until then every call needs a token (fail closed).
  const mainAuth = new SwitchableAuthorizer(
    new Authorizer(tokens, { requireToken: true, anonymousIdentity: 'none' }),
  );
  let policy: (address: string) => Promise<Authorizer>;
  let backend: GpuBackend;
  try {
    const b = backendInstance ?? (await createBackend(options, state, logger));
    made.backend = b;
    backend = b;
    policy = (address) => mainListenerAuthorizer(address, tokens, options, b.kind, logger, lookup);
    if (listenAddress !== undefined) {
      mainAuth.current = await policy(listenAddress);
      const socket = unixSocketPath(normalizeListenAddress(listenAddress));
      if (socket !== undefined) prepareSocketDirectory(socket, options.socketGroup, logger);
    }
  } catch (err) {
    return abandon(err);
  }

  const audit = new AuditLog(logger, options.auditLogFile);
  const core = new GpuAgentCore(backend, state, logger, audit, {
    leaseTtlDefaultS: options.leaseTtlDefaultS,
    leaseTtlMaxS: options.leaseTtlMaxS,
    energySampleIntervalMs: options.energySampleIntervalMs,
    lockMemoryClock: options.lockMemoryClock,
    ...coreOpts,
  });
  made.core = core;
  let reset: number[];
  try {
    ({ reset } = await core.start());
  } catch (err) {
    return abandon(err);
  }
  if (reset.length > 0) {
    logger.warn(
      { devices: reset, stateFile: state.previous ? 'present' : 'absent or unreadable' },
      'reset devices at startup',
    );
  }

  let tls: PerseusServer | undefined;
  let tlsAddress: string | undefined;
  let metrics: { address: string; close(): Promise<void> } | undefined;
  try {
    if (options.tcpListen !== undefined) {
      const ca = options.tlsClientCaFile ? fs.readFileSync(options.tlsClientCaFile) : null;
      const credentials = grpc.ServerCredentials.createSsl(
        ca,
        [
          {
            cert_chain: fs.readFileSync(options.tlsCertFile!),
            private_key: fs.readFileSync(options.tlsKeyFile!),
          },
        ],
        ca !== null,
      );
      tls = new PerseusServer({ address: options.tcpListen, logger, credentials });
      tls.addService(
        gpuAgentService(
          core,
          new Authorizer(tokens, { requireToken: true, anonymousIdentity: 'none' }),
          logger,
        ),
      );
      tlsAddress = await tls.start();
      logger.info(
        { address: tlsAddress, mtls: ca !== null, tokens: tokens.length },
        'agent TLS listener',
      );
    }
    const registry = registryOption ?? createMetricsRegistry();
    registerAgentMetrics(registry, core);
    if (options.metricsListen !== undefined) {
      metrics = await startMetricsServer(options.metricsListen, registry, logger);
    }
  } catch (err) {
    await tls?.shutdown(100);
    return abandon(err);
  }

  let closed: Promise<void> | undefined;
  return {
    name: 'agent',
    core,
    options,
    tlsAddress,
    metricsAddress: metrics?.address,
    resetAtStartup: reset,
    services: [gpuAgentService(core, mainAuth, logger)],
    async onListening(address: string): Promise<void> {
      mainAuth.current = await policy(address);
      const path = unixSocketPath(address);
      if (path === undefined) return;
      // The socket is the access control on this listener: set mode and group before anyone uses it
      // (the systemd unit's RuntimeDirectoryMode=0750 closes the window between bind and chmod).
      if (options.socketGroup !== undefined)
        fs.chownSync(path, -1, resolveGroup(options.socketGroup));
      fs.chmodSync(path, options.socketMode);
      logger.info(
        {
          path,
          mode: `0${options.socketMode.toString(8)}`,
          group: options.socketGroup ?? null,
          peerCredentials:
            'SO_PEERCRED: pid/uid of each connection in the audit log; leases bound to it',
        },
        'agent socket',
      );
    },
    close(): Promise<void> {
      closed ??= (async () => {
        try {
          await core.close();
          await tls?.shutdown(1000);
          await metrics?.close();
        } finally {
          lock.release();
        }
      })();
      return closed;
    },
  };
}
