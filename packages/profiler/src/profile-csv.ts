/**
 * The Zeus/Perseus profile CSV formats (issue 5 §4), so offline profiles from Zeus/Merak feed the
 * optimizer and ours feed their tools:
 * - stage-level: `stage,instruction,frequency,time,energy` — time (s) and energy (J) of one
 *   microbatch on ONE GPU of the stage (sosp24 artifact semantics);
 * - rank-level: `rank,dp_rank,pp_rank,tp_rank,stage,instruction,frequency,time,energy` — one row
 *   per GPU.
 * Numbers are written with JavaScript's shortest round-trip form (what Python's repr writes too),
 * so an imported file exports to the same text.
 */
import {
  RANK_CSV_COLUMNS,
  readProfileCsvRows,
  STAGE_CSV_COLUMNS,
  type ProfileCsvRow,
} from '@perseus/planner';
import { Checker, SIZE_LIMITS, ValidationError } from '@perseus/service-kit';
import type { ProfileFormatName } from './types';

export { RANK_CSV_COLUMNS, STAGE_CSV_COLUMNS, type ProfileCsvRow };

/** Most rows one CSV may hold (the contract's profile-row limit). */
export const MAX_CSV_ROWS = SIZE_LIMITS.maxProfileRows;

/**
 * Parses a profile CSV of `format` with the planner's row reader (its rules) under the contract's
 * size limits. Throws a {@link ValidationError} on `field` naming the line and column of each
 * problem (`csv: line 4: time must be > 0, got -1`; at most 20, then "and N more").
 */
export function parseProfileCsv(
  text: string,
  format: ProfileFormatName,
  field = 'csv',
): ProfileCsvRow[] {
  const expected: readonly string[] = format === 'stage' ? STAGE_CSV_COLUMNS : RANK_CSV_COLUMNS;
  const read = readProfileCsvRows(text, {
    maxRows: MAX_CSV_ROWS,
    maxFrequencies: SIZE_LIMITS.maxFrequencies,
    maxStages: SIZE_LIMITS.maxStages,
    maxWorldSize: SIZE_LIMITS.maxWorldSize,
    maxDegree: SIZE_LIMITS.maxDegree,
    maxFrequencyMhz: SIZE_LIMITS.maxFrequencyMhz,
  });
  if (read.format !== format) {
    throw ValidationError.field(
      field,
      `header must be ${expected.join(',')}, got ${JSON.stringify(read.header.join(',').slice(0, 200))}`,
    );
  }
  const c = new Checker();
  for (const p of read.problems) c.fail(field, `line ${p.line}: ${p.message}`);
  if (c.ok && read.rows.length === 0) c.fail(field, 'has no data rows');
  c.done();
  return read.rows;
}

/** Zeus order: stage (or rank) ascending, frequency descending, forward before backward. */
export function compareCsvRows(a: ProfileCsvRow, b: ProfileCsvRow): number {
  return (
    a.rank - b.rank ||
    a.stage - b.stage ||
    b.frequencyMhz - a.frequencyMhz ||
    (a.instruction === b.instruction ? 0 : a.instruction === 'forward' ? -1 : 1)
  );
}

/** Writes rows as a profile CSV (header + one line per row, Zeus order, trailing newline). */
export function formatProfileCsv(
  rows: readonly ProfileCsvRow[],
  format: ProfileFormatName,
): string {
  const sorted = [...rows].sort(compareCsvRows);
  const out: string[] = [(format === 'stage' ? STAGE_CSV_COLUMNS : RANK_CSV_COLUMNS).join(',')];
  for (const r of sorted) {
    const tail = `${r.stage},${r.instruction},${r.frequencyMhz},${String(r.timeS)},${String(r.energyJ)}`;
    out.push(format === 'stage' ? tail : `${r.rank},${r.dpRank},${r.ppRank},${r.tpRank},${tail}`);
  }
  return `${out.join('\n')}\n`;
}
