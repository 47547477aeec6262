/** Plain-data form of a {@link DeltaPlanStore}. */
export interface DeltaPlanStoreJson {
  numNodes: number;
  keyframeEvery: number;
  /** Full option vectors, one per `keyframeEvery` entries. */
  keyframes: number[][];
  /** Entry k changed nodes deltaNodes[deltaStart[k]..deltaStart[k+1]) vs entry k−1. */
  deltaStart: number[];
  deltaNodes: number[];
  deltaOptions: number[];
}

class GrowableInt32 {
  data = new Int32Array(1024);
  length = 0;
  push(x: number): void {
    if (this.length === this.data.length) {
      const d = new Int32Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length++] = x;
  }
  view(): Int32Array {
    return this.data.subarray(0, this.length);
  }
}

/**
 * Plans (one option index per DAG node) stored as deltas: consecutive frontier plans differ in a
 * few nodes, so entry k keeps only the nodes that changed since entry k−1, plus a full keyframe
 * every `keyframeEvery` entries so decoding any entry costs at most that many deltas.
 */
export class DeltaPlanStore {
  private readonly keyframes: Uint16Array[] = [];
  private readonly deltaStart = new GrowableInt32();
  private readonly deltaNodes = new GrowableInt32();
  private readonly deltaOptions = new GrowableInt32();
  private last: Uint16Array;
  private count = 0;

  constructor(
    readonly numNodes: number,
    readonly keyframeEvery = 64,
  ) {
    this.last = new Uint16Array(numNodes);
    this.deltaStart.push(0);
  }

  get size(): number {
    return this.count;
  }

  /** Appends a plan (copied). */
  push(plan: Uint16Array): void {
    const last = this.last;
    for (let v = 0; v < this.numNodes; v++) {
      if (plan[v] !== last[v] || this.count === 0) {
        this.deltaNodes.push(v);
        this.deltaOptions.push(plan[v]!);
        last[v] = plan[v]!;
      }
    }
    this.deltaStart.push(this.deltaNodes.length);
    if (this.count % this.keyframeEvery === 0) this.keyframes.push(Uint16Array.from(plan));
    this.count++;
  }

  /** Decodes entry `k`. */
  get(k: number): Uint16Array {
    if (!Number.isInteger(k) || k < 0 || k >= this.count)
      throw new RangeError(`plan ${k} out of range [0, ${this.count})`);
    const kf = Math.floor(k / this.keyframeEvery);
    const out = Uint16Array.from(this.keyframes[kf]!);
    const starts = this.deltaStart.data;
    const nodes = this.deltaNodes.data;
    const opts = this.deltaOptions.data;
    for (let e = kf * this.keyframeEvery + 1; e <= k; e++) {
      for (let i = starts[e]!; i < starts[e + 1]!; i++) out[nodes[i]!] = opts[i]!;
    }
    return out;
  }

  /** Decodes every entry in order, calling `visit(k, plan)` with a buffer it reuses. */
  replay(visit: (k: number, plan: Uint16Array) => void): void {
    const cur = new Uint16Array(this.numNodes);
    const starts = this.deltaStart.data;
    const nodes = this.deltaNodes.data;
    const opts = this.deltaOptions.data;
    for (let k = 0; k < this.count; k++) {
      for (let i = starts[k]!; i < starts[k + 1]!; i++) cur[nodes[i]!] = opts[i]!;
      visit(k, cur);
    }
  }

  /** Bytes held by the encoded plans (for reporting). */
  byteSize(): number {
    return (
      this.keyframes.length * this.numNodes * 2 +
      (this.deltaStart.length + 2 * this.deltaNodes.length) * 4
    );
  }

  toJSON(): DeltaPlanStoreJson {
    return {
      numNodes: this.numNodes,
      keyframeEvery: this.keyframeEvery,
      keyframes: this.keyframes.map((k) => Array.from(k)),
      deltaStart: Array.from(this.deltaStart.view()),
      deltaNodes: Array.from(this.deltaNodes.view()),
      deltaOptions: Array.from(this.deltaOptions.view()),
    };
  }

  static fromJSON(json: DeltaPlanStoreJson): DeltaPlanStore {
    const store = new DeltaPlanStore(json.numNodes, json.keyframeEvery);
    store.keyframes.push(...json.keyframes.map((k) => Uint16Array.from(k)));
    store.deltaStart.length = 0;
    for (const x of json.deltaStart) store.deltaStart.push(x);
    for (const x of json.deltaNodes) store.deltaNodes.push(x);
    for (const x of json.deltaOptions) store.deltaOptions.push(x);
    store.count = json.deltaStart.length - 1;
    if (store.count > 0) store.last = store.get(store.count - 1);
    return store;
  }
}
