import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { parseProfileCsv } from '@perseus/planner';
import type { Profile } from '@perseus/planner';
import type { Logger, MetricsRegistry, MetricsServer, ServiceModule } from '@perseus/service-kit';
import {
  createMetricsRegistry,
  serviceListenerAccess,
  startMetricsServer,
} from '@perseus/service-kit';
import type { ServiceAccess } from '@perseus/service-kit';
import { DEFAULT_CONFIG, DEFAULT_PROFILER_URL, validateOptimizerConfig } from './config';
import type { OptimizerConfig } from './config';
import { registerOptimizerMetrics } from './metrics';
import { startDashboardServer, type DashboardServer } from './dashboard/dashboard-server';
import { DashboardState } from './dashboard/dashboard-state';
import type { JobDetails } from './job';
import { Optimizer } from './optimizer';
import { WorkerFrontierPlanner } from './planner-pool';
import type { FrontierPlanner } from './planner-pool';
import { virtualStages } from './sweep';
import { GrpcProfileSource } from './profile-source';
import type { ProfileSource, ProfilerLinkSecurity } from './profile-source';
import { optimizerService } from './service';
import { OptimizerStore } from './store';

/** Options of {@link createOptimizerModule}; every field but `logger` has a documented default. */
export interface OptimizerModuleOptions extends Partial<OptimizerConfig> {
  logger: Logger;
  /**
   * Where measured profiles come from. Default: a {@link GrpcProfileSource} dialing `profilerUrl`,
   * or — when that is empty — the server's own address if it hosts the profiler (all-in-one
   * `perseus serve`), else {@link DEFAULT_PROFILER_URL}.
   */
  profileSource?: ProfileSource;
  /** Profiles to plan from without profiling (in addition to `profileCsv`). */
  importedProfiles?: Array<{ jobId?: string; profile: Profile }>;
  /** Frontier computation. Default: one worker thread ({@link WorkerFrontierPlanner}). */
  planner?: FrontierPlanner;
  /** PlanOffline's planner. Default: a second worker thread, so jobs never wait behind it. */
  offlinePlanner?: FrontierPlanner;
  /** Consecutive detector evaluations to enter/leave the straggler state. Default 3. */
  stragglerConfirmations?: number;
  /** Delay before re-trying a failed planning attempt, ms. Default 5000. */
  planRetryMs?: number;
  /** The process's metrics registry; default: one of the module's own. */
  metrics?: MetricsRegistry;
  /** The server listens with TLS (then a non-local address is allowed, with a token file). */
  tls?: boolean;
  /** Least wait for silent ranks in a sweep step once every stage has K iterations, ms. Default 5000. */
  sweepGraceMs?: number;
  /** How long a rank counts as alive after its last RPC without a schedule stream, ms. Default 60000. */
  rankTimeoutMs?: number;
  /** Finished jobs are deleted this long after their last RPC, ms. Default 7 days. */
  finishedRetentionMs?: number;
  /** Clock of the core (tests). Default Date.now. */
  now?: () => number;
}

/** The module `perseus serve` hosts, plus handles for embedders and tests. */
export interface OptimizerModule extends ServiceModule {
  readonly name: 'optimizer';
  /** The policy core (plain methods). */
  readonly optimizer: Optimizer;
  /** Bound metrics address once started (`host:port`), when enabled. */
  metricsAddress(): string | undefined;
  /** Prometheus text of the current state. */
  metricsText(): Promise<string>;
  /** URL of the read-only dashboard, when enabled. */
  dashboardUrl(): string | undefined;
  /** The profiler address in use, once resolved. */
  profilerAddress(): string | undefined;
}

/** Parses `path` or `jobId=path` entries (comma-separated) into imported profiles. */
export function loadProfileCsvs(spec: string): Array<{ jobId?: string; profile: Profile }> {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((entry) => {
      const eq = entry.indexOf('=');
      const jobId = eq > 0 && !entry.slice(0, eq).includes('/') ? entry.slice(0, eq) : undefined;
      const file = jobId === undefined ? entry : entry.slice(eq + 1);
      return { jobId, profile: parseProfileCsv(fs.readFileSync(file, 'utf8')) };
    });
}

/** Whether `address` serves the profiler (grpc.health.v1 per-service status). */
async function hostsProfiler(address: string, timeoutMs = 2000): Promise<boolean> {
  const HealthClient = grpc.makeGenericClientConstructor(
    healthService as grpc.ServiceDefinition,
    'Health',
  );
  const client = new HealthClient(
    address,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    Check(
      req: { service: string },
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
    ): void;
  };
  try {
    return await new Promise<boolean>((resolve) => {
      client.Check(
        { service: 'perseus.profiler.v1.Profiler' },
        { deadline: Date.now() + timeoutMs },
        (err, res) => resolve(err === null && res?.status === 'SERVING'),
      );
    });
  } finally {
    client.close();
  }
}

/**
 * Builds the optimizer service module: store, planner worker, profile source, gRPC handlers and
 * (optionally) a Prometheus endpoint. Jobs in the store are restored at once.
 *
 * @example
 * ```ts
 * const mod = await createOptimizerModule({ logger, dataDir: ':memory:', profileSource });
 * const server = new PerseusServer({ address: '127.0.0.1:0', logger });
 * for (const s of mod.services) server.addService(s);
 * await mod.onListening?.(await server.start());
 * ```
 */
export async function createOptimizerModule(
  options: OptimizerModuleOptions,
): Promise<OptimizerModule> {
  const cfg: OptimizerConfig = validateOptimizerConfig({
    ...DEFAULT_CONFIG,
    ...stripUndefined(options),
  });
  const logger = options.logger;
  // With a token file tokens are required from the start; onListening settles the policy for the
  // bound address (non-local needs TLS and tokens).
  const access = serviceListenerAccess(cfg.tokenFile, {
    tls: options.tls === true,
    service: 'optimizer',
  });
  const imported = [...(options.importedProfiles ?? []), ...loadProfileCsvs(cfg.profileCsv)];
  const store = new OptimizerStore(cfg.dataDir);
  let source: ProfileSource | undefined = options.profileSource;
  let ownSource = false;
  let profilerAddress: string | undefined = source === undefined ? undefined : 'embedded';
  const profilerLink = profilerLinkSecurity(cfg);
  if (source === undefined && cfg.profilerUrl !== '') {
    source = new GrpcProfileSource(cfg.profilerUrl, undefined, profilerLink);
    profilerAddress = cfg.profilerUrl;
    ownSource = true;
  }
  let dashboardState: DashboardState | undefined;
  const optimizer = new Optimizer({
    onIteration: (rep) => dashboardState?.onIteration(rep),
    store,
    planner: options.planner ?? new WorkerFrontierPlanner(),
    offlinePlanner: options.offlinePlanner ?? new WorkerFrontierPlanner(),
    profileSource: () => source,
    importedProfiles: imported,
    logger,
    detector: {
      margin: cfg.stragglerMargin,
      window: cfg.stragglerWindow,
      ...(options.stragglerConfirmations ? { confirmations: options.stragglerConfirmations } : {}),
    },
    exactBudgetS: cfg.exactBudgetS,
    ...(options.planRetryMs !== undefined ? { planRetryMs: options.planRetryMs } : {}),
    ...(options.sweepGraceMs !== undefined ? { sweepGraceMs: options.sweepGraceMs } : {}),
    ...(options.rankTimeoutMs !== undefined ? { rankTimeoutMs: options.rankTimeoutMs } : {}),
    ...(options.finishedRetentionMs !== undefined
      ? { finishedRetentionMs: options.finishedRetentionMs }
      : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
  const registry = options.metrics ?? createMetricsRegistry();
  registerOptimizerMetrics(
    registry,
    () => optimizer.metrics(),
    () => optimizer.hub.watcherCount(),
  );
  let metrics: MetricsServer | undefined;
  let dashboard: DashboardServer | undefined;
  const metricsText = (): Promise<string> => registry.metrics();
  try {
    optimizer.restore();
    if (cfg.metricsListen !== '')
      metrics = await startMetricsServer(cfg.metricsListen, registry, logger);
    if (cfg.dashboardListen !== '') {
      dashboardState = new DashboardState({
        listJobs: (limit, after) => optimizer.listJobs(limit, after),
        getJob: (jobId) => optimizer.getJob(jobId),
        getFrontier: (jobId) => optimizer.getFrontier(jobId),
        profileFor: (job) => profileForJob(job, imported, source),
      });
      dashboard = await startDashboardServer({
        listen: cfg.dashboardListen,
        state: dashboardState,
        logger,
        tokens: access.tokens,
        ...(cfg.dashboardTlsCert !== '' ? { tlsCertFile: cfg.dashboardTlsCert } : {}),
        ...(cfg.dashboardTlsKey !== '' ? { tlsKeyFile: cfg.dashboardTlsKey } : {}),
      });
    }
  } catch (err) {
    await metrics?.close();
    await optimizer.close();
    store.close();
    throw err;
  }
  return {
    name: 'optimizer',
    services: [
      { ...optimizerService(optimizer), access: { listener: access.listener, methods: ACCESS } },
    ],
    optimizer,
    metricsAddress: () => metrics?.address,
    dashboardUrl: () => dashboard?.url,
    metricsText,
    profilerAddress: () => profilerAddress,
    async onListening(address: string): Promise<void> {
      await access.settle(address);
      if (source !== undefined) return;
      const target = (await hostsProfiler(address)) ? address : DEFAULT_PROFILER_URL;
      source = new GrpcProfileSource(target, undefined, profilerLink);
      profilerAddress = target;
      ownSource = true;
      logger.info({ profiler: target }, 'profiler address resolved');
    },
    async close(): Promise<void> {
      await dashboard?.close();
      await optimizer.close();
      if (ownSource) source?.close();
      await metrics?.close();
      store.close();
    },
  };
}

type JobRequest = { job_id?: string | null };
const jobOf = (req: JobRequest): string | undefined => req.job_id ?? undefined;

/** Scopes of the optimizer's RPCs (service-kit access control); report/control are per job. */
const ACCESS: ServiceAccess['methods'] = {
  RegisterJob: { scope: 'report', jobOf },
  RegisterRank: { scope: 'report', jobOf },
  WatchSchedule: { scope: 'read' },
  ReportIteration: { scope: 'report', jobOf },
  ReportStraggler: { scope: 'control', jobOf },
  GetFrontier: { scope: 'read' },
  SetPolicy: { scope: 'control', jobOf },
  PlanOffline: { scope: 'control' },
  GetJobStatus: { scope: 'read' },
  ListJobs: { scope: 'read' },
  GetJob: { scope: 'read' },
  DeleteJob: { scope: 'control', jobOf },
};
/** The profile a job was planned from, for the dashboard's timeline: imported, else the profiler's. */
async function profileForJob(
  job: JobDetails,
  imported: Array<{ jobId?: string | undefined; profile: Profile }>,
  source: ProfileSource | undefined,
): Promise<Profile | undefined> {
  const n = virtualStages(job.spec.pipeline);
  if (job.hasImportedProfile) {
    const own = imported.find((p) => p.jobId === job.summary.jobId);
    const any = imported.find((p) => p.jobId === undefined && p.profile.stages.length === n);
    return (own ?? any)?.profile;
  }
  if (source === undefined) return undefined;
  try {
    const cells = await source.getProfile(job.summary.profileJobId, { minCount: 1 });
    const profile: Profile = {
      stages: Array.from({ length: n }, () => ({ forward: [], backward: [] })),
    };
    for (const c of cells)
      profile.stages[c.stage]?.[c.kind].push({
        frequencyMhz: c.frequencyMhz,
        timeS: c.timeS,
        energyJ: c.energyJ,
      });
    return profile;
  } catch {
    return undefined;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The optimizer's own credentials towards the profiler (PERSEUS_OPTIMIZER_PROFILER_TLS_CA and
 * _TOKEN_FILE): a profiler on a non-local address serves only TLS and wants a token. A token file
 * that group or others can read is refused, as the servers refuse theirs.
 */
function profilerLinkSecurity(cfg: OptimizerConfig): ProfilerLinkSecurity {
  const link: ProfilerLinkSecurity = {};
  if (cfg.profilerTlsCa !== '') link.tlsCaPem = fs.readFileSync(cfg.profilerTlsCa);
  if (cfg.profilerTokenFile !== '') {
    const mode = fs.statSync(cfg.profilerTokenFile).mode;
    if ((mode & 0o077) !== 0)
      throw new Error(
        `profiler token file ${cfg.profilerTokenFile} is readable by group or others (mode 0${(mode & 0o777).toString(8)}); chmod 600 it`,
      );
    link.token = fs.readFileSync(cfg.profilerTokenFile, 'utf8').trim();
  }
  return link;
}
