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
import { Checker, SIZE_LIMITS, ValidationError } from '@perseus/service-kit';
import type { Instruction, ProfileFormatName } from './types';

export const STAGE_CSV_COLUMNS = ['stage', 'instruction', 'frequency', 'time', 'energy'] as const;
export const RANK_CSV_COLUMNS = [
  'rank',
  'dp_rank',
  'pp_rank',
  'tp_rank',
  ...STAGE_CSV_COLUMNS,
] as const;

/** One parsed CSV row. For stage-level rows the rank fields are -1. */
export interface ProfileCsvRow {
  rank: number;
  dpRank: number;
  ppRank: number;
  tpRank: number;
  stage: number;
  instruction: Instruction;
  frequencyMhz: number;
  timeS: number;
  energyJ: number;
}

/** Most rows one CSV may hold (the contract's profile-row limit). */
export const MAX_CSV_ROWS = SIZE_LIMITS.maxProfileRows;

/**
 * Parses a profile CSV with a header row. Throws a {@link ValidationError} on `field` naming the
 * line and column of each problem (`csv: line 4: time must be > 0, got -1`).
 */
export function parseProfileCsv(
  text: string,
  format: ProfileFormatName,
  field = 'csv',
): ProfileCsvRow[] {
  const expected: readonly string[] = format === 'stage' ? STAGE_CSV_COLUMNS : RANK_CSV_COLUMNS;
  const lines = text.split(/\r?\n/);
  // Violations are capped by the Checker (20, then "and N more").
  const c = new Checker();
  const fail = (line: number, msg: string): void => c.fail(field, `line ${line}: ${msg}`);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  if (header.join(',') !== expected.join(',')) {
    throw ValidationError.field(
      field,
      `header must be ${expected.join(',')}, got ${JSON.stringify((lines[0] ?? '').slice(0, 200))}`,
    );
  }
  const rows: ProfileCsvRow[] = [];
  const seen = new Set<string>();
  const frequencies = new Set<number>();
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    const lineNo = i + 1;
    if (rows.length >= MAX_CSV_ROWS) {
      fail(lineNo, `more than ${MAX_CSV_ROWS} rows`);
      break;
    }
    const cols = raw.split(',').map((c) => c.trim());
    if (cols.length !== expected.length) {
      fail(lineNo, `expected ${expected.length} columns, got ${cols.length}`);
      continue;
    }
    const get = (name: string): string => cols[expected.indexOf(name)]!;
    const int = (name: string, below: number): number => {
      const s = get(name);
      const v = /^\d{1,9}$/.test(s) ? Number(s) : NaN;
      if (Number.isNaN(v))
        fail(
          lineNo,
          `${name} must be a non-negative integer, got ${JSON.stringify(s.slice(0, 64))}`,
        );
      else if (v >= below) fail(lineNo, `${name} must be < ${below}, got ${v}`);
      return v;
    };
    const num = (name: string, positive: boolean): number => {
      const s = get(name);
      const v = s === '' ? NaN : Number(s);
      if (!Number.isFinite(v))
        fail(lineNo, `${name} must be a finite number, got ${JSON.stringify(s)}`);
      else if (positive ? !(v > 0) : v < 0)
        fail(lineNo, `${name} must be ${positive ? '> 0' : '≥ 0'}, got ${s}`);
      return v;
    };
    const instr = get('instruction');
    if (instr !== 'forward' && instr !== 'backward')
      fail(lineNo, `instruction must be forward or backward, got ${JSON.stringify(instr)}`);
    const row: ProfileCsvRow = {
      rank: format === 'rank' ? int('rank', SIZE_LIMITS.maxWorldSize) : -1,
      dpRank: format === 'rank' ? int('dp_rank', SIZE_LIMITS.maxDegree) : -1,
      ppRank: format === 'rank' ? int('pp_rank', SIZE_LIMITS.maxStages) : -1,
      tpRank: format === 'rank' ? int('tp_rank', SIZE_LIMITS.maxDegree) : -1,
      stage: int('stage', SIZE_LIMITS.maxStages),
      instruction: instr as Instruction,
      frequencyMhz: int('frequency', SIZE_LIMITS.maxFrequencyMhz + 1),
      timeS: num('time', true),
      energyJ: num('energy', false),
    };
    if (format === 'rank' && row.ppRank !== row.stage && !Number.isNaN(row.stage)) {
      fail(lineNo, `pp_rank must equal stage, got pp_rank ${row.ppRank} and stage ${row.stage}`);
    }
    if (row.frequencyMhz === 0) fail(lineNo, 'frequency must be ≥ 1, got 0');
    const key = `${row.rank}/${row.stage}/${row.instruction}/${row.frequencyMhz}`;
    frequencies.add(row.frequencyMhz);
    if (frequencies.size > SIZE_LIMITS.maxFrequencies) {
      fail(lineNo, `more than ${SIZE_LIMITS.maxFrequencies} distinct frequencies`);
      break;
    }
    if (seen.has(key))
      fail(
        lineNo,
        `duplicate row for ${format === 'rank' ? `rank ${row.rank}, ` : ''}stage ${row.stage}, ${instr}, ${row.frequencyMhz} MHz`,
      );
    seen.add(key);
    rows.push(row);
  }
  if (c.ok && rows.length === 0) c.fail(field, 'has no data rows');
  c.done();
  return rows;
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
