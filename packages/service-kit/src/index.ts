/**
 * Shared gRPC server plumbing for the Perseus services: validation at the boundary
 * ({@link Checker}), domain errors with their gRPC status, the one error mapper
 * (INVALID_ARGUMENT + google.rpc.BadRequest, INTERNAL without internals), and
 * {@link PerseusServer} (health, reflection, lifecycle, graceful shutdown).
 *
 * @example
 * ```ts
 * const server = new PerseusServer({ address: '127.0.0.1:0', logger: createLogger('agent') });
 * server.addService({ name: 'perseus.agent.v1.GpuAgent', definition, handlers: {
 *   ListDevices: rpc.unary(async (req) => agent.listDevices(validateListDevices(req))),
 * } });
 * await server.start();
 * ```
 */
export {
  AbortedError,
  FailedPreconditionError,
  NotFoundError,
  PerseusError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
  ValidationError,
  thrownViolations,
  MAX_VIOLATIONS,
  capViolations,
  type FieldViolation,
} from './errors';
export { SIZE_LIMITS, type SizeLimits } from './limits';
export { checkSupportedClocks } from './clocks';
export { GPT3_A100_CSV, GPT3_A40_CSV, REFERENCE_PROFILE_DIR } from './reference-profiles';
export {
  checkRankIdentity,
  checkRankInShape,
  rankFits,
  type ParallelShape,
  type RankIdentity,
} from './rank';
export { toStreamError } from './stream-error';
export { callFailure, streamExchange, unaryCall, type UnaryCallOptions } from './client-call';
export {
  createMetricsRegistry,
  histogram,
  observedMetric,
  observedSummary,
  startMetricsServer,
  type MetricsRegistry,
  type MetricsServer,
  type QuantileWindow,
  type Sample,
} from './metrics';
export { Checker, ID_PATTERN } from './validate';
export {
  callerOf,
  failStream,
  implementService,
  rpc,
  toServiceError,
  type Handler,
  type MethodAccess,
  type ServiceAccess,
} from './handlers';
export {
  AccessPolicy,
  ListenerAccess,
  isLocalAddress,
  listenerPolicy,
  SERVICE_SCOPES,
  loadAccessTokens,
  parseAccessTokens,
  serviceListenerAccess,
  type AccessScope,
  type AccessToken,
  type Caller,
  type ServiceListenerAccess,
} from './access';
export {
  STATUS_DETAILS_KEY,
  decodeFieldViolations,
  encodeBadRequestStatus,
} from './status-details';
export {
  PerseusServer,
  VERSION_HEADER,
  shutdownOnSignals,
  type HostedService,
  type PerseusServerOptions,
  type ServerState,
} from './server';
export { createLogger, type Logger } from './logger';
export {
  formatUnixPeer,
  parseUnixPeer,
  socketPeerCredentials,
  type UnixPeer,
} from './peer-credentials';
export { releaseFreedMemory } from './release-memory';
export { envBool, envNumber, envString, normalizeListenAddress, unixSocketPath } from './env';
export type { ModuleContext, ServiceModule } from './module';
export { PERSEUS_VERSION } from './version';
export { checkWirePipeline, type WirePipeline } from './pipeline-spec';
export {
  INSTRUCTION_FROM_WIRE,
  SCHEDULE_FROM_WIRE,
  checkWireSchedule,
  instructionFromWire,
  type SpecifiedEnum,
  type WireSchedule,
} from './wire-enums';
