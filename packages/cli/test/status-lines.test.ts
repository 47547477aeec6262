import type { optimizerV1 } from '@perseus/proto';
import { jobStatusLines } from '../src/commands/status';

// What `perseus status --job` prints must make an emulated saving impossible to misread
// (issue: a CPU model against simulated GPUs "saved 87.8 %" with no hint).
function status(
  over: Partial<optimizerV1.GetJobStatusResponse__Output>,
): optimizerV1.GetJobStatusResponse__Output {
  return {
    phase: 'PHASE_DEPLOYED',
    schedule_version: 4,
    registered_ranks: 16,
    world_size: 16,
    predicted_saving_percent: 13.04,
    straggler_dp_ranks: [],
    detail: '',
    simulated: false,
    ...over,
  } as optimizerV1.GetJobStatusResponse__Output;
}

describe('perseus status lines', () => {
  it('marks a saving on simulated GPUs as emulated, and a real one not', () => {
    expect(jobStatusLines('j', status({ simulated: true }))[2]).toBe(
      '  predicted saving 13.04% vs all-max clocks (EMULATED: the job runs on simulated GPUs)',
    );
    expect(jobStatusLines('j', status({ simulated: false }))[2]).toBe(
      '  predicted saving 13.04% vs all-max clocks',
    );
  });

  it('prints the certified gap when the optimizer has one', () => {
    expect(jobStatusLines('j', status({ certified_gap_percent: 0.117 }))[2]).toBe(
      '  predicted saving 13.04% vs all-max clocks; certified gap 0.12 pp',
    );
  });
});
