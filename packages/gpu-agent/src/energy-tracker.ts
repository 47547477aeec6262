/**
 * Energy samples of one device (agent monotonic ns → cumulative mJ), taken by the device worker
 * while a session is active: at every Begin/End and periodically in between. Energy at a client
 * timestamp is interpolated linearly between the samples around it (docs/architecture.md §5: attributed from the
 * counter, not estimated from power).
 */
export class EnergyTracker {
  private readonly tNs: bigint[] = [];
  private readonly eMj: number[] = [];

  constructor(private readonly capacity = 8192) {}

  get size(): number {
    return this.tNs.length;
  }

  add(tNs: bigint, energyMj: number): void {
    const last = this.tNs.length - 1;
    // Keep the series monotonic in time; a counter that went backwards (driver wrap, reset) restarts it.
    if (last >= 0 && (tNs < this.tNs[last]! || energyMj < this.eMj[last]!)) this.clear();
    else if (last >= 0 && energyMj === this.eMj[last]!) {
      // A counter that advances in steps (NVML on an H100/H200: ~100 ms apart) and has not moved
      // since the last sample: keep only the first reading of each value, the nearest to its step,
      // so interpolation spreads every step over the time since the previous one instead of
      // charging all of it to whichever instruction the step happens to land in.
      return;
    }
    this.tNs.push(tNs);
    this.eMj.push(energyMj);
    if (this.tNs.length > this.capacity) {
      // Drop the older half at once: amortised O(1) per sample instead of a splice per sample.
      const drop = this.tNs.length - (this.capacity >> 1);
      this.tNs.splice(0, drop);
      this.eMj.splice(0, drop);
    }
  }

  /**
   * Records an exact sample at `tNs` that supersedes every sample at or after it (they were read
   * before a simulated device learned what ran from `tNs` on). Samples before `tNs` stay.
   */
  supersede(tNs: bigint, energyMj: number): void {
    while (this.tNs.length > 0 && this.tNs[this.tNs.length - 1]! >= tNs) {
      this.tNs.pop();
      this.eMj.pop();
    }
    this.add(tNs, energyMj);
  }

  /** Whether a sample later than `tNs` exists, so {@link at} interpolates there instead of clamping. */
  knownAfter(tNs: bigint): boolean {
    const n = this.tNs.length;
    return n > 0 && this.tNs[n - 1]! > tNs;
  }

  clear(): void {
    this.tNs.length = 0;
    this.eMj.length = 0;
  }

  /** Energy at `tNs`, mJ; clamped to the first/last sample outside the sampled window. */
  at(tNs: bigint): number | undefined {
    const n = this.tNs.length;
    if (n === 0) return undefined;
    if (tNs <= this.tNs[0]!) return this.eMj[0];
    if (tNs >= this.tNs[n - 1]!) return this.eMj[n - 1];
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (this.tNs[mid]! <= tNs) lo = mid;
      else hi = mid;
    }
    const t0 = this.tNs[lo]!;
    const t1 = this.tNs[hi]!;
    const e0 = this.eMj[lo]!;
    const e1 = this.eMj[hi]!;
    if (t1 === t0) return e1;
    return e0 + ((e1 - e0) * Number(tNs - t0)) / Number(t1 - t0);
  }
}
