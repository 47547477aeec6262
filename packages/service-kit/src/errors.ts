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

/** Bad input: INVALID_ARGUMENT with google.rpc.BadRequest field violations. */
export class ValidationError extends PerseusError {
  readonly violations: readonly FieldViolation[];
  constructor(violations: readonly FieldViolation[]) {
    if (violations.length === 0) throw new Error('ValidationError needs at least one violation');
    super(
      status.INVALID_ARGUMENT,
      violations.map((v) => `${v.field}: ${v.description}`).join('; '),
    );
    this.violations = violations;
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

export class AlreadyExistsError extends PerseusError {
  constructor(message: string) {
    super(status.ALREADY_EXISTS, message);
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
