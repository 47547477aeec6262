import { Command } from 'commander';
import type { optimizerV1 } from '@perseus/proto';
import {
  addOptimizerClientFlags,
  enumWord,
  withOptimizer,
  type OptimizerFlags,
} from './optimizer-client';

interface JobsListFlags extends OptimizerFlags {
  json?: boolean;
}
interface JobFlags extends OptimizerFlags {
  json?: boolean;
}
interface DeleteFlags extends OptimizerFlags {
  keepProfile?: boolean;
  force?: boolean;
}

/** Every job, following ListJobs pages. */
export async function listAllJobs(
  call: <Res>(method: string, req: unknown) => Promise<Res>,
): Promise<optimizerV1.JobSummary__Output[]> {
  const jobs: optimizerV1.JobSummary__Output[] = [];
  let token = '';
  do {
    const page = await call<optimizerV1.ListJobsResponse__Output>('ListJobs', {
      page_size: 1000,
      page_token: token,
    });
    jobs.push(...page.jobs);
    token = page.next_page_token;
  } while (token !== '');
  return jobs;
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

/** The table `perseus jobs list` prints: one row per job. */
export function jobsTable(jobs: optimizerV1.JobSummary__Output[]): string {
  const head = ['JOB', 'PHASE', 'VERSION', 'RANKS (LIVE/REG/WORLD)', 'GPUS', 'SAVING', 'STATE'];
  const rows = jobs.map((j) => [
    j.job_id,
    enumWord(j.phase, 'PHASE_'),
    String(j.schedule_version),
    `${j.live_ranks}/${j.registered_ranks}/${j.world_size}`,
    j.simulated ? 'simulated' : 'real',
    `${j.predicted_saving_percent.toFixed(2)} %`,
    j.finished ? 'finished' : 'running',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return (
    [head, ...rows]
      .map((r) =>
        r
          .map((c, i) => pad(c, widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function policyText(p: optimizerV1.Policy__Output | null): string {
  switch (p?.kind) {
    case 'max_slowdown_percent':
      return `least energy within ${p.max_slowdown_percent} % slowdown`;
    case 'target_iteration_time_s':
      return `least energy within ${p.target_iteration_time_s} s per iteration`;
    case 'min_energy':
      return 'least energy (T*)';
    case 'intrinsic':
    case undefined:
      return 'intrinsic (fastest)';
  }
}

/** What `perseus jobs show` prints for one job. */
export function jobLines(j: optimizerV1.GetJobResponse__Output): string[] {
  const s = j.summary;
  const spec = j.spec;
  const lines = [
    `job ${s?.job_id ?? '?'} (generation ${s?.generation ?? '?'}): ${enumWord(s?.phase ?? '', 'PHASE_')}, schedule version ${s?.schedule_version ?? '?'}`,
  ];
  if (spec?.pipeline)
    lines.push(
      `  pipeline: ${enumWord(spec.pipeline.schedule, 'SCHEDULE_KIND_')}, ${spec.pipeline.num_stages} stages${spec.pipeline.num_chunks > 1 ? ` × ${spec.pipeline.num_chunks} chunks` : ''} × ${spec.dp_degree} pipelines × TP ${spec.tp_degree}, ${spec.pipeline.num_microbatches} microbatches; GPU ${spec.gpu_model || '?'}${s?.simulated ? ' (simulated)' : ''}`,
    );
  if (s)
    lines.push(
      `  ranks: ${s.live_ranks} live / ${s.registered_ranks} registered / ${s.world_size}; ${s.finished ? 'finished' : 'running'}`,
      `  predicted saving ${s.predicted_saving_percent.toFixed(2)} % vs all-max clocks; frontier ${j.frontier_points} points; blocking power ${j.blocking_power_w} W`,
    );
  lines.push(`  policy: ${policyText(j.policy)}`);
  lines.push(
    `  stragglers: ${
      j.stragglers.length === 0
        ? 'none'
        : j.stragglers
            .map(
              (st) =>
                `pipeline ${st.dp_rank} (${st.iteration_time_s.toFixed(4)} s, ${st.detected ? 'detected' : 'reported'})`,
            )
            .join(', ')
    }`,
  );
  if (j.has_imported_profile) lines.push('  imported profile: yes');
  if (j.detail) lines.push(`  ${j.detail}`);
  return lines;
}

/** Registers `perseus jobs list|show|delete` (ListJobs, GetJob, DeleteJob). */
export function registerJobsCommand(program: Command): void {
  const jobs = new Command('jobs').description('the jobs an optimizer knows');
  addOptimizerClientFlags(
    jobs
      .command('list')
      .description('every job: phase, plan version, ranks, GPUs, saving')
      .option('--json', 'print JSON'),
  ).action((flags: JobsListFlags) =>
    withOptimizer('jobs list', flags, async (conn) => {
      const all = await listAllJobs((m, r) => conn.call(m, r));
      process.stdout.write(flags.json ? `${JSON.stringify(all, null, 2)}\n` : jobsTable(all));
    }),
  );
  addOptimizerClientFlags(
    jobs
      .command('show')
      .description("one job's spec, ranks, policy, stragglers and frontier size")
      .argument('<job>', 'job id')
      .option('--json', 'print JSON'),
  ).action((job: string, flags: JobFlags) =>
    withOptimizer('jobs show', flags, async (conn) => {
      const j = await conn.call<optimizerV1.GetJobResponse__Output>('GetJob', { job_id: job });
      process.stdout.write(
        flags.json ? `${JSON.stringify(j, null, 2)}\n` : `${jobLines(j).join('\n')}\n`,
      );
    }),
  );
  addOptimizerClientFlags(
    jobs
      .command('delete')
      .description('delete a job with its plans (refused while ranks are alive unless --force)')
      .argument('<job>', 'job id')
      .option('--keep-profile', 'keep the imported profile for a later job of the same id')
      .option('--force', 'delete even while ranks are alive (their streams end)'),
  ).action((job: string, flags: DeleteFlags) =>
    withOptimizer('jobs delete', flags, async (conn) => {
      const r = await conn.call<optimizerV1.DeleteJobResponse__Output>('DeleteJob', {
        job_id: job,
        keep_profile: flags.keepProfile === true,
        force: flags.force === true,
      });
      process.stdout.write(
        `deleted job ${job} (generation ${r.generation}); imported profile ${r.profile_deleted ? 'deleted' : 'kept or none'}\n`,
      );
    }),
  );
  program.addCommand(jobs);
}
