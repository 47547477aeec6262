/** Where a registering rank may stand in its job: inside the spec, one rank per position. */
import { FailedPreconditionError, ValidationError } from '@perseus/service-kit';
import type { Job } from './job';
import type { RankInfo } from './types';
import type { RegisterRankInput } from './validate';

/**
 * Refuses a rank registration that does not fit its job (another spec generation, a coordinate
 * outside the spec, a position held by another rank, a rank moved to another position); returns
 * the rank's earlier registration, if any.
 */
export function checkRankPlacement(job: Job, input: RegisterRankInput): RankInfo | undefined {
  const { spec } = job;
  const r = input.rank;
  if (input.expectedSpecHash !== '' && input.expectedSpecHash !== job.specHash) {
    throw new FailedPreconditionError(
      `job ${job.jobId} generation ${job.generation} has spec hash ${job.specHash}, not the expected ${input.expectedSpecHash}: it was registered with a different spec`,
    );
  }
  const v: Array<{ field: string; description: string }> = [];
  if (r.rank >= spec.worldSize)
    v.push({
      field: 'rank.rank',
      description: `must be < world_size ${spec.worldSize}, got ${r.rank}`,
    });
  if (r.dpRank >= spec.dpDegree)
    v.push({
      field: 'rank.dp_rank',
      description: `must be < dp_degree ${spec.dpDegree}, got ${r.dpRank}`,
    });
  if (r.ppRank >= spec.pipeline.numStages)
    v.push({
      field: 'rank.pp_rank',
      description: `must be < num_stages ${spec.pipeline.numStages}, got ${r.ppRank}`,
    });
  if (r.tpRank >= spec.tpDegree)
    v.push({
      field: 'rank.tp_rank',
      description: `must be < tp_degree ${spec.tpDegree}, got ${r.tpRank}`,
    });
  if (v.length > 0) throw new ValidationError(v);
  const posKey = `${r.dpRank}/${r.ppRank}/${r.tpRank}`;
  const holder = job.positions.get(posKey);
  if (holder !== undefined && holder !== r.rank) {
    throw new FailedPreconditionError(
      `position dp=${r.dpRank} pp=${r.ppRank} tp=${r.tpRank} of job ${job.jobId} is held by rank ${holder}`,
    );
  }
  const prev = job.ranks.get(r.rank);
  if (
    prev !== undefined &&
    (prev.dpRank !== r.dpRank || prev.ppRank !== r.ppRank || prev.tpRank !== r.tpRank)
  ) {
    throw new FailedPreconditionError(
      `rank ${r.rank} of job ${job.jobId} is registered at another position`,
    );
  }
  return prev;
}
