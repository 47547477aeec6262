/**
 * The one reading of a wire PipelineSpec, shared by the profiler and the optimizer so both refuse
 * the same shapes with the same messages: schedule, N stages, M microbatches and, for interleaved
 * 1F1B, V model chunks per GPU (Megatron-LM's virtual pipeline size).
 */
import type { commonV1 } from '@perseus/proto';
import { SIZE_LIMITS } from './limits';
import type { Checker } from './validate';
import type { WireSchedule } from './wire-enums';
import { checkWireSchedule } from './wire-enums';

/** A validated pipeline shape. `numChunks` is 1 unless the schedule is interleaved. */
export interface WirePipeline {
  schedule: WireSchedule;
  numStages: number;
  numMicrobatches: number;
  numChunks: number;
}

/**
 * Checks a PipelineSpec's fields on `c` (already at the message, e.g. `spec.pipeline`).
 * Interleaved 1F1B needs 2 ≤ num_chunks, num_stages × num_chunks ≤ SIZE_LIMITS.maxStages (the
 * profile's virtual stages) and num_microbatches a multiple of num_stages (Megatron-LM's rule: it
 * walks microbatches in groups of N); the other schedules take num_chunks 0 or 1. Returns
 * undefined when the schedule is missing or unknown (the failure is already on `c`).
 */
export function checkWirePipeline(
  c: Checker,
  p: commonV1.PipelineSpec__Output | commonV1.PipelineSpec,
): WirePipeline | undefined {
  const schedule = checkWireSchedule(c, 'schedule', p.schedule);
  const numStages = c.uint('num_stages', p.num_stages, { min: 1, max: SIZE_LIMITS.maxStages });
  const numMicrobatches = c.uint('num_microbatches', p.num_microbatches, {
    min: 1,
    max: SIZE_LIMITS.maxMicrobatches,
  });
  if (schedule === 'interleaved') {
    const numChunks = c.uint('num_chunks', p.num_chunks);
    if (Number.isInteger(numChunks) && numChunks < 2)
      c.fail('num_chunks', `must be ≥ 2 for interleaved 1F1B, got ${numChunks}`);
    else if (numStages >= 1 && numStages * numChunks > SIZE_LIMITS.maxStages)
      c.fail(
        'num_chunks',
        `num_stages × num_chunks (virtual stages) must be ≤ ${SIZE_LIMITS.maxStages}, got ${numStages} × ${numChunks} = ${numStages * numChunks}`,
      );
    if (numStages >= 1 && numMicrobatches >= 1 && numMicrobatches % numStages !== 0)
      c.fail(
        'num_microbatches',
        `must be a multiple of num_stages (${numStages}) for interleaved 1F1B, got ${numMicrobatches}`,
      );
    return { schedule, numStages, numMicrobatches, numChunks };
  }
  const numChunks = c.uint('num_chunks', p.num_chunks);
  if (schedule === undefined) return undefined;
  if (numChunks > 1)
    c.fail(
      'num_chunks',
      `must be 0 or 1 unless the schedule is interleaved 1F1B, got ${numChunks}`,
    );
  return { schedule, numStages, numMicrobatches, numChunks: Math.max(1, numChunks) };
}
