import type * as grpc from '@grpc/grpc-js';
import { Metadata, status } from '@grpc/grpc-js';
import { PerseusError, UnimplementedError, ValidationError } from './errors';
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

type Ctx = { logger: Logger; method: string };

function unaryHandler<Req, Res>(
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  ctx: Ctx,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
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
      .then(() => fn(call))
      .catch((err: unknown) => failStream(call, err, ctx.logger, ctx.method));
  };
}

function clientStreamHandler<Req, Res>(
  fn: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>,
  ctx: Ctx,
): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call))
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err, ctx.logger, ctx.method), null),
      );
  };
}

/** Handler shapes a service class provides; each is wrapped with the error mapper. */
export type Handler =
  | { kind: 'unary'; fn: (req: never, call: never) => unknown }
  | { kind: 'serverStream'; fn: (call: never) => Promise<void> | void }
  | { kind: 'clientStream'; fn: (call: never) => Promise<unknown> }
  | { kind: 'bidi'; fn: (call: never) => Promise<void> | void };

/** Typed helpers to declare handlers. */
export const rpc = {
  unary<Req, Res>(
    fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  ): Handler {
    return { kind: 'unary', fn: fn as Handler['fn'] } as Handler;
  },
  serverStream<Req, Res>(
    fn: (call: grpc.ServerWritableStream<Req, Res>) => Promise<void> | void,
  ): Handler {
    return { kind: 'serverStream', fn: fn as Handler['fn'] } as Handler;
  },
  clientStream<Req, Res>(fn: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>): Handler {
    return { kind: 'clientStream', fn: fn as Handler['fn'] } as Handler;
  },
  bidi<Req, Res>(fn: (call: grpc.ServerDuplexStream<Req, Res>) => Promise<void> | void): Handler {
    return { kind: 'bidi', fn: fn as Handler['fn'] } as Handler;
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
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const unknownName of Object.keys(handlers)) {
    if (!(unknownName in definition))
      throw new Error(`${serviceName} has no method ${unknownName}`);
  }
  for (const [method, attrs] of Object.entries(definition)) {
    const ctx = { logger, method: `${serviceName}/${method}` };
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
    switch (h.kind) {
      case 'unary':
        impl[method] = unaryHandler(h.fn as never, ctx);
        break;
      case 'serverStream':
        impl[method] = streamHandler(h.fn as never, ctx) as grpc.UntypedHandleCall;
        break;
      case 'clientStream':
        impl[method] = clientStreamHandler(h.fn as never, ctx);
        break;
      case 'bidi':
        impl[method] = streamHandler(h.fn as never, ctx) as grpc.UntypedHandleCall;
        break;
    }
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
