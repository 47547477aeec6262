import { PlannerInputError } from './errors';
import { readProfileCsvRows } from './profile-csv-rows';
import type { InstructionKind, MeasuredOption, Profile } from './types';

/**
 * Parses a Zeus/Perseus profile CSV into the planner's per-stage profile (rows are read by
 * {@link readProfileCsvRows}, whose rules apply).
 *
 * - Stage level: `stage,instruction,frequency,time,energy` (time in s, energy in J, one microbatch
 *   on one GPU).
 * - Rank level: the same plus `rank,dp_rank,pp_rank,tp_rank` (the `stage` column may then be
 *   omitted; `pp_rank` is the stage). Ranks of one stage are merged per (instruction, frequency):
 *   time is the slowest rank's (the stage waits for it), energy the mean per GPU (the planner's
 *   energies are per GPU; docs/architecture.md §4.2 scales by DP·TP).
 *
 * Throws {@link PlannerInputError} naming the row (1-based, header excluded) and field of the first
 * problem the row reader found (`csv header` for the header), or a stage without forward or
 * backward rows.
 */
export function parseProfileCsv(text: string): Profile {
  const { rows, problems } = readProfileCsvRows(text);
  const first = problems[0];
  if (first !== undefined) {
    if (first.row === 0) throw new PlannerInputError('csv header', first.message);
    const where = `row ${first.row}${first.field === undefined ? '' : ` field '${first.field}'`}`;
    throw new PlannerInputError(where, first.message);
  }
  // stage -> kind -> frequency -> per-rank measurements
  const cells = new Map<
    number,
    Map<InstructionKind, Map<number, Array<{ timeS: number; energyJ: number }>>>
  >();
  for (const r of rows) {
    let byKind = cells.get(r.stage);
    if (!byKind) cells.set(r.stage, (byKind = new Map()));
    let byFreq = byKind.get(r.instruction);
    if (!byFreq) byKind.set(r.instruction, (byFreq = new Map()));
    let list = byFreq.get(r.frequencyMhz);
    if (!list) byFreq.set(r.frequencyMhz, (list = []));
    list.push({ timeS: r.timeS, energyJ: r.energyJ });
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
