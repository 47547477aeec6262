/**
 * Planner benchmark: ours vs lowtime 0.3.0 on the same inputs, both sides' plans scored by our
 * emulator. Run through run.sh (it makes the lowtime venv). Usage:
 *   node --import tsx bench.ts <work-dir> <python> [case-name ...]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Frontier,
  parseProfileCsv,
  planEvaluator,
  scheduleOrder,
  type FrontierJson,
  type PlannerInput,
  type StagePlan,
} from '../../../packages/planner/src';
import { REFERENCE_PROFILE_DIR as DATA } from '@perseus/service-kit';
import { syntheticCsv } from './synthetic-profile';

interface BenchCase {
  name: string;
  csv: string;
  stages: number;
  microbatches: number;
  blockingPowerW: number;
  unitTimeS: number;
}

const here = __dirname;
const [workDir = '/tmp/perseus-bench-planner', python = 'python3', ...only] = process.argv.slice(2);
const lowtimeTimeoutS = Number(process.env['LOWTIME_TIMEOUT_S'] ?? 600);

function cases(): BenchCase[] {
  const out: BenchCase[] = [];
  for (const m of [12, 24, 48, 96])
    out.push({
      name: `a100_sxm-M${m}`,
      csv: `${DATA}/gpt3-175b+a100_sxm_bf16.csv`,
      stages: 8,
      microbatches: m,
      blockingPowerW: 83.64,
      unitTimeS: 1e-3,
    });
  for (const m of [12, 24, 48, 96])
    out.push({
      name: `a40-M${m}`,
      csv: `${DATA}/gpt3-175b+a40_bf16.csv`,
      stages: 8,
      microbatches: m,
      blockingPowerW: 70.38,
      unitTimeS: 1e-4,
    });
  const s4 = join(workDir, 'synthetic-imbalanced-4.csv');
  const s8 = join(workDir, 'synthetic-imbalanced-8.csv');
  writeFileSync(s4, syntheticCsv(4, [1.0, 0.6, 0.8, 1.4], 7));
  writeFileSync(s8, syntheticCsv(8, [1.3, 0.7, 0.9, 1.0, 0.75, 1.1, 0.8, 1.5], 11));
  out.push({
    name: 'synthetic-4stage-M16',
    csv: s4,
    stages: 4,
    microbatches: 16,
    blockingPowerW: 80,
    unitTimeS: 1e-3,
  });
  out.push({
    name: 'synthetic-8stage-M32',
    csv: s8,
    stages: 8,
    microbatches: 32,
    blockingPowerW: 80,
    unitTimeS: 1e-3,
  });
  return out;
}

function inputOf(c: BenchCase): PlannerInput {
  return {
    profile: parseProfileCsv(readFileSync(c.csv, 'utf8')),
    pipeline: { schedule: '1f1b', numStages: c.stages, numMicrobatches: c.microbatches },
    blockingPowerW: c.blockingPowerW,
    unitTimeS: c.unitTimeS,
  };
}

interface LowtimeRun {
  done: boolean;
  wallS: number;
  /** CPU seconds (user+sys); NaN for runs made before the runner reported it. */
  cpuS: number;
  maxRssMiB: number;
  iterations: number;
  plans: Array<{ quantTimeS: number; timeS: number; energyJ: number }>;
}

function runLowtime(c: BenchCase, input: PlannerInput): LowtimeRun {
  const out = join(workDir, `lowtime-${c.name}.jsonl`);
  // LOWTIME_REUSE=1 keeps whatever an earlier (possibly timed-out) run left, so ours can be re-measured
  // without re-running lowtime for hours.
  const reuse = process.env['LOWTIME_REUSE'] === '1' && existsSync(out);
  if (!reuse && (!existsSync(out) || !readFileSync(out, 'utf8').includes('"done"'))) {
    spawnSync(
      'timeout',
      [
        String(lowtimeTimeoutS),
        python,
        join(here, 'lowtime_runner.py'),
        c.csv,
        String(c.stages),
        String(c.microbatches),
        String(c.blockingPowerW),
        String(c.unitTimeS),
        out,
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
  }
  const lines = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const order = (lines[0] as { order: Array<Array<[string, number]>> }).order;
  order.forEach((st, s) => {
    const ours = scheduleOrder(input.pipeline, s)
      .map((x) => `${x.kind}${x.microbatch}`)
      .join(' ');
    if (st.map(([k, m]) => `${k}${m}`).join(' ') !== ours)
      throw new Error(`lowtime's stage ${s} order differs from ours`);
  });
  const evaluate = planEvaluator(input);
  const knobs = order.map((st) => st.map(() => 0));
  const plans: LowtimeRun['plans'] = [];
  let summary: Record<string, number> | null = null;
  let lastWallS = NaN;
  let lastCpuS = NaN;
  for (const l of lines.slice(1)) {
    if (l['done']) {
      summary = l as Record<string, number>;
      continue;
    }
    if (typeof l['w'] === 'number') lastWallS = l['w'];
    if (typeof l['c'] === 'number') lastCpuS = l['c'];
    for (const [s, j, k] of l['d'] as Array<[number, number, number]>) knobs[s]![j] = k;
    const plan: StagePlan[] = order.map((st, s) => ({
      stage: s,
      instructions: st.map(([kind, mb], j) => ({
        kind: kind as 'forward' | 'backward',
        microbatch: mb,
        frequencyMhz: knobs[s]![j]!,
      })),
    }));
    const r = evaluate(plan);
    plans.push({ quantTimeS: l['t'] as number, timeS: r.timeS, energyJ: r.energyJ });
  }
  return {
    done: summary !== null,
    // A run that timed out took at least as long as its last iteration (or the timeout).
    wallS: summary ? summary['wall_s']! : Number.isNaN(lastWallS) ? lowtimeTimeoutS : lastWallS,
    cpuS: summary ? (summary['cpu_s'] ?? NaN) : lastCpuS,
    maxRssMiB: summary ? summary['maxrss_mib']! : NaN,
    iterations: plans.length,
    plans,
  };
}

function runOurs(c: BenchCase): {
  wallS: number;
  cpuS: number;
  maxRssMiB: number;
  frontier: Frontier;
} {
  const out = join(workDir, `ours-${c.name}.json`);
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      join(here, 'ours.ts'),
      c.csv,
      String(c.stages),
      String(c.microbatches),
      String(c.blockingPowerW),
      String(c.unitTimeS),
      out,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ours failed on ${c.name}: ${r.stderr}`);
  const m = JSON.parse(r.stdout) as { wallS: number; cpuS: number; maxRssMiB: number };
  return {
    ...m,
    frontier: Frontier.fromJSON(JSON.parse(readFileSync(out, 'utf8')) as FrontierJson),
  };
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

function main(): void {
  mkdirSync(workDir, { recursive: true });
  const rows: string[] = [];
  for (const c of cases()) {
    if (only.length && !only.includes(c.name)) continue;
    const input = inputOf(c);
    const ours = runOurs(c);
    const lt = runLowtime(c, input);
    const f = ours.frontier;
    const { allMax } = f;
    const intr = f.intrinsic().point;
    const bound = f.lowerBoundJ(allMax.timeS);
    const ltFast = lt.plans[lt.plans.length - 1]!;
    let worse = 0;
    let maxExcess = 0;
    for (const p of lt.plans) {
      const o = f.planFor(p.timeS * (1 + 1e-12)).point;
      if (o.timeS > p.timeS * (1 + 1e-9) || o.energyJ > p.energyJ * (1 + 1e-9)) {
        worse++;
        maxExcess = Math.max(maxExcess, o.energyJ / p.energyJ - 1);
      }
    }
    const row = {
      case: c.name,
      ours_wall_s: ours.wallS.toFixed(2),
      ours_cpu_s: ours.cpuS.toFixed(2),
      lowtime_wall_s: `${lt.done ? '' : '>'}${lt.wallS.toFixed(1)}`,
      lowtime_cpu_s: Number.isNaN(lt.cpuS) ? 'n/a' : `${lt.done ? '' : '>'}${lt.cpuS.toFixed(1)}`,
      speedup_cpu: Number.isNaN(lt.cpuS)
        ? 'n/a'
        : `${lt.done ? '' : '≥'}${(lt.cpuS / ours.cpuS).toFixed(0)}×`,
      speedup_wall: `${lt.done ? '' : '≥'}${(lt.wallS / ours.wallS).toFixed(0)}×`,
      ours_rss_mib: ours.maxRssMiB.toFixed(0),
      lowtime_rss_mib: Number.isNaN(lt.maxRssMiB) ? 'n/a' : lt.maxRssMiB.toFixed(0),
      allmax: `${allMax.timeS.toFixed(4)} s ${allMax.energyJ.toFixed(1)} J`,
      lowtime_fastest: lt.done
        ? `${ltFast.timeS.toFixed(4)} s (+${pct(ltFast.timeS / allMax.timeS - 1)}) saving ${pct(1 - ltFast.energyJ / allMax.energyJ)}`
        : `not reached (${lt.iterations} iterations)`,
      ours_intrinsic: `${intr.timeS.toFixed(4)} s saving ${pct(1 - intr.energyJ / allMax.energyJ)}`,
      lp_bound_saving: pct(1 - bound / allMax.energyJ),
      gap_to_bound_pp: (((intr.energyJ - bound) / allMax.energyJ) * 100).toFixed(3),
      dominates:
        worse === 0
          ? `yes (${lt.plans.length} plans)`
          : `no: ${worse}/${lt.plans.length} lowtime plans beat ours, by ≤ ${pct(maxExcess)}`,
      points: f.points.length,
    };
    rows.push(JSON.stringify(row));
    process.stdout.write(
      Object.entries(row)
        .map(([k, v]) => `${k}=${v}`)
        .join('  ') + '\n',
    );
  }
  writeFileSync(join(workDir, 'results.jsonl'), rows.join('\n') + '\n');
}

main();
