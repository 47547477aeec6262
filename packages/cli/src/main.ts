import { Command } from 'commander';
import { PERSEUS_VERSION } from '@perseus/service-kit';
import { registerDemoCommand } from './commands/demo';
import { registerPlanCommand } from './commands/plan';
import { registerServeCommand } from './commands/serve';
import { registerStatusCommand } from './commands/status';

/** Entry point of the `perseus` command. Each sub-command lives in `./commands/<name>.ts`. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('perseus')
    .description('Perseus-TS: energy-optimal GPU clock planning for pipeline-parallel training')
    .version(PERSEUS_VERSION, '-V, --version', 'print the suite version')
    .showHelpAfterError()
    // Options after a sub-command belong to it (`serve profiler --listen X` is the profiler's --listen).
    .enablePositionalOptions();
  registerDemoCommand(program);
  registerPlanCommand(program);
  await registerServeCommand(program);
  registerStatusCommand(program);
  await program.parseAsync(argv);
}

/** Runs {@link main} on this process's arguments; exit status 1 with the message on failure. */
export function runCli(): void {
  main(process.argv).catch((err: unknown) => {
    process.stderr.write(`perseus: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

if (require.main === module) runCli();
