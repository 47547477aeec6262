import { Checker, ValidationError } from '../src';

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
