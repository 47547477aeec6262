import { longestPath, planEnergy } from './emulator';
import { PlannerInputError } from './errors';
import { validatePlannerInput } from './options';
import type { PlannerInput } from './types';

/** A point of the exact frontier. */
export interface ExactFrontierPoint {
  timeS: number;
  energyJ: number;
}

/**
 * The exact time–energy frontier by enumerating every plan (every measured clock of every
 * instruction) — the oracle for tiny pipelines (N=2, M=2, 3 clocks: 3^8 = 6,561 plans). Throws if
 * there are more than `maxPlans` plans.
 */
export function exactFrontier(input: PlannerInput, maxPlans = 2_000_000): ExactFrontierPoint[] {
  const v = validatePlannerInput(input);
  const { dag, tables } = v;
  const n = dag.numNodes;
  const opts = Array.from({ length: n }, (_, i) => [...tables[dag.table[i]!]!.all.values()]);
  let count = 1;
  for (const o of opts) count *= o.length;
  if (count > maxPlans)
    throw new PlannerInputError('input', `has ${count} plans, more than ${maxPlans} to enumerate`);
  const idx = new Int32Array(n);
  const times = new Float64Array(n);
  const finish = new Float64Array(n);
  const all: ExactFrontierPoint[] = [];
  for (;;) {
    let sumE = 0;
    let sumT = 0;
    for (let i = 0; i < n; i++) {
      const o = opts[i]![idx[i]!]!;
      times[i] = o.timeS;
      sumE += o.energyJ;
      sumT += o.timeS;
    }
    const t = longestPath(dag, times, finish);
    all.push({ timeS: t, energyJ: planEnergy(dag.numStages, v.blockingPowerW, t, sumE, sumT) });
    let i = 0;
    while (i < n && ++idx[i]! === opts[i]!.length) idx[i++] = 0;
    if (i === n) break;
  }
  all.sort((a, b) => a.timeS - b.timeS || a.energyJ - b.energyJ);
  const out: ExactFrontierPoint[] = [];
  for (const p of all)
    if (out.length === 0 || p.energyJ < out[out.length - 1]!.energyJ) out.push(p);
  return out;
}
