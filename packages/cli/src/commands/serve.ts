import { Command } from 'commander';
import type { ServiceModule } from '@perseus/service-kit';
import {
  PerseusServer,
  createLogger,
  createMetricsRegistry,
  envString,
  shutdownOnSignals,
} from '@perseus/service-kit';
import { addAgentFlags, agentModuleFromFlags } from './serve-agent';
import { addOptimizerFlags, optimizerModuleFromFlags } from './serve-optimizer';
import { addProfilerFlags, profilerModuleFromFlags } from './serve-profiler';

type ModuleName = ServiceModule['name'];

const FACTORIES: Record<ModuleName, typeof agentModuleFromFlags> = {
  agent: agentModuleFromFlags,
  profiler: profilerModuleFromFlags,
  optimizer: optimizerModuleFromFlags,
};

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
  const modules: ServiceModule[] = [];
  // One metrics registry per process: every hosted module registers on it, and any of the
  // --<service>-metrics-listen endpoints serves all of them (plus the process metrics).
  const metrics = createMetricsRegistry({ processMetrics: true });
  try {
    for (const n of names) modules.push(await FACTORIES[n](flags, { logger, metrics }));
  } catch (err) {
    for (const m of modules) await m.close();
    throw err;
  }
  const server = new PerseusServer({ address, logger });
  for (const m of modules) for (const s of m.services) server.addService(s);
  // Reverse order: the optimizer stops before the profiler it reads from, the agent resets last.
  for (const m of [...modules].reverse()) server.onShutdown(() => m.close());
  const bound = await server.start();
  for (const m of modules) await m.onListening?.(bound);
  process.stdout.write(
    `${JSON.stringify({ event: 'serving', address: bound, services: modules.map((m) => m.name) })}\n`,
  );
  return { server, modules, address: bound };
}

function common(cmd: Command): Command {
  return cmd
    .option('--listen <address>', 'host:port (port 0 = any) or unix:/path')
    .option('--log-level <level>', 'trace|debug|info|warn|error|silent (env PERSEUS_LOG_LEVEL)');
}

async function serveAndWait(names: ModuleName[], flags: Record<string, unknown>): Promise<void> {
  const running = await startServe(names, flags);
  shutdownOnSignals([running.server], createLogger('perseus-signals'));
}

/** Registers `perseus serve [agent|profiler|optimizer]`. */
export function registerServeCommand(program: Command): void {
  const serve = common(addOptimizerFlags(addProfilerFlags(addAgentFlags(new Command('serve')))))
    // Flags after `serve agent` belong to the agent sub-command, not to the all-in-one parent.
    .enablePositionalOptions()
    .description(
      'run all services in one process (embedded store, simulated GPUs by default), or one service',
    )
    .action((flags: Record<string, unknown>) =>
      serveAndWait(['agent', 'profiler', 'optimizer'], flags),
    );
  serve.addCommand(
    common(addAgentFlags(new Command('agent')))
      .description('run the GPU-control agent alone')
      .action((f: Record<string, unknown>) => serveAndWait(['agent'], f)),
  );
  serve.addCommand(
    common(addProfilerFlags(new Command('profiler')))
      .description('run the profiler service alone')
      .action((f: Record<string, unknown>) => serveAndWait(['profiler'], f)),
  );
  serve.addCommand(
    common(addOptimizerFlags(new Command('optimizer')))
      .description('run the optimizer service alone')
      .action((f: Record<string, unknown>) => serveAndWait(['optimizer'], f)),
  );
  program.addCommand(serve);
}
