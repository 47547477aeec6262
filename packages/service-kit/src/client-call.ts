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
 * Writes `requests` on a bidirectional-streaming call, ends its side, and resolves with every
 * response once the server ends the stream (rejects with the stream's error). For tools,
 * benchmarks and tests.
 *
 * @example
 * ```ts
 * const acks = await streamExchange<profilerV1.BatchAck__Output>(client.ReportMeasurements(), [batch]);
 * ```
 */
export function streamExchange<Res, Req = unknown>(
  call: grpc.ClientDuplexStream<Req, Res>,
  requests: readonly Req[],
): Promise<Res[]> {
  return new Promise<Res[]>((resolve, reject) => {
    const out: Res[] = [];
    call.on('data', (r: Res) => out.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(out));
    for (const r of requests) call.write(r);
    call.end();
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
