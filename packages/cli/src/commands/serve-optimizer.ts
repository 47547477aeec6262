import type { Command } from 'commander';
import { perseusGrpc } from '@perseus/proto';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';

/** Adds the optimizer-specific flags of `perseus serve optimizer` (and of the all-in-one `perseus serve`). */
export function addOptimizerFlags(cmd: Command): Command {
  return cmd;
}

/** Builds the optimizer module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function optimizerModuleFromFlags(
  _flags: Record<string, unknown>,
  _ctx: ModuleContext,
): Promise<ServiceModule> {
  // Placeholder until the optimizer issue lands: every RPC answers UNIMPLEMENTED.
  return {
    name: 'optimizer',
    services: [
      { name: 'perseus.optimizer.v1.Optimizer', definition: perseusGrpc().perseus.optimizer.v1.Optimizer.service, handlers: {} },
    ],
    close: async () => undefined,
  };
}
