import type { Command } from 'commander';
import { perseusGrpc } from '@perseus/proto';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';

/** Adds the agent-specific flags of `perseus serve agent` (and of the all-in-one `perseus serve`). */
export function addAgentFlags(cmd: Command): Command {
  return cmd;
}

/** Builds the agent module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function agentModuleFromFlags(
  _flags: Record<string, unknown>,
  _ctx: ModuleContext,
): Promise<ServiceModule> {
  // Placeholder until the agent issue lands: every RPC answers UNIMPLEMENTED.
  return {
    name: 'agent',
    services: [
      { name: 'perseus.agent.v1.GpuAgent', definition: perseusGrpc().perseus.agent.v1.GpuAgent.service, handlers: {} },
    ],
    close: async () => undefined,
  };
}
