/**
 * The profile a job is planned from, and the blocking power it is planned with (docs/architecture.md §3 steps 3–4),
 * as pure functions over the profiler's cells and the profiling iterations.
 */
import type { MeasuredOption, Profile } from '@perseus/planner';
import { FALLBACK_BLOCKING_POWER_W, KNOWN_BLOCKING_POWER_W } from './config';
import type { ProfileCellStat } from './profile-source';
import { KINDS } from './sweep';

/**
 * One rank's profiling iteration with the clocks its GPU ran: one entry per (virtual) stage on the
 * GPU — its pp_rank, or with interleaved 1F1B each chunk's stage c·N + pp_rank.
 */
export interface IdleSample {
  timeS: number;
  energyJ: number;
  stages: Array<{ stage: number; forwardMhz: number; backwardMhz: number }>;
}

/** A profile of `numStages` stages from the profiler's cells (cells without time or energy dropped). */
export function profileFromCells(cells: readonly ProfileCellStat[], numStages: number): Profile {
  const profile: Profile = {
    stages: Array.from({ length: numStages }, () => ({
      forward: [] as MeasuredOption[],
      backward: [] as MeasuredOption[],
    })),
  };
  for (const c of cells) {
    const st = profile.stages[c.stage];
    if (st === undefined || !(c.timeS > 0) || !(c.energyJ > 0)) continue;
    st[c.kind].push({ frequencyMhz: c.frequencyMhz, timeS: c.timeS, energyJ: c.energyJ });
  }
  return profile;
}

/**
 * The profile restricted to clocks every rank supports (a plan must never ask a GPU for a clock it
 * cannot lock), or why that leaves an instruction without options.
 */
export function restrictToClocks(
  profile: Profile,
  allowedMhz: ReadonlySet<number>,
): Profile | string {
  const filtered: Profile = {
    stages: profile.stages.map((st) => ({
      forward: st.forward.filter((o) => allowedMhz.has(o.frequencyMhz)),
      backward: st.backward.filter((o) => allowedMhz.has(o.frequencyMhz)),
    })),
  };
  for (let s = 0; s < filtered.stages.length; s++) {
    for (const k of KINDS)
      if (filtered.stages[s]![k].length === 0)
        return `profile has no clock every rank supports for stage ${s} ${k}`;
  }
  return filtered;
}

/**
 * Blocking power measured from profiling iterations: what a rank drew beyond its instructions'
 * measured energy, per second of non-computing time — the median over samples with at least 5 %
 * idle time. Undefined when no sample qualifies. `tpScale`: the profile's energies sum this many
 * TP ranks, a sample is one rank.
 */
export function measuredBlockingPowerW(
  samples: readonly IdleSample[],
  profile: Profile,
  numMicrobatches: number,
  tpScale: number,
): number | undefined {
  const find = (opts: MeasuredOption[], f: number): MeasuredOption | undefined =>
    opts.find((o) => o.frequencyMhz === f);
  const est: number[] = [];
  for (const s of samples) {
    // Blocking power is per GPU: busy time and energy sum every stage (chunk) the GPU runs.
    let busyS = 0;
    let busyJ = 0;
    let known = s.stages.length > 0;
    for (const g of s.stages) {
      const st = profile.stages[g.stage];
      const fw = st && find(st.forward, g.forwardMhz);
      const bw = st && find(st.backward, g.backwardMhz);
      if (!fw || !bw) {
        known = false;
        break;
      }
      busyS += numMicrobatches * (fw.timeS + bw.timeS);
      busyJ += (numMicrobatches * (fw.energyJ + bw.energyJ)) / tpScale;
    }
    if (!known) continue;
    const idleS = s.timeS - busyS;
    if (idleS > 0.05 * s.timeS && s.energyJ > busyJ) est.push((s.energyJ - busyJ) / idleS);
  }
  if (est.length === 0) return undefined;
  est.sort((a, b) => a - b);
  return est[est.length >> 1]!;
}

/** The paper's blocking power for a known GPU model, else the fallback, W. */
export function knownBlockingPowerW(gpuModel: string): number {
  return KNOWN_BLOCKING_POWER_W.find(([re]) => re.test(gpuModel))?.[1] ?? FALLBACK_BLOCKING_POWER_W;
}
