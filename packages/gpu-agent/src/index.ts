/**
 * The per-node GPU-control agent (DESIGN §2, §5 `perseus.agent.v1`): backends (NVML, AMD SMI,
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
export {
  createAgentModule,
  resolveGroup,
  type AgentModule,
  type AgentModuleOptions,
} from './module';
export {
  agentOptionsFromEnv,
  ALL_IN_ONE_DEFAULTS,
  checkAgentOptions,
  parseMode,
  BACKEND_CHOICES,
  DEFAULT_STATE_FILE,
  type AgentOptions,
  type BackendChoice,
} from './config';
export {
  nearestClocks,
  type BackendKind,
  type DeviceActivity,
  type DeviceInfo,
  type GpuBackend,
} from './backend';
export { SimulatedBackend, type SimulatedBackendOptions } from './backends/simulated-backend';
export { NvmlBackend, NvmlError } from './backends/nvml-backend';
export { AmdSmiBackend, AmdSmiError } from './backends/amdsmi-backend';
export { createBackend } from './backends/select';
export {
  DEFAULT_PROFILE_DIR,
  MODEL_SPECS,
  ProfileTable,
  SIMULATED_MODELS,
  loadProfileTable,
  parseProfileCsv,
  type ModelSpec,
  type ProfileRow,
  type SimulatedModel,
} from './profile-table';
export { GpuAgentCore, type AgentCoreOptions, type AgentStats } from './agent';
export {
  Session,
  type MeasurementValue,
  type SessionOpenedValue,
  type SessionSink,
} from './session';
export type { DeviceView } from './device-view';
export {
  StateFile,
  readStateFile,
  type PersistedDevice,
  type PersistedState,
  type SimulatedDeviceState,
} from './state-file';
export { Authorizer, loadTokenFile, parseTokenFile, type Scope, type Token } from './auth';
export { AuditLog, type AuditEntry, type Caller } from './audit';
export { registerAgentMetrics, renderMetrics } from './metrics';
export { gpuAgentService } from './service';
export * from './validate';
