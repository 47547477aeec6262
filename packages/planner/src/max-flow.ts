// Module bindings, not global lookups: under jest's vm context every access to a global (Math,
// Infinity) is intercepted and hot loops run ~25x slower.
const { max, min } = Math;
const INF = Infinity;

/**
 * Dinic max-flow on a reusable adjacency-array network with float capacities. Arcs come in pairs
 * (e, e^1 = reverse), so residual updates need no lookups. Buffers grow and are kept between calls:
 * the frontier rebuilds a network per cut and should not allocate each time.
 */
export class FlowNetwork {
  numVertices = 0;
  numArcs = 0;
  head = new Int32Array(16);
  next = new Int32Array(64);
  to = new Int32Array(64);
  cap = new Float64Array(64);
  private level = new Int32Array(16);
  private iter = new Int32Array(16);
  private queue = new Int32Array(16);
  private stackV = new Int32Array(16);
  private stackE = new Int32Array(16);
  private frozenHead = new Int32Array(0);
  private frozenArcs = 0;

  /** Empties the network and sizes it for `n` vertices. */
  reset(n: number): void {
    if (this.head.length < n) {
      const size = max(n, this.head.length * 2);
      this.head = new Int32Array(size);
      this.level = new Int32Array(size);
      this.iter = new Int32Array(size);
      this.queue = new Int32Array(size);
      this.stackV = new Int32Array(size + 1);
      this.stackE = new Int32Array(size + 1);
    }
    this.head.fill(-1, 0, n);
    this.numVertices = n;
    this.numArcs = 0;
  }

  /**
   * Keeps the arcs added so far as a fixed topology that {@link restore} returns to without
   * relinking any adjacency list: a caller that solves many networks on the same vertices and arcs
   * (only the capacities change) builds them once.
   */
  freeze(): void {
    this.frozenHead = this.head.slice(0, this.numVertices);
    this.frozenArcs = this.numArcs;
  }

  /**
   * Drops the arcs added since {@link freeze}. The frozen arcs keep the capacities the last flow
   * left them (residuals): the caller sets every one of them again.
   */
  restore(): void {
    this.head.set(this.frozenHead);
    this.numArcs = this.frozenArcs;
  }

  /** Adds u→v with capacity `capacity` (and its zero-capacity reverse); returns the forward arc id. */
  addArc(u: number, v: number, capacity: number): number {
    if (this.numArcs + 2 > this.to.length) {
      const size = this.to.length * 2;
      const grow = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
        const b = make(size);
        b.set(a);
        return b;
      };
      this.next = grow(this.next, (n) => new Int32Array(n));
      this.to = grow(this.to, (n) => new Int32Array(n));
      this.cap = grow(this.cap, (n) => new Float64Array(n));
    }
    const e = this.numArcs;
    this.to[e] = v;
    this.cap[e] = capacity;
    this.next[e] = this.head[u]!;
    this.head[u] = e;
    this.to[e + 1] = u;
    this.cap[e + 1] = 0;
    this.next[e + 1] = this.head[v]!;
    this.head[v] = e + 1;
    this.numArcs += 2;
    return e;
  }

  private bfs(s: number, t: number, eps: number): boolean {
    const { level, queue, head, next, to, cap } = this;
    level.fill(-1, 0, this.numVertices);
    level[s] = 0;
    let qh = 0;
    let qt = 0;
    queue[qt++] = s;
    while (qh < qt) {
      const u = queue[qh++]!;
      for (let e = head[u]!; e !== -1; e = next[e]!) {
        const v = to[e]!;
        if (cap[e]! > eps && level[v]! < 0) {
          level[v] = level[u]! + 1;
          // Vertices found later are at t's level or beyond: no shortest path uses them.
          if (v === t) return true;
          queue[qt++] = v;
        }
      }
    }
    return false;
  }

  /**
   * {@link bfs} run backwards, from t over the residual arcs into each vertex, until it labels s:
   * the first phase's level graph when augmenting paths are expected. Where the forward search
   * labels every vertex nearer to s than t is (nearly all of a long pipeline), this one labels only
   * what reaches t. The labels are then turned into levels from s (L − distance to t, L = s's
   * distance), and a vertex v following u on an augmenting path has level[u] + 1 in both, exactly
   * when it lies on a shortest s–t path: the level graph differs from the forward one only in
   * vertices that lie on no shortest path, which the depth-first search would only find to be dead
   * ends. So the phase pushes the same paths in the same order, bit for bit.
   */
  private bfsFromSink(s: number, t: number, eps: number): boolean {
    const { level, queue, head, next, to, cap } = this;
    level.fill(-1, 0, this.numVertices);
    level[t] = 0;
    let qh = 0;
    let qt = 0;
    queue[qt++] = t;
    while (qh < qt) {
      const v = queue[qh++]!;
      for (let e = head[v]!; e !== -1; e = next[e]!) {
        const u = to[e]!; // e is v→u, so e ^ 1 is the arc u→v
        if (cap[e ^ 1]! > eps && level[u]! < 0) {
          level[u] = level[v]! + 1;
          if (u === s) {
            const dist = level[s]!;
            for (let k = 0; k < qt; k++) level[queue[k]!] = dist - level[queue[k]!]!;
            level[s] = 0;
            return true;
          }
          queue[qt++] = u;
        }
      }
    }
    return false;
  }

  /**
   * After a {@link maxFlow} that ran to the end (no limit reached, bounded): marks the vertices
   * s reaches in the residual network — the source side of the minimum cut. The search that found
   * no more augmenting path already labelled exactly those, so this reads its labels.
   */
  sourceSide(mark: Uint8Array): void {
    const { level } = this;
    for (let v = 0; v < this.numVertices; v++) mark[v] = level[v]! >= 0 ? 1 : 0;
  }

  /**
   * Pushes as much flow as possible from s to t (blocking flows, iterative DFS); returns the
   * amount. With `limit`, stops as soon as the flow reaches it (returning at least `limit`): a
   * caller that only needs to know whether the minimum cut costs `limit` or more saves the rest.
   * `fromSink` builds the first level graph from t ({@link bfsFromSink}): the same flow, cheaper
   * when an augmenting path exists, dearer when none does (the forward search must then label the
   * source side anyway).
   */
  maxFlow(s: number, t: number, eps = 1e-9, limit = INF, fromSink = false): number {
    const { head, next, to, cap, level, iter, stackV, stackE } = this;
    let total = 0;
    let found = fromSink && this.bfsFromSink(s, t, eps);
    // With no path from the sink's side either, this search finds none and labels the source side.
    if (!found) found = this.bfs(s, t, eps);
    for (; found; found = this.bfs(s, t, eps)) {
      iter.set(head.subarray(0, this.numVertices));
      // Depth-first search in the level graph; after an augmentation, retreat only to the tail of
      // the first saturated arc instead of restarting from s.
      let depth = 0;
      stackV[0] = s;
      while (depth >= 0) {
        const u = stackV[depth]!;
        if (u === t) {
          let push = INF;
          for (let k = 0; k < depth; k++) push = min(push, cap[stackE[k]!]!);
          if (push >= 1e29) return total + push; // unbounded: no finite cut
          let retreat = depth;
          for (let k = 0; k < depth; k++) {
            const e = stackE[k]!;
            cap[e]! -= push;
            cap[e ^ 1]! += push;
            if (cap[e]! <= eps && k < retreat) retreat = k;
          }
          total += push;
          if (total >= limit) return total;
          depth = retreat;
          continue;
        }
        let e = iter[u]!;
        for (; e !== -1; e = next[e]!) {
          const v = to[e]!;
          if (cap[e]! > eps && level[v] === level[u]! + 1) break;
        }
        iter[u] = e;
        if (e === -1) {
          level[u] = -1; // dead end
          depth--;
          if (depth >= 0) iter[stackV[depth]!] = next[iter[stackV[depth]!]!]!;
          continue;
        }
        stackE[depth] = e;
        stackV[++depth] = to[e]!;
      }
    }
    return total;
  }

  /** Marks the vertices reachable from s in the residual network, skipping the `skip` vertices. */
  reachable(s: number, mark: Uint8Array, eps = 1e-9, skipA = -1, skipB = -1): void {
    const { head, next, to, cap, queue } = this;
    mark.fill(0, 0, this.numVertices);
    mark[s] = 1;
    let qh = 0;
    let qt = 0;
    queue[qt++] = s;
    while (qh < qt) {
      const u = queue[qh++]!;
      for (let e = head[u]!; e !== -1; e = next[e]!) {
        const v = to[e]!;
        if (cap[e]! > eps && !mark[v] && v !== skipA && v !== skipB) {
          mark[v] = 1;
          queue[qt++] = v;
        }
      }
    }
  }
}
