/**
 * Rank identity (perseus.common.v1.RankIdentity): the one internal type and its validators, shared
 * by the agent, the profiler and the optimizer.
 */
import type { commonV1 } from '@perseus/proto';
import { SIZE_LIMITS } from './limits';
import type { Checker } from './validate';

/** Position of a rank in the 3D-parallel layout. */
export interface RankIdentity {
  /** Global rank in [0, world size). */
  rank: number;
  /** Which pipeline, in [0, dp_degree). */
  dpRank: number;
  /** Pipeline stage, in [0, num_stages). */
  ppRank: number;
  /** Tensor-parallel index, in [0, tp_degree). */
  tpRank: number;
}

/** The shape a rank must fit in. */
export interface ParallelShape {
  numStages: number;
  dpDegree: number;
  tpDegree: number;
}

/**
 * Checks a required RankIdentity field against {@link SIZE_LIMITS} (what any job could hold);
 * violations are named `<field>.rank`, `<field>.dp_rank`, ….
 */
export function checkRankIdentity(
  c: Checker,
  field: string,
  value: commonV1.RankIdentity | commonV1.RankIdentity__Output | null | undefined,
): RankIdentity {
  if (!c.present(field, value)) return { rank: 0, dpRank: 0, ppRank: 0, tpRank: 0 };
  const rc = c.at(field);
  return {
    rank: rc.uint('rank', value.rank, { max: SIZE_LIMITS.maxWorldSize - 1 }),
    dpRank: rc.uint('dp_rank', value.dp_rank, { max: SIZE_LIMITS.maxDegree - 1 }),
    ppRank: rc.uint('pp_rank', value.pp_rank, { max: SIZE_LIMITS.maxStages - 1 }),
    tpRank: rc.uint('tp_rank', value.tp_rank, { max: SIZE_LIMITS.maxDegree - 1 }),
  };
}

/** True when `r` lies inside `shape` (world size = stages × dp × tp). */
export function rankFits(r: RankIdentity, shape: ParallelShape): boolean {
  return (
    r.rank < shape.numStages * shape.dpDegree * shape.tpDegree &&
    r.dpRank < shape.dpDegree &&
    r.ppRank < shape.numStages &&
    r.tpRank < shape.tpDegree
  );
}

/** Records a violation for every coordinate of `r` outside `shape`. */
export function checkRankInShape(
  c: Checker,
  field: string,
  r: RankIdentity,
  shape: ParallelShape,
): void {
  const worldSize = shape.numStages * shape.dpDegree * shape.tpDegree;
  const rc = c.at(field);
  if (r.rank >= worldSize) rc.fail('rank', `must be < world size ${worldSize}, got ${r.rank}`);
  if (r.dpRank >= shape.dpDegree)
    rc.fail('dp_rank', `must be < dp_degree ${shape.dpDegree}, got ${r.dpRank}`);
  if (r.ppRank >= shape.numStages)
    rc.fail('pp_rank', `must be < num_stages ${shape.numStages}, got ${r.ppRank}`);
  if (r.tpRank >= shape.tpDegree)
    rc.fail('tp_rank', `must be < tp_degree ${shape.tpDegree}, got ${r.tpRank}`);
}
