/** The last N samples of a latency (seconds), for exact quantiles in /metrics and benchmarks. */
export class LatencyWindow {
  private readonly buf: Float64Array;
  private next = 0;
  private filled = 0;
  count = 0;
  sumS = 0;

  constructor(capacity = 16_384) {
    this.buf = new Float64Array(capacity);
  }

  add(seconds: number): void {
    this.buf[this.next] = seconds;
    this.next = (this.next + 1) % this.buf.length;
    this.filled = Math.min(this.filled + 1, this.buf.length);
    this.count++;
    this.sumS += seconds;
  }

  /** Quantile q in [0,1] of the window (nearest rank), or NaN when empty. */
  quantile(q: number): number {
    if (this.filled === 0) return Number.NaN;
    const sorted = Array.from(this.buf.subarray(0, this.filled)).sort((a, b) => a - b);
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[rank]!;
  }
}
