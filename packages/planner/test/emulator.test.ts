import {
  evaluatePlan,
  planTimeline,
  scheduleOrder,
  type PlannerInput,
  type StagePlan,
} from '../src';

// Hand-computed: N=2, M=3, one clock (1000 MHz). Stage 0: F=1 s, B=3 s; stage 1: F=2 s, B=2 s.
// Every instruction draws 10 W (e = 10·t); blocking power 2 W. Σt = 24 s, Σe = 240 J.
const one = (timeS: number) => [{ frequencyMhz: 1000, timeS, energyJ: 10 * timeS }];
const profile = {
  stages: [
    { forward: one(1), backward: one(3) },
    { forward: one(2), backward: one(2) },
  ],
};

function allAt1000(input: PlannerInput): StagePlan[] {
  return [0, 1].map((stage) => ({
    stage,
    instructions: scheduleOrder(input.pipeline, stage).map((x) => ({ ...x, frequencyMhz: 1000 })),
  }));
}

describe('scheduleOrder', () => {
  const fmt = (schedule: '1f1b' | 'gpipe', n: number, m: number, s: number): string =>
    scheduleOrder({ schedule, numStages: n, numMicrobatches: m }, s)
      .map((x) => `${x.kind[0]!.toUpperCase()}${x.microbatch}`)
      .join(' ');
  it.each([
    ['1f1b', 4, 6, 0, 'F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5'],
    ['1f1b', 4, 6, 3, 'F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5'],
    ['1f1b', 4, 2, 0, 'F0 F1 B0 B1'],
    ['1f1b', 2, 3, 0, 'F0 F1 B0 F2 B1 B2'],
    ['gpipe', 2, 3, 1, 'F0 F1 F2 B0 B1 B2'],
  ] as const)('%s N=%i M=%i stage %i', (schedule, n, m, s, want) => {
    expect(fmt(schedule, n, m, s)).toBe(want);
  });
});

describe('evaluatePlan (docs/architecture.md §4.2)', () => {
  it.each([
    // 1F1B: S1B2 ends at 13, then S0B2 runs [13, 16].
    ['1f1b', 16, 240 + 2 * (2 * 16 - 24)],
    // GPipe: stage 0's backwards wait for stage 1's: S0B2 runs [15, 18].
    ['gpipe', 18, 240 + 2 * (2 * 18 - 24)],
  ] as const)('%s: T=%d s, E=%d J (hand-computed)', (schedule, timeS, energyJ) => {
    const input: PlannerInput = {
      profile,
      pipeline: { schedule, numStages: 2, numMicrobatches: 3 },
      blockingPowerW: 2,
      unitTimeS: 0.1,
    };
    const r = evaluatePlan(input, allAt1000(input));
    expect(r.timeS).toBeCloseTo(timeS, 12);
    expect(r.energyJ).toBeCloseTo(energyJ, 9);
  });

  it('places 1F1B instructions where the hand schedule does', () => {
    const input: PlannerInput = {
      profile,
      pipeline: { schedule: '1f1b', numStages: 2, numMicrobatches: 3 },
      blockingPowerW: 2,
      unitTimeS: 0.1,
    };
    const tl = planTimeline(input, allAt1000(input));
    expect(tl[0]!.map((e) => [e.startS, e.endS])).toEqual([
      [0, 1],
      [1, 2],
      [5, 8],
      [8, 9],
      [9, 12],
      [13, 16],
    ]);
    expect(tl[1]!.map((e) => [e.startS, e.endS])).toEqual([
      [1, 3],
      [3, 5],
      [5, 7],
      [7, 9],
      [9, 11],
      [11, 13],
    ]);
  });

  it('uses each instruction’s own clock', () => {
    const two = (t: number) => [
      { frequencyMhz: 1000, timeS: t, energyJ: 10 * t },
      { frequencyMhz: 500, timeS: 2 * t, energyJ: 6 * t },
    ];
    const p2 = {
      stages: [
        { forward: two(1), backward: two(3) },
        { forward: two(2), backward: two(2) },
      ],
    };
    const input: PlannerInput = {
      profile: p2,
      pipeline: { schedule: '1f1b', numStages: 2, numMicrobatches: 3 },
      blockingPowerW: 2,
      unitTimeS: 0.1,
    };
    const plan = allAt1000(input);
    // Slow S0's last backward (B2) to 500 MHz: it runs [13, 19] → T = 19, Σt = 27, Σe = 240 − 30 + 18.
    plan[0]!.instructions[5]!.frequencyMhz = 500;
    const r = evaluatePlan(input, plan);
    expect(r.timeS).toBeCloseTo(19, 12);
    expect(r.energyJ).toBeCloseTo(228 + 2 * (38 - 27), 9);
  });

  it.each([
    [
      'an unmeasured clock',
      (p: StagePlan[]) => (p[1]!.instructions[0]!.frequencyMhz = 1234),
      'plan[1].instructions[0].frequency_mhz',
    ],
    ['a wrong order', (p: StagePlan[]) => p[0]!.instructions.reverse(), 'plan[0].instructions[0]'],
    ['a missing stage', (p: StagePlan[]) => p.pop(), 'plan'],
  ])('rejects %s naming the field', (_name, mutate, field) => {
    const input: PlannerInput = {
      profile,
      pipeline: { schedule: '1f1b', numStages: 2, numMicrobatches: 3 },
      blockingPowerW: 2,
      unitTimeS: 0.1,
    };
    const plan = allAt1000(input);
    mutate(plan);
    expect(() => evaluatePlan(input, plan)).toThrow(expect.objectContaining({ field }));
  });
});
