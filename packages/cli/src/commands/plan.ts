import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import type { Highs } from 'highs';
import {
  computeFrontier,
  highsMilpSolver,
  lpLowerBoundWithProgress,
  parseProfileCsv,
  plansJsonlLines,
  withPolishedPlan,
  type ExactDeadlineResult,
  type Frontier,
  type IntrinsicSample,
  type PlannerInput,
  type PolishedPlan,
  type ScheduleKind,
} from '@perseus/planner';
import { KNOWN_BLOCKING_POWER_W, WorkerFrontierPlanner } from '@perseus/optimizer';
import { releaseFreedMemory } from '@perseus/service-kit';
import { planFrontierSvg, planTimelineSvg } from './plan-charts';

/** Options of `perseus plan` after parsing. */
export interface PlanCommandOptions {
  profile: string;
  stages?: number;
  microbatches: number;
  schedule: ScheduleKind;
  /** Model chunks per GPU (V) for `interleaved`; the profile then has stages × chunks rows. */
  chunks?: number;
  /** Watts; undefined = the profile's GPU's known blocking power (from its file name). */
  blockingPowerW?: number | undefined;
  unitTimeS: number;
  out: string;
  format: 'perseus' | 'lowtime';
  /** Cross-check the sweep's LP bound with HiGHS's LP solve (slow on large pipelines). */
  lpBound: boolean;
  /**
   * Wall-clock cap (s) of the exact polish of the intrinsic plan (warm-started from the
   * frontier's plan; it stops earlier on its own node limits, with the same plan on any machine);
   * 0 or absent: none.
   */
  exactBudgetS?: number;
  /** Write into a folder that already holds plan files (removing the old ones first). */
  force?: boolean;
  /** plans.jsonl with every point's whole plan instead of changes from the previous point. */
  fullPlans?: boolean;
  /** Step messages (default: lines on stderr). */
  onStep?: (message: string) => void;
}

/** What `perseus plan` produced (for tests and callers). */
export interface PlanCommandResult {
  frontier: Frontier;
  summary: string;
  lpBoundJ: number | null;
  /** The intrinsic plan after the exact polish, with its certified gap (null without a budget). */
  exact: ExactDeadlineResult | null;
  files: string[];
  /** Blocking power planned with, W, and where it came from. */
  blockingPowerW: number;
  blockingPowerSource: string;
}

/** The A100's blocking power, used when neither --blocking-power nor the profile names a GPU. */
export const DEFAULT_BLOCKING_POWER_W = 83.64;

/**
 * The GPU a profile file names, Zeus/Perseus style `<model>+<gpu>_<dtype>.csv` (the artifact's
 * `gpt3-175b+a40_bf16.csv`), with its known blocking power; undefined when the name says none.
 */
export function profileGpu(
  profilePath: string,
): { gpu: string; blockingPowerW: number } | undefined {
  const name = basename(profilePath).replace(/\.csv$/i, '');
  const plus = name.lastIndexOf('+');
  if (plus < 0) return undefined;
  const gpuPart = name.slice(plus + 1).replace(/_(bf16|fp16|fp32|tf32|fp8)$/i, '');
  const known = KNOWN_BLOCKING_POWER_W.find(([re]) => re.test(gpuPart));
  if (known === undefined) return undefined;
  return { gpu: gpuPart.replace(/_/g, ' ').toUpperCase(), blockingPowerW: known[1] };
}

/** Files `perseus plan` writes (and so, in a folder, marks another run's output). */
const PLAN_FILE = /^(frontier\.(csv|svg)|timeline\.svg|plans\.jsonl|freqs_pipeline_\d+\.py)$/;

/**
 * Refuses a folder holding another run's plan files unless `force`; with `force`, removes them so
 * stale `freqs_pipeline_*` files of a longer frontier never mix with the new ones.
 */
function prepareOutDir(out: string, force: boolean): void {
  if (!existsSync(out)) {
    mkdirSync(out, { recursive: true });
    return;
  }
  const old = readdirSync(out).filter((f) => PLAN_FILE.test(f));
  if (old.length === 0) return;
  if (!force)
    throw new Error(
      `${out} already holds plan files of another run (${old.slice(0, 3).join(', ')}${old.length > 3 ? `, … ${old.length} in all` : ''}); choose another --out or pass --force to replace them`,
    );
  for (const f of old) rmSync(join(out, f));
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

function nonNegativeNumber(name: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0)
      throw new Error(`--${name} must be a non-negative number, got '${v}'`);
    return x;
  };
}

async function loadHighs(): Promise<Highs> {
  const highs = (await import('highs')).default;
  return highs();
}

/**
 * One plan in the layout lowtime's Perseus driver writes (`freqs_pipeline_%05d.py`): a Python list
 * holding, per stage, the list of SM clocks (MHz, integers) in the stage's schedule order, then
 * `# Iteration` comment lines. lowtime numbers from the slowest plan (00000) to the fastest, so
 * `iteration` counts from the slow end of the frontier. The cost lines carry this planner's
 * discrete energies (J per iteration of one pipeline), not lowtime's fitted-model costs.
 */
export function lowtimePlanFile(
  plan: Array<{ instructions: Array<{ frequencyMhz: number }> }>,
  iteration: number,
  energyJ: number,
  previousEnergyJ: number,
): string {
  const stages = plan.map(
    (s) => `[${s.instructions.map((i) => String(i.frequencyMhz)).join(', ')}],\n`,
  );
  const tag = `# Iteration ${iteration}: `;
  return (
    `[\n${stages.join('')}]\n` +
    `${tag}cost change ${previousEnergyJ - energyJ} \n` +
    `${tag}total cost ${energyJ} \n` +
    `${tag}refined cost ${energyJ} \n`
  );
}

const stepLogger =
  (opts: PlanCommandOptions): ((m: string) => void) =>
  (m) =>
    opts.onStep ? opts.onStep(m) : process.stderr.write(`perseus plan: ${m}\n`);

/** Computes the frontier and writes every output file; returns the summary line. */
export async function runPlan(opts: PlanCommandOptions): Promise<PlanCommandResult> {
  const step = stepLogger(opts);
  const chunks = opts.schedule === 'interleaved' ? (opts.chunks ?? 2) : 1;
  if (opts.schedule === 'interleaved' && opts.format === 'lowtime')
    throw new Error('--format lowtime has no interleaved schedule; use --format perseus');
  prepareOutDir(opts.out, opts.force === true);
  step(`reading profile ${opts.profile}`);
  const profile = parseProfileCsv(readFileSync(opts.profile, 'utf8'));
  const numStages = opts.stages ?? profile.stages.length / chunks;
  const gpu = profileGpu(opts.profile);
  let blockingPowerW: number;
  let blockingPowerSource: string;
  if (opts.blockingPowerW !== undefined) {
    blockingPowerW = opts.blockingPowerW;
    blockingPowerSource = '--blocking-power';
  } else if (gpu !== undefined) {
    blockingPowerW = gpu.blockingPowerW;
    blockingPowerSource = `${gpu.gpu}, named by the profile`;
  } else {
    blockingPowerW = DEFAULT_BLOCKING_POWER_W;
    blockingPowerSource = 'default (A100); the profile names no known GPU';
  }
  step(`blocking power ${blockingPowerW} W (${blockingPowerSource})`);
  const input: PlannerInput = {
    profile,
    pipeline: {
      schedule: opts.schedule,
      numStages,
      numMicrobatches: opts.microbatches,
      ...(chunks > 1 ? { numChunks: chunks } : {}),
    },
    blockingPowerW,
    unitTimeS: opts.unitTimeS,
  };
  step(
    `computing the frontier (${opts.schedule}, ${numStages} stages, ${opts.microbatches} microbatches)`,
  );
  const started = performance.now();
  const onProgress = progressBar();
  const budgetS = opts.exactBudgetS ?? 0;
  // The exact polish of the intrinsic plan runs in a worker thread (HiGHS with it), started on
  // the plan sampled at the all-max time — the first samples of pass 2 — so it overlaps the rest
  // of the frontier instead of adding its budget after it.
  const polisher = budgetS > 0 ? new WorkerFrontierPlanner(0) : null;
  let polishing: Promise<PolishedPlan> | null = null;
  let lastReportS = 0;
  const onIntrinsic = (sample: IntrinsicSample): void => {
    if (polisher === null) return;
    step(
      `exact polish of the intrinsic plan (HiGHS, at most ${budgetS} s) started in a worker thread, alongside the rest of the frontier`,
    );
    const pct = (j: number): string => ((1 - j / sample.allMax.energyJ) * 100).toFixed(2);
    polishing = polisher.polish(
      {
        input,
        deadlineS: sample.allMax.timeS,
        plan: sample.plan,
        lpBoundJ: sample.lowerBoundJ,
        allMaxJ: sample.allMax.energyJ,
        budgetS,
      },
      (elapsedS, energyJ) => {
        if (elapsedS - lastReportS < 2) return;
        lastReportS = elapsedS;
        step(`exact polish ${elapsedS.toFixed(0)}/${budgetS} s: plan saves ${pct(energyJ)}%`);
      },
    );
    // Settled below; until then a failure must not surface as an unhandled rejection.
    polishing.catch(() => undefined);
  };
  let frontier: Frontier;
  let exact: ExactDeadlineResult | null = null;
  let seconds: number;
  try {
    frontier = computeFrontier(input, { ...(onProgress ? { onProgress } : {}), onIntrinsic });
    seconds = (performance.now() - started) / 1000;
    if (polisher !== null) {
      try {
        // The planner worker does not hold the process open (a server's idle worker must not):
        // a ref'd timer does while the polish may still be running, or the command would exit
        // here with status 0 and no files.
        const alive = setInterval(() => undefined, 60_000);
        const polished = await (
          polishing ?? Promise.reject(new Error('the frontier sampled no plan at the all-max time'))
        ).finally(() => clearInterval(alive));
        // The worker's heap and HiGHS's WASM memory go before the frontier is copied to merge.
        await polisher.close();
        // The ended thread's C-heap arena stays resident (~50 MB after HiGHS) unless handed back.
        releaseFreedMemory();
        exact = withPolishedPlan(frontier, input, polished);
        frontier = exact.frontier;
        step(
          `exact polish done in ${exact.polish.seconds.toFixed(1)} s: plan saves ${exact.savingPct.toFixed(2)}%, no plan saves more than ${((1 - exact.boundJ / frontier.allMax.energyJ) * 100).toFixed(2)}%`,
        );
      } catch (err) {
        process.stderr.write(
          `perseus plan: exact polish unavailable (${err instanceof Error ? err.message : String(err)})\n`,
        );
      }
    }
  } finally {
    await polisher?.close();
  }
  const files: string[] = [];
  const write = (name: string, text: string): void => {
    writeFileSync(join(opts.out, name), text);
    files.push(name);
  };
  step(`writing ${frontier.points.length} plans to ${opts.out}`);
  write(
    'frontier.csv',
    'index,time_s,energy_j,model_energy_j\n' +
      frontier.points
        .map((p) => `${p.index},${p.timeS},${p.energyJ},${p.modelEnergyJ}`)
        .join('\n') +
      '\n',
  );
  // plans.jsonl line by line: the full form of a large frontier is hundreds of MB of text.
  const plansFd = openSync(join(opts.out, 'plans.jsonl'), 'w');
  for (const line of plansJsonlLines(frontier, opts.fullPlans === true ? 'full' : 'delta'))
    writeSync(plansFd, line + '\n');
  closeSync(plansFd);
  files.push('plans.jsonl');
  const n = frontier.points.length;
  for (const p of opts.format === 'lowtime' ? frontier.points : []) {
    const iteration = n - 1 - p.index;
    const slower = frontier.points[p.index + 1];
    write(
      `freqs_pipeline_${String(iteration).padStart(5, '0')}.py`,
      lowtimePlanFile(frontier.plan(p.index), iteration, p.energyJ, slower?.energyJ ?? p.energyJ),
    );
  }
  const intr = frontier.intrinsic();
  const context = {
    profile: basename(opts.profile),
    gpu: gpu?.gpu ?? 'GPU not named by the profile',
    schedule: `${opts.schedule.toUpperCase()}, ${numStages} stages${chunks > 1 ? ` × ${chunks} chunks` : ''}, ${opts.microbatches} microbatches, blocking ${blockingPowerW} W`,
    emulated: true,
  };
  step('rendering frontier.svg and timeline.svg');
  write('frontier.svg', await planFrontierSvg(frontier, context));
  write(
    'timeline.svg',
    await planTimelineSvg(input, intr.plan, intr.point, frontier.allMax.energyJ, context),
  );
  let lpBoundJ: number | null = null;
  if (opts.lpBound) {
    // The sweep already has this optimum (the relaxation at every time); HiGHS is a check.
    step('checking the LP lower bound with HiGHS (one LP solve)');
    try {
      const lpStarted = performance.now();
      let lastReportS = 0;
      // Hull vertices only (the same optimum as all options), passed as a model: no LP text to
      // parse, and the simplex reports its progress.
      lpBoundJ = lpLowerBoundWithProgress(
        input,
        intr.point.timeS,
        highsMilpSolver(await loadHighs()),
        (p) => {
          if (p.elapsedS - lastReportS < 2) return;
          lastReportS = p.elapsedS;
          step(
            `HiGHS LP ${p.elapsedS.toFixed(0)} s: ${p.iterations} simplex iterations` +
              (Number.isFinite(p.energyJ) ? `, objective ${p.energyJ.toFixed(1)} J` : ''),
          );
        },
      );
      step(
        `HiGHS LP bound ${lpBoundJ.toFixed(1)} J in ${((performance.now() - lpStarted) / 1000).toFixed(1)} s`,
      );
    } catch (err) {
      process.stderr.write(
        `perseus plan: LP bound unavailable (${err instanceof Error ? err.message : String(err)})\n`,
      );
    }
  }
  const first = frontier.points[0]!;
  const saving = (1 - intr.point.energyJ / frontier.allMax.energyJ) * 100;
  // Certified gap: the plan's saving vs the best proven bound at the all-max time (the LP
  // relaxation from the sweep, or the MILP's dual bound where the polish proved a tighter one).
  const certJ = exact ? exact.boundJ : frontier.lowerBoundJ(intr.point.timeS);
  const gapPp = ((intr.point.energyJ - certJ) / frontier.allMax.energyJ) * 100;
  const bound =
    `${exact?.boundSource === 'milp' ? 'MILP dual bound' : 'LP bound'} ${certJ.toFixed(1)} J, ` +
    `certified gap ${gapPp.toFixed(3)} pp` +
    (exact
      ? ` (exact polish ${exact.polish.seconds.toFixed(1)} s: ${exact.polish.improved ? 'improved' : 'no better plan'}, ${exact.polish.status})`
      : '') +
    (lpBoundJ === null ? '' : `; HiGHS LP check ${lpBoundJ.toFixed(1)} J`);
  const summary =
    `${frontier.points.length} points, T ${first.timeS.toFixed(4)}–${frontier.minEnergyTimeS.toFixed(4)} s; ` +
    `intrinsic ${intr.point.timeS.toFixed(4)} s ${intr.point.energyJ.toFixed(1)} J, saving ${saving.toFixed(2)}% vs all-max ` +
    `(${frontier.allMax.timeS.toFixed(4)} s ${frontier.allMax.energyJ.toFixed(1)} J); ${bound}; ` +
    `T* ${frontier.minEnergyTimeS.toFixed(4)} s; ${seconds.toFixed(2)} s`;
  return { frontier, summary, lpBoundJ, exact, files, blockingPowerW, blockingPowerSource };
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
      "power drawn while blocked on a neighbour (W); default: the profile's GPU (A100 83.64, A40 70.38, from a `<model>+<gpu>_<dtype>.csv` name), else 83.64",
      positiveNumber('blocking-power'),
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
      "also write plans for other tools: 'lowtime' (freqs_pipeline_%05d.py as lowtime's Perseus driver writes them: 00000 = slowest)",
      'perseus',
    )
    .option('--force', 'replace the plan files of another run in --out')
    .option(
      '--full-plans',
      "plans.jsonl with every point's whole plan ('stages') instead of changes from the previous point",
    )
    .option(
      '--exact-budget <seconds>',
      'time cap of the exact polish of the intrinsic plan (HiGHS MILP; it ends earlier on its own work limits, then with the same plan on any machine); 0: none',
      nonNegativeNumber('exact-budget'),
      10,
    )
    .option(
      '--lp-check',
      "also solve the LP bound with HiGHS: an independent check of the sweep's (slow for large M)",
    )
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
        blockingPowerW: raw['blockingPower'] as number | undefined,
        unitTimeS: raw['unitTime'] as number,
        out: raw['out'] as string,
        format,
        lpBound: raw['lpCheck'] === true,
        exactBudgetS: raw['exactBudget'] as number,
        force: raw['force'] === true,
        fullPlans: raw['fullPlans'] === true,
      });
      process.stdout.write(`perseus plan: ${result.summary}\n`);
    });
}
