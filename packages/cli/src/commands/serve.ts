import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';
import {
  PERSEUS_VERSION,
  PerseusServer,
  createLogger,
  createMetricsRegistry,
  envString,
  isLocalAddress,
  normalizeListenAddress,
  shutdownOnSignals,
} from '@perseus/service-kit';
import { envOption } from './flag-values';

type ModuleName = ServiceModule['name'];

/** What `serve` needs from one role: its flags and the factory of its service module. */
interface Role {
  addFlags: (cmd: Command) => Command;
  create: (flags: Record<string, unknown>, ctx: ModuleContext) => Promise<ServiceModule>;
}

/**
 * The package each role's service lives in. The CLI declares them as optional peers: a GPU node
 * installs only @perseus/gpu-agent (no better-sqlite3), the control host the profiler and optimizer.
 */
export const ROLE_PACKAGES: Record<ModuleName, string> = {
  agent: '@perseus/gpu-agent',
  profiler: '@perseus/profiler',
  optimizer: '@perseus/optimizer',
};

/** Loads a role's flag module; undefined when the role's package is not installed. */
async function loadRole(name: ModuleName): Promise<Role | undefined> {
  try {
    switch (name) {
      case 'agent': {
        const m = await import('./serve-agent');
        return { addFlags: m.addAgentFlags, create: m.agentModuleFromFlags };
      }
      case 'profiler': {
        const m = await import('./serve-profiler');
        return { addFlags: m.addProfilerFlags, create: m.profilerModuleFromFlags };
      }
      case 'optimizer': {
        const m = await import('./serve-optimizer');
        return { addFlags: m.addOptimizerFlags, create: m.optimizerModuleFromFlags };
      }
    }
  } catch (err) {
    if (isMissingRolePackage(err) === ROLE_PACKAGES[name]) return undefined;
    throw err;
  }
}

/** The role package whose absence `err` reports (a failed require of it), else undefined. */
export function isMissingRolePackage(err: unknown): string | undefined {
  if (!(err instanceof Error) || (err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND')
    return undefined;
  return Object.values(ROLE_PACKAGES).find((pkg) => err.message.includes(`'${pkg}'`));
}

/** The installed roles, in serve order (agent, profiler, optimizer). */
export async function installedRoles(): Promise<Map<ModuleName, Role>> {
  const roles = new Map<ModuleName, Role>();
  for (const name of Object.keys(ROLE_PACKAGES) as ModuleName[]) {
    const role = await loadRole(name);
    if (role) roles.set(name, role);
  }
  return roles;
}

async function requireRole(name: ModuleName): Promise<Role> {
  const role = await loadRole(name);
  if (!role)
    throw new Error(`serving the ${name} needs the ${ROLE_PACKAGES[name]} package installed`);
  return role;
}

/** Default listen addresses (PERSEUS_<NAME>_LISTEN overrides; --listen wins). */
export const DEFAULT_LISTEN: Record<ModuleName | 'all', string> = {
  agent: 'unix:/run/perseus/agent.sock',
  profiler: '127.0.0.1:50052',
  optimizer: '127.0.0.1:50051',
  all: '127.0.0.1:50051',
};

export interface RunningServe {
  server: PerseusServer;
  modules: ServiceModule[];
  address: string;
}

/**
 * Hosts `names` on one server. Prints one JSON line `{"event":"serving","address":...}` on stdout
 * once bound, so scripts and tests started with port 0 learn the port.
 */
export async function startServe(
  names: ModuleName[],
  flags: Record<string, unknown>,
): Promise<RunningServe> {
  const logger = createLogger(
    names.length === 1 ? `perseus-${names[0]}` : 'perseus',
    flags['logLevel'] as string | undefined,
  );
  const key = names.length === 1 ? names[0]! : 'all';
  const address =
    (flags['listen'] as string | undefined) ??
    envString(`PERSEUS_${key.toUpperCase()}_LISTEN`, DEFAULT_LISTEN[key]);
  const credentials = tlsCredentials(flags);
  // The profiler and optimizer serve a non-local address only with TLS (and a token file, which
  // each module checks): refused before binding, so nothing is ever open there.
  if (
    names.some((n) => n !== 'agent') &&
    credentials === undefined &&
    !(await isLocalAddress(normalizeListenAddress(address)))
  )
    throw new Error(
      `refusing to serve ${names.filter((n) => n !== 'agent').join(' and ')} on ${address} without TLS: listen on loopback or a Unix socket, or pass --tls-cert and --tls-key (and a token file)`,
    );
  const modules: ServiceModule[] = [];
  // One metrics registry per process: every hosted module registers on it, and any of the
  // --<service>-metrics-listen endpoints serves all of them (plus the process metrics).
  const metrics = createMetricsRegistry({ processMetrics: true });
  try {
    for (const n of names)
      modules.push(
        await (
          await requireRole(n)
        ).create(flags, { logger, metrics, tls: credentials !== undefined }),
      );
  } catch (err) {
    for (const m of modules) await m.close();
    throw err;
  }
  const server = new PerseusServer({ address, logger, credentials });
  for (const m of modules) for (const s of m.services) server.addService(s);
  // Reverse order: the optimizer stops before the profiler it reads from, the agent resets last.
  for (const m of [...modules].reverse()) server.onShutdown(() => m.close());
  let bound: string;
  try {
    bound = await server.start();
  } catch (err) {
    // Nothing was served: close the modules (the agent resets and marks its state file clean).
    for (const m of modules) await m.close();
    throw err;
  }
  for (const m of modules) await m.onListening?.(bound);
  process.stdout.write(
    `${JSON.stringify({ event: 'serving', address: bound, services: modules.map((m) => m.name), version: PERSEUS_VERSION })}\n`,
  );
  return { server, modules, address: bound };
}

/** Server TLS from --tls-cert/--tls-key (and --tls-client-ca for mutual TLS), or undefined. */
function tlsCredentials(flags: Record<string, unknown>): grpc.ServerCredentials | undefined {
  const str = (k: string, env: string): string | undefined =>
    typeof flags[k] === 'string' ? (flags[k] as string) : process.env[env] || undefined;
  const cert = str('tlsCert', 'PERSEUS_TLS_CERT');
  const key = str('tlsKey', 'PERSEUS_TLS_KEY');
  const ca = str('tlsClientCa', 'PERSEUS_TLS_CLIENT_CA');
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined)
    throw new Error('--tls-cert and --tls-key go together');
  const caPem = ca === undefined ? null : fs.readFileSync(ca);
  return grpc.ServerCredentials.createSsl(
    caPem,
    [{ cert_chain: fs.readFileSync(cert), private_key: fs.readFileSync(key) }],
    caPem !== null,
  );
}

function common(cmd: Command): Command {
  return cmd
    .option('--listen <address>', 'host:port (port 0 = any) or unix:/path')
    .addOption(
      envOption(
        '--tls-cert <file>',
        'PERSEUS_TLS_CERT',
        'TLS certificate chain (PEM) of the listener',
      ),
    )
    .addOption(
      envOption('--tls-key <file>', 'PERSEUS_TLS_KEY', 'TLS private key (PEM) of the listener'),
    )
    .addOption(
      envOption(
        '--tls-client-ca <file>',
        'PERSEUS_TLS_CLIENT_CA',
        'require client certificates signed by this CA (mutual TLS)',
      ),
    )
    .addOption(
      envOption('--log-level <level>', 'PERSEUS_LOG_LEVEL', 'trace|debug|info|warn|error|silent'),
    );
}

async function serveAndWait(names: ModuleName[], flags: Record<string, unknown>): Promise<void> {
  const running = await startServe(names, flags);
  shutdownOnSignals([running.server], createLogger('perseus-signals'));
}

/**
 * Registers `perseus serve [agent|profiler|optimizer]`: one sub-command per installed role, and the
 * all-in-one `perseus serve` when all three are installed.
 */
export async function registerServeCommand(program: Command): Promise<void> {
  const roles = await installedRoles();
  const all = roles.size === Object.keys(ROLE_PACKAGES).length;
  let serve = new Command('serve');
  if (all) for (const role of roles.values()) serve = role.addFlags(serve);
  serve = common(serve)
    // Flags after `serve agent` belong to the agent sub-command, not to the all-in-one parent.
    .enablePositionalOptions()
    .description(
      all
        ? 'run all services in one process (embedded store, simulated GPUs by default), or one service'
        : `run one service (installed: ${[...roles.keys()].join(', ') || 'none'})`,
    )
    .action((flags: Record<string, unknown>) => {
      if (!all)
        throw new Error(
          `the all-in-one serve needs ${Object.values(ROLE_PACKAGES).join(', ')} installed`,
        );
      return serveAndWait(['agent', 'profiler', 'optimizer'], flags);
    });
  const what: Record<ModuleName, string> = {
    agent: 'run the GPU-control agent alone',
    profiler: 'run the profiler service alone',
    optimizer: 'run the optimizer service alone',
  };
  for (const name of Object.keys(ROLE_PACKAGES) as ModuleName[]) {
    const role = roles.get(name);
    if (role) {
      serve.addCommand(
        common(role.addFlags(new Command(name)))
          .description(what[name])
          .action((f: Record<string, unknown>) => serveAndWait([name], f)),
      );
    } else {
      serve.addCommand(
        new Command(name)
          .description(`not installed (needs ${ROLE_PACKAGES[name]})`)
          .allowUnknownOption()
          .action(() => requireRole(name).then(() => undefined)),
      );
    }
  }
  program.addCommand(serve);
}
