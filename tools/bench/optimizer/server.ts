/**
 * A stand-alone optimizer server for the benchmarks (what `perseus serve optimizer` runs, plus a
 * switch to plan on the main thread for comparison). Prints {"event":"serving","address":...}.
 *   node --import tsx server.ts [--planner worker|inline] [--profile-csv path]
 */
import { computeFrontier } from '@perseus/planner';
import { createOptimizerModule } from '@perseus/optimizer';
import type { FrontierPlanner } from '@perseus/optimizer';
import { PerseusServer, createLogger, shutdownOnSignals } from '@perseus/service-kit';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};

/** Plans on the calling thread: every RPC waits while a frontier is computed. */
const inlinePlanner: FrontierPlanner = {
  plan: async (input) => {
    const frontier = computeFrontier(input);
    return { frontier, json: JSON.stringify(frontier.toJSON()) };
  },
  close: async () => undefined,
};

async function main(): Promise<void> {
  const logger = createLogger('bench-optimizer');
  const mod = await createOptimizerModule({
    logger,
    dataDir: flag('--data-dir', ':memory:'),
    profileCsv: flag('--profile-csv', ''),
    profilerUrl: '127.0.0.1:1',
    metricsListen: flag('--metrics-listen', ''),
    ...(flag('--planner', 'worker') === 'inline' ? { planner: inlinePlanner } : {}),
  });
  const server = new PerseusServer({ address: '127.0.0.1:0', logger });
  for (const s of mod.services) server.addService(s);
  server.onShutdown(() => mod.close());
  const address = await server.start();
  process.stdout.write(
    `${JSON.stringify({ event: 'serving', address, metrics: mod.metricsAddress() })}\n`,
  );
  shutdownOnSignals([server], logger);
}

void main();
