/**
 * The one row-level reader of the Zeus/Perseus profile CSV formats (docs/architecture.md §4.2),
 * shared by the planner (which merges rows into a {@link Profile}), the profiler (import) and the
 * GPU agent (simulated profile tables). Callers turn the structured problems into their own errors.
 *
 * - stage level: `stage,instruction,frequency,time,energy` — time (s) and energy (J) of one
 *   microbatch on ONE GPU of the stage;
 * - rank level: the same plus `rank,dp_rank,pp_rank,tp_rank`, one row per GPU (`stage` may be
 *   omitted: `pp_rank` is the stage; when present it must equal `pp_rank`).
 *
 * Rules: columns are found by name (case-insensitive, any order); every data row has as many fields
 * as the header; stage and rank fields are decimal non-negative integers; frequency a decimal
 * integer ≥ 1 (MHz); time a finite number > 0; energy a finite number ≥ 0; instruction `forward` or
 * `backward`; no two rows for the same (rank, stage, instruction, frequency). Blank lines are
 * skipped.
 */
import type { InstructionKind } from './types';

export type ProfileCsvFormat = 'stage' | 'rank';

export const STAGE_CSV_COLUMNS = ['stage', 'instruction', 'frequency', 'time', 'energy'] as const;
export const RANK_CSV_COLUMNS = [
  'rank',
  'dp_rank',
  'pp_rank',
  'tp_rank',
  ...STAGE_CSV_COLUMNS,
] as const;
const REQUIRED = ['instruction', 'frequency', 'time', 'energy'] as const;
const RANK_ONLY = ['rank', 'dp_rank', 'pp_rank', 'tp_rank'] as const;

/** One parsed CSV row. For stage-level rows the rank fields are -1. */
export interface ProfileCsvRow {
  rank: number;
  dpRank: number;
  ppRank: number;
  tpRank: number;
  stage: number;
  instruction: InstructionKind;
  frequencyMhz: number;
  timeS: number;
  energyJ: number;
}

/** One problem: where (1-based file line and data row, 0 for the header) and what. */
export interface ProfileCsvProblem {
  line: number;
  row: number;
  /** The column at fault; `header` for the header row, absent for a whole-row problem. */
  field?: string;
  message: string;
}

/** Optional limits (the services pass the wire contract's). Exclusive upper bounds. */
export interface ProfileCsvLimits {
  maxRows?: number;
  maxFrequencies?: number;
  maxStages?: number;
  maxWorldSize?: number;
  maxDegree?: number;
  maxFrequencyMhz?: number;
}

export interface ProfileCsvRows {
  /** Detected from the header; undefined when the header is unusable. */
  format: ProfileCsvFormat | undefined;
  /** The header's column names as written (trimmed). */
  header: string[];
  rows: ProfileCsvRow[];
  /** Every problem found, in file order (empty when the text is valid). */
  problems: ProfileCsvProblem[];
}

/** Reads the rows of a profile CSV. Never throws: problems are returned for the caller to report. */
export function readProfileCsvRows(text: string, limits: ProfileCsvLimits = {}): ProfileCsvRows {
  const lines = text.split(/\r?\n/);
  const problems: ProfileCsvProblem[] = [];
  const rows: ProfileCsvRow[] = [];
  let li = 0;
  while (li < lines.length && lines[li]!.trim() === '') li++;
  const header = (lines[li] ?? '').split(',').map((h) => h.trim());
  const headerLine = li + 1;
  const col = new Map(header.map((h, i) => [h.toLowerCase(), i]));
  const headerProblem = (message: string): ProfileCsvRows => {
    problems.push({ line: headerLine, row: 0, field: 'header', message });
    return { format: undefined, header, rows, problems };
  };
  if (li >= lines.length) return headerProblem('is empty (expected a header row)');
  for (const c of REQUIRED) if (!col.has(c)) return headerProblem(`lacks column '${c}'`);
  const format: ProfileCsvFormat = RANK_ONLY.every((c) => col.has(c)) ? 'rank' : 'stage';
  if (format === 'stage' && RANK_ONLY.some((c) => col.has(c)))
    return headerProblem(`has some but not all of ${RANK_ONLY.join(',')}`);
  if (format === 'stage' && !col.has('stage')) return headerProblem("lacks column 'stage'");

  const seen = new Set<string>();
  const frequencies = new Set<number>();
  let row = 0;
  for (li++; li < lines.length; li++) {
    const raw = lines[li]!;
    if (raw.trim() === '') continue;
    row++;
    const line = li + 1;
    const fail = (message: string, field?: string): void => {
      problems.push(field === undefined ? { line, row, message } : { line, row, field, message });
    };
    if (limits.maxRows !== undefined && rows.length >= limits.maxRows) {
      fail(`more than ${limits.maxRows} rows`);
      break;
    }
    const fields = raw.split(',').map((f) => f.trim());
    if (fields.length !== header.length) {
      fail(`expected ${header.length} columns, got ${fields.length}`);
      continue;
    }
    const before = problems.length;
    const get = (name: string): string => fields[col.get(name)!]!;
    const int = (name: string, below: number | undefined): number => {
      const s = get(name);
      const v = /^\d{1,9}$/.test(s) ? Number(s) : NaN;
      if (Number.isNaN(v))
        fail(`${name} must be a non-negative integer, got ${JSON.stringify(s.slice(0, 64))}`, name);
      else if (below !== undefined && v >= below)
        fail(`${name} must be < ${below}, got ${v}`, name);
      return v;
    };
    const num = (name: string, positive: boolean): number => {
      const s = get(name);
      const v = s === '' ? NaN : Number(s);
      if (!Number.isFinite(v))
        fail(`${name} must be a finite number, got ${JSON.stringify(s)}`, name);
      else if (positive ? !(v > 0) : v < 0)
        fail(`${name} must be ${positive ? '> 0' : '≥ 0'}, got ${s}`, name);
      return v;
    };
    const rank = format === 'rank';
    const r = {
      rank: rank ? int('rank', limits.maxWorldSize) : -1,
      dpRank: rank ? int('dp_rank', limits.maxDegree) : -1,
      ppRank: rank ? int('pp_rank', limits.maxStages) : -1,
      tpRank: rank ? int('tp_rank', limits.maxDegree) : -1,
      stage: col.has('stage') ? int('stage', limits.maxStages) : NaN,
    };
    if (!col.has('stage')) r.stage = r.ppRank;
    else if (rank && !Number.isNaN(r.stage) && !Number.isNaN(r.ppRank) && r.ppRank !== r.stage)
      fail(`pp_rank must equal stage, got pp_rank ${r.ppRank} and stage ${r.stage}`, 'stage');
    const instruction = get('instruction');
    if (instruction !== 'forward' && instruction !== 'backward')
      fail(
        `instruction must be forward or backward, got ${JSON.stringify(instruction)}`,
        'instruction',
      );
    const maxMhz = limits.maxFrequencyMhz;
    const frequencyMhz = int('frequency', maxMhz === undefined ? undefined : maxMhz + 1);
    if (frequencyMhz === 0) fail('frequency must be ≥ 1, got 0', 'frequency');
    const timeS = num('time', true);
    const energyJ = num('energy', false);
    if (problems.length > before) continue;
    const parsed: ProfileCsvRow = {
      ...r,
      instruction: instruction as InstructionKind,
      frequencyMhz,
      timeS,
      energyJ,
    };
    frequencies.add(frequencyMhz);
    if (limits.maxFrequencies !== undefined && frequencies.size > limits.maxFrequencies) {
      fail(`more than ${limits.maxFrequencies} distinct frequencies`);
      break;
    }
    const key = `${parsed.rank}/${parsed.stage}/${instruction}/${frequencyMhz}`;
    if (seen.has(key)) {
      fail(
        `duplicate row for ${rank ? `rank ${parsed.rank}, ` : ''}stage ${parsed.stage}, ${instruction}, ${frequencyMhz} MHz`,
      );
      continue;
    }
    seen.add(key);
    rows.push(parsed);
  }
  return { format, header, rows, problems };
}
