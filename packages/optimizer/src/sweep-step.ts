/**
 * Bookkeeping of one step (one schedule version) of the online profiling sweep: which ranks have
 * reported their K iterations, whether every stage is covered, and whether the step has ended. A
 * step ends once — when every rank is done, or after a grace period once every stage is covered
 * (a silent rank must not hold the whole job at a low profiling clock).
 */

/** What one recorded report means for the step. */
export type StepProgress =
  /** Every rank has its K iterations: end the step now. */
  | 'complete'
  /** Every stage has a rank with K iterations for the first time: start the grace period. */
  | 'stagesCovered'
  /** Keep waiting. */
  | 'waiting'
  /** The step has already ended; the report changes nothing. */
  | 'ended';

export class SweepStep {
  private readonly counts = new Map<number, number>();
  private ranksDone = 0;
  private readonly stagesDone = new Set<number>();
  private longestS = 0;
  private endedFlag = false;
  private graceTimer: NodeJS.Timeout | undefined;

  /**
   * @param iterationsPerClock K
   * @param worldSize ranks expected to report
   * @param numStages stages that must each be covered by a done rank
   */
  constructor(
    private readonly iterationsPerClock: number,
    private readonly worldSize: number,
    private readonly numStages: number,
  ) {}

  get ended(): boolean {
    return this.endedFlag;
  }

  /** Records one iteration of `rank` (on `stage`, lasting `timeS`). */
  record(rank: number, stage: number, timeS: number): StepProgress {
    if (this.endedFlag) return 'ended';
    const n = (this.counts.get(rank) ?? 0) + 1;
    this.counts.set(rank, n);
    this.longestS = Math.max(this.longestS, timeS);
    const before = this.stagesDone.size;
    if (n === this.iterationsPerClock) {
      this.ranksDone += 1;
      this.stagesDone.add(stage);
    }
    if (this.ranksDone === this.worldSize) return 'complete';
    if (
      this.stagesDone.size === this.numStages &&
      before < this.numStages &&
      this.graceTimer === undefined
    )
      return 'stagesCovered';
    return 'waiting';
  }

  /** How long to wait for silent ranks, ms: at least `minMs` and 3 × the longest iteration. */
  graceMs(minMs: number): number {
    return Math.max(minMs, 3000 * this.longestS);
  }

  /** Runs `fn` after the grace period unless the step ends first. */
  armGrace(ms: number, fn: () => void): void {
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      if (!this.endedFlag) fn();
    }, ms);
    this.graceTimer.unref();
  }

  /** Ranks among `ranks` with fewer than K iterations. */
  silentRanks(ranks: Iterable<number>): number[] {
    return [...ranks].filter((r) => (this.counts.get(r) ?? 0) < this.iterationsPerClock);
  }

  /** Ends the step; false when it had already ended (a step ends once). */
  end(): boolean {
    clearTimeout(this.graceTimer);
    if (this.endedFlag) return false;
    this.endedFlag = true;
    return true;
  }

  /** Stops the grace timer without ending (the version changed or the optimizer closes). */
  dispose(): void {
    clearTimeout(this.graceTimer);
  }
}
