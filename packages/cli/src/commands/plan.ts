import type { Command } from 'commander';

/** Registers `perseus plan` (issue 3 fills this in). */
export function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description('offline: profile CSV -> frontier + plots (not built yet)')
    .action(() => {
      process.stderr.write('perseus plan: not implemented yet\n');
      process.exitCode = 2;
    });
}
