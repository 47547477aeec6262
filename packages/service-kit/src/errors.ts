import { status } from '@grpc/grpc-js';

/** One invalid field: the wire path of the field and what is wrong with it. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * A domain error that knows its gRPC status. Services throw these; {@link toServiceError} maps
 * them at the edge. Anything else that escapes a handler becomes INTERNAL with a generic message.
 */
export class PerseusError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Most field violations one error carries. The rest are summed up in one last violation
 * ("and N more violations"), so an error built from a huge bad list stays small: gRPC trailers
 * over ~8 KiB make clients see RESOURCE_EXHAUSTED instead of the real error.
 */
export const MAX_VIOLATIONS = 20;

/** Longest description kept per violation, characters (values are quoted in descriptions). */
const MAX_DESCRIPTION_CHARS = 256;

/** The first {@link MAX_VIOLATIONS} of `violations`, plus one summing up the rest. */
export function capViolations(
  violations: readonly FieldViolation[],
  omitted = 0,
): FieldViolation[] {
  const kept = violations.slice(0, MAX_VIOLATIONS).map((v) => ({
    field: v.field.slice(0, MAX_DESCRIPTION_CHARS),
    description:
      v.description.length > MAX_DESCRIPTION_CHARS
        ? `${v.description.slice(0, MAX_DESCRIPTION_CHARS - 1)}…`
        : v.description,
  }));
  const more = violations.length - kept.length + omitted;
  if (more > 0)
    kept.push({
      field: violations[MAX_VIOLATIONS]?.field ?? kept[kept.length - 1]?.field ?? '',
      description: `and ${more} more violation${more === 1 ? '' : 's'}`,
    });
  return kept;
}

/**
 * Bad input: INVALID_ARGUMENT with google.rpc.BadRequest field violations, capped at
 * {@link MAX_VIOLATIONS} (+ one "and N more"); `omitted` counts violations the caller already
 * dropped.
 */
export class ValidationError extends PerseusError {
  readonly violations: readonly FieldViolation[];
  constructor(violations: readonly FieldViolation[], omitted = 0) {
    if (violations.length === 0) throw new Error('ValidationError needs at least one violation');
    const capped = capViolations(violations, omitted);
    super(status.INVALID_ARGUMENT, capped.map((v) => `${v.field}: ${v.description}`).join('; '));
    this.violations = capped;
  }

  /** Shorthand for a single violation. */
  static field(field: string, description: string): ValidationError {
    return new ValidationError([{ field, description }]);
  }
}

export class NotFoundError extends PerseusError {
  constructor(message: string) {
    super(status.NOT_FOUND, message);
  }
}

export class FailedPreconditionError extends PerseusError {
  constructor(message: string) {
    super(status.FAILED_PRECONDITION, message);
  }
}

export class PermissionDeniedError extends PerseusError {
  constructor(message: string) {
    super(status.PERMISSION_DENIED, message);
  }
}

export class UnauthenticatedError extends PerseusError {
  constructor(message: string) {
    super(status.UNAUTHENTICATED, message);
  }
}

export class ResourceExhaustedError extends PerseusError {
  constructor(message: string) {
    super(status.RESOURCE_EXHAUSTED, message);
  }
}

/** The operation was cut off by a concurrency or lifetime rule (e.g. a lease that expired). */
export class AbortedError extends PerseusError {
  constructor(message: string) {
    super(status.ABORTED, message);
  }
}

export class UnavailableError extends PerseusError {
  constructor(message: string) {
    super(status.UNAVAILABLE, message);
  }
}

/** A handler whose issue has not landed yet. An honest status rather than a fake answer. */
export class UnimplementedError extends PerseusError {
  constructor(method: string) {
    super(status.UNIMPLEMENTED, `${method} is not implemented yet`);
  }
}

/**
 * The field violations `fn` throws as a {@link ValidationError}, as `[field, description]` pairs;
 * rethrows any other error and throws if `fn` returns. For tests of `validateXxx` functions.
 */
export function thrownViolations(fn: () => unknown): Array<[string, string]> {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err.violations.map((v) => [v.field, v.description]);
    throw err;
  }
  throw new Error('expected a ValidationError');
}
