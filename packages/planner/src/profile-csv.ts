import { PlannerInputError } from './errors';
import type { InstructionKind, MeasuredOption, Profile } from './types';

const REQUIRED = ['instruction', 'frequency', 'time', 'energy'] as const;
const RANK_COLUMNS = ['rank', 'dp_rank', 'pp_rank', 'tp_rank'] as const;

/**
 * Parses a Zeus/Perseus profile CSV.
 *
 * - Stage level: `stage,instruction,frequency,time,energy` (time in s, energy in J, one microbatch
 *   on one GPU).
 * - Rank level: the same plus `rank,dp_rank,pp_rank,tp_rank` (the `stage` column may then be
 *   omitted; `pp_rank` is the stage). Ranks of one stage are merged per (instruction, frequency):
 *   time is the slowest rank's (the stage waits for it), energy the mean per GPU (the planner's
 *   energies are per GPU; docs/architecture.md §4.2 scales by DP·TP).
 *
 * Throws {@link PlannerInputError} naming the row (1-based, header excluded) and field for a missing
 * column, a non-numeric, NaN, negative or zero value, an unknown instruction, a duplicate row, or a
 * stage without forward or backward rows.
 */
export function parseProfileCsv(text: string): Profile {
  const lines = text.split(/\r?\n/);
  let li = 0;
  while (li < lines.length && lines[li]!.trim() === '') li++;
  if (li >= lines.length) throw new PlannerInputError('csv', 'is empty (expected a header row)');
  const header = lines[li]!.split(',').map((h) => h.trim().toLowerCase());
  const col = new Map(header.map((h, i) => [h, i]));
  for (const c of REQUIRED) {
    if (!col.has(c)) throw new PlannerInputError(`csv header`, `lacks column '${c}'`);
  }
  const rankLevel = RANK_COLUMNS.every((c) => col.has(c));
  if (!rankLevel && RANK_COLUMNS.some((c) => col.has(c))) {
    throw new PlannerInputError('csv header', `has some but not all of ${RANK_COLUMNS.join(',')}`);
  }
  if (!rankLevel && !col.has('stage'))
    throw new PlannerInputError('csv header', "lacks column 'stage'");

  // stage -> kind -> frequency -> per-rank measurements
  const cells = new Map<
    number,
    Map<InstructionKind, Map<number, Array<{ rank: string; timeS: number; energyJ: number }>>>
  >();
  let row = 0;
  for (li++; li < lines.length; li++) {
    const line = lines[li]!;
    if (line.trim() === '') continue;
    row++;
    const fields = line.split(',');
    const get = (name: string): string => {
      const idx = col.get(name);
      const v = idx === undefined ? undefined : fields[idx];
      if (v === undefined || v.trim() === '')
        throw new PlannerInputError(`row ${row} field '${name}'`, 'is missing');
      return v.trim();
    };
    const num = (name: string, rule: 'positive' | 'nonneg' | 'index'): number => {
      const raw = get(name);
      const v = Number(raw);
      const ok =
        Number.isFinite(v) &&
        (rule === 'positive' ? v > 0 : rule === 'nonneg' ? v >= 0 : Number.isInteger(v) && v >= 0);
      if (!ok) {
        const want =
          rule === 'positive'
            ? 'a positive number'
            : rule === 'nonneg'
              ? 'a non-negative number'
              : 'a non-negative integer';
        throw new PlannerInputError(`row ${row} field '${name}'`, `must be ${want}, got '${raw}'`);
      }
      return v;
    };
    let stage: number;
    let rank = '';
    if (rankLevel) {
      stage = num('pp_rank', 'index');
      if (col.has('stage') && num('stage', 'index') !== stage) {
        throw new PlannerInputError(`row ${row} field 'stage'`, `must equal pp_rank (${stage})`);
      }
      rank = `${num('rank', 'index')}/${num('dp_rank', 'index')}/${num('tp_rank', 'index')}`;
    } else {
      stage = num('stage', 'index');
    }
    const instruction = get('instruction');
    if (instruction !== 'forward' && instruction !== 'backward') {
      throw new PlannerInputError(
        `row ${row} field 'instruction'`,
        `must be 'forward' or 'backward', got '${instruction}'`,
      );
    }
    const frequency = num('frequency', 'positive');
    const timeS = num('time', 'positive');
    const energyJ = num('energy', 'nonneg');
    let byKind = cells.get(stage);
    if (!byKind) cells.set(stage, (byKind = new Map()));
    let byFreq = byKind.get(instruction);
    if (!byFreq) byKind.set(instruction, (byFreq = new Map()));
    let list = byFreq.get(frequency);
    if (!list) byFreq.set(frequency, (list = []));
    if (list.some((x) => x.rank === rank)) {
      throw new PlannerInputError(
        `row ${row}`,
        `duplicates stage ${stage} ${instruction} at ${frequency} MHz${rankLevel ? ` for rank ${rank}` : ''}`,
      );
    }
    list.push({ rank, timeS, energyJ });
  }
  if (cells.size === 0) throw new PlannerInputError('csv', 'has no data rows');
  const numStages = Math.max(...cells.keys()) + 1;
  const stages: Profile['stages'] = [];
  for (let s = 0; s < numStages; s++) {
    const byKind = cells.get(s);
    if (!byKind) throw new PlannerInputError(`stage ${s}`, 'has no rows (stages must be 0..N−1)');
    const out: Record<InstructionKind, MeasuredOption[]> = { forward: [], backward: [] };
    for (const kind of ['forward', 'backward'] as const) {
      const byFreq = byKind.get(kind);
      if (!byFreq) throw new PlannerInputError(`stage ${s} instruction '${kind}'`, 'has no rows');
      for (const [frequencyMhz, list] of [...byFreq].sort((a, b) => b[0] - a[0])) {
        let t = 0;
        let e = 0;
        for (const x of list) {
          t = Math.max(t, x.timeS);
          e += x.energyJ;
        }
        out[kind].push({ frequencyMhz, timeS: t, energyJ: e / list.length });
      }
    }
    stages.push(out);
  }
  return { stages };
}
