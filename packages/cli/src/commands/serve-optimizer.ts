import type { Command } from 'commander';
import { createOptimizerModule, optimizerConfigFromEnv } from '@perseus/optimizer';
import type { ModuleContext, ServiceModule } from '@perseus/service-kit';
import { envOption, flagNumber, flagString } from './flag-values';

/** Adds the optimizer-specific flags of `perseus serve optimizer` (and of the all-in-one `perseus serve`). */
export function addOptimizerFlags(cmd: Command): Command {
  return cmd
    .addOption(
      envOption(
        '--optimizer-data-dir <dir>',
        'PERSEUS_OPTIMIZER_DATA_DIR',
        'optimizer store directory, or :memory: (default ./.perseus-data/optimizer)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-profiler-url <address>',
        'PERSEUS_OPTIMIZER_PROFILER_URL',
        'profiler host:port or unix:/path (default: this server when it hosts the profiler, else 127.0.0.1:50052)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-profiler-tls-ca <pem>',
        'PERSEUS_OPTIMIZER_PROFILER_TLS_CA',
        'dial the profiler over TLS trusting this CA (needed when the profiler serves TLS)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-profiler-token-file <path>',
        'PERSEUS_OPTIMIZER_PROFILER_TOKEN_FILE',
        'file (mode 0600) with the bearer token the optimizer sends the profiler (read+report scopes)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-profile-csv <entries>',
        'PERSEUS_OPTIMIZER_PROFILE_CSV',
        'imported stage-profile CSVs that skip profiling: path or jobId=path, comma-separated',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-token-file <file>',
        'PERSEUS_OPTIMIZER_TOKEN_FILE',
        'bearer tokens, one "<name> <read|report|control>[,…] <secret> [jobs=<id>,…]" per line, mode 0600; required for a non-local --listen (default none)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-dashboard-listen <host:port>',
        'PERSEUS_OPTIMIZER_DASHBOARD_LISTEN',
        'read-only web dashboard; same access rules as --listen: open on loopback (read token with a token file), TLS + token file elsewhere (default off)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-dashboard-tls-cert <path>',
        'PERSEUS_OPTIMIZER_DASHBOARD_TLS_CERT',
        'PEM certificate chain: serve the dashboard over HTTPS (needed off loopback)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-dashboard-tls-key <path>',
        'PERSEUS_OPTIMIZER_DASHBOARD_TLS_KEY',
        'PEM private key of --optimizer-dashboard-tls-cert',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-metrics-listen <host:port>',
        'PERSEUS_OPTIMIZER_METRICS_LISTEN',
        'Prometheus /metrics endpoint (default off)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-straggler-margin <fraction>',
        'PERSEUS_OPTIMIZER_STRAGGLER_MARGIN',
        'relative excess that marks a straggler pipeline (default 0.05)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-straggler-window <iterations>',
        'PERSEUS_OPTIMIZER_STRAGGLER_WINDOW',
        'iterations in the straggler median window (default 5)',
      ),
    )
    .addOption(
      envOption(
        '--optimizer-exact-budget <seconds>',
        'PERSEUS_OPTIMIZER_EXACT_BUDGET_S',
        'time cap of the exact polish (HiGHS) of each deployed plan; 0: none (default 10)',
      ),
    );
}

/** Builds the optimizer module from parsed flags (flags win over PERSEUS_* env, which wins over defaults). */
export async function optimizerModuleFromFlags(
  flags: Record<string, unknown>,
  ctx: ModuleContext,
): Promise<ServiceModule> {
  const env = optimizerConfigFromEnv();
  const mod = await createOptimizerModule({
    logger: ctx.logger.child({ module: 'optimizer' }),
    metrics: ctx.metrics,
    tls: ctx.tls,
    tokenFile: flagString(flags, 'optimizerTokenFile') ?? env.tokenFile,
    dataDir: flagString(flags, 'optimizerDataDir') ?? env.dataDir,
    profilerUrl: flagString(flags, 'optimizerProfilerUrl') ?? env.profilerUrl,
    profilerTlsCa: flagString(flags, 'optimizerProfilerTlsCa') ?? env.profilerTlsCa,
    profilerTokenFile: flagString(flags, 'optimizerProfilerTokenFile') ?? env.profilerTokenFile,
    profileCsv: flagString(flags, 'optimizerProfileCsv') ?? env.profileCsv,
    metricsListen: flagString(flags, 'optimizerMetricsListen') ?? env.metricsListen,
    dashboardListen: flagString(flags, 'optimizerDashboardListen') ?? env.dashboardListen,
    dashboardTlsCert: flagString(flags, 'optimizerDashboardTlsCert') ?? env.dashboardTlsCert,
    dashboardTlsKey: flagString(flags, 'optimizerDashboardTlsKey') ?? env.dashboardTlsKey,
    stragglerMargin: flagNumber(flags, 'optimizerStragglerMargin') ?? env.stragglerMargin,
    stragglerWindow: flagNumber(flags, 'optimizerStragglerWindow') ?? env.stragglerWindow,
    exactBudgetS: flagNumber(flags, 'optimizerExactBudget') ?? env.exactBudgetS,
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
