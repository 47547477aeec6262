import type { ValidationError } from '../src';
import { Checker, SIZE_LIMITS, checkSupportedClocks } from '../src';

function check(value: number[] | undefined, min?: number): { clocks: number[]; errors: string[] } {
  const c = new Checker();
  const clocks = checkSupportedClocks(c, 'supported_frequencies_mhz', value, { min });
  try {
    c.done();
    return { clocks, errors: [] };
  } catch (err) {
    return {
      clocks,
      errors: (err as ValidationError).violations.map((v) => `${v.field}: ${v.description}`),
    };
  }
}

describe('supported clocks, shared by the optimizer and the profiler', () => {
  it('returns the distinct clocks in the order given', () => {
    expect(check([1410, 1005, 1200])).toEqual({ clocks: [1410, 1005, 1200], errors: [] });
    expect(check(undefined)).toEqual({ clocks: [], errors: [] });
  });

  it('names each bad entry: zero, above the limit, fractional, repeated', () => {
    expect(check([0, SIZE_LIMITS.maxFrequencyMhz + 1, 1.5, 1410, 1410]).errors).toEqual([
      'supported_frequencies_mhz[0]: must be ≥ 1, got 0',
      `supported_frequencies_mhz[1]: must be ≤ ${SIZE_LIMITS.maxFrequencyMhz}, got ${SIZE_LIMITS.maxFrequencyMhz + 1}`,
      'supported_frequencies_mhz[2]: must be an integer, got 1.5',
      'supported_frequencies_mhz[4]: duplicate clock 1410',
    ]);
  });

  it('bounds the list: at least `min`, at most maxFrequencies', () => {
    expect(check([], 1).errors).toEqual(['supported_frequencies_mhz: must not be empty']);
    const many = Array.from({ length: SIZE_LIMITS.maxFrequencies + 1 }, (_, i) => i + 1);
    expect(check(many).errors).toEqual([
      `supported_frequencies_mhz: must have at most ${SIZE_LIMITS.maxFrequencies} entries, got ${SIZE_LIMITS.maxFrequencies + 1}`,
    ]);
  });
});
