import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { computeFrontier, evaluatePlan, parseProfileCsv, type PlannerInput } from '../src';

// The README example, verbatim between the markers (the test below checks they match).
function example(): { saving: number; check: { timeS: number; energyJ: number }; pointTimeS: number; pointEnergyJ: number; boundJ: number; stragglerTimeS: number; allMaxTimeS: number } {
  const log: unknown[] = [];
  const console = { log: (x: unknown) => log.push(x) };
  // --- example start ---
// Two stages, three clocks; stage 1 is twice as heavy, so stage 0 can run slower for free.
const rows = ['stage,instruction,frequency,time,energy'];
for (const [stage, w] of [[0, 1], [1, 2]] as const) {
  for (const [mhz, t, e] of [[1410, 1.0, 1.0], [1200, 1.15, 0.82], [1005, 1.35, 0.74]] as const) {
    rows.push(`${stage},forward,${mhz},${0.02 * w * t},${6 * w * e}`);
    rows.push(`${stage},backward,${mhz},${0.04 * w * t},${12 * w * e}`);
  }
}
const input: PlannerInput = {
  profile: parseProfileCsv(rows.join('\n')),
  pipeline: { schedule: '1f1b', numStages: 2, numMicrobatches: 4 },
  blockingPowerW: 80,
  unitTimeS: 1e-3,
};
const frontier = computeFrontier(input);
const { point, plan } = frontier.intrinsic();      // no slower than all-max clocks
const check = evaluatePlan(input, plan);            // the emulator agrees with the point
const saving = 1 - point.energyJ / frontier.allMax.energyJ;
const straggler = frontier.planFor(point.timeS * 1.1); // another pipeline is 10% slower
console.log({ saving, check, straggler: straggler.point, bound: frontier.lowerBoundJ(point.timeS) });
  // --- example end ---
  return {
    saving,
    check,
    pointTimeS: point.timeS,
    pointEnergyJ: point.energyJ,
    boundJ: frontier.lowerBoundJ(point.timeS),
    stragglerTimeS: straggler.point.timeS,
    allMaxTimeS: frontier.allMax.timeS,
  };
}

describe('README example', () => {
  it('is the code in README.md', () => {
    const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
    const block = /```ts\n([\s\S]*?)```/.exec(readme)![1]!.split('\n').filter((l) => !l.startsWith('import ')).join('\n').trim();
    const src = readFileSync(__filename, 'utf8');
    const body = src.slice(src.indexOf('// --- example start ---') + 25, src.indexOf('  // --- example end ---')).trim();
    expect(body).toBe(block);
  });

  it('runs: saves energy at no slowdown, agrees with the emulator, respects the bound', () => {
    const r = example();
    expect(r.pointTimeS).toBeLessThanOrEqual(r.allMaxTimeS * (1 + 1e-6));
    expect(r.saving).toBeGreaterThan(0.05);
    expect(r.check.timeS).toBeCloseTo(r.pointTimeS, 12);
    expect(r.check.energyJ).toBeCloseTo(r.pointEnergyJ, 9);
    expect(r.pointEnergyJ).toBeGreaterThanOrEqual(r.boundJ - 1e-9);
    expect(r.stragglerTimeS).toBeGreaterThan(r.pointTimeS);
  });
});
