import type { Command } from 'commander';
import { perseusGrpc } from '@perseus/proto';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';

/** Adds the profiler-specific flags of `perseus serve profiler` (and of the all-in-one `perseus serve`). */
export function addProfilerFlags(cmd: Command): Command {
  return cmd;
}

/** Builds the profiler module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function profilerModuleFromFlags(
  _flags: Record<string, unknown>,
  _ctx: ModuleContext,
): Promise<ServiceModule> {
  // Placeholder until the profiler issue lands: every RPC answers UNIMPLEMENTED.
  return {
    name: 'profiler',
    services: [
      { name: 'perseus.profiler.v1.Profiler', definition: perseusGrpc().perseus.profiler.v1.Profiler.service, handlers: {} },
    ],
    close: async () => undefined,
  };
}
