import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePlansJsonl } from '@perseus/planner';
import { GPT3_A100_CSV } from '@perseus/service-kit';
import { runPlan } from '../src/commands/plan';

const FIXTURES = join(__dirname, 'fixtures', 'lowtime');

/** The shape of every line of a plan file: what Zeus/Perseus tooling relies on. */
function lineKinds(text: string): string[] {
  return text.split('\n').map((l) => {
    if (l === '[' || l === ']' || l === '') return l;
    if (/^\[\d+(, \d+)*\],$/.test(l)) return 'clocks';
    const m = /^# Iteration \d+: (cost change|total cost|refined cost) -?[\d.]+(e[+-]?\d+)? $/.exec(
      l,
    );
    return m ? `# ${m[1]}` : `unexpected: ${l}`;
  });
}

const clockLists = (text: string): number[][] =>
  text
    .split('\n')
    .filter((l) => l.startsWith('[') && l.endsWith('],'))
    .map((l) => JSON.parse(l.slice(0, -1)) as number[]);

describe('perseus plan --format lowtime against files lowtime wrote', () => {
  let out: string;
  let ours: string[];
  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'perseus-lowtime-'));
    // The fixtures' case (PROVENANCE.md): the A100 profile's stages 0 and 1 (lowtime's driver takes
    // the first --num-stages stages), 2 microbatches, 83.64 W, 1 ms.
    const rows = readFileSync(GPT3_A100_CSV, 'utf8').trim().split('\n');
    const twoStages = join(out, 'gpt3-175b+a100_sxm_bf16.csv');
    writeFileSync(
      twoStages,
      [rows[0], ...rows.slice(1).filter((l) => /^[01],/.test(l))].join('\n'),
    );
    await runPlan({
      profile: twoStages,
      stages: 2,
      microbatches: 2,
      schedule: '1f1b',
      unitTimeS: 1e-3,
      out,
      format: 'lowtime',
      lpBound: false,
      onStep: () => undefined,
    });
    ours = readdirSync(out)
      .filter((f) => f.startsWith('freqs_pipeline_'))
      .sort();
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('writes every file line for line in lowtime’s layout', () => {
    const reference = lineKinds(readFileSync(join(FIXTURES, 'freqs_pipeline_00000.py'), 'utf8'));
    expect(reference).toEqual([
      '[',
      'clocks',
      'clocks',
      ']',
      '# cost change',
      '# total cost',
      '# refined cost',
      '',
    ]);
    for (const f of ours) expect(lineKinds(readFileSync(join(out, f), 'utf8'))).toEqual(reference);
  });

  it('numbers the files as lowtime does: 00000 slowest, consecutive, the largest the fastest', () => {
    expect(ours[0]).toBe('freqs_pipeline_00000.py');
    expect(ours[ours.length - 1]).toBe(
      `freqs_pipeline_${String(ours.length - 1).padStart(5, '0')}.py`,
    );
    const plans = parsePlansJsonl(readFileSync(join(out, 'plans.jsonl'), 'utf8'));
    // plans.jsonl is fastest first; the lowtime numbering runs the other way.
    expect(clockLists(readFileSync(join(out, ours[0]!), 'utf8'))).toEqual(
      plans[plans.length - 1]!.stages,
    );
    expect(clockLists(readFileSync(join(out, ours[ours.length - 1]!), 'utf8'))).toEqual(
      plans[0]!.stages,
    );
    expect(plans[0]!.time_s).toBeLessThan(plans[plans.length - 1]!.time_s);
  });

  it('holds the same stage lists as lowtime’s: as many stages and instructions, clocks the GPU has', () => {
    const clocks = new Set(
      readFileSync(GPT3_A100_CSV, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => Number(l.split(',')[2])),
    );
    for (const f of [
      'freqs_pipeline_00000.py',
      'freqs_pipeline_00050.py',
      'freqs_pipeline_00098.py',
    ]) {
      const theirs = clockLists(readFileSync(join(FIXTURES, f), 'utf8'));
      const mine = clockLists(readFileSync(join(out, ours[0]!), 'utf8'));
      expect(mine.map((s) => s.length)).toEqual(theirs.map((s) => s.length));
      for (const c of theirs.flat()) expect(clocks.has(c)).toBe(true);
    }
    // Both fastest plans run the first forward of stage 0 at the highest clock (nothing to hide it).
    const fastestTheirs = clockLists(
      readFileSync(join(FIXTURES, 'freqs_pipeline_00098.py'), 'utf8'),
    );
    const fastestMine = clockLists(readFileSync(join(out, ours[ours.length - 1]!), 'utf8'));
    expect(fastestMine[0]![0]).toBe(fastestTheirs[0]![0]);
    expect(fastestTheirs[0]![0]).toBe(Math.max(...clocks));
  });
});
