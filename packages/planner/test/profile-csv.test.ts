import {
  computeFrontier,
  parseProfileCsv,
  PlannerInputError,
  readProfileCsvRows,
  validatePlannerInput,
  type PlannerInput,
} from '../src';

const header = 'stage,instruction,frequency,time,energy';
const good = [
  header,
  '0,forward,1410,0.05,20',
  '0,backward,1410,0.1,40',
  '1,forward,1410,0.06,22',
  '1,backward,1410,0.11,41',
];

describe('parseProfileCsv', () => {
  it('parses the stage-level format', () => {
    const p = parseProfileCsv(good.join('\n') + '\n');
    expect(p.stages).toHaveLength(2);
    expect(p.stages[1]!.backward).toEqual([{ frequencyMhz: 1410, timeS: 0.11, energyJ: 41 }]);
  });

  it('merges the rank-level format per stage: slowest rank time, mean energy per GPU', () => {
    const rows = [
      'rank,dp_rank,pp_rank,tp_rank,stage,instruction,frequency,time,energy',
      '0,0,0,0,0,forward,1410,0.05,20',
      '1,0,0,1,0,forward,1410,0.07,30',
      '0,0,0,0,0,backward,1410,0.1,40',
      '1,0,0,1,0,backward,1410,0.1,44',
    ];
    const p = parseProfileCsv(rows.join('\n'));
    expect(p.stages[0]!.forward).toEqual([{ frequencyMhz: 1410, timeS: 0.07, energyJ: 25 }]);
    expect(p.stages[0]!.backward[0]!.energyJ).toBe(42);
  });

  it.each([
    ['a missing column', ['stage,instruction,frequency,time', '0,forward,1,1'], 'csv header'],
    ['NaN time', [header, '0,forward,1410,NaN,20'], "row 1 field 'time'"],
    ['zero time', [header, '0,forward,1410,0,20'], "row 1 field 'time'"],
    ['negative energy', [header, '0,forward,1410,0.1,-1'], "row 1 field 'energy'"],
    ['an empty field', [header, '0,forward,,0.1,1'], "row 1 field 'frequency'"],
    ['a fractional stage', [header, '0.5,forward,1410,0.1,1'], "row 1 field 'stage'"],
    ['an unknown instruction', [header, '0,sideways,1410,0.1,1'], "row 1 field 'instruction'"],
    ['a duplicate row', [...good, '1,backward,1410,0.2,41'], 'row 5'],
    ['a missing instruction', [header, '0,forward,1410,0.1,1'], "stage 0 instruction 'backward'"],
    ['a missing stage', [header, '1,forward,1410,0.1,1', '1,backward,1410,0.1,1'], 'stage 0'],
    ['no rows', [header], 'csv'],
  ])('rejects %s, naming the row and field', (_name, lines, field) => {
    let err: unknown;
    try {
      parseProfileCsv(lines.join('\n'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlannerInputError);
    expect((err as PlannerInputError).field).toBe(field);
  });
});

describe('validatePlannerInput', () => {
  const base = (): PlannerInput => ({
    profile: parseProfileCsv(good.join('\n')),
    pipeline: { schedule: '1f1b', numStages: 2, numMicrobatches: 4 },
    blockingPowerW: 60,
    unitTimeS: 1e-3,
  });
  it.each([
    ['pipeline.num_stages', (i: PlannerInput) => (i.pipeline.numStages = 0)],
    ['pipeline.num_microbatches', (i: PlannerInput) => (i.pipeline.numMicrobatches = 1.5)],
    [
      'pipeline.schedule',
      (i: PlannerInput) => ((i.pipeline as { schedule: string }).schedule = 'zb'),
    ],
    ['blocking_power_w', (i: PlannerInput) => (i.blockingPowerW = Number.NaN)],
    ['unit_time_s', (i: PlannerInput) => (i.unitTimeS = 0)],
    ['profile.stages', (i: PlannerInput) => i.profile.stages.pop()],
    ['profile.stages[1].forward', (i: PlannerInput) => (i.profile.stages[1]!.forward = [])],
    [
      'profile.stages[0].backward[0].time_s',
      (i: PlannerInput) => (i.profile.stages[0]!.backward[0]!.timeS = -1),
    ],
    [
      'profile.stages[0].forward[1].frequency_mhz',
      (i: PlannerInput) =>
        i.profile.stages[0]!.forward.push({ ...i.profile.stages[0]!.forward[0]! }),
    ],
  ])('rejects bad %s', (field, mutate) => {
    const input = base();
    mutate(input);
    expect(() => validatePlannerInput(input)).toThrow(expect.objectContaining({ field }));
    expect(() => computeFrontier(input)).toThrow(PlannerInputError);
  });
});

describe('readProfileCsvRows (the one row reader the services share)', () => {
  it('finds columns by name in any order, takes the stage from pp_rank when absent', () => {
    const read = readProfileCsvRows(
      'TIME,energy,instruction,frequency,pp_rank,tp_rank,dp_rank,rank\n0.5,0,backward,1410,2,1,0,3\n',
    );
    expect(read.problems).toEqual([]);
    expect(read.format).toBe('rank');
    expect(read.rows).toEqual([
      {
        rank: 3,
        dpRank: 0,
        ppRank: 2,
        tpRank: 1,
        stage: 2,
        instruction: 'backward',
        frequencyMhz: 1410,
        timeS: 0.5,
        energyJ: 0,
      },
    ]);
  });

  it('reports every problem with its line, row and field, and keeps only good rows', () => {
    const read = readProfileCsvRows(
      [header, '', '0,forward,1410.5,0.1,1', '0,forward,1410,0.1', '0,backward,1410,0.1,1'].join(
        '\n',
      ),
      { maxFrequencyMhz: 2000 },
    );
    expect(read.problems).toEqual([
      {
        line: 3,
        row: 1,
        field: 'frequency',
        message: 'frequency must be a non-negative integer, got "1410.5"',
      },
      { line: 4, row: 2, message: 'expected 5 columns, got 4' },
    ]);
    expect(read.rows.map((r) => r.instruction)).toEqual(['backward']);
  });

  it('applies the limits it is given', () => {
    const read = readProfileCsvRows([header, '0,forward,2100,0.1,1'].join('\n'), {
      maxFrequencyMhz: 2000,
    });
    expect(read.problems.map((p) => p.message)).toEqual(['frequency must be < 2001, got 2100']);
  });
});
