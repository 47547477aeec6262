/**
 * Max-heap of (score, node) for the greedy slack reclamation; ties go to the lower node id (the
 * order an exhaustive scan would take). Buffers are sized once for `capacity` nodes and reused.
 */
export class StepHeap {
  private readonly score: Float64Array;
  private readonly node: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.score = new Float64Array(capacity);
    this.node = new Int32Array(capacity);
  }

  clear(): void {
    this.size = 0;
  }

  /**
   * Appends without restoring the heap order; call {@link build} before the next pop. Filling a
   * heap this way and building it once is O(n) instead of n pushes' O(n log n).
   */
  add(i: number, sc: number): void {
    this.score[this.size] = sc;
    this.node[this.size] = i;
    this.size++;
  }

  /**
   * Restores the heap order after {@link add}s (bottom-up heapify). Pops come out the same as after
   * pushes: (score, node) is a total order, so the maximum is unique whatever the layout.
   */
  build(): void {
    for (let k = (this.size >> 1) - 1; k >= 0; k--) this.siftDown(k, this.score[k]!, this.node[k]!);
  }

  push(i: number, sc: number): void {
    const { score, node } = this;
    let k = this.size++;
    while (k > 0) {
      const parent = (k - 1) >> 1;
      if (score[parent]! > sc || (score[parent] === sc && node[parent]! < i)) break;
      score[k] = score[parent]!;
      node[k] = node[parent]!;
      k = parent;
    }
    score[k] = sc;
    node[k] = i;
  }

  /** Whether the top (the heap must not be empty) pops before (`sc`, `i`). */
  topBeats(sc: number, i: number): boolean {
    const top = this.score[0]!;
    return top > sc || (top === sc && this.node[0]! < i);
  }

  /** The highest score (the heap must not be empty). */
  topScore(): number {
    return this.score[0]!;
  }

  /** Removes and returns the node with the highest score (the heap must not be empty). */
  pop(): number {
    const top = this.node[0]!;
    const size = --this.size;
    this.siftDown(0, this.score[size]!, this.node[size]!);
    return top;
  }

  /** Puts (`lastScore`, `lastNode`) at slot `k` or below, moving larger children up. */
  private siftDown(k: number, lastScore: number, lastNode: number): void {
    const { score, node, size } = this;
    for (;;) {
      let child = 2 * k + 1;
      if (child >= size) break;
      if (
        child + 1 < size &&
        (score[child + 1]! > score[child]! ||
          (score[child + 1] === score[child] && node[child + 1]! < node[child]!))
      ) {
        child++;
      }
      if (score[child]! < lastScore || (score[child] === lastScore && node[child]! > lastNode))
        break;
      score[k] = score[child]!;
      node[k] = node[child]!;
      k = child;
    }
    score[k] = lastScore;
    node[k] = lastNode;
  }
}
