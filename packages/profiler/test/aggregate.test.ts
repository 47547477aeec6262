import {
  aggregateCell,
  combineTensorParallel,
  discardWarmup,
  median,
  mergeCellStats,
  removeOutliers,
  summarize,
  warmupIterations,
} from '../src/aggregate';
import type { RawRow, Sample } from '../src/aggregate';

const key = { stage: 1, instruction: 'forward' as const, frequencyMhz: 1410 };

describe('warm-up discard', () => {
  it.each([
    [0, 0],
    [1, 1],
    [2, 1],
    [10, 1],
    [19, 1],
    [20, 2],
    [35, 3],
  ])('%i iterations → %i warm-up', (n, w) => {
    expect(warmupIterations(n)).toBe(w);
  });

  it('drops every sample of the first iterations, not the first samples', () => {
    const s: Sample[] = [];
    for (let it = 100; it < 120; it++)
      for (let mb = 0; mb < 3; mb++) s.push({ iteration: it, timeS: it, energyJ: 1 });
    const kept = discardWarmup(s);
    expect(kept).toHaveLength(18 * 3);
    expect(Math.min(...kept.map((k) => k.iteration))).toBe(102);
  });
});

describe('outliers (median ± 3.5 · 1.4826 · MAD)', () => {
  it('drops a sample far in time or in energy and keeps the rest', () => {
    const times = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 5, 1.0, 1.0];
    const energies = [10, 10.1, 9.9, 10.2, 9.8, 10.05, 10, 9.95, 100];
    const s: Sample[] = times.map((t, i) => ({ iteration: i, timeS: t, energyJ: energies[i]! }));
    const kept = removeOutliers(s);
    expect(kept.map((k) => k.iteration)).toEqual([0, 1, 2, 3, 4, 5, 7]);
  });

  it('keeps everything when MAD is 0 or fewer than 3 samples', () => {
    const flat: Sample[] = [1, 1, 1, 1, 9].map((t, i) => ({ iteration: i, timeS: t, energyJ: 1 }));
    expect(removeOutliers(flat)).toHaveLength(5);
    expect(removeOutliers(flat.slice(3))).toHaveLength(2);
  });
});

describe('statistics', () => {
  it('mean, sample stddev and median of the kept samples', () => {
    const s: Sample[] = [2, 4, 4, 4, 5, 5, 7, 9].map((t, i) => ({
      iteration: i,
      timeS: t,
      energyJ: t * 10,
    }));
    const st = summarize(s, 10);
    expect(st.count).toBe(8);
    expect(st.rawCount).toBe(10);
    expect(st.timeMeanS).toBeCloseTo(5, 12);
    expect(st.timeStddevS).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(st.timeRobustS).toBe(4.5);
    expect(st.energyRobustJ).toBe(45);
    expect(median([3, 1, 2])).toBe(2);
  });

  it('merging two disjoint sets gives the statistics of their union', () => {
    const a: Sample[] = [1, 2, 3, 4].map((t, i) => ({ iteration: i, timeS: t, energyJ: t }));
    const b: Sample[] = [10, 11, 12].map((t, i) => ({ iteration: i, timeS: t, energyJ: 2 * t }));
    const m = mergeCellStats(summarize(a, 4), summarize(b, 5));
    const all = summarize([...a, ...b], 9);
    expect(m.count).toBe(7);
    expect(m.rawCount).toBe(9);
    expect(m.timeMeanS).toBeCloseTo(all.timeMeanS, 12);
    expect(m.timeStddevS).toBeCloseTo(all.timeStddevS, 12);
    expect(m.energyStddevJ).toBeCloseTo(all.energyStddevJ, 12);
    expect(m.timeRobustS).toBeCloseTo((2.5 * 4 + 11 * 3) / 7, 12);
  });
});

describe('tensor-parallel combine and data-parallel pooling', () => {
  // 2 pipelines × 2 TP ranks, 10 iterations × 2 microbatches; rank = dp * 2 + tp.
  function rows(): RawRow[] {
    const out: RawRow[] = [];
    for (let dp = 0; dp < 2; dp++)
      for (let it = 0; it < 10; it++)
        for (let mb = 0; mb < 2; mb++)
          for (let tp = 0; tp < 2; tp++) {
            const warm = it === 0 ? 1 : 0;
            out.push({
              dpRank: dp,
              iteration: it,
              microbatch: mb,
              tpRank: tp,
              rank: dp * 2 + tp,
              timeS: 1 + dp + 0.1 * tp + warm,
              energyJ: 10 + tp + 5 * warm,
            });
          }
    return out;
  }

  it('time = max and energy = sum over TP ranks; incomplete groups are left out', () => {
    const r = rows().filter(
      (x) => !(x.dpRank === 1 && x.iteration === 9 && x.microbatch === 1 && x.tpRank === 1),
    );
    const byDp = combineTensorParallel(r, 2);
    expect(byDp.get(0)).toHaveLength(20);
    expect(byDp.get(1)).toHaveLength(19);
    const s = byDp.get(0)!.find((x) => x.iteration === 3)!;
    expect(s.timeS).toBeCloseTo(1.1, 12);
    expect(s.energyJ).toBe(21);
  });

  it('pipelines kept separate and pooled, warm-up iteration discarded per pipeline', () => {
    const cells = aggregateCell(rows(), key, 2);
    const pipe0 = cells.find((c) => c.scope === 'pipeline' && c.dpRank === 0)!;
    const pipe1 = cells.find((c) => c.scope === 'pipeline' && c.dpRank === 1)!;
    const pooled = cells.find((c) => c.scope === 'pooled')!;
    expect(pipe0).toMatchObject({ count: 18, rawCount: 20, timeRobustS: 1.1, energyRobustJ: 21 });
    expect(pipe1.timeRobustS).toBeCloseTo(2.1, 12);
    expect(pipe1.count).toBe(18);
    expect(pooled.count).toBe(36);
    expect(pooled.rawCount).toBe(40);
    expect(pooled.timeMeanS).toBeCloseTo(1.6, 12);
    expect(pooled.energyMeanJ).toBeCloseTo(21, 12);
    const rank3 = cells.find((c) => c.scope === 'rank' && c.rank === 3)!;
    expect(rank3).toMatchObject({
      dpRank: 1,
      tpRank: 1,
      count: 18,
      rawCount: 20,
      energyRobustJ: 11,
    });
    expect(rank3.timeRobustS).toBeCloseTo(2.1, 12);
    expect(cells.filter((c) => c.scope === 'rank')).toHaveLength(4);
  });
});

describe('median (quickselect)', () => {
  it('matches a sorted-array median on random, constant and sorted inputs', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let n = 1; n <= 60; n++) {
      for (const make of [() => rnd(), () => 3, () => Math.floor(rnd() * 4)]) {
        const xs = Array.from({ length: n }, make);
        const s = [...xs].sort((a, b) => a - b);
        const expected = n % 2 ? s[n >> 1]! : (s[(n >> 1) - 1]! + s[n >> 1]!) / 2;
        expect(median(xs)).toBe(expected);
      }
      const asc = Array.from({ length: n }, (_, i) => i);
      expect(median(asc)).toBe(n % 2 ? (n - 1) / 2 : (n - 1) / 2);
    }
  });
});
