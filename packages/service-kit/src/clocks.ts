import { SIZE_LIMITS } from './limits';
import type { Checker } from './validate';

/**
 * Checks a repeated `supported_frequencies_mhz`-style field (a job's or a GPU's SM clocks): at most
 * {@link SIZE_LIMITS}.maxFrequencies entries (at least `min`), each a clock in
 * 1..maxFrequencyMhz MHz, none repeated. Returns the distinct clocks in the order given.
 */
export function checkSupportedClocks(
  c: Checker,
  field: string,
  value: readonly number[] | null | undefined,
  opts: { min?: number } = {},
): number[] {
  const clocks = c.list(field, value, { min: opts.min ?? 0, max: SIZE_LIMITS.maxFrequencies });
  const seen = new Set<number>();
  clocks.forEach((f, i) => {
    const v = c.uint(`${field}[${i}]`, f, { min: 1, max: SIZE_LIMITS.maxFrequencyMhz });
    if (seen.has(v)) c.fail(`${field}[${i}]`, `duplicate clock ${v}`);
    seen.add(v);
  });
  return [...seen];
}
