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

  /** Removes and returns the node with the highest score (the heap must not be empty). */
  pop(): number {
    const { score, node } = this;
    const top = node[0]!;
    const size = --this.size;
    const lastScore = score[size]!;
    const lastNode = node[size]!;
    let k = 0;
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
    return top;
  }
}
