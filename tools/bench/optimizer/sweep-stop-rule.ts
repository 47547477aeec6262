/**
 * The online sweep's stop rule on an EMULATED pipeline with realistic energy-counter noise
 * (issue 12 §3): profiling iterations with the confidence-based stop rule vs the full sweep (what
 * main ran: its "5 rises in a row" rule never fired under noise), and the energy saving of the
 * plans planned from each profile, both evaluated on the true profile.
 *
 *   node --import tsx tools/bench/optimizer/sweep-stop-rule.ts [--stages 8] [--microbatches 4]
 *     [--k 3] [--dp 1] [--counter-ms 100] [--jitter 0.02] [--seeds 5] [--floor-mhz 210] [--blocking-w 83.64] [--min-power-w 1.25×blocking]
 *     [--raw-energy]   (the paper's rule on raw energy instead of energy net of blocking power)
 *
 * Truth: data/sosp24/stage_profile/gpt3-175b+a100_sxm_bf16.csv (first --stages stages, 38 clocks
 * 1410…855 MHz, extended below by extrapolation to --floor-mhz: an A100 supports 1410…210 MHz and a
 * sweep without a floor visits every clock), blocking power 83.64 W (A100), τ = 1 ms.
 */
import { readFileSync } from 'node:fs';
import { parseProfileCsv } from '@perseus/planner';
import { extendProfile, runNoisySweep } from '../../../packages/optimizer/test/support/noisy-sweep';
import { GPT3_A100_CSV } from '@perseus/service-kit';

const args = process.argv.slice(2);
const opt = (name: string, d: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const N = opt('--stages', 8);
const M = opt('--microbatches', 4);
const K = opt('--k', 3);
const DP = opt('--dp', 1);
const COUNTER_MS = opt('--counter-ms', 100);
const JITTER = opt('--jitter', 0.02);
const SEEDS = opt('--seeds', 5);
const FLOOR = opt('--floor-mhz', 210);
const BLOCKING_W = opt('--blocking-w', 83.64);
const RAW = args.includes('--raw-energy');
const MIN_POWER_W = opt('--min-power-w', 1.25 * BLOCKING_W);

const all = parseProfileCsv(readFileSync(GPT3_A100_CSV, 'utf8'));
const measured = { stages: all.stages.slice(0, N) };
const truth = FLOOR < 855 ? extendProfile(measured, FLOOR, 15, MIN_POWER_W) : measured;

console.log(
  `${RAW ? 'RAW-ENERGY rule' : 'net-cost rule'}; EMULATED sweep (blocking power ${BLOCKING_W} W; computing power ≥ ${MIN_POWER_W.toFixed(1)} W below 855 MHz; clocks below 855 MHz EXTRAPOLATED down to ${FLOOR} MHz, the A100's lowest): ${N} stages, M=${M}, K=${K}, DP=${DP}, energy counter period ${COUNTER_MS} ms, power jitter ${100 * JITTER} %, ${SEEDS} seeds`,
);
console.log(
  'seed  iters(full)  iters(rule)  saved   intrinsic pp (full/rule/diff)   min-energy pp (full/rule/diff)  stopped before true min',
);
const diffs: number[] = [];
const saved: number[] = [];
for (let seed = 1; seed <= SEEDS; seed++) {
  const r = runNoisySweep({
    truth,
    pipeline: { schedule: '1f1b', numStages: N, numMicrobatches: M },
    iterationsPerClock: K,
    dpDegree: DP,
    counterPeriodS: COUNTER_MS / 1000,
    powerJitter: JITTER,
    blockingPowerW: BLOCKING_W,
    unitTimeS: 0.001,
    seed,
    ...(RAW ? { ruleBlockingPowerW: 0 } : {}),
  });
  const early = Object.values(r.stops).filter((s) => s.stoppedAt < s.trueMinAt).length;
  const d = r.stopRule.intrinsicSavingPercent - r.full.intrinsicSavingPercent;
  const dMin = r.stopRule.minEnergySavingPercent - r.full.minEnergySavingPercent;
  diffs.push(Math.max(Math.abs(d), Math.abs(dMin)));
  saved.push(1 - r.stopRule.iterations / r.full.iterations);
  console.log(
    `${String(seed).padStart(4)}  ${String(r.full.iterations).padStart(11)}  ${String(r.stopRule.iterations).padStart(11)}  ${(100 * (1 - r.stopRule.iterations / r.full.iterations)).toFixed(1).padStart(5)} %  ` +
      `${r.full.intrinsicSavingPercent.toFixed(3)} / ${r.stopRule.intrinsicSavingPercent.toFixed(3)} / ${d.toFixed(3)}        ` +
      `${r.full.minEnergySavingPercent.toFixed(3)} / ${r.stopRule.minEnergySavingPercent.toFixed(3)} / ${dMin.toFixed(3)}        ${early}/${Object.keys(r.stops).length}`,
  );
}
console.log(
  `iterations saved: ${(100 * Math.min(...saved)).toFixed(1)}–${(100 * Math.max(...saved)).toFixed(1)} %; largest |saving difference|: ${Math.max(...diffs).toFixed(3)} pp`,
);
