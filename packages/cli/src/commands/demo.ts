import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { writeDemoCharts } from './demo-charts';
import { startServe } from './serve';

/** Options of `perseus demo` (commander camelCases the flags). */
export interface DemoFlags {
  out: string;
  profile?: string;
  python?: string;
  microbatches: string;
  /** `1f1b` or `interleaved` (Megatron-LM's interleaved 1F1B). */
  schedule: string;
  /** Model chunks per GPU under `interleaved`. */
  chunks?: string;
  dp: string;
  window: string;
  iterationsPerFrequency: string;
  timeScale: string;
  straggler: string;
  timeoutS: string;
  keepState?: boolean;
  /** Never call ReportStraggler: the optimizer must detect the straggler and its recovery. */
  detect?: boolean;
}

/** Repository root (this file is packages/cli/src/commands/demo.ts). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');

/** The GPT-3 175B A100 SXM stage profile of the paper's artifact (the repository's data/, copied from the artifact). */
export function defaultDemoProfile(root = REPO_ROOT): string {
  return (
    process.env['PERSEUS_DEMO_PROFILE'] ??
    path.resolve(root, 'data', 'sosp24', 'stage_profile', 'gpt3-175b+a100_sxm_bf16.csv')
  );
}

/** The Python that runs the emulated trainer: --python, PERSEUS_PYTHON, else the repo's .venv. */
export function demoPython(flag: string | undefined, root = REPO_ROOT): string {
  return flag ?? process.env['PERSEUS_PYTHON'] ?? path.join(root, '.venv', 'bin', 'python');
}

/** The argv of the Python demo driver (`python -m perseus.emulate.demo`). */
export function demoPythonArgs(address: string, flags: DemoFlags, profile: string): string[] {
  return [
    '-m',
    'perseus.emulate.demo',
    '--server',
    address,
    '--profile',
    profile,
    '--out',
    path.resolve(flags.out),
    '--microbatches',
    flags.microbatches,
    '--schedule',
    flags.schedule,
    ...(flags.schedule === 'interleaved' ? ['--chunks', flags.chunks ?? '2'] : []),
    '--dp',
    flags.dp,
    '--window',
    flags.window,
    '--iterations-per-frequency',
    flags.iterationsPerFrequency,
    '--time-scale',
    flags.timeScale,
    '--straggler',
    flags.straggler,
    '--timeout',
    String(Math.max(10, Number(flags.timeoutS) - 15)),
    ...(flags.detect === true ? ['--detect'] : []),
  ];
}

/**
 * Runs the demo: hosts agent (simulated A100 SXM GPUs), profiler and optimizer in this process with
 * their state in a temp dir, then runs the emulated trainer (Python, one process per emulated GPU)
 * through baseline → profiling → planning → intrinsic → straggler → extrinsic → cleared. The
 * Python driver prints the per-phase table and writes summary.json; this process then draws
 * frontier.svg and timeline.svg from it (the charts `perseus plan` and the dashboard use).
 * Resolves to the driver's exit code.
 */
export async function runDemo(flags: DemoFlags): Promise<number> {
  if (flags.schedule !== '1f1b' && flags.schedule !== 'interleaved')
    throw new Error(`--schedule must be 1f1b or interleaved, got '${flags.schedule}'`);
  if (flags.chunks !== undefined && flags.schedule !== 'interleaved')
    throw new Error('--chunks needs --schedule interleaved');
  const profile = flags.profile ?? defaultDemoProfile();
  if (!fs.existsSync(profile))
    throw new Error(`demo profile not found: ${profile} (set --profile or PERSEUS_DEMO_PROFILE)`);
  const python = demoPython(flags.python);
  if (!fs.existsSync(python))
    throw new Error(`python not found: ${python} (run: bash tools/bootstrap-python.sh)`);
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-demo-'));
  // The demo configures the services through their flags (never by writing process.env): its
  // defaults apply where the user's PERSEUS_* environment says nothing, and the state always lives
  // in stateDir. The simulated agent reads gpt3-175b+<model>_bf16.csv from the profile's
  // directory (the table the emulated trainer sleeps by), so time and energy come from one source.
  const unlessEnv = (name: string, key: string, value: string): Record<string, string> =>
    process.env[name] === undefined ? { [key]: value } : {};
  const running = await startServe(['agent', 'profiler', 'optimizer'], {
    listen: '127.0.0.1:0',
    logLevel: process.env['PERSEUS_LOG_LEVEL'] ?? 'error',
    ...unlessEnv('PERSEUS_AGENT_BACKEND', 'agentBackend', 'simulated'),
    ...unlessEnv('PERSEUS_AGENT_SIM_MODEL', 'agentSimModel', 'a100-sxm'),
    ...unlessEnv('PERSEUS_AGENT_SIM_DEVICES', 'agentSimDevices', String(Number(flags.dp) * 8)),
    // The simulated GPUs run on the emulated trainer's clock (CLOCK_MONOTONIC / time scale).
    agentSimTimeScale: flags.timeScale,
    agentProfileDir: path.dirname(profile),
    agentStateFile: path.join(stateDir, 'agent-state.json'),
    profilerDataDir: path.join(stateDir, 'profiler'),
    optimizerDataDir: path.join(stateDir, 'optimizer'),
  });
  let code = 1;
  try {
    code = await new Promise<number>((resolve, reject) => {
      const child = spawn(python, demoPythonArgs(running.address, flags, profile), {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, PYTHONUNBUFFERED: '1' },
      });
      const timer = setTimeout(() => child.kill('SIGTERM'), Number(flags.timeoutS) * 1000);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('exit', (c, signal) => {
        clearTimeout(timer);
        resolve(c ?? (signal ? 128 : 1));
      });
    });
  } finally {
    await running.server.shutdown(2000);
    if (!flags.keepState) fs.rmSync(stateDir, { recursive: true, force: true });
  }
  if (fs.existsSync(path.join(flags.out, 'summary.json'))) {
    const written = await writeDemoCharts(flags.out);
    process.stdout.write(`wrote ${written.map((f) => path.join(flags.out, f)).join(', ')}\n`);
  }
  return code;
}

/** Registers `perseus demo`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'end-to-end demo on an emulated GPT-3 175B pipeline (simulated GPUs): baseline, profiling, planning, intrinsic, straggler, extrinsic',
    )
    .option('--out <dir>', 'where frontier.svg, timeline.svg and summary.json go', 'demo-out')
    .option(
      '--profile <csv>',
      'stage profile of the simulated GPUs; the agent reads gpt3-175b+a100_sxm_bf16.csv from its directory (default: data/sosp24/stage_profile; env PERSEUS_DEMO_PROFILE)',
    )
    .option(
      '--python <path>',
      'Python with the perseus client installed (env PERSEUS_PYTHON; default .venv/bin/python)',
    )
    .option('--microbatches <n>', 'microbatches per iteration', '4')
    .option(
      '--schedule <kind>',
      "pipeline schedule: 1f1b, or interleaved (Megatron-LM's interleaved 1F1B; microbatches a multiple of the GPUs per pipeline)",
      '1f1b',
    )
    .option(
      '--chunks <v>',
      "interleaved: model chunks per GPU; the profile's 8 stages become 8/v GPUs × v chunks (default 2)",
    )
    .option('--dp <n>', 'data-parallel pipelines', '2')
    .option('--window <n>', 'clean iterations measured per phase', '3')
    .option(
      '--iterations-per-frequency <n>',
      'profiling iterations at each swept clock (the first of each is warm-up)',
      '3',
    )
    .option(
      '--time-scale <x>',
      'wall seconds per simulated second (1 = real time; the simulated agent runs on the same scale)',
      '1',
    )
    .option('--straggler <x>', 'slowdown of the straggling pipeline', '1.2')
    .option('--timeout-s <s>', 'give up after this many seconds', '240')
    .option('--keep-state', "keep the services' temp state dir")
    .option(
      '--detect',
      'no explicit straggler report: the optimizer detects the straggler from per-pipeline compute times',
    )
    .action(async (flags: DemoFlags) => {
      process.exitCode = await runDemo(flags);
    });
}
