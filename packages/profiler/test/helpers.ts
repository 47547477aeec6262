import type { Measurement, MeasurementBatch } from '../src/types';

/**
 * Synthetic measurements of a job: every rank of `dp × stages × tp` runs `iterations` iterations of
 * `microbatches` forwards at `frequencyMhz`; time = base · (1 + 0.1·stage) (+ 50% in the first,
 * warm-up, iteration), energy = 20 J per GPU. rank = (dp · stages + stage) · tp + tp_rank.
 */
export function syntheticMeasurements(opts: {
  dp: number;
  stages: number;
  tp: number;
  iterations: number;
  microbatches: number;
  frequencyMhz: number;
  firstIteration?: number;
  baseTimeS?: number;
}): Measurement[] {
  const out: Measurement[] = [];
  const first = opts.firstIteration ?? 0;
  for (let it = first; it < first + opts.iterations; it++)
    for (let dp = 0; dp < opts.dp; dp++)
      for (let stage = 0; stage < opts.stages; stage++)
        for (let tp = 0; tp < opts.tp; tp++)
          for (let mb = 0; mb < opts.microbatches; mb++) {
            const warm = it === first ? 1.5 : 1;
            out.push({
              rank: (dp * opts.stages + stage) * opts.tp + tp,
              dpRank: dp,
              ppRank: stage,
              tpRank: tp,
              instruction: 'forward',
              microbatch: mb,
              chunk: 0,
              frequencyMhz: opts.frequencyMhz,
              timeS: (opts.baseTimeS ?? 0.05) * (1 + 0.1 * stage) * warm,
              energyJ: 20,
              iteration: it,
            });
          }
  return out;
}

/** Splits measurements into batches of `size` with ids `${prefix}-${i}`. */
export function toBatches(
  jobId: string,
  ms: readonly Measurement[],
  size: number,
  prefix = 'b',
): MeasurementBatch[] {
  const out: MeasurementBatch[] = [];
  for (let i = 0; i * size < ms.length; i++)
    out.push({
      jobId,
      batchId: `${prefix}-${i}`,
      measurements: ms.slice(i * size, (i + 1) * size),
    });
  return out;
}

/** The wire form of a measurement (what a gRPC client sends). */
export function toWire(m: Measurement): Record<string, unknown> {
  return {
    rank: { rank: m.rank, dp_rank: m.dpRank, pp_rank: m.ppRank, tp_rank: m.tpRank },
    instruction:
      m.instruction === 'forward' ? 'INSTRUCTION_KIND_FORWARD' : 'INSTRUCTION_KIND_BACKWARD',
    microbatch: m.microbatch,
    chunk: m.chunk,
    frequency_mhz: m.frequencyMhz,
    time_s: m.timeS,
    energy_j: m.energyJ,
    iteration: String(m.iteration),
  };
}
