import { Command } from 'commander';
import { registerDemoCommand } from './demo';

/**
 * Stand-alone entry of `perseus demo` for tools/demo.sh (`npm start`), so the demo runs the same
 * way whether or not the main `perseus` program has the command wired in.
 */
export async function demoMain(argv: string[]): Promise<void> {
  const program = new Command('perseus').showHelpAfterError();
  registerDemoCommand(program);
  await program.parseAsync(['node', 'perseus', 'demo', ...argv]);
}

if (require.main === module) {
  demoMain(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`perseus demo: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
