import {
  Checker,
  MAX_VIOLATIONS,
  ValidationError,
  encodeBadRequestStatus,
  thrownViolations,
} from '../src';

function violations(fn: (c: Checker) => void): Array<[string, string]> {
  const c = new Checker();
  fn(c);
  try {
    c.done();
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as ValidationError).violations.map((v) => [v.field, v.description]);
  }
}

describe('Checker', () => {
  it.each<[string, (c: Checker) => void, Array<[string, string]>]>([
    ['missing id', (c) => c.id('job_id', ''), [['job_id', 'is required']]],
    [
      'bad id',
      (c) => c.id('job_id', 'a b'),
      [['job_id', 'must match [A-Za-z0-9._-]{1,128}, got "a b"']],
    ],
    [
      'uint below min',
      (c) => c.at('spec.pipeline').uint('num_microbatches', 0, { min: 1 }),
      [['spec.pipeline.num_microbatches', 'must be ≥ 1, got 0']],
    ],
    ['uint above max', (c) => c.uint('x', 9, { max: 8 }), [['x', 'must be ≤ 8, got 9']]],
    ['NaN', (c) => c.positive('time_s', NaN), [['time_s', 'must be a finite number, got NaN']]],
    ['zero positive', (c) => c.positive('time_s', 0), [['time_s', 'must be > 0, got 0']]],
    [
      'infinite',
      (c) => c.number('energy_j', Infinity, { min: 0 }),
      [['energy_j', 'must be a finite number, got Infinity']],
    ],
    [
      'uint64 too big',
      (c) => c.uint64('seq', '9007199254740993'),
      [['seq', 'must be an integer below 2^53, got 9007199254740993']],
    ],
    [
      'enum unspecified',
      (c) =>
        c.enumValue('instruction', 'INSTRUCTION_KIND_UNSPECIFIED', {
          INSTRUCTION_KIND_FORWARD: 'forward',
        }),
      [
        [
          'instruction',
          'must be one of INSTRUCTION_KIND_FORWARD, got INSTRUCTION_KIND_UNSPECIFIED',
        ],
      ],
    ],
    ['missing message', (c) => c.present('spec', undefined), [['spec', 'is required']]],
    ['empty list', (c) => c.list('rows', [], { min: 1 }), [['rows', 'must not be empty']]],
    [
      'long list',
      (c) => c.list('rows', [1, 2, 3], { max: 2 }),
      [['rows', 'must have at most 2 entries, got 3']],
    ],
    [
      'several at once',
      (c) => {
        c.id('job_id', '');
        c.at('rank').uint('pp_rank', 1.5);
      },
      [
        ['job_id', 'is required'],
        ['rank.pp_rank', 'must be an integer, got 1.5'],
      ],
    ],
  ])('%s', (_name, fn, expected) => {
    expect(violations(fn)).toEqual(expected);
  });

  it('returns checked values and passes valid input', () => {
    const c = new Checker();
    expect(c.uint64('seq', '42')).toBe(42);
    expect(c.int64('t_ns', '1234567890123456789')).toBe(1234567890123456789n);
    expect(c.enumValue('k', 'A', { A: 'a' as const })).toBe('a');
    expect(c.id('job_id', 'gpt3-175b_run.1')).toBe('gpt3-175b_run.1');
    expect(() => c.done()).not.toThrow();
  });
});

describe('violation cap (issue 13: one violation per bad entry made 68 KB–12.8 MB trailers)', () => {
  it('keeps MAX_VIOLATIONS violations and sums up the rest in one "and N more"', () => {
    const c = new Checker();
    for (let i = 0; i < 200_000; i++) c.at(`rows[${i}]`).positive('time_s', -1);
    expect(c.count).toBe(200_000);
    let err: unknown;
    try {
      c.done();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    const v = (err as ValidationError).violations;
    expect(v).toHaveLength(MAX_VIOLATIONS + 1);
    expect(v[0]).toEqual({ field: 'rows[0].time_s', description: 'must be > 0, got -1' });
    expect(v[MAX_VIOLATIONS]).toEqual({
      field: `rows[${MAX_VIOLATIONS}].time_s`,
      description: `and ${200_000 - MAX_VIOLATIONS} more violations`,
    });
    // What travels in the grpc-status-details-bin trailer stays far below gRPC's 8 KiB default.
    const trailer = encodeBadRequestStatus(3, (err as ValidationError).message, v);
    expect(trailer.length).toBeLessThan(4096);
  });

  it('caps a ValidationError built from a long list, and long descriptions', () => {
    const many = Array.from({ length: 50 }, (_, i) => ({
      field: `f${i}`,
      description: 'x'.repeat(10_000),
    }));
    const err = new ValidationError(many);
    expect(err.violations).toHaveLength(MAX_VIOLATIONS + 1);
    expect(err.violations[MAX_VIOLATIONS]!.description).toBe('and 30 more violations');
    expect(err.violations[0]!.description.length).toBeLessThanOrEqual(256);
    expect(err.message.length).toBeLessThan(8192);
  });

  it('reports exactly one extra violation without "and N more"', () => {
    const err = new ValidationError(
      Array.from({ length: MAX_VIOLATIONS }, (_, i) => ({ field: `f${i}`, description: 'bad' })),
    );
    expect(err.violations).toHaveLength(MAX_VIOLATIONS);
  });
});

describe('thrownViolations', () => {
  it('returns the violations a validator throws, rethrows other errors, fails when nothing is thrown', () => {
    const c = new Checker();
    c.uint('n', -1);
    c.id('job_id', 'bad id');
    expect(thrownViolations(() => c.done())).toEqual([
      ['n', 'must be ≥ 0, got -1'],
      ['job_id', 'must match [A-Za-z0-9._-]{1,128}, got "bad id"'],
    ]);
    expect(() =>
      thrownViolations(() => {
        throw new RangeError('boom');
      }),
    ).toThrow(RangeError);
    expect(() => thrownViolations(() => 1)).toThrow('expected a ValidationError');
  });
});
