/** Client timestamps within this of the agent's clock are taken as the same host's CLOCK_MONOTONIC. */
const SAME_CLOCK_WINDOW_NS = 10_000_000_000n;
/**
 * A client clock whose elapsed time departs from the agent's by more than this many seconds, and by
 * more than {@link MAX_RATE_ERROR} of the agent's elapsed time, runs at another rate. Equal-rate
 * clocks only depart by a difference of transport delays (one event more than 5 s late), clock
 * drift by parts per million.
 */
const MAX_SKEW_S = 5;
const MAX_RATE_ERROR = 0.2;

/**
 * A client whose clock runs at another rate than the agent's (an emulated trainer whose time scale
 * differs from the simulated GPUs'): its timestamps cannot be mapped onto the agent's clock.
 */
export class ClockRateError extends Error {
  constructor(
    readonly clientElapsedS: number,
    readonly agentElapsedS: number,
  ) {
    super(
      `the client's clock advanced ${clientElapsedS.toFixed(2)} s while the agent's advanced ${agentElapsedS.toFixed(2)} s (${(clientElapsedS / agentElapsedS).toFixed(2)}×): timestamps must be CLOCK_MONOTONIC at its real rate, or an emulated trainer's time scale must equal the simulated agent's --agent-sim-time-scale`,
    );
  }
}

/**
 * Maps one session's client timestamps onto the agent's monotonic clock. A client on this host
 * shares CLOCK_MONOTONIC (offset 0: its first timestamp is within 10 s of the agent's clock); for
 * another host's clock the offset is the smallest receive-minus-send seen, the best estimate of the
 * clock difference (transport delay only ever adds to it).
 *
 * That estimate assumes both clocks run at one rate. A client clock that runs faster (an emulator
 * stamping `monotonic / 0.25` against an agent on real time) lowers the minimum with every event, so
 * every timestamp would map to its own receipt time and an instruction would measure the gap
 * between two receipts — near zero when a busy host sends its Begin and End together. Such a clock
 * (or a slower one) is refused with {@link ClockRateError} once its elapsed time departs from the
 * agent's by more than 5 s and 20 %.
 */
export class ClientClock {
  private offsetNs: bigint | undefined;
  private first: { clientNs: bigint; recvNs: bigint } | undefined;

  /** True once the first event showed the client shares this host's clock. */
  get sameHost(): boolean {
    return this.offsetNs === 0n;
  }

  /**
   * `clientNs` on the agent's clock, given the agent's clock at receipt. Throws
   * {@link ClockRateError} for another host's clock that runs at another rate.
   */
  map(clientNs: bigint, recvNs: bigint): bigint {
    const diff = recvNs - clientNs;
    if (this.offsetNs === undefined) {
      this.offsetNs = diff > -SAME_CLOCK_WINDOW_NS && diff < SAME_CLOCK_WINDOW_NS ? 0n : diff;
      this.first = { clientNs, recvNs };
    } else if (this.offsetNs !== 0n) {
      this.checkRate(clientNs, recvNs);
      if (diff < this.offsetNs) this.offsetNs = diff;
    }
    return clientNs + this.offsetNs;
  }

  /** Another host's clock must advance at the agent's rate (real clocks drift by ppm). */
  private checkRate(clientNs: bigint, recvNs: bigint): void {
    const first = this.first!;
    const clientS = Number(clientNs - first.clientNs) / 1e9;
    const agentS = Number(recvNs - first.recvNs) / 1e9;
    if (Math.abs(clientS - agentS) > Math.max(MAX_SKEW_S, MAX_RATE_ERROR * agentS))
      throw new ClockRateError(clientS, agentS);
  }
}
