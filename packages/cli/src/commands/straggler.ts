import { Command } from 'commander';
import type { optimizerV1 } from '@perseus/proto';
import { addOptimizerClientFlags, withOptimizer, type OptimizerFlags } from './optimizer-client';

interface StragglerFlags extends OptimizerFlags {
  job: string;
  dpRank: string;
  slowdown?: string;
  iterationTime?: string;
  expiresAfter?: string;
}

function nonNegativeInt(flag: string, v: string): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < 0) throw new Error(`${flag} must be an integer ≥ 0, got '${v}'`);
  return x;
}

function number(flag: string, v: string): number {
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`${flag} must be a number, got '${v}'`);
  return x;
}

/** The ReportStraggler request `perseus straggler report` sends. */
export function stragglerReport(flags: StragglerFlags): optimizerV1.ReportStragglerRequest {
  const given = [flags.slowdown, flags.iterationTime].filter((v) => v !== undefined).length;
  if (given !== 1) throw new Error('give exactly one of --slowdown <x> and --iteration-time <s>');
  return {
    job_id: flags.job,
    dp_rank: nonNegativeInt('--dp-rank', flags.dpRank),
    ...(flags.slowdown !== undefined
      ? { slowdown: number('--slowdown', flags.slowdown) }
      : { iteration_time_s: number('--iteration-time', flags.iterationTime!) }),
    ...(flags.expiresAfter !== undefined
      ? { expires_after_s: number('--expires-after', flags.expiresAfter) }
      : {}),
  };
}

const common = (cmd: Command): Command =>
  addOptimizerClientFlags(
    cmd.requiredOption('--job <id>', 'job id').requiredOption('--dp-rank <n>', 'the pipeline'),
  );

/** Registers `perseus straggler report|clear` (ReportStraggler). */
export function registerStragglerCommand(program: Command): void {
  const straggler = new Command('straggler').description(
    'tell the optimizer a pipeline straggles, or that it recovered (ReportStraggler)',
  );
  common(
    straggler
      .command('report')
      .description(
        'report a straggling pipeline; the others get the least-energy plan that keeps up',
      )
      .option('--slowdown <x>', "the straggler's slowdown vs the intrinsic plan's time (> 1)")
      .option('--iteration-time <s>', "the straggler's iteration time, seconds")
      .option('--expires-after <s>', 'the report lapses after this many seconds (default: never)'),
  ).action((flags: StragglerFlags) =>
    withOptimizer('straggler report', flags, async (conn) => {
      const res = await conn.call<optimizerV1.ReportStragglerResponse__Output>(
        'ReportStraggler',
        stragglerReport(flags),
      );
      process.stdout.write(
        `job ${flags.job}: pipeline ${flags.dpRank} straggles; schedule version ${res.schedule_version}, target iteration time ${res.target_iteration_time_s.toFixed(4)} s\n`,
      );
    }),
  );
  common(straggler.command('clear').description('the pipeline has recovered')).action(
    (flags: StragglerFlags) =>
      withOptimizer('straggler clear', flags, async (conn) => {
        const res = await conn.call<optimizerV1.ReportStragglerResponse__Output>(
          'ReportStraggler',
          {
            job_id: flags.job,
            dp_rank: nonNegativeInt('--dp-rank', flags.dpRank),
            recovered: true,
          },
        );
        process.stdout.write(
          `job ${flags.job}: pipeline ${flags.dpRank} recovered; schedule version ${res.schedule_version}, target iteration time ${res.target_iteration_time_s.toFixed(4)} s\n`,
        );
      }),
  );
  program.addCommand(straggler);
}
