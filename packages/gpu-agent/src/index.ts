/**
 * The per-node GPU-control agent (docs/architecture.md §2, §5 `perseus.agent.v1`): backends (NVML, AMD SMI,
 * simulated), device leases that always end in a reset, per-instruction clock changes through a
 * per-device worker, measurements with energy from the device counter.
 *
 * @example
 * ```ts
 * import { createAgentModule } from '@perseus/gpu-agent';
 * import { PerseusServer, createLogger } from '@perseus/service-kit';
 * const logger = createLogger('agent');
 * const agent = await createAgentModule({ logger, backend: 'simulated', stateFile: '/tmp/agent.json', listenAddress: 'unix:/tmp/agent.sock' });
 * const server = new PerseusServer({ address: 'unix:/tmp/agent.sock', logger });
 * for (const s of agent.services) server.addService(s);
 * server.onShutdown(() => agent.close()); // resets every device before the listener closes
 * await agent.onListening?.(await server.start());
 * ```
 */
export { createAgentModule, type AgentModule, type AgentModuleOptions } from './module';
export {
  agentOptionsFromEnv,
  ALL_IN_ONE_DEFAULTS,
  parseMode,
  parseUidList,
  BACKEND_CHOICES,
  type AgentOptions,
  type BackendChoice,
} from './config';
export type { BackendKind, DeviceActivity, DeviceInfo, GpuBackend } from './backend';
export { SimulatedBackend, type SimulatedBackendOptions } from './backends/simulated-backend';
export { NvmlBackend } from './backends/nvml-backend';
export { AmdSmiBackend } from './backends/amdsmi-backend';
export { createBackend } from './backends/select';
export {
  MODEL_SPECS,
  loadProfileTable,
  parseProfileCsv,
  type ModelSpec,
  type ProfileRow,
  type SimulatedModel,
} from './profile-table';
export type { GpuAgentCore, AgentCoreOptions, AgentStats } from './agent';
export type { MeasurementValue, SessionOpenedValue, SessionSink } from './session';
export type { DeviceView } from './device-view';
export type { AdminResetResult } from './agent';
export {
  StateFile,
  readStateFile,
  type PersistedDevice,
  type PersistedState,
  type SimulatedDeviceState,
} from './state-file';
export { parseTokenFile, type Scope, type Token } from './auth';
export type { AuditEntry, Caller } from './audit';
export { renderMetrics } from './metrics';
export * from './validate';
