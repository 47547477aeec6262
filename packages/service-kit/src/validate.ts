import type { FieldViolation } from './errors';
import { MAX_VIOLATIONS, ValidationError } from './errors';

/** Ids (jobs, batches) are 1–128 characters of [A-Za-z0-9._-]: safe in paths, logs and metrics. */
export const ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

type Long = { toString(): string };

/**
 * Accumulates field violations while a `validateXxx` function turns a loose wire message into a
 * strict internal value. Each method returns the checked value (or a harmless placeholder when it
 * is invalid) so a validator reads top to bottom; {@link Checker.done} throws one
 * {@link ValidationError} listing every violation.
 *
 * @example
 * ```ts
 * const c = new Checker();
 * const jobId = c.id('job_id', req.job_id);
 * const m = c.uint('spec.pipeline.num_microbatches', req.spec?.pipeline?.num_microbatches, { min: 1 });
 * c.done();
 * ```
 */
export class Checker {
  private readonly found: { violations: FieldViolation[]; omitted: number };

  constructor(
    private readonly prefix = '',
    found?: { violations: FieldViolation[]; omitted: number },
  ) {
    this.found = found ?? { violations: [], omitted: 0 };
  }

  /** A checker whose field names are prefixed with `path.` and that shares this one's violations. */
  at(path: string): Checker {
    return new Checker(this.path(path), this.found);
  }

  /**
   * Records a violation. Past {@link MAX_VIOLATIONS} + 1 only the count grows (the error says
   * "and N more"), so validating a huge bad list costs no memory per entry.
   */
  fail(field: string, description: string): void {
    if (this.found.violations.length > MAX_VIOLATIONS) this.found.omitted++;
    else this.found.violations.push({ field: this.path(field), description });
  }

  get ok(): boolean {
    return this.found.violations.length === 0;
  }

  /** Violations recorded so far (at most MAX_VIOLATIONS + 1 kept; see {@link fail}). */
  get count(): number {
    return this.found.violations.length + this.found.omitted;
  }

  /** Throws a ValidationError if anything was recorded. */
  done(): void {
    if (this.found.violations.length > 0)
      throw new ValidationError([...this.found.violations], this.found.omitted);
  }

  /** A required string of bounded length, optionally matching a pattern. */
  string(
    field: string,
    value: string | null | undefined,
    opts: { min?: number; max?: number; pattern?: RegExp; patternText?: string } = {},
  ): string {
    const { min = 1, max = 4096 } = opts;
    const v = value ?? '';
    if (v.length < min) {
      this.fail(field, min === 1 ? 'is required' : `must have at least ${min} characters`);
    } else if (v.length > max) {
      this.fail(field, `must have at most ${max} characters, got ${v.length}`);
    } else if (opts.pattern && !opts.pattern.test(v)) {
      this.fail(
        field,
        `must match ${opts.patternText ?? String(opts.pattern)}, got ${JSON.stringify(v.slice(0, 64))}`,
      );
    }
    return v;
  }

  /** A job or batch id: 1–128 characters of [A-Za-z0-9._-]. */
  id(field: string, value: string | null | undefined): string {
    return this.string(field, value, {
      max: 128,
      pattern: ID_PATTERN,
      patternText: '[A-Za-z0-9._-]{1,128}',
    });
  }

  /** An integer (uint32 wire fields) within [min, max]. */
  uint(
    field: string,
    value: number | null | undefined,
    opts: { min?: number; max?: number } = {},
  ): number {
    const { min = 0, max = 0xffffffff } = opts;
    const v = value ?? 0;
    if (!Number.isInteger(v)) this.fail(field, `must be an integer, got ${v}`);
    else if (v < min) this.fail(field, `must be ≥ ${min}, got ${v}`);
    else if (v > max) this.fail(field, `must be ≤ ${max}, got ${v}`);
    return v;
  }

  /** A 64-bit integer that travels as a decimal string; returned as a safe JS number. */
  uint64(
    field: string,
    value: string | number | Long | null | undefined,
    opts: { min?: number } = {},
  ): number {
    const { min = 0 } = opts;
    const v = Number(value === null || value === undefined ? 0 : value.toString());
    if (!Number.isSafeInteger(v))
      this.fail(field, `must be an integer below 2^53, got ${String(value)}`);
    else if (v < min) this.fail(field, `must be ≥ ${min}, got ${v}`);
    return v;
  }

  /** A 64-bit integer kept exact (nanosecond timestamps). */
  int64(field: string, value: string | number | Long | null | undefined): bigint {
    try {
      return BigInt(value === null || value === undefined ? 0 : value.toString());
    } catch {
      this.fail(field, `must be an integer, got ${String(value)}`);
      return 0n;
    }
  }

  /** A finite number within bounds. */
  number(
    field: string,
    value: number | null | undefined,
    opts: { min?: number; max?: number; greaterThan?: number } = {},
  ): number {
    const v = value ?? 0;
    if (!Number.isFinite(v)) this.fail(field, `must be a finite number, got ${v}`);
    else if (opts.greaterThan !== undefined && !(v > opts.greaterThan))
      this.fail(field, `must be > ${opts.greaterThan}, got ${v}`);
    else if (opts.min !== undefined && v < opts.min)
      this.fail(field, `must be ≥ ${opts.min}, got ${v}`);
    else if (opts.max !== undefined && v > opts.max)
      this.fail(field, `must be ≤ ${opts.max}, got ${v}`);
    return v;
  }

  /** A finite number > 0. */
  positive(field: string, value: number | null | undefined): number {
    return this.number(field, value, { greaterThan: 0 });
  }

  /**
   * A proto enum (delivered as its name) mapped to an internal value. Names missing from `mapping`
   * (UNSPECIFIED, values from a newer client) are violations.
   */
  enumValue<T>(
    field: string,
    value: string | number | null | undefined,
    mapping: Readonly<Record<string, T>>,
  ): T | undefined {
    const name = String(value ?? '');
    if (Object.prototype.hasOwnProperty.call(mapping, name)) return mapping[name];
    this.fail(field, `must be one of ${Object.keys(mapping).join(', ')}, got ${name || 'nothing'}`);
    return undefined;
  }

  /** A required sub-message. */
  present<T>(field: string, value: T | null | undefined): value is T {
    if (value === null || value === undefined) {
      this.fail(field, 'is required');
      return false;
    }
    return true;
  }

  /** A repeated field with a bounded length. */
  list<T>(
    field: string,
    value: readonly T[] | null | undefined,
    opts: { min?: number; max?: number } = {},
  ): readonly T[] {
    const v = value ?? [];
    const { min = 0, max = Number.MAX_SAFE_INTEGER } = opts;
    if (v.length < min)
      this.fail(
        field,
        min === 1 ? 'must not be empty' : `must have at least ${min} entries, got ${v.length}`,
      );
    else if (v.length > max) this.fail(field, `must have at most ${max} entries, got ${v.length}`);
    return v;
  }

  private path(field: string): string {
    return this.prefix ? `${this.prefix}.${field}` : field;
  }
}
