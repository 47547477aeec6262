import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluatePlan, parseProfileCsv, scheduleOrder } from '@perseus/planner';
import { runPlan } from '../src/commands/plan';

// Two stages, three clocks; stage 1 is heavier, so stage 0 has slack to give back.
const csv = [
  'stage,instruction,frequency,time,energy',
  ...[0, 1].flatMap((s) =>
    [
      [1500, 1.0, 1.0],
      [1200, 1.2, 0.8],
      [900, 1.5, 0.7],
    ].flatMap(([f, tx, ex]) => [
      `${s},forward,${f},${0.02 * (1 + s) * tx!},${5 * (1 + s) * ex!}`,
      `${s},backward,${f},${0.04 * (1 + s) * tx!},${10 * (1 + s) * ex!}`,
    ]),
  ),
].join('\n');

describe('perseus plan', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'perseus-plan-'));
    writeFileSync(join(dir, 'p.csv'), csv);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes frontier.csv, plans.jsonl, both SVGs and lowtime files that agree with the emulator', async () => {
    const out = join(dir, 'out');
    const r = await runPlan({
      profile: join(dir, 'p.csv'),
      stages: 2,
      microbatches: 4,
      schedule: '1f1b',
      blockingPowerW: 60,
      unitTimeS: 1e-3,
      out,
      format: 'lowtime',
      lpBound: true,
    });
    const files = readdirSync(out);
    for (const f of [
      'frontier.csv',
      'plans.jsonl',
      'frontier.svg',
      'timeline.svg',
      'freqs_pipeline_00000.py',
    ])
      expect(files).toContain(f);
    const rows = readFileSync(join(out, 'frontier.csv'), 'utf8').trim().split('\n');
    expect(rows[0]).toBe('index,time_s,energy_j,model_energy_j');
    expect(rows).toHaveLength(r.frontier.points.length + 1);
    const input = {
      profile: parseProfileCsv(csv),
      pipeline: { schedule: '1f1b' as const, numStages: 2, numMicrobatches: 4 },
      blockingPowerW: 60,
      unitTimeS: 1e-3,
    };
    const plans = readFileSync(join(out, 'plans.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as { index: number; time_s: number; energy_j: number; stages: number[][] },
      );
    for (const p of plans) {
      const plan = p.stages.map((mhz, stage) => ({
        stage,
        instructions: scheduleOrder(input.pipeline, stage).map((x, j) => ({
          ...x,
          frequencyMhz: mhz[j]!,
        })),
      }));
      const e = evaluatePlan(input, plan);
      expect(e.timeS).toBeCloseTo(p.time_s, 12);
      expect(e.energyJ).toBeCloseTo(p.energy_j, 9);
    }
    expect(readFileSync(join(out, 'freqs_pipeline_00000.py'), 'utf8')).toMatch(
      /^\[\n\[\('forward', \d+\), /,
    );
    expect(readFileSync(join(out, 'frontier.svg'), 'utf8')).toContain('all-max clocks');
    expect(readFileSync(join(out, 'timeline.svg'), 'utf8')).toContain('stage 1');
    expect(r.summary).toMatch(/points, T .* intrinsic .* saving .* LP bound .* T\* /);
    expect(r.lpBoundJ).not.toBeNull();
    expect(r.frontier.intrinsic().point.energyJ).toBeGreaterThanOrEqual(r.lpBoundJ! - 1e-6);
  });

  it('rejects a profile whose stage count disagrees with --stages, naming the field', async () => {
    await expect(
      runPlan({
        profile: join(dir, 'p.csv'),
        stages: 3,
        microbatches: 2,
        schedule: '1f1b',
        blockingPowerW: 60,
        unitTimeS: 1e-3,
        out: join(dir, 'x'),
        format: 'perseus',
        lpBound: false,
      }),
    ).rejects.toThrow(/profile.stages/);
  });
});
