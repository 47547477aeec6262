import { PlannerInputError } from './errors';
import type { InstructionKind, PipelineSpec } from './types';

/** One instruction slot of a stage's schedule (no clock yet). */
export interface InstructionSlot {
  kind: InstructionKind;
  microbatch: number;
  /** Model chunk on this GPU (`interleaved` only). */
  chunk?: number;
}

/** Model chunks per GPU (V) of a pipeline: `numChunks` for `interleaved`, 1 otherwise. */
export function chunksOf(pipeline: PipelineSpec): number {
  return pipeline.schedule === 'interleaved' ? (pipeline.numChunks as number) : 1;
}

function checkPipeline(pipeline: PipelineSpec): void {
  const { numStages, numMicrobatches, schedule, numChunks } = pipeline;
  if (!Number.isInteger(numStages) || numStages < 1) {
    throw new PlannerInputError(
      'pipeline.num_stages',
      `must be an integer ≥ 1, got ${String(numStages)}`,
    );
  }
  if (!Number.isInteger(numMicrobatches) || numMicrobatches < 1) {
    throw new PlannerInputError(
      'pipeline.num_microbatches',
      `must be an integer ≥ 1, got ${String(numMicrobatches)}`,
    );
  }
  if (schedule !== '1f1b' && schedule !== 'gpipe' && schedule !== 'interleaved') {
    throw new PlannerInputError(
      'pipeline.schedule',
      `must be '1f1b', 'gpipe' or 'interleaved', got ${String(schedule)}`,
    );
  }
  if (schedule === 'interleaved') {
    if (!Number.isInteger(numChunks) || (numChunks as number) < 2) {
      throw new PlannerInputError(
        'pipeline.num_chunks',
        `must be an integer ≥ 2 for interleaved 1F1B, got ${String(numChunks)}`,
      );
    }
    // Megatron-LM's rule: its microbatch-to-chunk mapping walks microbatches in groups of N.
    if (numMicrobatches % numStages !== 0) {
      throw new PlannerInputError(
        'pipeline.num_microbatches',
        `must be a multiple of num_stages (${numStages}) for interleaved 1F1B, got ${numMicrobatches}`,
      );
    }
  } else if (numChunks !== undefined && numChunks !== 1) {
    throw new PlannerInputError(
      'pipeline.num_chunks',
      `must be absent or 1 for schedule '${schedule}', got ${String(numChunks)}`,
    );
  }
}

/**
 * Megatron-LM's interleaved 1F1B order on GPU `r` of `n` with `v` chunks and `m` microbatches
 * (m a multiple of n): warm-up forwards, then one forward and one backward until the forwards run
 * out, then the remaining backwards. The k-th forward runs chunk (k mod n·v) div n, the k-th
 * backward chunk v − 1 − (k mod n·v) div n, both microbatch (k div n·v)·n + k mod n.
 */
function interleavedOrder(n: number, v: number, m: number, r: number): InstructionSlot[] {
  const total = m * v;
  const warmup = m === n ? total : Math.min((n - r - 1) * 2 + (v - 1) * n, total);
  const group = n * v;
  const microbatchOf = (k: number): number => Math.floor(k / group) * n + (k % n);
  const forward = (k: number): InstructionSlot => ({
    kind: 'forward',
    microbatch: microbatchOf(k),
    chunk: Math.floor((k % group) / n),
  });
  const backward = (k: number): InstructionSlot => ({
    kind: 'backward',
    microbatch: microbatchOf(k),
    chunk: v - 1 - Math.floor((k % group) / n),
  });
  const order: InstructionSlot[] = [];
  let f = 0;
  let b = 0;
  for (; f < warmup; f++) order.push(forward(f));
  while (f < total) {
    order.push(forward(f++));
    order.push(backward(b++));
  }
  while (b < total) order.push(backward(b++));
  return order;
}

/**
 * The order in which `stage` runs its instructions.
 *
 * - `1f1b` (docs/architecture.md §4.2): min(N−s, M) forwards, then alternate backward/forward, then the
 *   remaining backwards.
 * - `gpipe`: all M forwards, then all M backwards, both in microbatch order.
 * - `interleaved`: Megatron-LM's interleaved 1F1B over the GPU's chunks (see `numChunks`); every
 *   slot carries its chunk.
 */
export function scheduleOrder(pipeline: PipelineSpec, stage: number): InstructionSlot[] {
  checkPipeline(pipeline);
  const { numStages: n, numMicrobatches: m } = pipeline;
  if (!Number.isInteger(stage) || stage < 0 || stage >= n) {
    throw new PlannerInputError(
      'stage',
      `must be an integer in [0, ${n - 1}], got ${String(stage)}`,
    );
  }
  const order: InstructionSlot[] = [];
  switch (pipeline.schedule) {
    case 'gpipe':
      for (let mb = 0; mb < m; mb++) order.push({ kind: 'forward', microbatch: mb });
      for (let mb = 0; mb < m; mb++) order.push({ kind: 'backward', microbatch: mb });
      return order;
    case 'interleaved':
      return interleavedOrder(n, chunksOf(pipeline), m, stage);
    case '1f1b': {
      const warmup = Math.min(n - stage, m);
      let f = 0;
      let b = 0;
      for (; f < warmup; f++) order.push({ kind: 'forward', microbatch: f });
      while (f < m) {
        order.push({ kind: 'backward', microbatch: b++ });
        order.push({ kind: 'forward', microbatch: f++ });
      }
      while (b < m) order.push({ kind: 'backward', microbatch: b++ });
      return order;
    }
  }
}

/**
 * One iteration as a DAG in compressed-sparse-row form. Node ids are a topological order, so a
 * forward loop over ids is a longest-path pass.
 */
export interface PipelineDag {
  readonly numNodes: number;
  /** GPUs (N): the blocking-power term of a plan's energy counts these. */
  readonly numStages: number;
  readonly numMicrobatches: number;
  /** Model chunks per GPU (V; 1 unless `interleaved`). Virtual stages: N·V. */
  readonly numChunks: number;
  /** GPU of each node. */
  readonly stage: Int32Array;
  /** Model chunk of each node on its GPU (virtual stage = chunk·N + stage). */
  readonly chunk: Int32Array;
  /** 0 = forward, 1 = backward. */
  readonly kind: Uint8Array;
  readonly microbatch: Int32Array;
  /** Option table of each node: virtual stage·2 + kind. */
  readonly table: Int32Array;
  readonly predStart: Int32Array;
  readonly pred: Int32Array;
  readonly succStart: Int32Array;
  readonly succ: Int32Array;
  /** Node ids of each stage (GPU) in schedule order. */
  readonly stageNodes: Int32Array[];
}

/**
 * Builds the DAG of docs/architecture.md §4.2 over virtual stages (= stages unless `interleaved`): each GPU's
 * order edges plus F(s,m)→F(s+1,m), B(s+1,m)→B(s,m) and F(last,m)→B(last,m).
 */
export function buildPipelineDag(pipeline: PipelineSpec): PipelineDag {
  checkPipeline(pipeline);
  const { numStages: n, numMicrobatches: m } = pipeline;
  const v = chunksOf(pipeline);
  const nv = n * v;
  const count = 2 * nv * m;
  const rawId = (vs: number, k: number, mb: number): number => (vs * 2 + k) * m + mb;
  const orders: number[][] = [];
  const edges: Array<[number, number]> = [];
  for (let s = 0; s < n; s++) {
    const order = scheduleOrder(pipeline, s).map((x) =>
      rawId((x.chunk ?? 0) * n + s, x.kind === 'forward' ? 0 : 1, x.microbatch),
    );
    orders.push(order);
    for (let i = 1; i < order.length; i++) edges.push([order[i - 1] as number, order[i] as number]);
  }
  for (let mb = 0; mb < m; mb++) {
    for (let s = 0; s + 1 < nv; s++) {
      edges.push([rawId(s, 0, mb), rawId(s + 1, 0, mb)]);
      edges.push([rawId(s + 1, 1, mb), rawId(s, 1, mb)]);
    }
    edges.push([rawId(nv - 1, 0, mb), rawId(nv - 1, 1, mb)]);
  }
  // Kahn's algorithm gives the topological renumbering; a cycle would be a schedule bug.
  const indeg = new Int32Array(count);
  const out: number[][] = Array.from({ length: count }, () => []);
  for (const [a, b] of edges) {
    out[a]!.push(b);
    indeg[b]!++;
  }
  const queue: number[] = [];
  for (let v = 0; v < count; v++) if (indeg[v] === 0) queue.push(v);
  const newId = new Int32Array(count).fill(-1);
  let next = 0;
  for (let h = 0; h < queue.length; h++) {
    const v = queue[h] as number;
    newId[v] = next++;
    for (const w of out[v]!) if (--indeg[w]! === 0) queue.push(w);
  }
  if (next !== count)
    throw new Error(`internal: schedule ${pipeline.schedule} produced a cyclic DAG`);
  const stage = new Int32Array(count);
  const chunk = new Int32Array(count);
  const kind = new Uint8Array(count);
  const microbatch = new Int32Array(count);
  const table = new Int32Array(count);
  for (let raw = 0; raw < count; raw++) {
    const id = newId[raw] as number;
    const mb = raw % m;
    const sk = (raw - mb) / m;
    stage[id] = (sk >> 1) % n;
    chunk[id] = Math.floor((sk >> 1) / n);
    kind[id] = sk & 1;
    microbatch[id] = mb;
    table[id] = sk;
  }
  const uniq = new Set<number>();
  const renumbered: Array<[number, number]> = [];
  for (const [a, b] of edges) {
    const key = a * count + b;
    if (uniq.has(key)) continue;
    uniq.add(key);
    renumbered.push([newId[a] as number, newId[b] as number]);
  }
  const csr = (from: 0 | 1): [Int32Array, Int32Array] => {
    const start = new Int32Array(count + 1);
    for (const e of renumbered) start[e[from] + 1]!++;
    for (let v = 0; v < count; v++) start[v + 1]! += start[v]!;
    const fill = start.slice(0, count);
    const list = new Int32Array(renumbered.length);
    const sorted = [...renumbered].sort((x, y) => x[from] - y[from] || x[1 - from]! - y[1 - from]!);
    for (const e of sorted) list[fill[e[from]]!++] = e[1 - from]!;
    return [start, list];
  };
  const [succStart, succ] = csr(0);
  const [predStart, pred] = csr(1);
  const stageNodes = orders.map((o) => Int32Array.from(o, (raw) => newId[raw] as number));
  return {
    numNodes: count,
    numStages: n,
    numMicrobatches: m,
    numChunks: v,
    stage,
    chunk,
    kind,
    microbatch,
    table,
    predStart,
    pred,
    succStart,
    succ,
    stageNodes,
  };
}
