/**
 * Straggler detection from per-rank iteration reports (extrinsic bloat, docs/architecture.md §3 step 6).
 *
 * A pipeline's iteration time is the slowest of its ranks' reports for that iteration. Each time is
 * normalised by the time the pipeline's *current* schedule is expected to take, so that slowing
 * the healthy pipelines down on purpose (to the straggler's T′) does not make the straggler look
 * healthy again. A pipeline's pace is its *least* ratio over the last `window` iterations (reports
 * of the current schedule version only): host noise — a rank woken late, a stalled data loader —
 * only ever lengthens an iteration, so the least ratio is the pipeline's undisturbed pace, and a
 * pipeline counts as slow only when every iteration in its window was. (The median let a burst of
 * stalls on one pipeline's processes — 3 iterations in 5 — mark it a straggler: 14 of 43
 * straggler-free iterations on a straggler plan in one dp-detect.sh run at margin 0.05 on a loaded
 * 2-core box.) Pipeline p is compared with the median of the other pipelines' paces:
 *
 * - **enter**: ratio_p > ref · (1 + margin) on `confirmations` consecutive evaluations;
 * - **exit**: ratio_p < ref · (1 + margin/2) on `confirmations` consecutive evaluations.
 *
 * The gap between the two thresholds and the confirmation count are the hysteresis: a pipeline
 * hovering around the margin neither enters nor leaves, so plans do not flap. Windows are cleared
 * whenever the schedule version changes (samples of an older plan say nothing about the new one).
 */
export interface StragglerDetectorOptions {
  /** Relative excess that marks a straggler (0.1 = 10% slower than the others). */
  margin: number;
  /** Iterations per pipeline whose least ratio is its pace. */
  window: number;
  /** Consecutive evaluations needed to enter or leave the straggler state. */
  confirmations: number;
}

export const DEFAULT_DETECTOR: StragglerDetectorOptions = {
  margin: 0.05,
  window: 5,
  confirmations: 3,
};

/** A change the detector asks for. */
export type DetectorEvent =
  /** `iterationTimeS`: the straggler's undisturbed iteration time (its least in the window), s. */
  { type: 'enter'; dpRank: number; iterationTimeS: number } | { type: 'exit'; dpRank: number };

interface PipelineWindow {
  /** iteration → slowest time so far and how many ranks reported it. */
  pending: Map<number, { maxTimeS: number; count: number }>;
  ratios: number[];
  timesS: number[];
  streak: number;
}

const MAX_PENDING_ITERATIONS = 16;

function least(xs: readonly number[]): number {
  return Math.min(...xs);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export class StragglerDetector {
  private pipelines: PipelineWindow[];

  constructor(
    private readonly dpDegree: number,
    private readonly ranksPerPipeline: number,
    private readonly opts: StragglerDetectorOptions = DEFAULT_DETECTOR,
  ) {
    this.pipelines = this.fresh();
  }

  private fresh(): PipelineWindow[] {
    return Array.from({ length: this.dpDegree }, () => ({
      pending: new Map(),
      ratios: [],
      timesS: [],
      streak: 0,
    }));
  }

  /** Forgets every sample (call when the schedule version changes). */
  reset(): void {
    this.pipelines = this.fresh();
  }

  /**
   * One rank's report of one iteration. `expectedTimeS` is what its pipeline's current schedule
   * should take; `detected` is the set of pipelines currently marked as detected stragglers.
   * Returns an event when the pipeline's state should change.
   */
  observe(
    dpRank: number,
    iteration: number,
    timeS: number,
    expectedTimeS: number,
    detected: ReadonlySet<number>,
  ): DetectorEvent | undefined {
    const p = this.pipelines[dpRank];
    if (p === undefined || !(expectedTimeS > 0)) return undefined;
    const cell = p.pending.get(iteration) ?? { maxTimeS: 0, count: 0 };
    cell.maxTimeS = Math.max(cell.maxTimeS, timeS);
    cell.count += 1;
    p.pending.set(iteration, cell);
    if (cell.count < this.ranksPerPipeline) {
      if (p.pending.size > MAX_PENDING_ITERATIONS)
        p.pending.delete(p.pending.keys().next().value as number);
      return undefined;
    }
    p.pending.delete(iteration);
    p.ratios.push(cell.maxTimeS / expectedTimeS);
    p.timesS.push(cell.maxTimeS);
    if (p.ratios.length > this.opts.window) {
      p.ratios.shift();
      p.timesS.shift();
    }
    return this.evaluate(dpRank, detected);
  }

  private evaluate(dpRank: number, detected: ReadonlySet<number>): DetectorEvent | undefined {
    const p = this.pipelines[dpRank]!;
    if (p.ratios.length < this.opts.window) return undefined;
    const others = this.pipelines
      .map((q, i) =>
        i !== dpRank && !detected.has(i) && q.ratios.length >= this.opts.window
          ? least(q.ratios)
          : NaN,
      )
      .filter((x) => !Number.isNaN(x));
    if (others.length === 0) return undefined;
    const ref = median(others);
    const mine = least(p.ratios);
    const isDetected = detected.has(dpRank);
    const crossing = isDetected
      ? mine < ref * (1 + this.opts.margin / 2)
      : mine > ref * (1 + this.opts.margin);
    p.streak = crossing ? p.streak + 1 : 0;
    if (p.streak < this.opts.confirmations) return undefined;
    p.streak = 0;
    return isDetected
      ? { type: 'exit', dpRank }
      : { type: 'enter', dpRank, iterationTimeS: least(p.timesS) };
  }
}
