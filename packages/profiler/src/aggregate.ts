/**
 * Robust per-cell statistics (issue 5 §3). Pure functions over plain arrays: the store feeds them
 * the raw rows of one (job, stage, instruction, frequency) cell and keeps what they return.
 *
 * The rules, in order (also in the package README):
 * 1. **Tensor-parallel combine.** The ranks of one TP group run one microbatch together, so a
 *    sample of a pipeline is (iteration, microbatch) with time = max over its TP ranks and
 *    energy = sum over them. Groups with fewer than `tpDegree` ranks reported are incomplete and
 *    not counted (yet).
 * 2. **Warm-up discard.** Per window (one pipeline — or one rank for rank-level cells — at one
 *    clock), the samples of the first ⌊10%⌋ of its distinct iterations, at least one iteration,
 *    are dropped: the first iteration after a clock change carries the transition.
 * 3. **Outliers.** Over what is left (pooled across pipelines for pooled cells), a sample is dropped
 *    when its time or its energy lies more than k·1.4826·MAD from the median (modified z-score,
 *    Iglewicz & Hoaglin; k = 3.5 by default). With fewer than 3 samples, or MAD = 0 for a metric,
 *    nothing is dropped for that metric.
 * 4. **Statistics** of the kept samples: count, mean, sample standard deviation (n − 1) and the
 *    robust estimate = median.
 */
import type { ProfileCsvRow } from './profile-csv';
import type { CellKey, CellScope, ProfileCell, ProfileFormatName } from './types';

/** One raw row of a cell, as stored (one GPU, one microbatch). */
export interface RawRow {
  dpRank: number;
  iteration: number;
  microbatch: number;
  tpRank: number;
  rank: number;
  timeS: number;
  energyJ: number;
}

/** One sample of a window: a TP-combined microbatch of a pipeline, or one rank's microbatch. */
export interface Sample {
  iteration: number;
  timeS: number;
  energyJ: number;
}

export interface AggregationOptions {
  /** Fraction of each window's iterations treated as warm-up (default 0.1; at least one iteration). */
  warmupFraction?: number;
  /** Outlier threshold k in units of the scaled MAD (default 3.5). */
  outlierK?: number;
}

export const DEFAULT_WARMUP_FRACTION = 0.1;
export const DEFAULT_OUTLIER_K = 3.5;
/** Scales the MAD to the standard deviation of a normal distribution. */
const MAD_TO_SIGMA = 1.482602218505602;

/** Summary statistics of kept samples. */
export interface CellStats {
  count: number;
  rawCount: number;
  timeMeanS: number;
  timeStddevS: number;
  timeRobustS: number;
  energyMeanJ: number;
  energyStddevJ: number;
  energyRobustJ: number;
}

/** How many leading iterations of a window of `numIterations` are warm-up: max(1, ⌊fraction·n⌋). */
export function warmupIterations(
  numIterations: number,
  fraction = DEFAULT_WARMUP_FRACTION,
): number {
  if (numIterations <= 0) return 0;
  return Math.min(numIterations, Math.max(1, Math.floor(fraction * numIterations)));
}

/** Drops the samples of a window's warm-up iterations (see {@link warmupIterations}). */
export function discardWarmup(
  samples: readonly Sample[],
  fraction = DEFAULT_WARMUP_FRACTION,
): Sample[] {
  const iterations = [...new Set(samples.map((s) => s.iteration))].sort((a, b) => a - b);
  const w = warmupIterations(iterations.length, fraction);
  if (w === 0) return [...samples];
  const firstKept = iterations[w];
  if (firstKept === undefined) return [];
  return samples.filter((s) => s.iteration >= firstKept);
}

/** Median of a numeric array (0 for an empty one). Does not modify its input. O(n) (quickselect). */
export function median(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return 0;
  const a = Float64Array.from(values);
  const mid = n >> 1;
  const upper = select(a, mid);
  if (n % 2 === 1) return upper;
  // After selecting `mid`, everything left of it is ≤ it: the lower middle is their maximum.
  let lower = -Infinity;
  for (let i = 0; i < mid; i++) if (a[i]! > lower) lower = a[i]!;
  return (lower + upper) / 2;
}

/** The k-th smallest element of `a` (0-based), partially reordering `a` (Hoare's quickselect). */
function select(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // Median-of-three pivot keeps sorted and constant inputs linear.
    const m = (lo + hi) >> 1;
    const x = a[lo]!;
    const y = a[m]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/** Median absolute deviation from `center`. */
export function medianAbsoluteDeviation(
  values: readonly number[],
  center = median(values),
): number {
  const dev = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) dev[i] = Math.abs(values[i]! - center);
  return median(dev);
}

function inlierTest(values: readonly number[], k: number): (v: number) => boolean {
  if (values.length < 3) return () => true;
  const m = median(values);
  const mad = medianAbsoluteDeviation(values, m);
  if (mad === 0) return () => true;
  const limit = k * MAD_TO_SIGMA * mad;
  return (v) => Math.abs(v - m) <= limit;
}

/** Drops samples whose time or energy is more than k·1.4826·MAD from the median. */
export function removeOutliers(samples: readonly Sample[], k = DEFAULT_OUTLIER_K): Sample[] {
  const timeOk = inlierTest(
    samples.map((s) => s.timeS),
    k,
  );
  const energyOk = inlierTest(
    samples.map((s) => s.energyJ),
    k,
  );
  return samples.filter((s) => timeOk(s.timeS) && energyOk(s.energyJ));
}

function meanAndStddev(values: readonly number[]): [number, number] {
  const n = values.length;
  if (n === 0) return [0, 0];
  let mean = 0;
  let m2 = 0;
  // Welford: stable for the near-equal values a cell holds.
  values.forEach((v, i) => {
    const d = v - mean;
    mean += d / (i + 1);
    m2 += d * (v - mean);
  });
  return [mean, n > 1 ? Math.sqrt(m2 / (n - 1)) : 0];
}

/** Count, mean, stddev and median of `kept`; `rawCount` is what was received before filtering. */
export function summarize(kept: readonly Sample[], rawCount: number): CellStats {
  const times = kept.map((s) => s.timeS);
  const energies = kept.map((s) => s.energyJ);
  const [timeMeanS, timeStddevS] = meanAndStddev(times);
  const [energyMeanJ, energyStddevJ] = meanAndStddev(energies);
  return {
    count: kept.length,
    rawCount,
    timeMeanS,
    timeStddevS,
    timeRobustS: median(times),
    energyMeanJ,
    energyStddevJ,
    energyRobustJ: median(energies),
  };
}

/**
 * One tensor-parallel group: the GPUs of one pipeline stage running one microbatch. The SQLite store
 * computes these in SQL (GROUP BY over the primary key) so only one row per group reaches JS.
 */
export interface TpGroup {
  dpRank: number;
  iteration: number;
  microbatch: number;
  /** Max over the group's ranks. */
  timeS: number;
  /** Sum over the group's ranks. */
  energyJ: number;
  /** Distinct TP ranks that reported. */
  ranks: number;
}

/** Rows → TP groups (rule 1), in (dp, iteration, microbatch) order. A GPU reported twice counts once. */
export function groupTensorParallel(rows: readonly RawRow[]): TpGroup[] {
  let sorted = rows;
  for (let i = 1; i < rows.length; i++) {
    if (compareRows(rows[i - 1]!, rows[i]!) > 0) {
      sorted = [...rows].sort(compareRows);
      break;
    }
  }
  const out: TpGroup[] = [];
  let i = 0;
  while (i < sorted.length) {
    const first = sorted[i]!;
    const g: TpGroup = {
      dpRank: first.dpRank,
      iteration: first.iteration,
      microbatch: first.microbatch,
      timeS: first.timeS,
      energyJ: first.energyJ,
      ranks: 1,
    };
    let lastTp = first.tpRank;
    let j = i + 1;
    for (; j < sorted.length; j++) {
      const r = sorted[j]!;
      if (r.dpRank !== g.dpRank || r.iteration !== g.iteration || r.microbatch !== g.microbatch)
        break;
      if (r.tpRank === lastTp) continue;
      lastTp = r.tpRank;
      g.ranks++;
      if (r.timeS > g.timeS) g.timeS = r.timeS;
      g.energyJ += r.energyJ;
    }
    out.push(g);
    i = j;
  }
  return out;
}

/**
 * Tensor-parallel combine of rows: per (iteration, microbatch), time = max and energy = sum over the
 * TP ranks; only groups with all `tpDegree` ranks become samples. Returns the samples per
 * data-parallel rank.
 */
export function combineTensorParallel(
  rows: readonly RawRow[],
  tpDegree: number,
): Map<number, Sample[]> {
  return samplesByPipeline(groupTensorParallel(rows), tpDegree);
}

function samplesByPipeline(groups: readonly TpGroup[], tpDegree: number): Map<number, Sample[]> {
  const byDp = new Map<number, Sample[]>();
  for (const g of groups) {
    if (g.ranks < tpDegree) continue;
    let list = byDp.get(g.dpRank);
    if (!list) byDp.set(g.dpRank, (list = []));
    list.push({ iteration: g.iteration, timeS: g.timeS, energyJ: g.energyJ });
  }
  return byDp;
}

function compareRows(a: RawRow, b: RawRow): number {
  return (
    a.dpRank - b.dpRank ||
    a.iteration - b.iteration ||
    a.microbatch - b.microbatch ||
    a.tpRank - b.tpRank
  );
}

function cell(
  scope: CellScope,
  key: CellKey,
  stats: CellStats,
  ids: { dpRank: number; rank: number; tpRank: number },
): ProfileCell {
  return { scope, ...ids, ...key, ...stats, imported: false };
}

/** Pipeline cells (one per data-parallel rank) and the pooled cell of one key, from its TP groups (rules 2–4). */
export function aggregateTpGroups(
  groups: readonly TpGroup[],
  key: CellKey,
  tpDegree: number,
  opts: AggregationOptions = {},
): ProfileCell[] {
  const fraction = opts.warmupFraction ?? DEFAULT_WARMUP_FRACTION;
  const k = opts.outlierK ?? DEFAULT_OUTLIER_K;
  const out: ProfileCell[] = [];
  const byDp = samplesByPipeline(groups, tpDegree);
  const pooled: Sample[] = [];
  let pooledRaw = 0;
  for (const dp of [...byDp.keys()].sort((a, b) => a - b)) {
    const samples = byDp.get(dp)!;
    const warm = discardWarmup(samples, fraction);
    for (const w of warm) pooled.push(w);
    pooledRaw += samples.length;
    out.push(
      cell('pipeline', key, summarize(removeOutliers(warm, k), samples.length), {
        dpRank: dp,
        rank: -1,
        tpRank: -1,
      }),
    );
  }
  if (byDp.size > 0)
    out.push(
      cell('pooled', key, summarize(removeOutliers(pooled, k), pooledRaw), {
        dpRank: -1,
        rank: -1,
        tpRank: -1,
      }),
    );
  return out;
}

/** Per-rank cells of one key (no TP combine; the rank-level CSV), rules 2–4 per rank. */
export function aggregateRanks(
  rows: readonly RawRow[],
  key: CellKey,
  opts: AggregationOptions = {},
): ProfileCell[] {
  const fraction = opts.warmupFraction ?? DEFAULT_WARMUP_FRACTION;
  const k = opts.outlierK ?? DEFAULT_OUTLIER_K;
  const byRank = new Map<number, { dp: number; tp: number; samples: Sample[] }>();
  for (const r of rows) {
    let e = byRank.get(r.rank);
    if (!e) byRank.set(r.rank, (e = { dp: r.dpRank, tp: r.tpRank, samples: [] }));
    e.samples.push({ iteration: r.iteration, timeS: r.timeS, energyJ: r.energyJ });
  }
  return [...byRank.keys()]
    .sort((a, b) => a - b)
    .map((rank) => {
      const e = byRank.get(rank)!;
      const kept = removeOutliers(discardWarmup(e.samples, fraction), k);
      return cell('rank', key, summarize(kept, e.samples.length), {
        dpRank: e.dp,
        rank,
        tpRank: e.tp,
      });
    });
}

/**
 * Every cell of one (stage, instruction, frequency) from its raw rows: one pooled cell, one per
 * pipeline, one per rank. Pooled and pipeline cells are TP-combined (rules 1–4 of this module).
 */
export function aggregateCell(
  rows: readonly RawRow[],
  key: CellKey,
  tpDegree: number,
  opts: AggregationOptions = {},
): ProfileCell[] {
  return [
    ...aggregateTpGroups(groupTensorParallel(rows), key, tpDegree, opts),
    ...aggregateRanks(rows, key, opts),
  ];
}

/**
 * Merges the statistics of two disjoint sample sets (a cell's aggregate kept after its raw rows
 * were pruned, and the aggregate of rows received since). Count, mean and stddev are exact
 * (Chan et al.'s parallel update); the robust estimate becomes the count-weighted mean of the two
 * medians — an approximation, since medians do not merge.
 */
export function mergeCellStats(a: CellStats, b: CellStats): CellStats {
  const n = a.count + b.count;
  const mergeMoments = (ma: number, sa: number, mb: number, sb: number): [number, number] => {
    if (n === 0) return [0, 0];
    if (a.count === 0) return [mb, sb];
    if (b.count === 0) return [ma, sa];
    const delta = mb - ma;
    const mean = ma + (delta * b.count) / n;
    const m2 =
      sa * sa * (a.count - 1) + sb * sb * (b.count - 1) + (delta * delta * a.count * b.count) / n;
    return [mean, n > 1 ? Math.sqrt(m2 / (n - 1)) : 0];
  };
  const weighted = (x: number, y: number): number =>
    n === 0 ? 0 : (x * a.count + y * b.count) / n;
  const [timeMeanS, timeStddevS] = mergeMoments(
    a.timeMeanS,
    a.timeStddevS,
    b.timeMeanS,
    b.timeStddevS,
  );
  const [energyMeanJ, energyStddevJ] = mergeMoments(
    a.energyMeanJ,
    a.energyStddevJ,
    b.energyMeanJ,
    b.energyStddevJ,
  );
  return {
    count: n,
    rawCount: a.rawCount + b.rawCount,
    timeMeanS,
    timeStddevS,
    timeRobustS: weighted(a.timeRobustS, b.timeRobustS),
    energyMeanJ,
    energyStddevJ,
    energyRobustJ: weighted(a.energyRobustJ, b.energyRobustJ),
  };
}

/** A cell from one imported (already aggregated) value: count 1, no spread. */
function importedCell(
  scope: CellScope,
  key: CellKey,
  ids: { dpRank: number; rank: number; tpRank: number },
  timeS: number,
  energyJ: number,
): ProfileCell {
  return {
    scope,
    ...ids,
    ...key,
    count: 1,
    rawCount: 1,
    timeMeanS: timeS,
    timeStddevS: 0,
    timeRobustS: timeS,
    energyMeanJ: energyJ,
    energyStddevJ: 0,
    energyRobustJ: energyJ,
    imported: true,
  };
}

/**
 * The cells of an imported profile. Stage-level rows are per GPU and become pooled cells with
 * energy × `tpDegree`. Rank-level rows become rank cells, and per (stage, instruction, frequency)
 * the same rules as measured data: TP-combine each pipeline's rows (rule 1: time max, energy sum,
 * only complete groups) into pipeline cells, and the pooled cell is the median over the pipelines.
 * Each imported row is one value, not a sample, so no warm-up or outlier rule applies.
 */
export function importedCells(
  rows: readonly ProfileCsvRow[],
  format: ProfileFormatName,
  tpDegree: number,
): ProfileCell[] {
  const keyOf = (r: ProfileCsvRow): CellKey => ({
    stage: r.stage,
    instruction: r.instruction,
    frequencyMhz: r.frequencyMhz,
  });
  const pooledIds = { dpRank: -1, rank: -1, tpRank: -1 };
  if (format === 'stage')
    return rows.map((r) =>
      importedCell('pooled', keyOf(r), pooledIds, r.timeS, r.energyJ * tpDegree),
    );
  const out = rows.map((r) =>
    importedCell(
      'rank',
      keyOf(r),
      { dpRank: r.dpRank, rank: r.rank, tpRank: r.tpRank },
      r.timeS,
      r.energyJ,
    ),
  );
  const byKey = new Map<string, { key: CellKey; rows: RawRow[] }>();
  for (const r of rows) {
    const id = `${r.stage}/${r.instruction}/${r.frequencyMhz}`;
    let e = byKey.get(id);
    if (!e) byKey.set(id, (e = { key: keyOf(r), rows: [] }));
    e.rows.push({ ...r, iteration: 0, microbatch: 0 });
  }
  for (const { key, rows: keyRows } of byKey.values()) {
    const times: number[] = [];
    const energies: number[] = [];
    for (const [dpRank, [s]] of combineTensorParallel(keyRows, tpDegree)) {
      if (s === undefined) continue;
      out.push(importedCell('pipeline', key, { dpRank, rank: -1, tpRank: -1 }, s.timeS, s.energyJ));
      times.push(s.timeS);
      energies.push(s.energyJ);
    }
    if (times.length > 0)
      out.push(importedCell('pooled', key, pooledIds, median(times), median(energies)));
  }
  return out;
}
