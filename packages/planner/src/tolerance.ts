/**
 * The planner's floating-point tolerances, in one place.
 *
 * Times and energies are sums of measured values, so two computations of the same path length can
 * differ in the last bits. Every comparison that decides something (does a plan fit a budget, is a
 * point Pareto-better, does a rounded duration still fit) allows this relative slack.
 */
export const REL_TOL = 1e-12;

/** Whether `timeS` is within `budgetS` up to {@link REL_TOL}. */
export function fitsBudget(timeS: number, budgetS: number): boolean {
  return timeS <= budgetS * (1 + REL_TOL);
}

/**
 * Whether a relaxed duration `d` sits on the hull vertex at `vertexS` (absolute 1e-15 s for
 * vertices at zero, 1e-13 relative otherwise: the vertex snap of the parametric sweep).
 */
export function atHullVertex(d: number, vertexS: number): boolean {
  const gap = d - vertexS;
  return (gap < 0 ? -gap : gap) <= 1e-15 + 1e-13 * vertexS;
}
