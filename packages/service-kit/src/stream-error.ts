import { status } from '@grpc/grpc-js';
import type { commonV1 } from '@perseus/proto';
import { PerseusError, ValidationError } from './errors';
import type { Logger } from './logger';

/**
 * The in-stream form of an error (perseus.common.v1.StreamError), for errors reported inside a
 * stream without ending it (a profiler batch, an agent session event). Same mapping as
 * {@link toServiceError}: domain errors keep their status and (capped) field violations; anything
 * unexpected is logged and becomes INTERNAL without internals.
 */
export function toStreamError(err: unknown, logger: Logger, context: string): commonV1.StreamError {
  if (err instanceof ValidationError) {
    return {
      code: err.code,
      message: err.message,
      violations: err.violations.map((v) => ({ field: v.field, description: v.description })),
    };
  }
  if (err instanceof PerseusError) return { code: err.code, message: err.message, violations: [] };
  logger.error({ err, context }, 'unexpected error in stream');
  return { code: status.INTERNAL, message: 'internal error', violations: [] };
}
