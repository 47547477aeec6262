import { Command, Option } from 'commander';
import type { optimizerV1 } from '@perseus/proto';
import { addOptimizerClientFlags, withOptimizer, type OptimizerFlags } from './optimizer-client';

interface PolicyFlags extends OptimizerFlags {
  job: string;
  intrinsic?: boolean;
  maxSlowdown?: string;
  targetTime?: string;
  minEnergy?: boolean;
}

/** The one policy the flags name (exactly one of the four). */
export function policyFromFlags(flags: PolicyFlags): optimizerV1.Policy {
  const chosen: optimizerV1.Policy[] = [];
  if (flags.intrinsic) chosen.push({ intrinsic: true });
  if (flags.maxSlowdown !== undefined)
    chosen.push({ max_slowdown_percent: finite('--max-slowdown', flags.maxSlowdown) });
  if (flags.targetTime !== undefined)
    chosen.push({ target_iteration_time_s: finite('--target-time', flags.targetTime) });
  if (flags.minEnergy) chosen.push({ min_energy: true });
  if (chosen.length !== 1)
    throw new Error(
      'give exactly one of --intrinsic, --max-slowdown <percent>, --target-time <s>, --min-energy',
    );
  return chosen[0]!;
}

function finite(flag: string, v: string): number {
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`${flag} must be a number, got '${v}'`);
  return x;
}

/** Registers `perseus policy set`: how the non-straggling pipelines pick their frontier point. */
export function registerPolicyCommand(program: Command): void {
  const policy = new Command('policy').description("set a job's plan policy (SetPolicy)");
  addOptimizerClientFlags(
    policy
      .command('set')
      .description(
        'choose how non-straggling pipelines pick their plan: fastest (intrinsic), least energy within a slowdown or time, or least energy (T*)',
      )
      .requiredOption('--job <id>', 'job id')
      .addOption(new Option('--intrinsic', 'fastest plan, no slowdown vs all-max clocks (default)'))
      .addOption(
        new Option(
          '--max-slowdown <percent>',
          'least energy with iteration time ≤ (1 + p/100) × the intrinsic time',
        ),
      )
      .addOption(new Option('--target-time <s>', 'least energy with iteration time ≤ this'))
      .addOption(new Option('--min-energy', 'the least-energy point T*')),
  ).action((flags: PolicyFlags) =>
    withOptimizer('policy set', flags, async (conn) => {
      const res = await conn.call<optimizerV1.SetPolicyResponse__Output>('SetPolicy', {
        job_id: flags.job,
        policy: policyFromFlags(flags),
      });
      const chosen = res.chosen
        ? `; chosen point ${res.chosen.index}: ${res.chosen.time_s.toFixed(4)} s, ${res.chosen.energy_j.toFixed(1)} J per pipeline`
        : '; no frontier yet (applies once planned)';
      process.stdout.write(`job ${flags.job}: schedule version ${res.schedule_version}${chosen}\n`);
    }),
  );
  program.addCommand(policy);
}
