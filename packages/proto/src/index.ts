/**
 * The Perseus wire contract for TypeScript: message types generated from `protos/` by
 * `nx run proto:generate`, and a loader producing grpc-js service definitions and clients.
 *
 * @example
 * ```ts
 * import { perseusGrpc, agentV1 } from '@perseus/proto';
 * const { GpuAgent } = perseusGrpc().perseus.agent.v1;
 * server.addService(GpuAgent.service, impl);
 * const begin: agentV1.Begin = { seq: 1, frequency_mhz: 1410 };
 * ```
 */
export {
  LOADER_OPTIONS,
  PROTO_FILES,
  PROTO_ROOT,
  loadPackageDefinition,
  perseusGrpc,
  type PerseusGrpc,
} from './loader';
export * as agentV1 from './generated/agent-v1';
export * as commonV1 from './generated/common-v1';
export * as optimizerV1 from './generated/optimizer-v1';
export * as profilerV1 from './generated/profiler-v1';
