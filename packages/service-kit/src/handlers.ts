import type * as grpc from '@grpc/grpc-js';
import { Metadata, status } from '@grpc/grpc-js';
import { PerseusError, UnimplementedError, ValidationError } from './errors';
import type { AccessScope, Caller, ListenerAccess } from './access';
import type { Logger } from './logger';
import { STATUS_DETAILS_KEY, encodeBadRequestStatus } from './status-details';

/**
 * The one error mapper: domain errors keep their status (validation errors also carry
 * google.rpc.BadRequest field violations in `grpc-status-details-bin`); anything unexpected is
 * logged with its cause and becomes INTERNAL with a generic message — no internals to clients.
 */
export function toServiceError(
  err: unknown,
  logger: Logger,
  method: string,
): Partial<grpc.StatusObject> {
  if (err instanceof ValidationError) {
    const metadata = new Metadata();
    metadata.set(STATUS_DETAILS_KEY, encodeBadRequestStatus(err.code, err.message, err.violations));
    return { code: err.code, details: err.message, metadata };
  }
  if (err instanceof PerseusError) return { code: err.code, details: err.message };
  logger.error({ err, method }, 'unexpected error in handler');
  return { code: status.INTERNAL, details: 'internal error' };
}

/** How a method is authorised: the scope it needs and, for per-job checks, the job it names. */
export interface MethodAccess {
  scope: AccessScope;
  /** The job a request names (unary and server-streaming calls); checked against the token. */
  jobOf?: (request: never) => string | undefined;
}

/** Access rules of a hosted service: the listener's policy and each method's scope. */
export interface ServiceAccess {
  listener: ListenerAccess;
  methods: Readonly<Record<string, MethodAccess>>;
}

type Ctx = {
  logger: Logger;
  method: string;
  access?: { listener: ListenerAccess; rule: MethodAccess };
};

const callers = new WeakMap<object, Caller>();

const UNDECODABLE = Symbol('undecodable request');
type Undecodable = { [UNDECODABLE]: string };

function undecodable(request: unknown): string | undefined {
  return typeof request === 'object' && request !== null && UNDECODABLE in request
    ? (request as Undecodable)[UNDECODABLE]
    : undefined;
}

/**
 * `definition` with request decoders that never throw: bytes that are not a valid message become
 * a marker the handler wrappers answer with INVALID_ARGUMENT (grpc-js itself would answer INTERNAL,
 * which reads as a server fault). In a stream, such a message reaches the handler as an empty
 * message, which its validator rejects field by field.
 */
export function tolerantDefinition(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, m]) => [
      name,
      {
        ...m,
        requestDeserialize: (buf: Buffer): unknown => {
          try {
            return m.requestDeserialize(buf);
          } catch (err) {
            const marker: Undecodable = {
              [UNDECODABLE]: err instanceof Error ? err.message.slice(0, 200) : 'undecodable',
            };
            return marker;
          }
        },
      },
    ]),
  );
}

/** The authenticated caller of a call on a service with {@link ServiceAccess} (else undefined). */
export function callerOf(call: object): Caller | undefined {
  return callers.get(call);
}

/** Checks a call against its method's rule before the handler runs (throws the mapped error). */
function admit(call: { metadata: Metadata; request?: unknown }, ctx: Ctx): void {
  const bad = undecodable(call.request);
  if (bad !== undefined)
    throw ValidationError.field(
      '(request)',
      `is not a valid ${ctx.method} request message: ${bad}`,
    );
  if (ctx.access === undefined) return;
  const { listener, rule } = ctx.access;
  const jobId =
    rule.jobOf !== undefined && call.request !== undefined
      ? (rule.jobOf as (r: unknown) => string | undefined)(call.request)
      : undefined;
  callers.set(call, listener.current.check(call.metadata, rule.scope, jobId));
}

function unaryHandler<Req, Res>(
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  ctx: Ctx,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => {
        admit(call, ctx);
        return fn(call.request, call);
      })
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err, ctx.logger, ctx.method), null),
      );
  };
}

type AnyStreamCall =
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;

/** Ends a server-writable stream with the mapped status of `err`. */
export function failStream(
  call: AnyStreamCall,
  err: unknown,
  logger: Logger,
  method: string,
): void {
  call.emit('error', toServiceError(err, logger, method));
}

function streamHandler<C extends AnyStreamCall>(
  fn: (call: C) => Promise<void> | void,
  ctx: Ctx,
): (call: C) => void {
  return (call) => {
    Promise.resolve()
      .then(() => {
        admit(call, ctx);
        return fn(call);
      })
      .catch((err: unknown) => failStream(call, err, ctx.logger, ctx.method));
  };
}

function clientStreamHandler<Req, Res>(
  fn: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>,
  ctx: Ctx,
): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => {
        admit(call, ctx);
        return fn(call);
      })
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err, ctx.logger, ctx.method), null),
      );
  };
}

/**
 * One method's handler: its call kind, and how to build the grpc-js handler behind the error mapper
 * for it. Built by {@link rpc}, which keeps the request and response types through to grpc-js.
 */
export interface Handler {
  readonly kind: 'unary' | 'serverStream' | 'clientStream' | 'bidi';
  build(ctx: Ctx): grpc.UntypedHandleCall;
}

/** Typed helpers to declare handlers. */
export const rpc = {
  unary<Req, Res>(
    fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  ): Handler {
    return { kind: 'unary', build: (ctx) => unaryHandler(fn, ctx) };
  },
  serverStream<Req, Res>(
    fn: (call: grpc.ServerWritableStream<Req, Res>) => Promise<void> | void,
  ): Handler {
    return { kind: 'serverStream', build: (ctx) => streamHandler(fn, ctx) };
  },
  clientStream<Req, Res>(fn: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>): Handler {
    return { kind: 'clientStream', build: (ctx) => clientStreamHandler(fn, ctx) };
  },
  bidi<Req, Res>(fn: (call: grpc.ServerDuplexStream<Req, Res>) => Promise<void> | void): Handler {
    return { kind: 'bidi', build: (ctx) => streamHandler(fn, ctx) };
  },
};

/**
 * Builds a grpc-js implementation of `definition` from `handlers`, every one behind the error
 * mapper. Methods without a handler answer UNIMPLEMENTED (honest until their issue lands).
 */
export function implementService(
  serviceName: string,
  definition: grpc.ServiceDefinition,
  handlers: Readonly<Record<string, Handler | undefined>>,
  logger: Logger,
  access?: ServiceAccess,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const unknownName of Object.keys(handlers)) {
    if (!(unknownName in definition))
      throw new Error(`${serviceName} has no method ${unknownName}`);
  }
  for (const [method, attrs] of Object.entries(definition)) {
    const rule = access?.methods[method];
    if (access !== undefined && rule === undefined)
      throw new Error(`${serviceName}/${method} has no access rule`);
    const ctx: Ctx = {
      logger,
      method: `${serviceName}/${method}`,
      ...(access !== undefined && rule !== undefined
        ? { access: { listener: access.listener, rule } }
        : {}),
    };
    const h =
      handlers[method] ?? unimplemented(ctx.method, attrs.requestStream, attrs.responseStream);
    const expected = attrs.requestStream
      ? attrs.responseStream
        ? 'bidi'
        : 'clientStream'
      : attrs.responseStream
        ? 'serverStream'
        : 'unary';
    if (h.kind !== expected) throw new Error(`${ctx.method} is ${expected}, handler is ${h.kind}`);
    impl[method] = h.build(ctx);
  }
  return impl;
}

function unimplemented(method: string, requestStream: boolean, responseStream: boolean): Handler {
  const fail = (): never => {
    throw new UnimplementedError(method);
  };
  if (requestStream && responseStream) return rpc.bidi(fail);
  if (requestStream) return rpc.clientStream(async () => fail());
  if (responseStream) return rpc.serverStream(fail);
  return rpc.unary(fail);
}
