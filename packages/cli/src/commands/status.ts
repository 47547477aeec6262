import type { Command } from 'commander';
import type { optimizerV1 } from '@perseus/proto';
import {
  addOptimizerClientFlags,
  enumWord,
  withOptimizer,
  type OptimizerFlags,
} from './optimizer-client';

interface StatusFlags extends OptimizerFlags {
  job?: string;
}

/** The lines `perseus status --job` and `perseus jobs show` print for a job's status. */
export function jobStatusLines(
  jobId: string,
  s: optimizerV1.GetJobStatusResponse__Output,
): string[] {
  return [
    `job ${jobId}: ${enumWord(s.phase, 'PHASE_')}`,
    `  schedule version ${s.schedule_version}, ranks ${s.registered_ranks}/${s.world_size}`,
    `  predicted saving ${s.predicted_saving_percent.toFixed(2)}% vs all-max clocks${
      s.simulated ? ' (EMULATED: the job runs on simulated GPUs)' : ''
    }${
      s.certified_gap_percent !== undefined && s.certified_gap_percent !== null
        ? `; certified gap ${s.certified_gap_percent.toFixed(2)} pp`
        : ''
    }`,
    `  stragglers: ${s.straggler_dp_ranks.length ? s.straggler_dp_ranks.join(', ') : 'none'}`,
    ...(s.detail ? [`  ${s.detail}`] : []),
  ];
}

/** Registers `perseus status`: health of a server's services and, with --job, the job's phase. */
export function registerStatusCommand(program: Command): void {
  addOptimizerClientFlags(
    program
      .command('status')
      .description(
        "show a server's health and, with --job, a job's phase, plan version and predicted saving",
      )
      .option('--job <id>', 'job id'),
  ).action((flags: StatusFlags) =>
    withOptimizer('status', flags, async (conn) => {
      process.stdout.write(`server ${conn.address}: reachable\n`);
      if (flags.job === undefined) return;
      const s = await conn.call<optimizerV1.GetJobStatusResponse__Output>('GetJobStatus', {
        job_id: flags.job,
      });
      process.stdout.write(jobStatusLines(flags.job, s).join('\n') + '\n');
    }),
  );
}
