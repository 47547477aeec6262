import type { Command } from 'commander';
import { createOptimizerModule, optimizerConfigFromEnv } from '@perseus/optimizer';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';

/** Adds the optimizer-specific flags of `perseus serve optimizer` (and of the all-in-one `perseus serve`). */
export function addOptimizerFlags(cmd: Command): Command {
  return cmd
    .option(
      '--optimizer-data-dir <dir>',
      'optimizer store directory, or :memory: (env PERSEUS_OPTIMIZER_DATA_DIR; default ./.perseus-data/optimizer)',
    )
    .option(
      '--optimizer-profiler-url <address>',
      'profiler host:port or unix:/path (env PERSEUS_OPTIMIZER_PROFILER_URL; default: this server when it hosts the profiler, else 127.0.0.1:50052)',
    )
    .option(
      '--optimizer-profile-csv <entries>',
      'imported stage-profile CSVs that skip profiling: path or jobId=path, comma-separated (env PERSEUS_OPTIMIZER_PROFILE_CSV)',
    )
    .option(
      '--optimizer-token-file <file>',
      'bearer tokens, one "<name> <read|report|control>[,…] <secret> [jobs=<id>,…]" per line, mode 0600; required for a non-local --listen (env PERSEUS_OPTIMIZER_TOKEN_FILE; default none)',
    )
    .option(
      '--optimizer-dashboard-listen <host:port>',
      'read-only web dashboard; same access rules as --listen: open on loopback (read token with a token file), TLS + token file elsewhere (env PERSEUS_OPTIMIZER_DASHBOARD_LISTEN; default off)',
    )
    .option(
      '--optimizer-dashboard-tls-cert <path>',
      'PEM certificate chain: serve the dashboard over HTTPS (needed off loopback) (env PERSEUS_OPTIMIZER_DASHBOARD_TLS_CERT)',
    )
    .option(
      '--optimizer-dashboard-tls-key <path>',
      'PEM private key of --optimizer-dashboard-tls-cert (env PERSEUS_OPTIMIZER_DASHBOARD_TLS_KEY)',
    )
    .option(
      '--optimizer-metrics-listen <host:port>',
      'Prometheus /metrics endpoint (env PERSEUS_OPTIMIZER_METRICS_LISTEN; default off)',
    )
    .option(
      '--optimizer-straggler-margin <fraction>',
      'relative excess that marks a straggler pipeline (env PERSEUS_OPTIMIZER_STRAGGLER_MARGIN; default 0.1)',
    )
    .option(
      '--optimizer-straggler-window <iterations>',
      'iterations in the straggler median window (env PERSEUS_OPTIMIZER_STRAGGLER_WINDOW; default 5)',
    );
}

function num(flag: unknown, name: string): number | undefined {
  if (flag === undefined) return undefined;
  const n = Number(flag);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(flag)}`);
  return n;
}

/** Builds the optimizer module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function optimizerModuleFromFlags(
  flags: Record<string, unknown>,
  ctx: ModuleContext,
): Promise<ServiceModule> {
  const env = optimizerConfigFromEnv();
  const str = (k: string): string | undefined =>
    typeof flags[k] === 'string' ? (flags[k] as string) : undefined;
  const mod = await createOptimizerModule({
    logger: ctx.logger.child({ module: 'optimizer' }),
    metrics: ctx.metrics,
    tls: ctx.tls,
    tokenFile: str('optimizerTokenFile') ?? env.tokenFile,
    dataDir: str('optimizerDataDir') ?? env.dataDir,
    profilerUrl: str('optimizerProfilerUrl') ?? env.profilerUrl,
    profileCsv: str('optimizerProfileCsv') ?? env.profileCsv,
    metricsListen: str('optimizerMetricsListen') ?? env.metricsListen,
    dashboardListen: str('optimizerDashboardListen') ?? env.dashboardListen,
    dashboardTlsCert: str('optimizerDashboardTlsCert') ?? env.dashboardTlsCert,
    dashboardTlsKey: str('optimizerDashboardTlsKey') ?? env.dashboardTlsKey,
    stragglerMargin:
      num(flags['optimizerStragglerMargin'], '--optimizer-straggler-margin') ?? env.stragglerMargin,
    stragglerWindow:
      num(flags['optimizerStragglerWindow'], '--optimizer-straggler-window') ?? env.stragglerWindow,
  });
  const dashboard = mod.dashboardUrl();
  if (dashboard !== undefined)
    process.stdout.write(`${JSON.stringify({ event: 'dashboard', url: dashboard })}\n`);
  const metrics = mod.metricsAddress();
  if (metrics !== undefined)
    process.stdout.write(
      `${JSON.stringify({ event: 'metrics', service: 'optimizer', address: metrics })}\n`,
    );
  return mod;
}
