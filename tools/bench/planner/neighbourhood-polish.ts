/**
 * The exact polish's neighbourhood search (issue 18) on a large pipeline: this tree's search
 * (window-sized sub-problems, packages/planner/src/window-milp.ts) against a baseline git ref's
 * (default a7b3763~1, the last commit whose sub-problems were the whole deadline MILP), from the
 * same intrinsic plan, each in its own process so peak RSS is its own. Prints per run the
 * search's seconds (wall and CPU), sub-problems, whether it converged, the saving, and the means.
 *
 *   node --import tsx tools/bench/planner/neighbourhood-polish.ts --profile <csv> --stages 8
 *     --microbatches 96 [--unit-time 0.0001] [--blocking-power 70.38] [--budget 10] [--runs 2]
 *     [--baseline <git ref>] [--cache /tmp/perseus-bench-polish]
 *
 * The frontier (for the intrinsic plan and the LP bound) is computed once and cached under
 * --cache, keyed by the arguments. The box's load average is printed with each run: timings on a
 * shared machine vary with it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  computeFrontier,
  highsMilpSolver,
  parseProfileCsv,
  validatePlannerInput,
  type HighsRuntimeLike,
  type MilpSolver,
  type NeighbourhoodOptions,
  type NeighbourhoodResult,
  type PlannerInput,
  type ValidInput,
} from '@perseus/planner';

const root = resolve(__dirname, '../../..');
const args = process.argv.slice(2);
const opt = (name: string, d: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : d;
};
const profile = opt('--profile', 'data/sosp24/stage_profile/gpt3-175b+a40_bf16.csv');
const numStages = Number(opt('--stages', '8'));
const numMicrobatches = Number(opt('--microbatches', '96'));
const unitTimeS = Number(opt('--unit-time', '0.0001'));
const blockingPowerW = Number(opt('--blocking-power', '70.38'));
const budgetS = Number(opt('--budget', '10'));
const runs = Number(opt('--runs', '2'));
const baseline = opt('--baseline', 'a7b3763~1');
const cacheDir = opt('--cache', '/tmp/perseus-bench-polish');
const variant = opt('--variant', '');

type Polish = (
  v: ValidInput,
  deadlineS: number,
  start: Uint16Array,
  solver: MilpSolver,
  options: NeighbourhoodOptions,
) => NeighbourhoodResult;

interface Cached {
  deadlineS: number;
  allMaxJ: number;
  choice: number[];
}

function input(): PlannerInput {
  return {
    profile: parseProfileCsv(readFileSync(resolve(root, profile), 'utf8')),
    pipeline: { schedule: '1f1b', numStages, numMicrobatches },
    blockingPowerW,
    unitTimeS,
  };
}

/** The intrinsic plan as option indices, from the frontier (cached). */
function intrinsic(v: ValidInput): Cached {
  const key = [profile, numStages, numMicrobatches, unitTimeS, blockingPowerW]
    .join('_')
    .replace(/[^A-Za-z0-9.]+/g, '-');
  const file = join(cacheDir, `${key}.json`);
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Cached;
  const frontier = computeFrontier(v.input);
  const { plan, point } = frontier.intrinsic();
  const choice = new Array<number>(v.dag.numNodes).fill(0);
  plan.forEach((sp, s) =>
    sp.instructions.forEach((ins, j) => {
      const node = v.dag.stageNodes[s]![j]!;
      choice[node] = v.tables[v.dag.table[node]!]!.frequencyMhz.indexOf(ins.frequencyMhz);
    }),
  );
  const cached: Cached = { deadlineS: point.timeS, allMaxJ: frontier.allMax.energyJ, choice };
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(file, JSON.stringify(cached));
  return cached;
}

/** The search of this tree, or of the baseline ref (its source next to this tree's modules). */
async function loadPolish(which: string): Promise<Polish> {
  if (which === 'this') {
    const m = (await import('../../../packages/planner/src/neighbourhood-search')) as {
      neighbourhoodPolish: Polish;
    };
    return m.neighbourhoodPolish;
  }
  const src = execFileSync(
    'git',
    ['show', `${which}:packages/planner/src/neighbourhood-search.ts`],
    { cwd: root, encoding: 'utf8' },
  ).replace(/from '\.\/([a-z-]+)'/g, (_m, f: string) => {
    const p = join(root, 'packages/planner/src', `${f}.ts`);
    return `from '${pathToFileURL(p).href}'`;
  });
  const file = join(cacheDir, `baseline-neighbourhood-search.ts`);
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(file, src);
  const m = (await import(pathToFileURL(file).href)) as { neighbourhoodPolish: Polish };
  return m.neighbourhoodPolish;
}

async function child(which: string): Promise<void> {
  const v = validatePlannerInput(input());
  const c = intrinsic(v);
  const polish = await loadPolish(which);
  const highs = (await import('highs')).default;
  const solver = highsMilpSolver((await highs()) as HighsRuntimeLike);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = polish(v, c.deadlineS, Uint16Array.from(c.choice), solver, {
    timeLimitS: budgetS,
    stepLimitS: Math.min(5, Math.max(0.5, budgetS / 10)),
  });
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const startJ = polishStartJ(v, c);
  process.stdout.write(
    JSON.stringify({
      wallS,
      cpuS: (cpu.user + cpu.system) / 1e6,
      subproblems: r.subproblems,
      converged: r.converged,
      savingBeforePct: (1 - startJ / c.allMaxJ) * 100,
      savingAfterPct: (1 - r.energyJ / c.allMaxJ) * 100,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    }) + '\n',
  );
}

function polishStartJ(v: ValidInput, c: Cached): number {
  const { dag, tables } = v;
  const finish = new Float64Array(dag.numNodes);
  let t = 0;
  let sumE = 0;
  let sumT = 0;
  for (let i = 0; i < dag.numNodes; i++) {
    const tb = tables[dag.table[i]!]!;
    const d = tb.timeS[c.choice[i]!]!;
    let s = 0;
    for (let p = dag.predStart[i]!; p < dag.predStart[i + 1]!; p++)
      s = Math.max(s, finish[dag.pred[p]!]!);
    finish[i] = s + d;
    t = Math.max(t, finish[i]!);
    sumE += tb.energyJ[c.choice[i]!]!;
    sumT += d;
  }
  return sumE + v.blockingPowerW * (dag.numStages * t - sumT);
}

interface Row {
  wallS: number;
  cpuS: number;
  subproblems: number;
  converged: boolean;
  savingBeforePct: number;
  savingAfterPct: number;
  maxRssMiB: number;
}

function parent(): void {
  // Warm the cache once (the frontier is the expensive part; it is not what is measured).
  intrinsic(validatePlannerInput(input()));
  const rows: Record<string, Row[]> = { this: [], [baseline]: [] };
  for (let k = 0; k < runs; k++) {
    for (const which of [baseline, 'this']) {
      const load = loadavg()[0]!.toFixed(2);
      const out = spawnSync(
        process.execPath,
        ['--import', 'tsx', __filename, ...args, '--variant', which],
        { cwd: root, encoding: 'utf8', maxBuffer: 1 << 24 },
      );
      if (out.status !== 0) throw new Error(`${which}: ${out.stderr}`);
      const row = JSON.parse(out.stdout.trim().split('\n').pop()!) as Row;
      rows[which]!.push(row);
      console.log(`RUN ${which} load=${load} ${JSON.stringify(row)}`);
    }
  }
  const mean = (xs: Row[], f: (r: Row) => number): number =>
    xs.reduce((s, r) => s + f(r), 0) / xs.length;
  const b = rows[baseline]!;
  const t = rows.this!;
  console.log(
    `RESULT ${numStages}x${numMicrobatches} budget=${budgetS}s runs=${runs}: ` +
      `wall ${mean(b, (r) => r.wallS).toFixed(2)} → ${mean(t, (r) => r.wallS).toFixed(2)} s, ` +
      `cpu ${mean(b, (r) => r.cpuS).toFixed(2)} → ${mean(t, (r) => r.cpuS).toFixed(2)} s, ` +
      `sub-problems ${mean(b, (r) => r.subproblems).toFixed(0)} → ${mean(t, (r) => r.subproblems).toFixed(0)}, ` +
      `converged ${b.filter((r) => r.converged).length}/${runs} → ${t.filter((r) => r.converged).length}/${runs}, ` +
      `saving ${mean(b, (r) => r.savingAfterPct).toFixed(3)} → ${mean(t, (r) => r.savingAfterPct).toFixed(3)} % ` +
      `(start ${t[0]!.savingBeforePct.toFixed(3)} %), ` +
      `peak RSS ${mean(b, (r) => r.maxRssMiB).toFixed(0)} → ${mean(t, (r) => r.maxRssMiB).toFixed(0)} MiB, ` +
      `cpu ratio ${(mean(b, (r) => r.cpuS) / mean(t, (r) => r.cpuS)).toFixed(2)}×`,
  );
}

if (variant === '') parent();
else void child(variant);
