import type { Frontier } from './frontier';

/**
 * plans.jsonl, the frontier's plans as `perseus plan` writes them: one JSON object per line, one
 * line per frontier point, fastest first. Every line has `index`, `time_s` and `energy_j`, and
 * either
 * - `stages`: the whole plan, per stage its instructions' clocks (MHz) in schedule order, or
 * - `changes`: `[stage, slot, mhz]` triples, the instructions whose clock differs from the
 *   previous line's plan (consecutive frontier points differ in a few instructions).
 *
 * The delta form (the default) writes `stages` on the first line and every
 * {@link PLANS_KEYFRAME_EVERY}th line after it, so a reader can start at any of those; the full
 * form has `stages` on every line. Readers accept both, mixed.
 */
export interface PlanRecord {
  index: number;
  time_s: number;
  energy_j: number;
  /** Per stage, the clock (MHz) of each instruction in schedule order. */
  stages: number[][];
}

/** Lines between two full plans in the delta form. */
export const PLANS_KEYFRAME_EVERY = 64;

/** A line of plans.jsonl as written (before decoding deltas). */
interface PlanLine {
  index: number;
  time_s: number;
  energy_j: number;
  stages?: number[][];
  changes?: Array<[number, number, number]>;
}

/**
 * The lines of plans.jsonl for every point of `frontier` (without the trailing newline of each),
 * produced one at a time so that a large frontier is never held as text all at once.
 */
export function* plansJsonlLines(frontier: Frontier, form: 'delta' | 'full'): Generator<string> {
  // Two clock buffers swapped per point: no per-instruction objects for a plan of 1,536
  // instructions × 21,075 points (the garbage of decoding each plan set `perseus plan`'s peak).
  const lengths = frontier.stageLengths();
  let cur = lengths.map((k) => new Float64Array(k));
  let prev = lengths.map((k) => new Float64Array(k));
  let first = true;
  for (const p of frontier.points) {
    frontier.planClocks(p.index, cur);
    const head = `{"index":${JSON.stringify(p.index)},"time_s":${JSON.stringify(p.timeS)},"energy_j":${JSON.stringify(p.energyJ)}`;
    if (form === 'full' || first || p.index % PLANS_KEYFRAME_EVERY === 0) {
      yield `${head},"stages":${JSON.stringify(cur.map((c) => Array.from(c)))}}`;
    } else {
      const changes: string[] = [];
      cur.forEach((clocks, s) => {
        const before = prev[s]!;
        for (let j = 0; j < clocks.length; j++) {
          if (before[j] !== clocks[j]) changes.push(`[${s},${j},${JSON.stringify(clocks[j])}]`);
        }
      });
      yield `${head},"changes":[${changes.join(',')}]}`;
    }
    [prev, cur] = [cur, prev];
    first = false;
  }
}

/**
 * Decodes the lines of plans.jsonl (either form) one at a time into full {@link PlanRecord}s;
 * blank lines are skipped. Use this on large files (one plan in memory at a time).
 */
export function* decodePlanLines(lines: Iterable<string>): Generator<PlanRecord> {
  let current: number[][] | null = null;
  let lineNo = 0;
  for (const raw of lines) {
    lineNo++;
    if (raw.trim() === '') continue;
    const line = JSON.parse(raw) as PlanLine;
    const where = `plans.jsonl line ${lineNo}`;
    if (Array.isArray(line.stages)) {
      current = line.stages.map((s) => [...s]);
    } else if (Array.isArray(line.changes)) {
      if (current === null) throw new Error(`${where}: changes before any full plan`);
      for (const [s, j, mhz] of line.changes) {
        const stage: number[] | undefined = current[s];
        if (stage === undefined || !(j >= 0 && j < stage.length))
          throw new Error(`${where}: no instruction ${j} on stage ${s}`);
        stage[j] = mhz;
      }
    } else {
      throw new Error(`${where}: needs 'stages' or 'changes'`);
    }
    yield {
      index: line.index,
      time_s: line.time_s,
      energy_j: line.energy_j,
      stages: current.map((s) => [...s]),
    };
  }
}

/** Decodes plans.jsonl text (either form) into one full {@link PlanRecord} per line. */
export function parsePlansJsonl(text: string): PlanRecord[] {
  return [...decodePlanLines(text.split('\n'))];
}
