import * as http from 'node:http';
import type { JobMetrics } from './optimizer';
import type { JobPhase } from './types';

const PHASES: readonly JobPhase[] = ['REGISTERING', 'PROFILING', 'PLANNING', 'DEPLOYED'];

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Prometheus text exposition (format 0.0.4) of the optimizer's per-job gauges. */
export function renderMetrics(jobs: readonly JobMetrics[], watchers: number): string {
  const out: string[] = [];
  const gauge = (name: string, help: string, rows: Array<[string, number]>): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, v] of rows) out.push(`${name}${labels} ${Number.isFinite(v) ? v : 0}`);
  };
  const L = (j: JobMetrics, extra = ''): string => `{job_id="${esc(j.jobId)}"${extra}}`;
  gauge('perseus_optimizer_jobs', 'Registered jobs.', [['', jobs.length]]);
  gauge('perseus_optimizer_watchers', 'Open WatchSchedule streams.', [['', watchers]]);
  gauge(
    'perseus_optimizer_job_phase',
    'Phase of a job (1 for the current phase).',
    jobs.flatMap((j) =>
      PHASES.map((p): [string, number] => [L(j, `,phase="${p}"`), j.phase === p ? 1 : 0]),
    ),
  );
  gauge(
    'perseus_optimizer_schedule_version',
    'Current schedule version of a job.',
    jobs.map((j) => [L(j), j.version]),
  );
  gauge(
    'perseus_optimizer_predicted_saving_percent',
    'Predicted energy saving of the deployed plan vs all-max clocks, percent.',
    jobs.map((j) => [L(j), j.predictedSavingPercent]),
  );
  gauge(
    'perseus_optimizer_registered_ranks',
    'Ranks registered.',
    jobs.map((j) => [L(j), j.registeredRanks]),
  );
  gauge(
    'perseus_optimizer_world_size',
    'World size of a job.',
    jobs.map((j) => [L(j), j.worldSize]),
  );
  gauge(
    'perseus_optimizer_stragglers',
    'Pipelines currently treated as stragglers.',
    jobs.map((j) => [L(j), j.stragglers]),
  );
  gauge(
    'perseus_optimizer_job_watchers',
    'Open WatchSchedule streams of a job.',
    jobs.map((j) => [L(j), j.watchers]),
  );
  gauge(
    'perseus_optimizer_frontier_points',
    'Points of the job frontier (0 before planning).',
    jobs.map((j) => [L(j), j.frontierPoints]),
  );
  gauge(
    'perseus_optimizer_last_planning_seconds',
    'Duration of the last frontier computation, seconds.',
    jobs.map((j) => [L(j), j.lastPlanningSeconds]),
  );
  gauge(
    'perseus_optimizer_last_publish_seconds',
    'Time to hand the last schedule version to every watcher stream of a job, seconds.',
    jobs.map((j) => [L(j), j.lastPublishSeconds]),
  );
  return `${out.join('\n')}\n`;
}

/** Serves `GET /metrics` on `host:port`; resolves with the bound address. */
export async function startMetricsServer(
  listen: string,
  render: () => string,
): Promise<{ server: http.Server; address: string }> {
  const m = /^(.*):(\d+)$/.exec(listen);
  if (m === null)
    throw new Error(`metrics listen address must be host:port, got ${JSON.stringify(listen)}`);
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(render());
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  const host = m[1]!.replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a !== null ? a.port : Number(m[2]);
  return { server, address: `${m[1]}:${port}` };
}
