import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  evaluatePlan,
  parsePlansJsonl,
  parseProfileCsv,
  scheduleOrder,
  type PlannerInput,
} from '@perseus/planner';
import { runPlan } from '../src/commands/plan';

// Four virtual stages (2 GPUs × 2 chunks), three clocks; later virtual stages are heavier.
const csv = [
  'stage,instruction,frequency,time,energy',
  ...[0, 1, 2, 3].flatMap((s) =>
    [
      [1500, 1.0, 1.0],
      [1200, 1.2, 0.8],
      [900, 1.5, 0.7],
    ].flatMap(([f, tx, ex]) => [
      `${s},forward,${f},${0.02 * (1 + s / 2) * tx!},${5 * (1 + s / 2) * ex!}`,
      `${s},backward,${f},${0.04 * (1 + s / 2) * tx!},${10 * (1 + s / 2) * ex!}`,
    ]),
  ),
].join('\n');

describe('perseus plan --schedule interleaved', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'perseus-plan-il-'));
    writeFileSync(join(dir, 'p.csv'), csv);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('plans 2 GPUs × 2 chunks from a 4-stage profile; plans.jsonl agrees with the emulator', async () => {
    const out = join(dir, 'out');
    const r = await runPlan({
      profile: join(dir, 'p.csv'),
      microbatches: 4,
      schedule: 'interleaved',
      chunks: 2,
      blockingPowerW: 60,
      unitTimeS: 1e-3,
      out,
      format: 'perseus',
      lpBound: false,
      exactBudgetS: 20,
    });
    // The exact polish ran on the intrinsic plan and the summary certifies it.
    expect(r.exact).not.toBeNull();
    expect(r.exact!.point).toEqual(r.frontier.intrinsic().point);
    expect(r.exact!.gapPp).toBeGreaterThanOrEqual(0);
    expect(r.summary).toMatch(/certified gap \d+\.\d{3} pp \(exact polish/);
    const input: PlannerInput = {
      profile: parseProfileCsv(csv),
      pipeline: { schedule: 'interleaved', numStages: 2, numMicrobatches: 4, numChunks: 2 },
      blockingPowerW: 60,
      unitTimeS: 1e-3,
    };
    const lines = parsePlansJsonl(readFileSync(join(out, 'plans.jsonl'), 'utf8'));
    expect(lines).toHaveLength(r.frontier.points.length);
    for (const p of lines) {
      expect(p.stages).toHaveLength(2);
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
    expect(r.frontier.intrinsic().plan[0]!.instructions[0]).toMatchObject({ chunk: 0 });
    expect(r.summary).toMatch(/saving/);
  });

  it.each([
    ['M not a multiple of N', 3, 'perseus', /num_microbatches/],
    ['the lowtime format', 4, 'lowtime', /lowtime/],
  ] as const)('refuses %s', async (_name, microbatches, format, message) => {
    await expect(
      runPlan({
        profile: join(dir, 'p.csv'),
        microbatches,
        schedule: 'interleaved',
        chunks: 2,
        blockingPowerW: 60,
        unitTimeS: 1e-3,
        out: join(dir, 'x'),
        format,
        lpBound: false,
      }),
    ).rejects.toThrow(message);
  });
});
