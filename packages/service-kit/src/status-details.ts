import type { Metadata, status } from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import type { FieldViolation } from './errors';

/**
 * google.rpc.Status and google.rpc.BadRequest, declared by reflection (their field numbers are the
 * public googleapis wire format), so error details need no extra .proto files at runtime.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: {
              fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } },
            },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            BadRequest: {
              fields: { field_violations: { rule: 'repeated', type: 'FieldViolation', id: 1 } },
              nested: {
                FieldViolation: {
                  fields: {
                    field: { type: 'string', id: 1 },
                    description: { type: 'string', id: 2 },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
});
const StatusType = root.lookupType('google.rpc.Status');
const BadRequestType = root.lookupType('google.rpc.BadRequest');

/** Metadata key grpc-js and grpcio use for the binary google.rpc.Status. */
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
export const BAD_REQUEST_TYPE_URL = 'type.googleapis.com/google.rpc.BadRequest';

/** Encodes google.rpc.Status{code, message, details:[BadRequest]} for the trailer. */
export function encodeBadRequestStatus(
  code: status,
  message: string,
  violations: readonly FieldViolation[],
): Buffer {
  const badRequest = BadRequestType.encode(
    BadRequestType.fromObject({ field_violations: violations.map((v) => ({ ...v })) }),
  ).finish();
  const msg = StatusType.fromObject({
    code,
    message,
    details: [{ type_url: BAD_REQUEST_TYPE_URL, value: badRequest }],
  });
  return Buffer.from(StatusType.encode(msg).finish());
}

/** Decodes the field violations from a ServiceError's metadata (for TS clients and tests). */
export function decodeFieldViolations(metadata: Metadata | undefined): FieldViolation[] {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (raw === undefined || typeof raw === 'string') return [];
  const st = StatusType.toObject(StatusType.decode(raw), { defaults: true }) as {
    details: Array<{ type_url: string; value: Uint8Array }>;
  };
  const out: FieldViolation[] = [];
  for (const any of st.details) {
    if (any.type_url !== BAD_REQUEST_TYPE_URL) continue;
    const br = BadRequestType.toObject(BadRequestType.decode(any.value), { defaults: true }) as {
      field_violations: FieldViolation[];
    };
    out.push(...br.field_violations);
  }
  return out;
}
