import { PlannerInputError } from './errors';
import { validatePlannerInput, type ValidInput } from './options';
import type { PipelineDag } from './schedule';
import type { PlannerInput, StagePlan } from './types';

/** Longest source→sink path of the DAG with node durations `timeS` (one forward pass). */
export function longestPath(
  dag: PipelineDag,
  timeS: Float64Array,
  finish: Float64Array = new Float64Array(dag.numNodes),
): number {
  const { predStart, pred } = dag;
  let makespan = 0;
  for (let v = 0; v < dag.numNodes; v++) {
    let start = 0;
    for (let p = predStart[v]!; p < predStart[v + 1]!; p++) {
      const f = finish[pred[p]!]!;
      if (f > start) start = f;
    }
    const f = start + timeS[v]!;
    finish[v] = f;
    if (f > makespan) makespan = f;
  }
  return makespan;
}

/** E = Σ e_i + P_b·(N·T − Σ t_i) (docs/architecture.md §4.2); N counts GPUs, not virtual stages. */
export function planEnergy(
  numStages: number,
  blockingPowerW: number,
  timeS: number,
  sumEnergyJ: number,
  sumTimeS: number,
): number {
  return sumEnergyJ + blockingPowerW * (numStages * timeS - sumTimeS);
}

/** Iteration time and energy of the plan that runs every instruction at its highest measured clock. */
export function evaluateAllMax(v: ValidInput): { timeS: number; energyJ: number } {
  const { dag, tables } = v;
  const times = new Float64Array(dag.numNodes);
  let sumE = 0;
  let sumT = 0;
  for (let i = 0; i < dag.numNodes; i++) {
    const o = tables[dag.table[i]!]!.maxClock;
    times[i] = o.timeS;
    sumE += o.energyJ;
    sumT += o.timeS;
  }
  const t = longestPath(dag, times);
  return { timeS: t, energyJ: planEnergy(dag.numStages, v.blockingPowerW, t, sumE, sumT) };
}

/**
 * The emulator: exact iteration time (longest path) and energy of `plan` on the measured options
 * of `input.profile`. Every clock in the plan must be a measured one; each stage's instructions
 * must be in that stage's schedule order.
 */
export function evaluatePlan(
  input: PlannerInput,
  plan: StagePlan[],
): { timeS: number; energyJ: number } {
  return evaluatePlanValid(validatePlannerInput(input), plan);
}

/** {@link evaluatePlan} on already validated input. */
export function evaluatePlanValid(
  v: ValidInput,
  plan: StagePlan[],
): { timeS: number; energyJ: number } {
  const { dag, tables } = v;
  if (!Array.isArray(plan) || plan.length !== dag.numStages) {
    throw new PlannerInputError('plan', `must have one entry per stage (${dag.numStages})`);
  }
  const times = new Float64Array(dag.numNodes);
  let sumE = 0;
  let sumT = 0;
  plan.forEach((sp, idx) => {
    const s = sp.stage;
    if (s !== idx)
      throw new PlannerInputError(`plan[${idx}].stage`, `must be ${idx}, got ${String(s)}`);
    const nodes = dag.stageNodes[s]!;
    if (!Array.isArray(sp.instructions) || sp.instructions.length !== nodes.length) {
      throw new PlannerInputError(`plan[${idx}].instructions`, `must have ${nodes.length} entries`);
    }
    sp.instructions.forEach((ins, j) => {
      const node = nodes[j]!;
      const kind = dag.kind[node] === 0 ? 'forward' : 'backward';
      const field = `plan[${idx}].instructions[${j}]`;
      const chunk = dag.chunk[node]!;
      if (
        ins.kind !== kind ||
        ins.microbatch !== dag.microbatch[node] ||
        (ins.chunk ?? 0) !== chunk
      ) {
        const of = dag.numChunks > 1 ? ` of chunk ${chunk}` : '';
        throw new PlannerInputError(
          field,
          `must be ${kind} of microbatch ${dag.microbatch[node]}${of} (schedule order)`,
        );
      }
      const o = tables[dag.table[node]!]!.all.get(ins.frequencyMhz);
      if (o === undefined) {
        throw new PlannerInputError(
          `${field}.frequency_mhz`,
          `${String(ins.frequencyMhz)} MHz was not measured for stage ${dag.table[node]! >> 1} ${kind}`,
        );
      }
      times[node] = o.timeS;
      sumE += o.energyJ;
      sumT += o.timeS;
    });
  });
  const t = longestPath(dag, times);
  return { timeS: t, energyJ: planEnergy(dag.numStages, v.blockingPowerW, t, sumE, sumT) };
}

/** One instruction of a plan on the emulated timeline. */
export interface TimelineEntry {
  kind: 'forward' | 'backward';
  microbatch: number;
  /** Model chunk (`interleaved` only). */
  chunk?: number;
  frequencyMhz: number;
  startS: number;
  endS: number;
}

/**
 * Start and end of every instruction when each starts as soon as its dependencies allow (what a
 * real pipeline does), per stage in schedule order. For Gantt charts.
 */
export function planTimeline(input: PlannerInput, plan: StagePlan[]): TimelineEntry[][] {
  const v = validatePlannerInput(input);
  evaluatePlanValid(v, plan); // validates the plan
  const { dag, tables } = v;
  const times = new Float64Array(dag.numNodes);
  const freq = new Float64Array(dag.numNodes);
  plan.forEach((sp, s) =>
    sp.instructions.forEach((ins, j) => {
      const node = dag.stageNodes[s]![j]!;
      times[node] = tables[dag.table[node]!]!.all.get(ins.frequencyMhz)!.timeS;
      freq[node] = ins.frequencyMhz;
    }),
  );
  const finish = new Float64Array(dag.numNodes);
  longestPath(dag, times, finish);
  return dag.stageNodes.map((nodes) =>
    Array.from(nodes, (node) => ({
      kind: dag.kind[node] === 0 ? ('forward' as const) : ('backward' as const),
      microbatch: dag.microbatch[node]!,
      ...(dag.numChunks > 1 ? { chunk: dag.chunk[node]! } : {}),
      frequencyMhz: freq[node]!,
      startS: finish[node]! - times[node]!,
      endS: finish[node]!,
    })),
  );
}

/**
 * Validates `input` once and returns an evaluator for many plans of it (the emulator without
 * re-validating the profile each time; for benchmarks and policy loops).
 */
export function planEvaluator(
  input: PlannerInput,
): (plan: StagePlan[]) => { timeS: number; energyJ: number } {
  const v = validatePlannerInput(input);
  return (plan) => evaluatePlanValid(v, plan);
}
