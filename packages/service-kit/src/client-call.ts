import * as grpc from '@grpc/grpc-js';
import { decodeFieldViolations } from './status-details';

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => unknown;

/** Per-call settings of {@link unaryCall}. */
export interface UnaryCallOptions {
  /** Request metadata (e.g. a bearer token). Default: none. */
  metadata?: grpc.Metadata;
  /** The call fails with DEADLINE_EXCEEDED this long after it starts, ms. Default: no deadline. */
  deadlineMs?: number;
}

/**
 * Calls the unary method `method` of a grpc-js client built from a loaded package definition and
 * resolves with its response (rejects with the grpc.ServiceError). For tools, benchmarks and tests.
 *
 * @example
 * ```ts
 * const res = await unaryCall<profilerV1.GetProfileResponse__Output>(client, 'GetProfile', { job_id: 'j' });
 * ```
 */
export function unaryCall<Res, Req = unknown>(
  client: grpc.Client,
  method: string,
  request: Req,
  opts: UnaryCallOptions = {},
): Promise<Res> {
  const fn = (client as unknown as Record<string, UnaryMethod<Req, Res> | undefined>)[method];
  if (typeof fn !== 'function') return Promise.reject(new Error(`client has no method ${method}`));
  const options: grpc.CallOptions =
    opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
  return new Promise<Res>((resolve, reject) => {
    fn.call(client, request, opts.metadata ?? new grpc.Metadata(), options, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    );
  });
}

/**
 * The status code and field violations (`field: description`) of a call expected to fail; throws if
 * it succeeds.
 */
export async function callFailure(
  call: Promise<unknown>,
): Promise<{ code: number; fields: string[] }> {
  try {
    await call;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return {
      code: e.code,
      fields: decodeFieldViolations(e.metadata).map((v) => `${v.field}: ${v.description}`),
    };
  }
  throw new Error('expected the call to fail');
}
