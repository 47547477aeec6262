/**
 * The online profiling sweep on an emulated pipeline whose energy readings are as noisy as a real
 * GPU's (EMULATED, not measured): each instruction's energy is read as the difference of an
 * energy counter that only advances every `counterPeriodS` (NVML on an H200 steps every ~100 ms),
 * at a random phase per iteration, on the exact 1F1B timeline of the sweep's schedule (blocking
 * power between instructions), plus a small per-instruction power jitter. The profiler's cell is
 * the mean of K × M × DP such readings and its standard error.
 *
 * The full sweep measures every clock; the stop rule replays the same per-clock measurements and
 * stops each instruction where the rule says, so the two profiles differ only by the clocks the
 * rule skipped. Both are planned, and each plan is evaluated on the TRUE profile.
 */
import { computeFrontier, evaluatePlan, planTimeline, seededUniform } from '@perseus/planner';
import type {
  InstructionKind,
  PipelineSpec,
  PlannerInput,
  Profile,
  StagePlan,
} from '@perseus/planner';
import {
  DEFAULT_STOP_RULE,
  advanceSweep,
  newSweep,
  sweepCost,
  sweepVariant,
} from '../../src/sweep';
import type { CellEnergy, StopRule } from '../../src/sweep';
import type { JobSpec } from '../../src/types';

export interface NoisySweepOptions {
  /** True per-microbatch time and energy of every (stage, kind, clock). */
  truth: Profile;
  pipeline: PipelineSpec;
  /** Iterations per clock (K). */
  iterationsPerClock: number;
  /** Data-parallel pipelines pooled into each cell. */
  dpDegree: number;
  /** Energy counter update period, s (0 = exact counter). */
  counterPeriodS: number;
  /** Relative standard deviation of each instruction's power. */
  powerJitter: number;
  blockingPowerW: number;
  unitTimeS: number;
  seed: number;
  rule?: StopRule;
  /**
   * Blocking power the stop rule nets out, W (default `blockingPowerW`, what the optimizer does;
   * 0 = the paper's rule on raw energy).
   */
  ruleBlockingPowerW?: number;
}

export interface SweepOutcome {
  /** Clocks swept (steps) until every instruction stopped. */
  steps: number;
  /** Profiling iterations: steps × K. */
  iterations: number;
  /** Planned from what was measured, evaluated on the truth. */
  intrinsicSavingPercent: number;
  minEnergySavingPercent: number;
}

export interface NoisySweepResult {
  clocks: number;
  full: SweepOutcome;
  stopRule: SweepOutcome;
  /**
   * Per (stage:kind), the clock index where the rule stopped it and where its true minimum of
   * energy net of blocking power is.
   */
  stops: Record<string, { stoppedAt: number; trueMinAt: number }>;
}

/** Deterministic uniform [0, 1) generator (mulberry32). */
export const rng = seededUniform;

function gaussian(u: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

const KINDS: readonly InstructionKind[] = ['forward', 'backward'];

function option(truth: Profile, stage: number, kind: InstructionKind, mhz: number) {
  const o = truth.stages[stage]![kind].find((x) => x.frequencyMhz === mhz);
  if (o === undefined) throw new Error(`no true option for stage ${stage} ${kind} ${mhz} MHz`);
  return o;
}

/**
 * Every cell's measured (mean, stderr) at one sweep clock, from K × DP emulated iterations of the
 * schedule where every instruction runs at `mhz`.
 */
function measureClock(o: NoisySweepOptions, mhz: number, u: () => number): Map<string, CellEnergy> {
  const n = o.pipeline.numStages;
  const plan: StagePlan[] = Array.from({ length: n }, (_, s) => ({
    stage: s,
    instructions: sweepVariant(specOf(o), newSweep(n, [mhz])).stages[s]!,
  }));
  const input: PlannerInput = {
    profile: o.truth,
    pipeline: o.pipeline,
    blockingPowerW: o.blockingPowerW,
    unitTimeS: o.unitTimeS,
  };
  const timeline = planTimeline(input, plan);
  const readings = new Map<string, number[]>();
  for (let it = 0; it < o.iterationsPerClock * o.dpDegree; it++) {
    timeline.forEach((entries, stage) => {
      // Cumulative true energy at the start and end of each instruction (blocking power between).
      const powers = entries.map((e) => {
        const opt = option(o.truth, stage, e.kind, e.frequencyMhz);
        return (opt.energyJ / opt.timeS) * (1 + o.powerJitter * gaussian(u));
      });
      const energyAt = (t: number): number => {
        let acc = 0;
        let clock = 0;
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!;
          if (t <= e.startS) return acc + o.blockingPowerW * Math.max(0, t - clock);
          acc += o.blockingPowerW * (e.startS - clock);
          if (t <= e.endS) return acc + powers[i]! * (t - e.startS);
          acc += powers[i]! * (e.endS - e.startS);
          clock = e.endS;
        }
        return acc + o.blockingPowerW * (t - clock);
      };
      const phase = u() * o.counterPeriodS;
      const counter = (t: number): number =>
        o.counterPeriodS > 0
          ? energyAt(Math.floor((t - phase) / o.counterPeriodS) * o.counterPeriodS + phase)
          : energyAt(t);
      for (const e of entries) {
        const key = `${stage}:${e.kind}`;
        let list = readings.get(key);
        if (list === undefined) readings.set(key, (list = []));
        list.push(counter(e.endS) - counter(e.startS));
      }
    });
  }
  const out = new Map<string, CellEnergy>();
  for (const [key, xs] of readings) {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
    out.set(key, { energyJ: mean, stderrJ: Math.sqrt(variance / xs.length) });
  }
  return out;
}

function specOf(o: NoisySweepOptions): JobSpec {
  const n = o.pipeline.numStages;
  return {
    pipeline: o.pipeline,
    dpDegree: o.dpDegree,
    tpDegree: 1,
    worldSize: n * o.dpDegree,
    gpuModel: 'emulated',
    unitTimeS: o.unitTimeS,
    blockingPowerW: o.blockingPowerW,
    profiling: {
      iterationsPerFrequency: o.iterationsPerClock,
      floorFrequencyMhz: 0,
      frequencyStride: 1,
    },
  };
}

/** Plans a measured profile and evaluates its intrinsic and minimum-energy plans on the truth. */
function planAndScore(
  o: NoisySweepOptions,
  measured: Profile,
): { intrinsic: number; minEnergy: number } {
  const base = { pipeline: o.pipeline, blockingPowerW: o.blockingPowerW, unitTimeS: o.unitTimeS };
  const f = computeFrontier({ ...base, profile: measured });
  const truthInput: PlannerInput = { ...base, profile: o.truth };
  const maxClock = (s: number, k: InstructionKind): number =>
    Math.max(...o.truth.stages[s]![k].map((x) => x.frequencyMhz));
  const allMaxPlan: StagePlan[] = f.plan(f.intrinsic().point.index).map((sp) => ({
    stage: sp.stage,
    instructions: sp.instructions.map((x) => ({ ...x, frequencyMhz: maxClock(sp.stage, x.kind) })),
  }));
  const allMaxJ = evaluatePlan(truthInput, allMaxPlan).energyJ;
  const saving = (plan: StagePlan[]): number =>
    100 * (1 - evaluatePlan(truthInput, plan).energyJ / allMaxJ);
  return {
    intrinsic: saving(f.intrinsic().plan),
    minEnergy: saving(f.planFor(f.minEnergyTimeS).plan),
  };
}

/** Runs the full sweep and the stop rule on the same emulated measurements. */
export function runNoisySweep(o: NoisySweepOptions): NoisySweepResult {
  const n = o.pipeline.numStages;
  const clocks = [...new Set(o.truth.stages[0]!.forward.map((x) => x.frequencyMhz))].sort(
    (a, b) => b - a,
  );
  const u = rng(o.seed);
  const perClock = clocks.map((mhz) => measureClock(o, mhz, u));
  const profileUpTo = (lastIndex: (key: string) => number): Profile => ({
    stages: Array.from({ length: n }, (_, s) => {
      const st = {
        forward: [] as Profile['stages'][number]['forward'],
        backward: [] as Profile['stages'][number]['backward'],
      };
      for (const k of KINDS) {
        const key = `${s}:${k}`;
        for (let i = 0; i <= lastIndex(key); i++) {
          const mhz = clocks[i]!;
          st[k].push({
            frequencyMhz: mhz,
            timeS: option(o.truth, s, k, mhz).timeS,
            energyJ: perClock[i]!.get(key)!.energyJ,
          });
        }
      }
      return st;
    }),
  });

  let sweep = newSweep(n, clocks);
  let done = false;
  let steps = 0;
  while (!done) {
    ({ sweep, done } = advanceSweep(
      sweep,
      (s, k, mhz) =>
        sweepCost(
          perClock[clocks.indexOf(mhz)]!.get(`${s}:${k}`),
          option(o.truth, s, k, mhz).timeS,
          o.ruleBlockingPowerW ?? o.blockingPowerW,
        ),
      o.rule ?? DEFAULT_STOP_RULE,
    ));
    steps++;
  }
  const stops: NoisySweepResult['stops'] = {};
  for (let s = 0; s < n; s++) {
    for (const k of KINDS) {
      const key = `${s}:${k}`;
      const energies = clocks.map((mhz) => {
        const x = option(o.truth, s, k, mhz);
        return x.energyJ - (o.ruleBlockingPowerW ?? o.blockingPowerW) * x.timeS;
      });
      stops[key] = {
        stoppedAt: sweep.stoppedAt[key]!,
        trueMinAt: energies.indexOf(Math.min(...energies)),
      };
    }
  }
  const full = planAndScore(
    o,
    profileUpTo(() => clocks.length - 1),
  );
  const ruled = planAndScore(
    o,
    profileUpTo((key) => sweep.stoppedAt[key]!),
  );
  const k = o.iterationsPerClock;
  return {
    clocks: clocks.length,
    full: {
      steps: clocks.length,
      iterations: clocks.length * k,
      intrinsicSavingPercent: full.intrinsic,
      minEnergySavingPercent: full.minEnergy,
    },
    stopRule: {
      steps,
      iterations: steps * k,
      intrinsicSavingPercent: ruled.intrinsic,
      minEnergySavingPercent: ruled.minEnergy,
    },
    stops,
  };
}

/**
 * A profile extended below its lowest clock down to `floorMhz` (step `stepMhz`), EXTRAPOLATED:
 * time ∝ 1/clock from the lowest measured clock, power linear in the clock (least-squares over the
 * lowest `fitClocks` measured clocks) but never below `minPowerW` — a computing GPU draws more than
 * one blocked in a collective, whatever its clock. Real GPUs support clocks far below a published profile's
 * floor (A100: 1410 … 210 MHz), and a sweep without a floor visits them all.
 */
export function extendProfile(
  p: Profile,
  floorMhz: number,
  stepMhz: number,
  minPowerW: number,
  fitClocks = 10,
): Profile {
  return {
    stages: p.stages.map((st) => {
      const out = { forward: [...st.forward], backward: [...st.backward] };
      for (const k of KINDS) {
        const asc = [...st[k]].sort((a, b) => a.frequencyMhz - b.frequencyMhz);
        const low = asc.slice(0, fitClocks);
        const xs = low.map((x) => x.frequencyMhz);
        const ys = low.map((x) => x.energyJ / x.timeS);
        const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
        const my = ys.reduce((a, b) => a + b, 0) / ys.length;
        const slope =
          xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) /
          xs.reduce((a, x) => a + (x - mx) ** 2, 0);
        const base = asc[0]!;
        for (let f = base.frequencyMhz - stepMhz; f >= floorMhz; f -= stepMhz) {
          const timeS = (base.timeS * base.frequencyMhz) / f;
          const powerW = Math.max(minPowerW, my + slope * (f - mx));
          out[k].push({ frequencyMhz: f, timeS, energyJ: powerW * timeS });
        }
      }
      return out;
    }),
  };
}
