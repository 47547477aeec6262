import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MarkedPoint } from '@perseus/optimizer';
import { frontierChartSpec, iterationsChartSpec } from '@perseus/optimizer';
import { profileGpu } from './plan';
import { renderChartSvg } from './render-chart';

/** The parts of the Python demo driver's summary.json the plots read. */
export interface DemoSummary {
  profile: string;
  /** `chunks`: model chunks per GPU (interleaved 1F1B; absent in summaries written before it). */
  pipeline: { stages: number; dp: number; microbatches: number; schedule: string; chunks?: number };
  phases: Array<{
    phase: string;
    iterations: number;
    iteration_time_s: number | null;
    compared_pipelines: number[];
    compared_energy_j: number | null;
  }>;
  frontier: {
    points: Array<{ time_s: number; energy_j: number }>;
    all_max_time_s: number;
    all_max_energy_j: number;
    chosen_index: number;
  } | null;
  iterations: Array<{
    iteration: number;
    label: string;
    time_s: number;
    pipeline_energy_j: number[];
  }>;
}

const PHASE_ORDER = [
  'baseline',
  'profiling',
  'planning',
  'intrinsic',
  'straggler',
  'extrinsic',
  'cleared',
];

/**
 * frontier.svg and timeline.svg of `perseus demo`, drawn from the driver's summary.json with the
 * same chart specs as `perseus plan` and the dashboard. Energies are per iteration of the whole job
 * (all pipelines): the planner's per-pipeline frontier times the pipeline count, and the phases'
 * "J/iter" exactly as the demo's table prints them, for the phases that run one frontier plan or
 * all-max clocks on every pipeline (baseline, intrinsic, cleared). Profiling sweeps many clocks,
 * and the straggler phases' rows compare only the non-straggling pipelines: not on this plot.
 */
export async function writeDemoCharts(outDir: string): Promise<string[]> {
  const summary = JSON.parse(
    fs.readFileSync(path.join(outDir, 'summary.json'), 'utf8'),
  ) as DemoSummary;
  const { dp, stages, microbatches, schedule, chunks = 1 } = summary.pipeline;
  const gpu = profileGpu(summary.profile);
  const context = {
    profile: path.basename(summary.profile),
    gpu: `${gpu?.gpu ?? 'GPU'} (simulated)`,
    schedule: `${schedule.toUpperCase()}, ${dp} pipelines × ${stages} stages${chunks > 1 ? ` × ${chunks} chunks` : ''}, ${microbatches} microbatches`,
    emulated: true,
  };
  const energyQuantity = `energy per iteration, all ${dp} pipelines`;
  const written: string[] = [];
  if (summary.frontier !== null) {
    const f = summary.frontier;
    const measured: MarkedPoint[] = [];
    for (const p of summary.phases)
      if (
        // Phases that run a frontier plan or all-max clocks (profiling sweeps many clocks).
        ['baseline', 'intrinsic', 'cleared'].includes(p.phase) &&
        p.iteration_time_s !== null &&
        p.compared_energy_j !== null &&
        p.compared_pipelines.length === dp
      )
        measured.push({
          label: `${p.phase}, emulated (${p.iterations} it.)`,
          timeS: p.iteration_time_s,
          energyJ: p.compared_energy_j,
        });
    const chosen = f.points[f.chosen_index] ?? f.points[0];
    const spec = frontierChartSpec({
      context,
      points: f.points.map((p) => ({ timeS: p.time_s, energyJ: dp * p.energy_j })),
      allMax: { timeS: f.all_max_time_s, energyJ: dp * f.all_max_energy_j },
      ...(chosen
        ? {
            deployed: {
              label: 'planned intrinsic',
              timeS: chosen.time_s,
              energyJ: dp * chosen.energy_j,
            },
          }
        : {}),
      measured,
      energyQuantity,
    });
    fs.writeFileSync(path.join(outDir, 'frontier.svg'), await renderChartSvg(spec));
    written.push('frontier.svg');
  }
  const rows = summary.iterations.map((r) => ({
    iteration: r.iteration,
    phase: r.label,
    timeS: r.time_s,
    energyJ: r.pipeline_energy_j.reduce((a, b) => a + b, 0),
  }));
  const seen = new Set(rows.map((r) => r.phase));
  const phases = [
    ...PHASE_ORDER.filter((p) => seen.has(p)),
    ...[...seen].filter((p) => !PHASE_ORDER.includes(p)),
  ];
  fs.writeFileSync(
    path.join(outDir, 'timeline.svg'),
    await renderChartSvg(iterationsChartSpec({ context, rows, energyQuantity, phases })),
  );
  written.push('timeline.svg');
  return written;
}
