/**
 * Exactness benchmark at the deadline (issue 16): per case, the frontier's intrinsic plan (the
 * planner without the polish) and the same plan after the exact polish (neighbourhood search over
 * exact HiGHS sub-MILPs, then the whole MILP; every solve node-limited, so the plan is the same on
 * any machine when the polish ends on its own), each with its saving at exactly the all-max time,
 * the certified gap (saving of the best proven bound — the LP relaxation, or the MILP's dual bound
 * where tighter — minus the plan's), the MILP reference figure of the issue where there is one,
 * and the times. Interleaved 1F1B cases run the 8-stage GPT-3 profiles as 4 GPUs × 2 chunks and
 * 2 GPUs × 4 chunks, next to 1F1B on 8 GPUs. Every energy is emulated on the artifact's measured
 * options (no GPU); times are measured on this machine.
 *
 *   node --import tsx tools/bench/planner/exact-gap.ts [--budget 30] [--runs 1] [--lp-check] [case ...]
 *
 * --budget caps each polish (s); --runs repeats each polish (the saving must not change; the
 * times give a range); --lp-check also times the HiGHS LP solve of the bound as LP text (before)
 * and as a CSR model (`perseus plan --lp-check` now) and prints the larger difference to the
 * sweep's bound.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  computeFrontier,
  exactAtDeadline,
  highsMilpSolver,
  lpLowerBound,
  lpLowerBoundWithProgress,
  parseProfileCsv,
  type ExactDeadlineResult,
  type PipelineSpec,
  type PlannerInput,
  type Profile,
} from '../../../packages/planner/src';
import { coarseSynthetic, syntheticCsv } from './synthetic-profile';
import { REFERENCE_PROFILE_DIR as DATA } from '@perseus/service-kit';

interface ExactCase {
  name: string;
  profile: Profile;
  pipeline: PipelineSpec;
  blockingPowerW: number;
  unitTimeS: number;
  /** The exact-MILP saving at the all-max time (HiGHS, time-limited), %. */
  milpPct?: number;
}

const args = process.argv.slice(2);
const valueOf = (flag: string, fallback: number): number => {
  const at = args.indexOf(flag);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const budgetS = valueOf('--budget', 30);
const runs = valueOf('--runs', 1);
const lpCheck = args.includes('--lp-check');
const only = args.filter(
  (a, i) => !a.startsWith('--') && !['--budget', '--runs'].includes(args[i - 1] ?? ''),
);

function cases(): ExactCase[] {
  const gpus = [
    { gpu: 'a100_sxm', csv: 'gpt3-175b+a100_sxm_bf16.csv', pb: 83.64, tau: 1e-3, milpM12: 15.97 },
    { gpu: 'a40', csv: 'gpt3-175b+a40_bf16.csv', pb: 70.38, tau: 1e-4, milpM12: 12.45 },
  ];
  const out: ExactCase[] = [];
  for (const g of gpus) {
    const profile = parseProfileCsv(readFileSync(join(DATA, g.csv), 'utf8'));
    const base = { profile, blockingPowerW: g.pb, unitTimeS: g.tau };
    for (const m of [12, 24, 48, 96])
      out.push({
        name: `${g.gpu}-M${m}`,
        pipeline: { schedule: '1f1b', numStages: 8, numMicrobatches: m },
        ...base,
        ...(m === 12 ? { milpPct: g.milpM12 } : {}),
      });
    for (const [n, v] of [
      [4, 2],
      [2, 4],
    ] as const)
      out.push({
        name: `${g.gpu}-M12-interleaved-${n}x${v}`,
        pipeline: { schedule: 'interleaved', numStages: n, numMicrobatches: 12, numChunks: v },
        ...base,
      });
  }
  // bench.ts's imbalanced 4-stage pipeline (38 clocks), and a coarse-clock variant (6 clocks).
  out.push({
    name: 'synthetic-4stage-M16',
    profile: parseProfileCsv(syntheticCsv(4, [1.0, 0.6, 0.8, 1.4], 7)),
    pipeline: { schedule: '1f1b', numStages: 4, numMicrobatches: 16 },
    blockingPowerW: 80,
    unitTimeS: 1e-3,
  });
  out.push({
    name: 'synthetic-coarse-4stage-M16',
    profile: coarseSynthetic(),
    pipeline: { schedule: '1f1b', numStages: 4, numMicrobatches: 16 },
    blockingPowerW: 80,
    unitTimeS: 1e-3,
  });
  return out;
}

async function main(): Promise<void> {
  const highs = await (await import('highs')).default();
  const solver = highsMilpSolver(highs);
  const pct = (x: number): string => x.toFixed(3);
  const range = (xs: number[]): string =>
    Math.min(...xs) === Math.max(...xs)
      ? Math.min(...xs).toFixed(1)
      : `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
  process.stdout.write(
    `exact polish capped at ${budgetS} s per case, ${runs} run(s); savings vs all-max at the all-max time (emulated)\n` +
      '| case | frontier s | saving (frontier) | saving (polished) | MILP (issue) | polished − MILP | certified gap | bound | search s | polish s | sub-MILPs | ended | status |' +
      (lpCheck ? ' HiGHS LP text s | HiGHS LP model s | HiGHS LP − sweep (J) |' : '') +
      '\n|---|---|---|---|---|---|---|---|---|---|---|---|---|' +
      (lpCheck ? '---|---|---|' : '') +
      '\n',
  );
  for (const c of cases()) {
    if (only.length > 0 && !only.includes(c.name)) continue;
    const input: PlannerInput = {
      profile: c.profile,
      pipeline: c.pipeline,
      blockingPowerW: c.blockingPowerW,
      unitTimeS: c.unitTimeS,
    };
    const t0 = performance.now();
    const frontier = computeFrontier(input);
    const frontierS = (performance.now() - t0) / 1000;
    const allMaxJ = frontier.allMax.energyJ;
    const before = frontier.intrinsic().point;
    const polished: ExactDeadlineResult[] = [];
    for (let r = 0; r < runs; r++)
      polished.push(
        exactAtDeadline(frontier, input, frontier.allMax.timeS, solver, { timeLimitS: budgetS }),
      );
    const r = polished[0]!;
    // Node-limited, so every run that ended on its own finds the same plan.
    const savings = new Set(polished.map((p) => p.savingPct.toFixed(6)));
    const saving = savings.size === 1 ? `${pct(r.savingPct)} %` : `${[...savings].join(' / ')} %`;
    let lpCols = '';
    if (lpCheck) {
      const secondsOf = (f: () => number): [number, number] => {
        const l0 = performance.now();
        const j = f();
        return [(performance.now() - l0) / 1000, j];
      };
      const T = frontier.allMax.timeS;
      const [textS, textJ] = secondsOf(() => lpLowerBound(input, T, highs, { vertices: 'hull' }));
      const [modelS, modelJ] = secondsOf(() => lpLowerBoundWithProgress(input, T, solver));
      const lpJ = frontier.lowerBoundJ(T);
      const worst = Math.max(Math.abs(textJ - lpJ), Math.abs(modelJ - lpJ));
      lpCols = ` ${textS.toFixed(2)} | ${modelS.toFixed(2)} | ${worst.toExponential(2)} |`;
    }
    const milp = c.milpPct === undefined ? '–' : `${c.milpPct.toFixed(2)} %`;
    const delta = c.milpPct === undefined ? '–' : `${(r.savingPct - c.milpPct).toFixed(3)} pp`;
    const ended = polished.map((p) => (p.polish.converged ? 'own' : 'cap')).join('/');
    process.stdout.write(
      `| ${c.name} | ${frontierS.toFixed(2)} | ${pct((1 - before.energyJ / allMaxJ) * 100)} % | ` +
        `${saving} | ${milp} | ${delta} | ${pct(Math.max(...polished.map((p) => p.gapPp)))} pp | ` +
        `${r.boundSource} | ${range(polished.map((p) => p.polish.searchSeconds))} | ` +
        `${range(polished.map((p) => p.polish.seconds))} | ` +
        `${r.polish.subproblems} | ${ended} | ${r.polish.status} |${lpCols}\n`,
    );
  }
}

void main();
