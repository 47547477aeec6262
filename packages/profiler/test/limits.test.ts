/**
 * Issue 13: every size a request can imply has one limit (service-kit's SIZE_LIMITS), enforced at
 * every RPC that accepts it. Before, ImportProfile accepted stage 999,999,999 and created a job of
 * 10^9 stages (GetCoverage on it grew to 2.5 GB).
 */
import { SIZE_LIMITS, createLogger, thrownViolations } from '@perseus/service-kit';
import { Profiler } from '../src/profiler';
import { SqliteProfileStore } from '../src/sqlite-store';
import {
  validateImportProfile,
  validateMeasurementBatch,
  validateRegisterJob,
} from '../src/validate';

/** The thrown violations as `field: description` lines. */
function violations(fn: () => unknown): string[] {
  return thrownViolations(fn).map(([field, description]) => `${field}: ${description}`);
}

const STAGE = 'stage,instruction,frequency,time,energy';
const RANK = 'rank,dp_rank,pp_rank,tp_rank,stage,instruction,frequency,time,energy';

function importReq(
  format: 'STAGE' | 'RANK',
  csv: string,
): Parameters<typeof validateImportProfile>[0] {
  return { job_id: 'j', format: `PROFILE_FORMAT_${format}`, csv };
}

describe('size limits at the profiler boundary', () => {
  it('ImportProfile rejects a stage beyond the stage limit', () => {
    expect(
      violations(() =>
        validateImportProfile(importReq('STAGE', `${STAGE}\n999999999,forward,1410,0.1,1`)),
      ),
    ).toEqual([`csv: line 2: stage must be < ${SIZE_LIMITS.maxStages}, got 999999999`]);
  });

  it('ImportProfile rejects ranks, degrees and clocks beyond their limits', () => {
    const csv = `${RANK}\n${SIZE_LIMITS.maxWorldSize},${SIZE_LIMITS.maxDegree},0,${SIZE_LIMITS.maxDegree},0,forward,${SIZE_LIMITS.maxFrequencyMhz + 1},0.1,1`;
    expect(violations(() => validateImportProfile(importReq('RANK', csv)))).toEqual([
      `csv: line 2: rank must be < ${SIZE_LIMITS.maxWorldSize}, got ${SIZE_LIMITS.maxWorldSize}`,
      `csv: line 2: dp_rank must be < ${SIZE_LIMITS.maxDegree}, got ${SIZE_LIMITS.maxDegree}`,
      `csv: line 2: tp_rank must be < ${SIZE_LIMITS.maxDegree}, got ${SIZE_LIMITS.maxDegree}`,
      `csv: line 2: frequency must be < ${SIZE_LIMITS.maxFrequencyMhz + 1}, got ${SIZE_LIMITS.maxFrequencyMhz + 1}`,
    ]);
  });

  it('ImportProfile rejects more distinct clocks than a job may have', () => {
    const rows = Array.from(
      { length: SIZE_LIMITS.maxFrequencies + 1 },
      (_, i) => `0,forward,${i + 1},0.1,1`,
    );
    expect(
      violations(() => validateImportProfile(importReq('STAGE', [STAGE, ...rows].join('\n')))),
    ).toEqual([
      `csv: line ${SIZE_LIMITS.maxFrequencies + 2}: more than ${SIZE_LIMITS.maxFrequencies} distinct frequencies`,
    ]);
  });

  it('RegisterJob and measurements use the same limits', () => {
    expect(
      violations(() =>
        validateRegisterJob({
          job_id: 'j',
          pipeline: {
            schedule: 'SCHEDULE_KIND_1F1B',
            num_stages: SIZE_LIMITS.maxStages + 1,
            num_microbatches: SIZE_LIMITS.maxMicrobatches + 1,
          },
          dp_degree: 1,
          tp_degree: 1,
          supported_frequencies_mhz: [],
        }),
      ),
    ).toEqual([
      `pipeline.num_stages: must be ≤ ${SIZE_LIMITS.maxStages}, got ${SIZE_LIMITS.maxStages + 1}`,
      `pipeline.num_microbatches: must be ≤ ${SIZE_LIMITS.maxMicrobatches}, got ${SIZE_LIMITS.maxMicrobatches + 1}`,
    ]);
    expect(
      violations(() =>
        validateRegisterJob({
          job_id: 'j',
          pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 256, num_microbatches: 4 },
          dp_degree: 65536,
          tp_degree: 65536,
          supported_frequencies_mhz: [],
        }),
      ),
    ).toEqual([
      `dp_degree: world size num_stages × dp_degree × tp_degree must be ≤ ${SIZE_LIMITS.maxWorldSize}, got ${256 * 65536 * 65536}`,
    ]);
    expect(
      violations(() =>
        validateMeasurementBatch({
          batch_id: 'b',
          job_id: 'j',
          measurements: [
            {
              rank: { rank: 0, dp_rank: 0, pp_rank: 999_999_999, tp_rank: 0 },
              instruction: 'INSTRUCTION_KIND_FORWARD',
              microbatch: 999_999_999,
              frequency_mhz: 1410,
              time_s: 0.1,
              energy_j: 1,
              iteration: '0',
            },
          ],
        }),
      ),
    ).toEqual([
      `measurements[0].rank.pp_rank: must be ≤ ${SIZE_LIMITS.maxStages - 1}, got 999999999`,
      `measurements[0].microbatch: must be ≤ ${SIZE_LIMITS.maxMicrobatches - 1}, got 999999999`,
    ]);
  });

  it('an ImportProfile whose rows imply a world size over the limit creates no job', async () => {
    const profiler = new Profiler({
      store: new SqliteProfileStore({ dataDir: ':memory:' }),
      logger: createLogger('t', 'silent'),
      aggregateIntervalMs: 0,
    });
    try {
      const csv = `${RANK}\n0,60000,0,0,0,forward,1410,0.1,1\n1,0,255,60000,255,forward,1410,0.1,1`;
      await expect(
        profiler.importProfile(validateImportProfile(importReq('RANK', csv))),
      ).rejects.toThrow(/world size .* over the limit 1048576/);
      await expect(profiler.getCoverage({ jobId: 'j', minCount: 0 })).rejects.toThrow(
        /not registered/,
      );
    } finally {
      await profiler.close();
    }
  });
});
