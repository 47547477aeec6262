import {
  computeFrontier,
  decodePlanLines,
  evaluatePlan,
  parsePlansJsonl,
  plansJsonlLines,
  scheduleOrder,
  PLANS_KEYFRAME_EVERY,
} from '../src';
import { inputOf, syntheticProfile } from './helpers';

describe('plans.jsonl (delta and full forms)', () => {
  const input = inputOf(
    syntheticProfile(4, [900, 1000, 1100, 1200, 1300, 1410], 5),
    '1f1b',
    8,
    2e-4,
  );
  const f = computeFrontier(input);
  const delta = [...plansJsonlLines(f, 'delta')];
  const full = [...plansJsonlLines(f, 'full')];

  it('has one line per point in both forms, and enough points for a second keyframe', () => {
    expect(f.points.length).toBeGreaterThan(PLANS_KEYFRAME_EVERY);
    expect(delta).toHaveLength(f.points.length);
    expect(full).toHaveLength(f.points.length);
  });

  it('delta form: whole plans on line 0 and every 64th line, changes elsewhere', () => {
    delta.forEach((l, k) => {
      const o = JSON.parse(l) as Record<string, unknown>;
      expect('stages' in o).toBe(k % PLANS_KEYFRAME_EVERY === 0);
      expect('changes' in o).toBe(k % PLANS_KEYFRAME_EVERY !== 0);
    });
    expect(delta.join('\n').length * 3).toBeLessThan(full.join('\n').length);
  });

  it('both forms decode to every point’s plan, which the emulator scores at the point', () => {
    const a = parsePlansJsonl(delta.join('\n') + '\n');
    const b = parsePlansJsonl(full.join('\n'));
    expect(a).toEqual(b);
    a.forEach((rec, k) => {
      expect(rec.index).toBe(k);
      const plan = rec.stages.map((mhz, stage) => ({
        stage,
        instructions: scheduleOrder(input.pipeline, stage).map((x, j) => ({
          ...x,
          frequencyMhz: mhz[j]!,
        })),
      }));
      const e = evaluatePlan(input, plan);
      expect(e.timeS).toBe(f.points[k]!.timeS);
      expect(e.energyJ).toBeCloseTo(f.points[k]!.energyJ, 9);
    });
  });

  it.each([
    ['{"index":0,"time_s":1,"energy_j":1,"changes":[[0,0,1]]}', /line 1: changes before/],
    ['{"index":0,"time_s":1,"energy_j":1}', /line 1: needs 'stages' or 'changes'/],
    [
      '{"index":0,"time_s":1,"energy_j":1,"stages":[[1]]}\n{"index":1,"time_s":2,"energy_j":0,"changes":[[0,3,1]]}',
      /line 2: no instruction 3 on stage 0/,
    ],
  ])('rejects %s naming the line', (text, message) => {
    expect(() => [...decodePlanLines(text.split('\n'))]).toThrow(message);
  });
});
