import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DemoSummary } from '../src/commands/demo-charts';
import { writeDemoCharts } from '../src/commands/demo-charts';

const phase = (
  name: string,
  t: number | null,
  e: number | null,
  compared: number[],
): DemoSummary['phases'][number] => ({
  phase: name,
  iterations: t === null ? 0 : 3,
  iteration_time_s: t,
  compared_pipelines: compared,
  compared_energy_j: e,
});

const summary: DemoSummary = {
  profile: 'data/sosp24/stage_profile/gpt3-175b+a100_sxm_bf16.csv',
  pipeline: { stages: 8, dp: 2, microbatches: 4, schedule: '1f1b' },
  phases: [
    phase('baseline', 1.637, 5833.7, [0, 1]),
    phase('profiling', 2.48, 5458.5, [0, 1]),
    phase('planning', null, null, []),
    phase('intrinsic', 1.797, 5347.4, [0, 1]),
    // The straggler phases' table rows compare pipeline 0 only: not drawable against the job frontier.
    phase('extrinsic', 2.062, 2582.5, [0]),
  ],
  frontier: {
    points: [
      { time_s: 1.614, energy_j: 2520.85 },
      { time_s: 1.7, energy_j: 2430 },
    ],
    all_max_time_s: 1.614,
    all_max_energy_j: 2898.3,
    chosen_index: 0,
  },
  iterations: [
    { iteration: 1, label: 'baseline', time_s: 1.64, pipeline_energy_j: [2900, 2910] },
    { iteration: 2, label: 'intrinsic', time_s: 1.79, pipeline_energy_j: [2670, 2680] },
  ],
};

describe('perseus demo plots', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'perseus-demo-charts-'));
    writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('draws the frontier in the energy of the demo table: all pipelines, phases at their J/iter', async () => {
    expect(await writeDemoCharts(dir)).toEqual(['frontier.svg', 'timeline.svg']);
    const svg = readFileSync(join(dir, 'frontier.svg'), 'utf8');
    expect(svg).toContain('energy per iteration, all 2 pipelines (J)');
    // All-max and planned points are the per-pipeline frontier times the 2 pipelines.
    expect(svg).toContain('all-max clocks (1.614 s, 5,797 J)');
    expect(svg).toContain('planned intrinsic (1.614 s, 5,042 J)');
    // Phases appear with the table's J/iter; a phase comparing fewer pipelines does not.
    expect(svg).toContain('intrinsic, emulated (3 it.) (1.797 s, 5,347 J)');
    expect(svg).toContain('baseline, emulated (3 it.) (1.637 s, 5,834 J)');
    expect(svg).not.toContain('extrinsic');
    expect(svg).not.toContain('profiling');
    expect(svg).toContain('13.02 % less energy than all-max clocks');
    expect(svg).toMatch(
      /gpt3-175b\+a100_sxm_bf16\.csv, A100 SXM \(simulated\), 1F1B, 2 pipelines × 8 stages/,
    );
  });

  it('draws per-iteration time and job energy by phase', async () => {
    await writeDemoCharts(dir);
    const svg = readFileSync(join(dir, 'timeline.svg'), 'utf8');
    expect(svg).toContain('Per-iteration time and energy');
    expect(svg).toContain('energy per iteration, all 2 pipelines (J)');
    // One point per iteration in each panel; job energy is the sum over pipelines (2670 + 2680).
    expect(svg.match(/aria-roledescription="point"/g)).toHaveLength(4);
    expect(svg).toContain('aria-label="iteration: 2; energy (J): 5,350; phase: intrinsic;');
  });
});
