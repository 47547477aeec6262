import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluatePlan, parsePlansJsonl, parseProfileCsv, scheduleOrder } from '@perseus/planner';
import { profileGpu, runPlan } from '../src/commands/plan';
import { BIN } from './support/serve-process';

const quiet = (): void => undefined;

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
    const steps: string[] = [];
    const r = await runPlan({
      onStep: (m) => steps.push(m),
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
    const plans = parsePlansJsonl(readFileSync(join(out, 'plans.jsonl'), 'utf8'));
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
    // lowtime's numbering: 00000 is the slowest plan (the frontier's last point), the largest
    // number the fastest; each file holds integer clocks per stage in schedule order.
    const n = r.frontier.points.length;
    const lowtimeFiles = readdirSync(out).filter((f) => f.startsWith('freqs_pipeline_'));
    expect(lowtimeFiles).toHaveLength(n);
    for (const [file, index] of [
      ['freqs_pipeline_00000.py', n - 1],
      [`freqs_pipeline_${String(n - 1).padStart(5, '0')}.py`, 0],
    ] as const) {
      const text = readFileSync(join(out, file), 'utf8');
      const lists = text
        .split('\n')
        .filter((l) => /^\[[\d, ]+\],$/.test(l))
        .map((l) => JSON.parse(l.slice(0, -1)) as number[]);
      expect(lists).toEqual(plans[index]!.stages);
      expect(text).toMatch(/^# Iteration \d+: total cost [\d.e+-]+ $/m);
    }
    const frontierSvg = readFileSync(join(out, 'frontier.svg'), 'utf8');
    expect(frontierSvg).toContain('all-max clocks');
    expect(frontierSvg).toMatch(/less energy than all-max clocks/);
    const timelineSvg = readFileSync(join(out, 'timeline.svg'), 'utf8');
    expect(timelineSvg).toContain('stage 1');
    expect(timelineSvg).toContain('SM clock (MHz)');
    expect(steps.some((m) => m.startsWith('computing the frontier'))).toBe(true);
    expect(steps.some((m) => m.startsWith('rendering'))).toBe(true);
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
        onStep: quiet,
      }),
    ).rejects.toThrow(/profile.stages/);
  });

  it("refuses a folder holding another run's plan files unless --force, which replaces them", async () => {
    const out = join(dir, 'reuse');
    const base = {
      profile: join(dir, 'p.csv'),
      microbatches: 2,
      schedule: '1f1b' as const,
      blockingPowerW: 60,
      unitTimeS: 1e-3,
      out,
      format: 'lowtime' as const,
      lpBound: false,
      onStep: quiet,
    };
    await runPlan(base);
    writeFileSync(join(out, 'freqs_pipeline_99999.py'), 'stale');
    writeFileSync(join(out, 'notes.txt'), 'mine');
    await expect(runPlan(base)).rejects.toThrow(/already holds plan files.*--force/);
    const r = await runPlan({ ...base, force: true });
    const files = readdirSync(out);
    expect(files).not.toContain('freqs_pipeline_99999.py');
    expect(files).toContain('notes.txt');
    expect(files.filter((f) => f.startsWith('freqs_pipeline_'))).toHaveLength(
      r.frontier.points.length,
    );
  });

  it("takes the blocking power from the GPU the profile's name gives, and a flag over it", async () => {
    expect(profileGpu('data/gpt3-175b+a40_bf16.csv')).toEqual({
      gpu: 'A40',
      blockingPowerW: 70.38,
    });
    expect(profileGpu('/x/gpt3-175b+a100_sxm_bf16.csv')).toEqual({
      gpu: 'A100 SXM',
      blockingPowerW: 83.64,
    });
    expect(profileGpu('/x/p.csv')).toBeUndefined();
    const a40 = join(dir, 'tiny+a40_bf16.csv');
    writeFileSync(a40, csv);
    const base = {
      profile: a40,
      microbatches: 2,
      schedule: '1f1b' as const,
      unitTimeS: 1e-3,
      format: 'perseus' as const,
      lpBound: false,
      onStep: quiet,
    };
    const fromName = await runPlan({ ...base, out: join(dir, 'bp1') });
    expect(fromName.blockingPowerW).toBe(70.38);
    const byFlag = await runPlan({ ...base, out: join(dir, 'bp2'), blockingPowerW: 83.64 });
    expect(byFlag.blockingPowerW).toBe(83.64);
    // A different blocking power changes every plan's energy (idle time is charged at it).
    expect(fromName.frontier.allMax.energyJ).toBeLessThan(byFlag.frontier.allMax.energyJ);
    const unnamed = await runPlan({ ...base, profile: join(dir, 'p.csv'), out: join(dir, 'bp3') });
    expect(unnamed.blockingPowerW).toBe(83.64);
    expect(unnamed.blockingPowerSource).toMatch(/names no known GPU/);
  });
});

describe('perseus plan as a command', () => {
  it('waits for the exact polish running in its worker thread, then writes every file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'perseus-plan-cmd-'));
    try {
      writeFileSync(join(dir, 'p.csv'), csv);
      const out = join(dir, 'out');
      // The frontier of this profile is done in milliseconds, long before the worker thread has
      // loaded HiGHS: the command must still wait for the polish.
      const r = spawnSync(
        BIN,
        ['plan', '--profile', join(dir, 'p.csv'), '--microbatches', '3', '--out', out],
        { encoding: 'utf8', timeout: 120_000 },
      );
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(/exact polish done in/);
      expect(r.stdout).toMatch(/certified gap \d+\.\d{3} pp \(exact polish/);
      expect(readdirSync(out).sort()).toEqual([
        'frontier.csv',
        'frontier.svg',
        'plans.jsonl',
        'timeline.svg',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
