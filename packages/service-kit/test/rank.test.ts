import type { ValidationError } from '../src';
import { Checker, SIZE_LIMITS, checkRankIdentity, checkRankInShape, rankFits } from '../src';

function fields(fn: (c: Checker) => void): string[] {
  const c = new Checker();
  fn(c);
  try {
    c.done();
    return [];
  } catch (err) {
    return (err as ValidationError).violations.map((v) => `${v.field}: ${v.description}`);
  }
}

describe('rank identity, shared by agent, profiler and optimizer', () => {
  it('checks every coordinate against the contract limits', () => {
    expect(
      fields((c) =>
        checkRankIdentity(c, 'rank', {
          rank: SIZE_LIMITS.maxWorldSize,
          dp_rank: SIZE_LIMITS.maxDegree,
          pp_rank: SIZE_LIMITS.maxStages,
          tp_rank: 1.5,
        }),
      ),
    ).toEqual([
      `rank.rank: must be ≤ ${SIZE_LIMITS.maxWorldSize - 1}, got ${SIZE_LIMITS.maxWorldSize}`,
      `rank.dp_rank: must be ≤ ${SIZE_LIMITS.maxDegree - 1}, got ${SIZE_LIMITS.maxDegree}`,
      `rank.pp_rank: must be ≤ ${SIZE_LIMITS.maxStages - 1}, got ${SIZE_LIMITS.maxStages}`,
      'rank.tp_rank: must be an integer, got 1.5',
    ]);
    expect(fields((c) => checkRankIdentity(c, 'rank', undefined))).toEqual(['rank: is required']);
  });

  it('converts a valid identity', () => {
    const c = new Checker();
    expect(checkRankIdentity(c, 'r', { rank: 5, dp_rank: 1, pp_rank: 2, tp_rank: 0 })).toEqual({
      rank: 5,
      dpRank: 1,
      ppRank: 2,
      tpRank: 0,
    });
    expect(c.ok).toBe(true);
  });

  it('checks a rank against a job shape', () => {
    const shape = { numStages: 4, dpDegree: 2, tpDegree: 2 };
    const inside = { rank: 15, dpRank: 1, ppRank: 3, tpRank: 1 };
    const outside = { rank: 16, dpRank: 2, ppRank: 4, tpRank: 2 };
    expect(rankFits(inside, shape)).toBe(true);
    expect(rankFits(outside, shape)).toBe(false);
    expect(fields((c) => checkRankInShape(c, 'm.rank', outside, shape))).toEqual([
      'm.rank.rank: must be < world size 16, got 16',
      'm.rank.dp_rank: must be < dp_degree 2, got 2',
      'm.rank.pp_rank: must be < num_stages 4, got 4',
      'm.rank.tp_rank: must be < tp_degree 2, got 2',
    ]);
  });
});
