import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatProfileCsv, parseProfileCsv } from '../src/profile-csv';
import { REFERENCE_PROFILE_DIR, thrownViolations } from '@perseus/service-kit';

const FILES = ['gpt3-175b+a100_sxm_bf16.csv', 'gpt3-175b+a40_bf16.csv'];

/** The thrown violations as `field: description` lines. */
function violations(fn: () => unknown): string[] {
  return thrownViolations(fn).map(([field, description]) => `${field}: ${description}`);
}

describe('Zeus stage-level CSV', () => {
  it.each(FILES)('%s parses and formats back to the same text', (file) => {
    const text = fs.readFileSync(path.join(REFERENCE_PROFILE_DIR, file), 'utf8');
    const rows = parseProfileCsv(text, 'stage');
    expect(rows).toHaveLength(text.trim().split('\n').length - 1);
    expect(new Set(rows.map((r) => r.stage))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7]));
    // The artifact files use CRLF; we write LF. Every number and the row order are identical.
    const lf = text.replace(/\r\n/g, '\n');
    expect(formatProfileCsv(rows, 'stage')).toBe(lf.endsWith('\n') ? lf : `${lf}\n`);
  });

  it('a100 first row has the artifact values', () => {
    const rows = parseProfileCsv(
      fs.readFileSync(path.join(REFERENCE_PROFILE_DIR, FILES[0]!), 'utf8'),
      'stage',
    );
    expect(rows[0]).toEqual({
      rank: -1,
      dpRank: -1,
      ppRank: -1,
      tpRank: -1,
      stage: 0,
      instruction: 'forward',
      frequencyMhz: 1410,
      timeS: 0.05016166687011708,
      energyJ: 23.80547200000007,
    });
    expect(rows.filter((r) => r.stage === 0 && r.instruction === 'forward')).toHaveLength(38);
  });

  it('rank-level rows round-trip', () => {
    const text =
      'rank,dp_rank,pp_rank,tp_rank,stage,instruction,frequency,time,energy\n0,0,0,0,0,forward,1410,0.05,20\n1,0,0,1,0,forward,1410,0.051,21.5\n';
    const rows = parseProfileCsv(text, 'rank');
    expect(rows[1]).toMatchObject({
      rank: 1,
      dpRank: 0,
      ppRank: 0,
      tpRank: 1,
      timeS: 0.051,
      energyJ: 21.5,
    });
    expect(formatProfileCsv(rows, 'rank')).toBe(text);
  });

  it.each([
    [
      'wrong header',
      'stage,instr,frequency,time,energy\n0,forward,1410,1,1',
      'stage',
      'csv: header must be stage,instruction,frequency,time,energy, got "stage,instr,frequency,time,energy"',
    ],
    ['no rows', 'stage,instruction,frequency,time,energy\n', 'stage', 'csv: has no data rows'],
    [
      'negative time',
      'stage,instruction,frequency,time,energy\n0,forward,1410,-1,1',
      'stage',
      'csv: line 2: time must be > 0, got -1',
    ],
    [
      'NaN energy',
      'stage,instruction,frequency,time,energy\n0,forward,1410,1,nan',
      'stage',
      'csv: line 2: energy must be a finite number, got "nan"',
    ],
    [
      'infinite time',
      'stage,instruction,frequency,time,energy\n0,forward,1410,Infinity,1',
      'stage',
      'csv: line 2: time must be a finite number, got "Infinity"',
    ],
    [
      'bad instruction',
      'stage,instruction,frequency,time,energy\n0,fwd,1410,1,1',
      'stage',
      'csv: line 2: instruction must be forward or backward, got "fwd"',
    ],
    [
      'column count',
      'stage,instruction,frequency,time,energy\n0,forward,1410,1',
      'stage',
      'csv: line 2: expected 5 columns, got 4',
    ],
    [
      'bad stage',
      'stage,instruction,frequency,time,energy\n-1,forward,1410,1,1',
      'stage',
      'csv: line 2: stage must be a non-negative integer, got "-1"',
    ],
    [
      'zero clock',
      'stage,instruction,frequency,time,energy\n0,forward,0,1,1',
      'stage',
      'csv: line 2: frequency must be ≥ 1, got 0',
    ],
    [
      'duplicate',
      'stage,instruction,frequency,time,energy\n0,forward,1410,1,1\n0,forward,1410,2,2',
      'stage',
      'csv: line 3: duplicate row for stage 0, forward, 1410 MHz',
    ],
    [
      'pp_rank ≠ stage',
      'rank,dp_rank,pp_rank,tp_rank,stage,instruction,frequency,time,energy\n0,0,1,0,0,forward,1410,1,1',
      'rank',
      'csv: line 2: pp_rank must equal stage, got pp_rank 1 and stage 0',
    ],
  ] as const)('rejects %s', (_name, text, format, expected) => {
    expect(violations(() => parseProfileCsv(text, format))).toEqual([expected]);
  });
});
