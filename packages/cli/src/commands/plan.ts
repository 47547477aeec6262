import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  computeFrontier,
  lpLowerBound,
  parseProfileCsv,
  planTimeline,
  type Frontier,
  type LpSolver,
  type PlannerInput,
  type ScheduleKind,
} from '@perseus/planner';
import { frontierSvg, timelineSvg } from './plan-svg';

/** Options of `perseus plan` after parsing. */
export interface PlanCommandOptions {
  profile: string;
  stages?: number;
  microbatches: number;
  schedule: ScheduleKind;
  /** Model chunks per GPU (V) for `interleaved`; the profile then has stages × chunks rows. */
  chunks?: number;
  blockingPowerW: number;
  unitTimeS: number;
  out: string;
  format: 'perseus' | 'lowtime';
  lpBound: boolean;
}

/** What `perseus plan` produced (for tests and callers). */
export interface PlanCommandResult {
  frontier: Frontier;
  summary: string;
  lpBoundJ: number | null;
  files: string[];
}

function positiveNumber(name: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x <= 0)
      throw new Error(`--${name} must be a positive number, got '${v}'`);
    return x;
  };
}

function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1)
      throw new Error(`--${name} must be an integer ≥ 1, got '${v}'`);
    return x;
  };
}

/** A progress bar on stderr when it is a TTY (nothing otherwise). */
function progressBar(): ((done: number, total: number) => void) | undefined {
  const err = process.stderr;
  if (!err.isTTY) return undefined;
  let last = -1;
  return (done, total) => {
    const pct = Math.min(100, Math.floor((100 * done) / Math.max(1, total)));
    if (pct === last) return;
    last = pct;
    const width = 30;
    const fill = Math.round((pct / 100) * width);
    err.write(`\rplanning [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct}%`);
    if (pct === 100) err.write('\r\x1b[K');
  };
}

async function loadHighs(): Promise<LpSolver> {
  const highs = (await import('highs')).default;
  return highs();
}

const pyList = (stage: Array<{ kind: string; frequencyMhz: number }>): string =>
  `[${stage.map((i) => `('${i.kind}', ${i.frequencyMhz})`).join(', ')}]`;

/** Computes the frontier and writes every output file; returns the summary line. */
export async function runPlan(opts: PlanCommandOptions): Promise<PlanCommandResult> {
  const profile = parseProfileCsv(readFileSync(opts.profile, 'utf8'));
  const chunks = opts.schedule === 'interleaved' ? (opts.chunks ?? 2) : 1;
  if (opts.schedule === 'interleaved' && opts.format === 'lowtime')
    throw new Error('--format lowtime has no interleaved schedule; use --format perseus');
  const numStages = opts.stages ?? profile.stages.length / chunks;
  const input: PlannerInput = {
    profile,
    pipeline: {
      schedule: opts.schedule,
      numStages,
      numMicrobatches: opts.microbatches,
      ...(chunks > 1 ? { numChunks: chunks } : {}),
    },
    blockingPowerW: opts.blockingPowerW,
    unitTimeS: opts.unitTimeS,
  };
  const started = performance.now();
  const onProgress = progressBar();
  const frontier = computeFrontier(input, onProgress ? { onProgress } : {});
  const seconds = (performance.now() - started) / 1000;
  mkdirSync(opts.out, { recursive: true });
  const files: string[] = [];
  const write = (name: string, text: string): void => {
    writeFileSync(join(opts.out, name), text);
    files.push(name);
  };
  write(
    'frontier.csv',
    'index,time_s,energy_j,model_energy_j\n' +
      frontier.points
        .map((p) => `${p.index},${p.timeS},${p.energyJ},${p.modelEnergyJ}`)
        .join('\n') +
      '\n',
  );
  const jsonl: string[] = [];
  const lowtimeFiles: Array<[string, string]> = [];
  for (const p of frontier.points) {
    const plan = frontier.plan(p.index);
    jsonl.push(
      JSON.stringify({
        index: p.index,
        time_s: p.timeS,
        energy_j: p.energyJ,
        stages: plan.map((s) => s.instructions.map((i) => i.frequencyMhz)),
      }),
    );
    if (opts.format === 'lowtime') {
      // Zeus's pipeline frequency optimizer reads a Python list: per stage, (instruction, MHz) in
      // schedule order.
      const body = `[\n${plan.map((s) => `${pyList(s.instructions)},\n`).join('')}]\n`;
      const note = `# Perseus-TS frontier point ${p.index}: time ${p.timeS} s, energy ${p.energyJ} J (emulated on measured options)\n`;
      lowtimeFiles.push([`freqs_pipeline_${String(p.index).padStart(5, '0')}.py`, body + note]);
    }
  }
  write('plans.jsonl', jsonl.join('\n') + '\n');
  for (const [name, text] of lowtimeFiles) write(name, text);
  const intr = frontier.intrinsic();
  const title = `${opts.schedule} N=${numStages}${chunks > 1 ? ` V=${chunks}` : ''} M=${opts.microbatches}`;
  write('frontier.svg', frontierSvg(frontier, `Time–energy frontier, ${title}`));
  write(
    'timeline.svg',
    timelineSvg(
      planTimeline(input, intr.plan),
      `Intrinsic plan, ${title}: ${intr.point.timeS.toFixed(4)} s, ${intr.point.energyJ.toFixed(1)} J`,
    ),
  );
  let lpBoundJ: number | null = null;
  if (opts.lpBound) {
    try {
      // Hull vertices only: the same optimum as all options, an LP small enough for M=96.
      lpBoundJ = lpLowerBound(input, intr.point.timeS, await loadHighs(), { vertices: 'hull' });
    } catch (err) {
      process.stderr.write(
        `perseus plan: LP bound unavailable (${err instanceof Error ? err.message : String(err)})\n`,
      );
    }
  }
  const first = frontier.points[0]!;
  const saving = (1 - intr.point.energyJ / frontier.allMax.energyJ) * 100;
  const bound =
    lpBoundJ === null
      ? `relaxation bound ${frontier.lowerBoundJ(intr.point.timeS).toFixed(1)} J`
      : `LP bound ${lpBoundJ.toFixed(1)} J (plan within ${((intr.point.energyJ / lpBoundJ - 1) * 100).toFixed(2)}% of optimal)`;
  const summary =
    `${frontier.points.length} points, T ${first.timeS.toFixed(4)}–${frontier.minEnergyTimeS.toFixed(4)} s; ` +
    `intrinsic ${intr.point.timeS.toFixed(4)} s ${intr.point.energyJ.toFixed(1)} J, saving ${saving.toFixed(2)}% vs all-max ` +
    `(${frontier.allMax.timeS.toFixed(4)} s ${frontier.allMax.energyJ.toFixed(1)} J); ${bound}; ` +
    `T* ${frontier.minEnergyTimeS.toFixed(4)} s; ${seconds.toFixed(2)} s`;
  return { frontier, summary, lpBoundJ, files };
}

/** Registers `perseus plan`: profile CSV → frontier.csv, plans.jsonl, frontier.svg, timeline.svg. */
export function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description('offline: profile CSV -> time-energy frontier, plans and plots')
    .requiredOption(
      '--profile <csv>',
      'profile CSV (stage,instruction,frequency,time,energy; or rank-level)',
    )
    .option(
      '--stages <n>',
      'pipeline stages (default: as many as the profile has)',
      positiveInt('stages'),
    )
    .requiredOption('--microbatches <m>', 'microbatches per iteration', positiveInt('microbatches'))
    .option('--schedule <kind>', 'pipeline schedule: 1f1b, gpipe or interleaved', '1f1b')
    .option(
      '--chunks <v>',
      'interleaved: model chunks per GPU (virtual stages = stages × chunks)',
      positiveInt('chunks'),
    )
    .option(
      '--blocking-power <watts>',
      'power drawn while blocked on a neighbour (W); A100 83.64, A40 70.38',
      positiveNumber('blocking-power'),
      83.64,
    )
    .option(
      '--unit-time <seconds>',
      'time unit τ: one frontier sample per τ of iteration time',
      positiveNumber('unit-time'),
      1e-3,
    )
    .requiredOption('--out <dir>', 'output directory')
    .option(
      '--format <format>',
      "also write plans for other tools: 'lowtime' (freqs_pipeline_%05d.py)",
      'perseus',
    )
    .option('--no-lp-bound', 'skip the LP lower bound (HiGHS) in the summary')
    .action(async (raw: Record<string, unknown>) => {
      const schedule = raw['schedule'];
      if (schedule !== '1f1b' && schedule !== 'gpipe' && schedule !== 'interleaved')
        throw new Error(`--schedule must be 1f1b, gpipe or interleaved, got '${String(schedule)}'`);
      const chunks = raw['chunks'] as number | undefined;
      if (chunks !== undefined && schedule !== 'interleaved')
        throw new Error('--chunks needs --schedule interleaved');
      const format = raw['format'];
      if (format !== 'perseus' && format !== 'lowtime')
        throw new Error(`--format must be perseus or lowtime, got '${String(format)}'`);
      const result = await runPlan({
        profile: raw['profile'] as string,
        stages: raw['stages'] as number | undefined,
        microbatches: raw['microbatches'] as number,
        schedule,
        ...(chunks !== undefined ? { chunks } : {}),
        blockingPowerW: raw['blockingPower'] as number,
        unitTimeS: raw['unitTime'] as number,
        out: raw['out'] as string,
        format,
        lpBound: raw['lpBound'] as boolean,
      });
      process.stdout.write(`perseus plan: ${result.summary}\n`);
    });
}
