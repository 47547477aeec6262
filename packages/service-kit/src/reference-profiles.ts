import * as path from 'node:path';

/**
 * The repository's measured stage profiles: the paper artifact's GPT-3 175B CSVs, one per GPU
 * (data/sosp24/stage_profile; columns stage,instruction,frequency,time,energy). The simulated GPU
 * reads them; tests and benchmarks use them as the reference workload. Absent from an installed
 * package (the agent then falls back to its embedded table).
 */
export const REFERENCE_PROFILE_DIR = path.resolve(
  __dirname,
  '..',
  '..',
  '..',
  'data',
  'sosp24',
  'stage_profile',
);

/** GPT-3 175B on A100 SXM, bf16: 8 stages, 38 clocks (1410 … 855 MHz in 15 MHz steps). */
export const GPT3_A100_CSV = path.join(REFERENCE_PROFILE_DIR, 'gpt3-175b+a100_sxm_bf16.csv');

/** GPT-3 175B on A40, bf16. */
export const GPT3_A40_CSV = path.join(REFERENCE_PROFILE_DIR, 'gpt3-175b+a40_bf16.csv');
