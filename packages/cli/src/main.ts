import { Command } from 'commander';
import { PERSEUS_VERSION } from '@perseus/service-kit';
import { registerAgentCommand } from './commands/agent';
import { registerJobsCommand } from './commands/jobs';
import { registerPolicyCommand } from './commands/policy';
import { isMissingRolePackage, registerServeCommand } from './commands/serve';
import { registerStatusCommand } from './commands/status';
import { registerStragglerCommand } from './commands/straggler';

/** Entry point of the `perseus` command. Each sub-command lives in `./commands/<name>.ts`. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('perseus')
    .description('Perseus-TS: energy-optimal GPU clock planning for pipeline-parallel training')
    .version(PERSEUS_VERSION, '-V, --version', 'print the suite version')
    .showHelpAfterError()
    // Options after a sub-command belong to it (`serve profiler --listen X` is the profiler's --listen).
    .enablePositionalOptions();
  // demo and plan use the optimizer's chart and power tables: on an agent-only install they are
  // listed as not installed instead of failing the whole command at load time.
  await registerIfInstalled(
    program,
    'demo',
    async () => (await import('./commands/demo')).registerDemoCommand,
  );
  await registerIfInstalled(
    program,
    'plan',
    async () => (await import('./commands/plan')).registerPlanCommand,
  );
  await registerServeCommand(program);
  registerStatusCommand(program);
  registerJobsCommand(program);
  registerPolicyCommand(program);
  registerStragglerCommand(program);
  registerAgentCommand(program);
  // frontier export draws with the optimizer's charts (and Vega): like demo and plan above.
  await registerIfInstalled(
    program,
    'frontier',
    async () => (await import('./commands/frontier')).registerFrontierCommand,
  );
  await program.parseAsync(argv);
}

/** Registers the command `load` gives, or a stub naming the missing package when it is not installed. */
async function registerIfInstalled(
  program: Command,
  name: string,
  load: () => Promise<(program: Command) => void>,
): Promise<void> {
  try {
    (await load())(program);
  } catch (err) {
    const missing = isMissingRolePackage(err);
    if (missing === undefined) throw err;
    program.addCommand(
      new Command(name)
        .description(`not installed (needs ${missing})`)
        .allowUnknownOption()
        .action(() => {
          throw new Error(`${name} needs the ${missing} package installed`);
        }),
    );
  }
}

/** Runs {@link main} on this process's arguments; exit status 1 with the message on failure. */
export function runCli(): void {
  main(process.argv).catch((err: unknown) => {
    process.stderr.write(`perseus: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

if (require.main === module) runCli();
