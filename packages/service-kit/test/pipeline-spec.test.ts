import type { commonV1 } from '@perseus/proto';
import { Checker, ValidationError, checkWirePipeline, type WirePipeline } from '../src';

function read(p: commonV1.PipelineSpec): {
  pipeline: WirePipeline | undefined;
  violations: string[];
} {
  const c = new Checker();
  const pipeline = checkWirePipeline(c.at('pipeline'), p);
  try {
    c.done();
    return { pipeline, violations: [] };
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return {
      pipeline,
      violations: (err as ValidationError).violations.map((v) => `${v.field}: ${v.description}`),
    };
  }
}

const interleaved = (over: Partial<commonV1.PipelineSpec>): commonV1.PipelineSpec => ({
  schedule: 'SCHEDULE_KIND_INTERLEAVED_1F1B',
  num_stages: 4,
  num_microbatches: 8,
  num_chunks: 2,
  ...over,
});

describe('checkWirePipeline', () => {
  it('reads 1F1B with no chunks as one chunk, and interleaved with its chunks', () => {
    expect(read({ schedule: 'SCHEDULE_KIND_1F1B', num_stages: 4, num_microbatches: 6 })).toEqual({
      pipeline: { schedule: '1f1b', numStages: 4, numMicrobatches: 6, numChunks: 1 },
      violations: [],
    });
    expect(read(interleaved({}))).toEqual({
      pipeline: { schedule: 'interleaved', numStages: 4, numMicrobatches: 8, numChunks: 2 },
      violations: [],
    });
    // 128 GPUs × 2 chunks = 256 virtual stages: exactly the limit.
    expect(
      read(interleaved({ num_stages: 128, num_microbatches: 128, num_chunks: 2 })).violations,
    ).toEqual([]);
  });

  it.each<[string, Partial<commonV1.PipelineSpec>, string[]]>([
    [
      'no chunks',
      { num_chunks: 0 },
      ['pipeline.num_chunks: must be ≥ 2 for interleaved 1F1B, got 0'],
    ],
    [
      'one chunk',
      { num_chunks: 1 },
      ['pipeline.num_chunks: must be ≥ 2 for interleaved 1F1B, got 1'],
    ],
    [
      'M not a multiple of N',
      { num_microbatches: 6 },
      [
        'pipeline.num_microbatches: must be a multiple of num_stages (4) for interleaved 1F1B, got 6',
      ],
    ],
    [
      'virtual stages over the limit',
      { num_stages: 16, num_microbatches: 16, num_chunks: 17 },
      [
        'pipeline.num_chunks: num_stages × num_chunks (virtual stages) must be ≤ 256, got 16 × 17 = 272',
      ],
    ],
    [
      'microbatches over the limit',
      { num_microbatches: 4100 },
      ['pipeline.num_microbatches: must be ≤ 4096, got 4100'],
    ],
  ])('refuses interleaved with %s', (_, over, violations) => {
    expect(read(interleaved(over)).violations).toEqual(violations);
  });

  it('refuses chunks on a schedule without them', () => {
    expect(
      read({ schedule: 'SCHEDULE_KIND_GPIPE', num_stages: 2, num_microbatches: 3, num_chunks: 2 })
        .violations,
    ).toEqual([
      'pipeline.num_chunks: must be 0 or 1 unless the schedule is interleaved 1F1B, got 2',
    ]);
  });
});
