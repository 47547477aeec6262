import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as AgentGrpc } from './generated/agent';
import type { ProtoGrpcType as OptimizerGrpc } from './generated/optimizer';
import type { ProtoGrpcType as ProfilerGrpc } from './generated/profiler';

/**
 * Directory holding the `.proto` sources: `dist/protos` in a built or installed package (the build
 * copies them there), else the repository's top-level `protos/` (running from the sources).
 */
export const PROTO_ROOT = fs.existsSync(path.join(__dirname, 'protos'))
  ? path.join(__dirname, 'protos')
  : path.resolve(__dirname, '..', '..', '..', 'protos');

/** Every service proto, relative to {@link PROTO_ROOT}. */
export const PROTO_FILES = [
  'perseus/agent/v1/agent.proto',
  'perseus/profiler/v1/profiler.proto',
  'perseus/optimizer/v1/optimizer.proto',
] as const;

/**
 * Loader options. They must match the flags tools/codegen/generate.sh gives
 * proto-loader-gen-types, or the generated types would lie about runtime shapes:
 * snake_case field names (so validation errors name the wire field), 64-bit integers as
 * decimal strings (no precision loss on nanosecond timestamps), enums as their names,
 * defaults filled in, and a virtual field naming the set member of each oneof.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

let cachedDefinition: protoLoader.PackageDefinition | undefined;

/** The package definition of all Perseus services (loaded once, then cached). */
export function loadPackageDefinition(): protoLoader.PackageDefinition {
  cachedDefinition ??= protoLoader.loadSync([...PROTO_FILES], LOADER_OPTIONS);
  return cachedDefinition;
}

/** Typed grpc object: `perseusGrpc().perseus.agent.v1.GpuAgent` is the service constructor. */
export type PerseusGrpc = AgentGrpc & ProfilerGrpc & OptimizerGrpc;

let cachedGrpc: PerseusGrpc | undefined;

/** The grpc-js object tree for every Perseus package (clients and service definitions). */
export function perseusGrpc(): PerseusGrpc {
  cachedGrpc ??= grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as PerseusGrpc;
  return cachedGrpc;
}
