import * as fs from 'node:fs';
import * as path from 'node:path';
import { readProfileCsvRows, STAGE_CSV_COLUMNS } from '@perseus/planner';
import { REFERENCE_PROFILE_DIR } from '@perseus/service-kit';

/**
 * Per-instruction time and energy of a GPU model, from the Perseus SOSP '24 artifact's stage
 * profiles (`data/sosp24/stage_profile/*.csv`, columns stage,instruction,frequency,time,energy).
 * The simulated backend turns these into power (energy / time) at each SM clock.
 */

export type SimulatedModel = 'a100-sxm' | 'a40' | 'h100-sxm';
export const SIMULATED_MODELS: readonly SimulatedModel[] = ['a100-sxm', 'a40', 'h100-sxm'];

export interface ProfileRow {
  stage: number;
  instruction: 'forward' | 'backward';
  frequencyMhz: number;
  timeS: number;
  energyJ: number;
}

/** Hardware facts of a simulated model. */
export interface ModelSpec {
  readonly model: SimulatedModel;
  readonly name: string;
  readonly maxSmClockMhz: number;
  readonly minSmClockMhz: number;
  readonly smClockStepMhz: number;
  readonly memoryClocksMhz: readonly number[];
  readonly defaultPowerLimitW: number;
  readonly powerLimitRangeW: readonly [number, number];
  /** Power drawn while waiting on a neighbour / idle (docs/architecture.md §4.1). */
  readonly blockingPowerW: number;
  /** Where the profile comes from (shown in logs and the README). */
  readonly provenance: string;
}

/** H100 is derived from the A100 table (no measured H100 profile in the artifact). */
const H100_POWER_SCALE = 1.75;
const H100_TIME_SCALE = 0.5;

export const MODEL_SPECS: Readonly<Record<SimulatedModel, ModelSpec>> = {
  'a100-sxm': {
    model: 'a100-sxm',
    name: 'Simulated NVIDIA A100-SXM4-40GB',
    maxSmClockMhz: 1410,
    minSmClockMhz: 210,
    smClockStepMhz: 15,
    memoryClocksMhz: [1215],
    defaultPowerLimitW: 400,
    powerLimitRangeW: [100, 400],
    blockingPowerW: 83.64,
    provenance: 'measured: sosp24 gpt3-175b+a100_sxm_bf16.csv',
  },
  a40: {
    model: 'a40',
    name: 'Simulated NVIDIA A40',
    maxSmClockMhz: 1740,
    minSmClockMhz: 210,
    smClockStepMhz: 15,
    memoryClocksMhz: [7251],
    defaultPowerLimitW: 300,
    powerLimitRangeW: [100, 300],
    blockingPowerW: 70.38,
    provenance: 'measured: sosp24 gpt3-175b+a40_bf16.csv',
  },
  'h100-sxm': {
    model: 'h100-sxm',
    name: 'Simulated NVIDIA H100 80GB HBM3 (derived)',
    maxSmClockMhz: 1980,
    minSmClockMhz: 345,
    smClockStepMhz: 15,
    memoryClocksMhz: [2619],
    defaultPowerLimitW: 700,
    powerLimitRangeW: [200, 700],
    blockingPowerW: 83.64 * H100_POWER_SCALE,
    provenance:
      'DERIVED, not measured: the A100 SXM table with clocks scaled by 1980/1410 (snapped to 15 MHz), time x0.5, power x1.75',
  },
};

const CSV_NAMES: Readonly<Record<'a100-sxm' | 'a40', string>> = {
  'a100-sxm': 'gpt3-175b+a100_sxm_bf16.csv',
  a40: 'gpt3-175b+a40_bf16.csv',
};

/**
 * A small embedded table so the agent runs standalone when the CSVs are absent: stage 0 of the same
 * artifact files at five clocks (values copied from the CSVs above, rounded; provenance as there).
 */
const EMBEDDED: Readonly<
  Record<
    'a100-sxm' | 'a40',
    ReadonlyArray<[number, 'forward' | 'backward', number, number, number]>
  >
> = {
  'a100-sxm': [
    [0, 'forward', 1410, 0.050162, 23.8055],
    [0, 'backward', 1410, 0.092954, 44.5842],
    [0, 'forward', 1260, 0.053566, 20.7942],
    [0, 'backward', 1260, 0.098791, 38.2153],
    [0, 'forward', 1110, 0.060346, 17.8647],
    [0, 'backward', 1110, 0.110144, 33.2624],
    [0, 'forward', 990, 0.067464, 17.8168],
    [0, 'backward', 990, 0.12267, 32.7915],
    [0, 'forward', 855, 0.077731, 18.2394],
    [0, 'backward', 855, 0.140568, 33.6419],
  ],
  a40: [
    [0, 'forward', 1740, 0.11248, 33.5939],
    [0, 'backward', 1740, 0.277079, 80.1911],
    [0, 'forward', 1470, 0.114178, 33.9639],
    [0, 'backward', 1470, 0.277911, 78.3928],
    [0, 'forward', 1200, 0.127391, 28.4911],
    [0, 'backward', 1200, 0.3004, 65.916],
    [0, 'forward', 1005, 0.14404, 27.7474],
    [0, 'backward', 1005, 0.324461, 62.8079],
    [0, 'forward', 855, 0.164405, 29.0529],
    [0, 'backward', 855, 0.334036, 59.4429],
  ],
};

/**
 * Parses a Zeus/Perseus stage-profile CSV with the planner's row reader (its rules). Throws naming
 * the source and line of the first problem.
 */
export function parseProfileCsv(text: string, source = 'csv'): ProfileRow[] {
  const read = readProfileCsvRows(text);
  if (read.format !== 'stage') {
    throw new Error(
      `${source}: header must be ${STAGE_CSV_COLUMNS.join(',')}, got ${JSON.stringify(read.header.join(','))}`,
    );
  }
  const bad = read.problems[0];
  if (bad !== undefined) {
    const line = text.split(/\r?\n/)[bad.line - 1] ?? '';
    throw new Error(`${source}:${bad.line}: bad row ${JSON.stringify(line)}: ${bad.message}`);
  }
  if (read.rows.length === 0) throw new Error(`${source}: empty profile`);
  return read.rows.map(({ stage, instruction, frequencyMhz, timeS, energyJ }) => ({
    stage,
    instruction,
    frequencyMhz,
    timeS,
    energyJ,
  }));
}

/** Time/energy lookup per (stage, instruction, clock), with interpolation between measured clocks. */
export class ProfileTable {
  private readonly byKey = new Map<string, ProfileRow[]>();
  readonly numStages: number;

  constructor(
    readonly spec: ModelSpec,
    rows: readonly ProfileRow[],
    /** Where the rows were read from (a path, or "embedded"). */
    readonly source: string,
  ) {
    for (const r of rows) {
      const key = `${r.stage}/${r.instruction}`;
      const list = this.byKey.get(key) ?? [];
      list.push(r);
      this.byKey.set(key, list);
    }
    for (const list of this.byKey.values()) list.sort((a, b) => a.frequencyMhz - b.frequencyMhz);
    this.numStages = Math.max(0, ...rows.map((r) => r.stage + 1));
    if (this.numStages === 0) throw new Error(`${source}: empty profile`);
  }

  /** Rows of one (stage, instruction); the stage wraps modulo the table's stages. */
  private rows(stage: number, instruction: ProfileRow['instruction']): ProfileRow[] {
    const s = stage % this.numStages;
    return this.byKey.get(`${s}/${instruction}`) ?? this.byKey.get(`0/${instruction}`) ?? [];
  }

  /**
   * Time (s) and average power (W) of one microbatch at `mhz`. Between measured clocks: linear
   * interpolation of time and energy. Above the table: the top row (the device cannot go faster).
   * Below it: time scales as f_min/f (compute bound) and dynamic power above the blocking power
   * scales with f/f_min — a model, not a measurement, documented in the README.
   */
  lookup(
    stage: number,
    instruction: ProfileRow['instruction'],
    mhz: number,
  ): { timeS: number; powerW: number } {
    const rows = this.rows(stage, instruction);
    const first = rows[0];
    const last = rows[rows.length - 1];
    if (first === undefined || last === undefined)
      return { timeS: 0, powerW: this.spec.blockingPowerW };
    if (mhz >= last.frequencyMhz) return { timeS: last.timeS, powerW: last.energyJ / last.timeS };
    if (mhz <= first.frequencyMhz) {
      const p0 = first.energyJ / first.timeS;
      const pb = this.spec.blockingPowerW;
      return {
        timeS: (first.timeS * first.frequencyMhz) / mhz,
        powerW: pb + Math.max(0, p0 - pb) * (mhz / first.frequencyMhz),
      };
    }
    for (let i = 1; i < rows.length; i++) {
      const hi = rows[i]!;
      const lo = rows[i - 1]!;
      if (mhz <= hi.frequencyMhz) {
        const w = (mhz - lo.frequencyMhz) / (hi.frequencyMhz - lo.frequencyMhz);
        const timeS = lo.timeS + w * (hi.timeS - lo.timeS);
        const energyJ = lo.energyJ + w * (hi.energyJ - lo.energyJ);
        return { timeS, powerW: energyJ / timeS };
      }
    }
    return { timeS: last.timeS, powerW: last.energyJ / last.timeS };
  }

  /** Supported SM clocks of the model, MHz, descending. */
  supportedSmClocksMhz(): number[] {
    const out: number[] = [];
    for (
      let f = this.spec.maxSmClockMhz;
      f >= this.spec.minSmClockMhz;
      f -= this.spec.smClockStepMhz
    )
      out.push(f);
    return out;
  }
}

/** Default directory of the stage-profile CSVs: the repository's `data/sosp24/stage_profile`. */
export const DEFAULT_PROFILE_DIR = REFERENCE_PROFILE_DIR;

/**
 * Loads the table of `model` from `dir` (default {@link DEFAULT_PROFILE_DIR}); falls back to the
 * embedded stage-0 table when the CSV is absent. H100 is derived from the A100 table (labelled so).
 */
export function loadProfileTable(
  model: SimulatedModel,
  dir: string = DEFAULT_PROFILE_DIR,
): ProfileTable {
  const spec = MODEL_SPECS[model];
  const base: 'a100-sxm' | 'a40' = model === 'a40' ? 'a40' : 'a100-sxm';
  const file = path.join(dir, CSV_NAMES[base]);
  let rows: ProfileRow[];
  let source: string;
  if (fs.existsSync(file)) {
    rows = parseProfileCsv(fs.readFileSync(file, 'utf8'), file);
    source = file;
  } else {
    rows = EMBEDDED[base].map(([stage, instruction, frequencyMhz, timeS, energyJ]) => ({
      stage,
      instruction,
      frequencyMhz,
      timeS,
      energyJ,
    }));
    source = `embedded (${CSV_NAMES[base]} stage 0, 5 clocks; ${file} not found)`;
  }
  if (model === 'h100-sxm') {
    const ratio = spec.maxSmClockMhz / MODEL_SPECS['a100-sxm'].maxSmClockMhz;
    rows = rows.map((r) => ({
      ...r,
      frequencyMhz: Math.round((r.frequencyMhz * ratio) / 15) * 15,
      timeS: r.timeS * H100_TIME_SCALE,
      energyJ: r.energyJ * H100_TIME_SCALE * H100_POWER_SCALE,
    }));
    source = `derived from ${source}`;
  }
  return new ProfileTable(spec, rows, source);
}
