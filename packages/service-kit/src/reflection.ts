import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import * as protobuf from 'protobufjs';
import { FileDescriptorProto } from 'protobufjs/ext/descriptor';
import type { IEnumDescriptorProto, IServiceDescriptorProto } from 'protobufjs/ext/descriptor';
import { PROTO_FILES, PROTO_ROOT } from '@perseus/proto';

// protobufjs/ext/descriptor adds these methods at runtime; its typings declare only Type's.
declare module 'protobufjs' {
  interface Service {
    toDescriptor(): protobuf.Message<IServiceDescriptorProto>;
  }
  interface Enum {
    toDescriptor(): protobuf.Message<IEnumDescriptorProto>;
  }
}

/** One .proto file to describe: its include root and its path under that root (the import name). */
interface ProtoSource {
  root: string;
  file: string;
}

/** Where grpc-health-check keeps the standard health proto, and the name it is imported by. */
const HEALTH: ProtoSource = {
  root: path.join(path.dirname(require.resolve('grpc-health-check/package.json')), 'proto'),
  file: 'health/v1/health.proto',
};
const HEALTH_IMPORT_NAME = 'grpc/health/v1/health.proto';

type Described = protobuf.Type | protobuf.Enum | protobuf.Service;

/**
 * Builds the real FileDescriptorProto of each source: the file's own import name, its package, its
 * imports as dependencies, and fully qualified type names (`.perseus.common.v1.RankIdentity`), which
 * is what reflection clients (grpcurl, grpcio-reflection) need to resolve every method's types.
 */
export function fileDescriptors(
  sources: ProtoSource[],
  rename: Record<string, string> = {},
): Buffer[] {
  const root = new protobuf.Root();
  const roots = [...new Set(sources.map((s) => s.root))];
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    const found = roots.map((r) => path.join(r, target)).find((p) => fs.existsSync(p));
    return found ?? path.join(roots[0]!, target);
  };
  root.loadSync(
    sources.map((s) => s.file),
    { keepCase: true },
  );
  root.resolveAll();
  const importName = (filename: string): string => {
    const owner = roots.find((r) => filename.startsWith(r + path.sep));
    const rel = owner ? path.relative(owner, filename) : filename;
    return rename[rel] ?? rel;
  };
  const files = new Map<string, { pkg: string; objs: Described[] }>();
  const all: Described[] = [];
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      if (
        obj instanceof protobuf.Type ||
        obj instanceof protobuf.Enum ||
        obj instanceof protobuf.Service
      )
        all.push(obj);
      else if (obj instanceof protobuf.Namespace) walk(obj);
    }
  };
  walk(root);
  for (const obj of all) {
    const name = importName(obj.filename ?? '');
    const entry = files.get(name) ?? { pkg: obj.parent?.fullName.slice(1) ?? '', objs: [] };
    entry.objs.push(obj);
    files.set(name, entry);
  }
  return [...files.entries()].map(([name, { pkg, objs }]) => {
    const deps = new Set<string>();
    const note = (t: protobuf.ReflectionObject | null | undefined): void => {
      const file = t?.filename ? importName(t.filename) : undefined;
      if (file && file !== name) deps.add(file);
    };
    const visit = (o: Described): void => {
      if (o instanceof protobuf.Type) {
        for (const f of o.fieldsArray) note(f.resolvedType);
        for (const n of o.nestedArray) if (n instanceof protobuf.Type) visit(n);
      } else if (o instanceof protobuf.Service) {
        for (const m of o.methodsArray) {
          note(m.resolvedRequestType);
          note(m.resolvedResponseType);
        }
      }
    };
    objs.forEach(visit);
    const descriptor = FileDescriptorProto.create({
      name,
      package: pkg,
      dependency: [...deps].sort(),
      messageType: objs
        .filter((o) => o instanceof protobuf.Type)
        .map((o) => o.toDescriptor('proto3')),
      enumType: objs.filter((o) => o instanceof protobuf.Enum).map((o) => o.toDescriptor()),
      service: objs.filter((o) => o instanceof protobuf.Service).map((o) => o.toDescriptor()),
      syntax: 'proto3',
    });
    return Buffer.from(FileDescriptorProto.encode(descriptor).finish());
  });
}

let cached: Buffer[] | undefined;

/** The descriptors of every Perseus proto and of grpc.health.v1 (built once per process). */
export function perseusFileDescriptors(): Buffer[] {
  cached ??= fileDescriptors([...PROTO_FILES.map((file) => ({ root: PROTO_ROOT, file })), HEALTH], {
    [HEALTH.file]: HEALTH_IMPORT_NAME,
  });
  return cached;
}

/**
 * Adds server reflection (v1 and v1alpha) over the real file descriptors, listing `services` plus
 * grpc.health.v1.Health. @grpc/reflection indexes whatever descriptors a package definition carries;
 * it is given ours instead of proto-loader's (which merges files per package under made-up names).
 */
export function addReflection(server: Pick<grpc.Server, 'addService'>, services: string[]): void {
  const descriptors: EnumTypeDefinition = {
    format: 'Protocol Buffer 3 EnumDescriptorProto',
    type: {},
    fileDescriptorProtos: perseusFileDescriptors(),
  };
  const definition: PackageDefinition = { descriptors };
  new ReflectionService(definition, {
    services: [...services, 'grpc.health.v1.Health'],
  }).addToServer(server);
}
