/**
 * Which frontier point each pipeline runs (docs/architecture.md §3 step 6, extrinsic bloat), as pure functions
 * of the frontier, the job's policy and its active stragglers.
 */
import type { Frontier, FrontierPoint } from '@perseus/planner';
import type { Policy, Straggler } from './types';

/** What the choice needs of a frontier (a real `Frontier` or a table in tests). */
export type FrontierChoices = Pick<Frontier, 'intrinsic' | 'planFor' | 'minEnergyTimeS'>;

/** The straggler's iteration time T′: as reported, or its slowdown × the intrinsic plan's time. */
export function stragglerTimeS(s: Straggler, f: FrontierChoices | null): number {
  if (s.slowdown !== undefined && f !== null) return s.slowdown * f.intrinsic().point.timeS;
  return s.iterationTimeS;
}

/** Target iteration time of a policy, s (the frontier caps whatever it asks at T*). */
export function policyTargetS(policy: Policy, f: FrontierChoices): number {
  switch (policy.kind) {
    case 'intrinsic':
      return f.intrinsic().point.timeS;
    case 'maxSlowdownPercent':
      return f.intrinsic().point.timeS * (1 + policy.percent / 100);
    case 'targetIterationTime':
      return policy.timeS;
    case 'minEnergy':
      return f.minEnergyTimeS;
  }
}

/** The point the policy chooses for a pipeline when no straggler is active. */
export function policyPoint(policy: Policy, f: FrontierChoices): FrontierPoint {
  return policy.kind === 'intrinsic'
    ? f.intrinsic().point
    : f.planFor(policyTargetS(policy, f)).point;
}

/** The plan of every pipeline of a job. */
export interface PlanChoice {
  /**
   * Frontier points of the variants: `[policy point]`, or `[policy point, slowed point]` when a
   * straggler makes the healthy pipelines slow down.
   */
  variantPoints: FrontierPoint[];
  /** Variant index per dp rank. */
  variantOfPipeline: number[];
  /** Slowest active straggler's T′, s (0 = none). */
  stragglerTimeS: number;
  /** Time the healthy pipelines now target, s (0 = they run the policy point). */
  targetIterationTimeS: number;
  /** The pipelines treated as stragglers, ascending. */
  stragglers: number[];
  /**
   * Per variant, the iteration time its plan must meet: the policy's target, and for the slowed
   * variant max(T′, policy target). The exact polish of a deployed plan works at this deadline.
   */
  variantDeadlinesS: number[];
}

/**
 * Stragglers run the policy's plan; every other pipeline runs the least-energy plan with time ≤
 * max(policy target, T′), T′ the slowest active straggler's time — only when T′ is beyond the
 * policy point's time (a straggler faster than the plan changes nothing).
 */
export function choosePlans(
  f: FrontierChoices,
  policy: Policy,
  active: readonly Straggler[],
  dpDegree: number,
): PlanChoice {
  const base = policyPoint(policy, f);
  const slow = [...new Set(active.map((s) => s.dpRank))].sort((a, b) => a - b);
  const tPrime = active.length === 0 ? 0 : Math.max(...active.map((s) => stragglerTimeS(s, f)));
  const targetS = policyTargetS(policy, f);
  const healthy = tPrime > base.timeS ? f.planFor(Math.max(tPrime, targetS)).point : base;
  const slowed = healthy.index !== base.index;
  const slowSet = new Set(slow);
  return {
    variantPoints: slowed ? [base, healthy] : [base],
    variantOfPipeline: Array.from({ length: dpDegree }, (_, dp) =>
      slowed && !slowSet.has(dp) ? 1 : 0,
    ),
    stragglerTimeS: tPrime,
    targetIterationTimeS: tPrime > base.timeS ? healthy.timeS : 0,
    stragglers: slow,
    variantDeadlinesS: slowed ? [targetS, Math.max(tPrime, targetS)] : [targetS],
  };
}
