/**
 * Exactness benchmark at the deadline (issue 16): per case, the frontier's intrinsic plan (today's
 * planner) and the same plan after the exact polish (neighbourhood search over exact HiGHS
 * sub-MILPs, then the whole MILP), each with its saving at the all-max time and its certified gap
 * (saving of the best proven bound minus the plan's), and the times. Interleaved 1F1B cases run the
 * 8-stage GPT-3 profiles as 4 GPUs × 2 chunks and 2 GPUs × 4 chunks, next to 1F1B on 8 GPUs.
 * Every energy is emulated on the artifact's measured options (no GPU).
 *
 *   node --import tsx tools/bench/planner/exact-gap.ts [--budget 30] [--lp-check] [case-name ...]
 *
 * --lp-check also times the HiGHS LP solve that `perseus plan` ran before this change (the bound
 * now comes from the sweep at no cost) and checks that both agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  computeFrontier,
  exactAtDeadline,
  highsMilpSolver,
  lpLowerBound,
  parseProfileCsv,
  type PipelineSpec,
  type PlannerInput,
  type Profile,
} from '../../../packages/planner/src';
import { REFERENCE_PROFILE_DIR as DATA } from '@perseus/service-kit';

interface ExactCase {
  name: string;
  profile: Profile;
  pipeline: PipelineSpec;
  blockingPowerW: number;
  unitTimeS: number;
}

const args = process.argv.slice(2);
const budgetAt = args.indexOf('--budget');
const budgetS = budgetAt >= 0 ? Number(args[budgetAt + 1]) : 30;
const lpCheck = args.includes('--lp-check');
const only = args.filter((a, i) => !a.startsWith('--') && (budgetAt < 0 || i !== budgetAt + 1));

/**
 * A 4-stage imbalanced pipeline with coarse clocks (six, 255 MHz apart), where rounding the
 * relaxation loses the most; same shape of curves as bench.ts's synthetic cases.
 */
function coarseSynthetic(): Profile {
  const weights = [1.0, 0.6, 0.8, 1.4];
  const clocks = [1410, 1290, 1155, 1035, 915, 855];
  return {
    stages: weights.map((w, s) => {
      const mk = (base: number) =>
        clocks.map((f) => {
          const x = f / 1410;
          const timeS = base * w * (0.3 + 0.7 / x) * (1 + 0.002 * Math.sin(7 * s + f));
          return { frequencyMhz: f, timeS, energyJ: timeS * (95 + 300 * x ** 2.4) };
        });
      return { forward: mk(0.03), backward: mk(0.065) };
    }),
  };
}

function cases(): ExactCase[] {
  const gpus = [
    { gpu: 'a100_sxm', csv: 'gpt3-175b+a100_sxm_bf16.csv', pb: 83.64, tau: 1e-3 },
    { gpu: 'a40', csv: 'gpt3-175b+a40_bf16.csv', pb: 70.38, tau: 1e-4 },
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
  process.stdout.write(
    `exact polish budget ${budgetS} s per case; savings vs all-max at the all-max time (emulated)\n` +
      '| case | frontier s | saving (frontier) | gap (frontier, vs LP) | saving (polished) | certified gap | bound | polish s | sub-MILPs | status |' +
      (lpCheck ? ' HiGHS LP s | HiGHS LP − sweep (J) |' : '') +
      '\n|---|---|---|---|---|---|---|---|---|---|' +
      (lpCheck ? '---|---|' : '') +
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
    const lpJ = frontier.lowerBoundJ(frontier.allMax.timeS);
    const r = exactAtDeadline(frontier, input, frontier.allMax.timeS, solver, {
      timeLimitS: budgetS,
    });
    let lpCols = '';
    if (lpCheck) {
      const l0 = performance.now();
      const highsLpJ = lpLowerBound(input, frontier.allMax.timeS, highs, { vertices: 'hull' });
      lpCols = ` ${((performance.now() - l0) / 1000).toFixed(2)} | ${(highsLpJ - lpJ).toExponential(2)} |`;
    }
    process.stdout.write(
      `| ${c.name} | ${frontierS.toFixed(2)} | ${pct((1 - before.energyJ / allMaxJ) * 100)} % | ` +
        `${pct(((before.energyJ - lpJ) / allMaxJ) * 100)} pp | ${pct(r.savingPct)} % | ${pct(r.gapPp)} pp | ` +
        `${r.boundSource} | ${r.polish.seconds.toFixed(1)} | ${r.polish.subproblems} | ${r.polish.status} |${lpCols}\n`,
    );
  }
}

void main();
