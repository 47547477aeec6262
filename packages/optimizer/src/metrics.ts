/**
 * The optimizer's Prometheus metrics (names in the package README): jobs, watchers, and per job its
 * phase, schedule version, predicted saving, ranks, stragglers and planning/publish durations.
 * Registered on the process's registry (service-kit) and read from the optimizer at scrape time.
 */
import type { MetricsRegistry, Sample } from '@perseus/service-kit';
import { observedMetric } from '@perseus/service-kit';
import type { JobMetrics } from './optimizer';
import type { JobPhase } from './types';

const PHASES: readonly JobPhase[] = ['REGISTERING', 'PROFILING', 'PLANNING', 'DEPLOYED'];

/** Registers every optimizer metric on `registry`; `jobs` and `watchers` are read per scrape. */
export function registerOptimizerMetrics(
  registry: MetricsRegistry,
  jobs: () => readonly JobMetrics[],
  watchers: () => number,
): void {
  const perJob = (name: string, help: string, value: (j: JobMetrics) => number): void =>
    observedMetric(registry, {
      name,
      help,
      labelNames: ['job_id'],
      read: (): Sample => jobs().map((j) => [{ job_id: j.jobId }, value(j)] as const),
    });
  observedMetric(registry, {
    name: 'perseus_optimizer_jobs',
    help: 'Registered jobs.',
    read: () => jobs().length,
  });
  observedMetric(registry, {
    name: 'perseus_optimizer_watchers',
    help: 'Open WatchSchedule streams.',
    read: watchers,
  });
  observedMetric(registry, {
    name: 'perseus_optimizer_job_phase',
    help: 'Phase of a job (1 for the current phase).',
    labelNames: ['job_id', 'phase'],
    read: (): Sample =>
      jobs().flatMap((j) =>
        PHASES.map((p) => [{ job_id: j.jobId, phase: p }, j.phase === p ? 1 : 0] as const),
      ),
  });
  perJob(
    'perseus_optimizer_schedule_version',
    'Current schedule version of a job.',
    (j) => j.version,
  );
  // The saving carries `simulated` so a dashboard can never show an emulated saving as a real one.
  observedMetric(registry, {
    name: 'perseus_optimizer_predicted_saving_ratio',
    help: 'Predicted energy saving of the deployed plan vs all-max clocks, as a fraction (0.15 = 15 %); simulated="true" when some rank\'s GPU is simulated (emulated energy).',
    labelNames: ['job_id', 'simulated'],
    read: (): Sample =>
      jobs().map(
        (j) =>
          [
            { job_id: j.jobId, simulated: String(j.simulated) },
            j.predictedSavingPercent / 100,
          ] as const,
      ),
  });
  perJob('perseus_optimizer_registered_ranks', 'Ranks registered.', (j) => j.registeredRanks);
  perJob('perseus_optimizer_world_size', 'World size of a job.', (j) => j.worldSize);
  perJob(
    'perseus_optimizer_stragglers',
    'Pipelines currently treated as stragglers.',
    (j) => j.stragglers,
  );
  perJob(
    'perseus_optimizer_job_watchers',
    'Open WatchSchedule streams of a job.',
    (j) => j.watchers,
  );
  perJob(
    'perseus_optimizer_frontier_points',
    'Points of the job frontier (0 before planning).',
    (j) => j.frontierPoints,
  );
  perJob(
    'perseus_optimizer_last_planning_seconds',
    'Duration of the last frontier computation, seconds.',
    (j) => j.lastPlanningSeconds,
  );
  perJob(
    'perseus_optimizer_last_publish_seconds',
    'Time to hand the last schedule version to every watcher stream of a job, seconds.',
    (j) => j.lastPublishSeconds,
  );
}
