import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { frontierChartSpec } from '@perseus/optimizer';
import type { optimizerV1 } from '@perseus/proto';
import { addOptimizerClientFlags, withOptimizer, type OptimizerFlags } from './optimizer-client';
import { renderChartSvg } from './render-chart';

interface FrontierFlags extends OptimizerFlags {
  job: string;
  format: 'csv' | 'json';
  out?: string;
  svg?: string;
}

/** A job's frontier as CSV: one row per point, the chosen one marked (GetFrontier). */
export function frontierCsv(f: optimizerV1.GetFrontierResponse__Output): string {
  return (
    'index,time_s,energy_j,model_energy_j,chosen\n' +
    f.points
      .map(
        (p) =>
          `${p.index},${p.time_s},${p.energy_j},${p.model_energy_j},${p.index === f.chosen_index ? 1 : 0}`,
      )
      .join('\n') +
    '\n'
  );
}

/** Registers `perseus frontier export` (GetFrontier). */
export function registerFrontierCommand(program: Command): void {
  const frontier = new Command('frontier').description("a job's time–energy frontier");
  addOptimizerClientFlags(
    frontier
      .command('export')
      .description(
        "write a job's planned frontier (time and energy per iteration of one pipeline) as CSV or JSON, and optionally its plot",
      )
      .requiredOption('--job <id>', 'job id')
      .addOption(
        new Option('--format <format>', 'output format').choices(['csv', 'json']).default('csv'),
      )
      .option('--out <file>', 'write here instead of stdout')
      .option('--svg <file>', 'also draw the frontier with the deployed point to this SVG'),
  ).action((flags: FrontierFlags) =>
    withOptimizer('frontier export', flags, async (conn) => {
      const f = await conn.call<optimizerV1.GetFrontierResponse__Output>('GetFrontier', {
        job_id: flags.job,
      });
      const text =
        flags.format === 'json'
          ? `${JSON.stringify(
              {
                job_id: flags.job,
                all_max_time_s: f.all_max_time_s,
                all_max_energy_j: f.all_max_energy_j,
                min_energy_time_s: f.min_energy_time_s,
                chosen_index: f.chosen_index,
                points: f.points,
              },
              null,
              2,
            )}\n`
          : frontierCsv(f);
      if (flags.out === undefined) process.stdout.write(text);
      else fs.writeFileSync(flags.out, text);
      if (flags.svg !== undefined) {
        const chosen = f.points.find((p) => p.index === f.chosen_index);
        const spec = frontierChartSpec({
          context: {
            profile: `job ${flags.job}`,
            gpu: `optimizer ${conn.address}`,
            schedule: `${f.points.length} frontier points`,
            emulated: false,
          },
          points: f.points.map((p) => ({ timeS: p.time_s, energyJ: p.energy_j })),
          allMax: { timeS: f.all_max_time_s, energyJ: f.all_max_energy_j },
          ...(chosen
            ? { deployed: { label: 'chosen plan', timeS: chosen.time_s, energyJ: chosen.energy_j } }
            : {}),
          energyQuantity: 'energy per iteration, one pipeline',
        });
        fs.writeFileSync(flags.svg, await renderChartSvg(spec));
      }
    }),
  );
  program.addCommand(frontier);
}
