/** Client timestamps within this of the agent's clock are taken as the same host's CLOCK_MONOTONIC. */
const SAME_CLOCK_WINDOW_NS = 10_000_000_000n;

/**
 * Maps one session's client timestamps onto the agent's monotonic clock. A client on this host
 * shares CLOCK_MONOTONIC (offset 0: its first timestamp is within 10 s of the agent's clock); for
 * another host's clock the offset is the smallest receive-minus-send seen, the best estimate of the
 * clock difference (transport delay only ever adds to it).
 */
export class ClientClock {
  private offsetNs: bigint | undefined;

  /** True once the first event showed the client shares this host's clock. */
  get sameHost(): boolean {
    return this.offsetNs === 0n;
  }

  /** `clientNs` on the agent's clock, given the agent's clock at receipt. */
  map(clientNs: bigint, recvNs: bigint): bigint {
    const diff = recvNs - clientNs;
    if (this.offsetNs === undefined) {
      this.offsetNs = diff > -SAME_CLOCK_WINDOW_NS && diff < SAME_CLOCK_WINDOW_NS ? 0n : diff;
    } else if (this.offsetNs !== 0n && diff < this.offsetNs) {
      this.offsetNs = diff;
    }
    return clientNs + this.offsetNs;
  }
}
