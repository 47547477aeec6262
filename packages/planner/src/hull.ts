import type { OptionTable } from './options';
import { REL_TOL } from './tolerance';

// Module bindings, not global lookups (see max-flow.ts).
const { max, min } = Math;
const INF = Infinity;

/** Per option table: hull vertex times, effective energies and segment slopes (W). */
export interface HullTable {
  t: Float64Array;
  eff: Float64Array;
  /** slope[v] = saving per second of lengthening along segment v→v+1 (decreasing in v). */
  slope: Float64Array;
  last: number;
}

/** The lower convex hull of an option table as the sweep walks it. */
export function hullOf(table: OptionTable): HullTable {
  const t = Float64Array.from(table.hull, (i) => table.timeS[i]!);
  const eff = Float64Array.from(table.hull, (i) => table.effectiveJ[i]!);
  const slope = new Float64Array(max(0, t.length - 1));
  for (let v = 0; v + 1 < t.length; v++) slope[v] = (eff[v]! - eff[v + 1]!) / (t[v + 1]! - t[v]!);
  return { t, eff, slope, last: t.length - 1 };
}

/**
 * The relaxed frontier (breakpoints `ts` ascending, energies `es`) at `timeS`, linear between
 * breakpoints; INF below the fastest breakpoint, the last energy beyond the slowest.
 */
export function interpolateLowerBound(
  ts: ArrayLike<number>,
  es: ArrayLike<number>,
  timeS: number,
): number {
  const n = ts.length;
  if (n === 0 || timeS < ts[0]! * (1 - REL_TOL)) return INF;
  if (timeS >= ts[n - 1]!) return es[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ts[mid]! <= timeS) lo = mid;
    else hi = mid;
  }
  const t0 = ts[lo]!;
  const t1 = ts[hi]!;
  if (t1 <= t0) return min(es[lo]!, es[hi]!);
  const w = (timeS - t0) / (t1 - t0);
  return es[lo]! + w * (es[hi]! - es[lo]!);
}
