/**
 * The optimizer's configuration: every `PERSEUS_OPTIMIZER_*` environment variable is read here and
 * nowhere else (flags in `perseus serve` win over these; these win over the defaults).
 */
import * as path from 'node:path';
import { envNumber, envString } from '@perseus/service-kit';

/** Settings of the optimizer that come from the environment or flags. */
export interface OptimizerConfig {
  /** Directory of the embedded store, or `:memory:`. */
  dataDir: string;
  /** Profiler address (`host:port` / `unix:/path`); '' = the server's own address when it hosts the profiler, else {@link DEFAULT_PROFILER_URL}. */
  profilerUrl: string;
  /** PEM CA file to dial the profiler over TLS with; '' = plaintext (a local profiler). */
  profilerTlsCa: string;
  /** File holding the bearer token sent to the profiler (mode 0600); '' = none. */
  profilerTokenFile: string;
  /** Imported profile CSVs: `path` (any job with that many stages) or `jobId=path`, comma-separated. */
  profileCsv: string;
  /** Prometheus endpoint `host:port`; '' = off. */
  metricsListen: string;
  /** Relative excess of a pipeline's iteration time that makes it a straggler. */
  stragglerMargin: number;
  /** Iterations in the straggler detector's median window. */
  stragglerWindow: number;
  /**
   * Wall-clock cap of the exact polish (HiGHS, in the planner worker) of each deployed plan, s;
   * 0 = deploy the frontier's plans unpolished.
   */
  exactBudgetS: number;
  /** Token file (scopes read/report/control, optional jobs; service-kit access.ts); '' = none. */
  tokenFile: string;
  /** Read-only web dashboard `host:port`; '' = off. Access as the gRPC listener (service-kit listenerPolicy). */
  dashboardListen: string;
  /** PEM certificate chain and key of the dashboard (HTTPS); '' = plain HTTP (loopback only). */
  dashboardTlsCert: string;
  dashboardTlsKey: string;
}

export const DEFAULT_PROFILER_URL = '127.0.0.1:50052';

export const DEFAULT_CONFIG: OptimizerConfig = {
  dataDir: path.join('.perseus-data', 'optimizer'),
  profilerUrl: '',
  profilerTlsCa: '',
  profilerTokenFile: '',
  profileCsv: '',
  metricsListen: '',
  stragglerMargin: 0.05,
  stragglerWindow: 5,
  exactBudgetS: 10,
  tokenFile: '',
  dashboardListen: '',
  dashboardTlsCert: '',
  dashboardTlsKey: '',
};

/** Reads `PERSEUS_OPTIMIZER_*` over the defaults. */
export function optimizerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): OptimizerConfig {
  return {
    dataDir: envString('PERSEUS_OPTIMIZER_DATA_DIR', DEFAULT_CONFIG.dataDir, env),
    profilerUrl: envString('PERSEUS_OPTIMIZER_PROFILER_URL', DEFAULT_CONFIG.profilerUrl, env),
    profilerTlsCa: envString(
      'PERSEUS_OPTIMIZER_PROFILER_TLS_CA',
      DEFAULT_CONFIG.profilerTlsCa,
      env,
    ),
    profilerTokenFile: envString(
      'PERSEUS_OPTIMIZER_PROFILER_TOKEN_FILE',
      DEFAULT_CONFIG.profilerTokenFile,
      env,
    ),
    profileCsv: envString('PERSEUS_OPTIMIZER_PROFILE_CSV', DEFAULT_CONFIG.profileCsv, env),
    metricsListen: envString('PERSEUS_OPTIMIZER_METRICS_LISTEN', DEFAULT_CONFIG.metricsListen, env),
    tokenFile: envString('PERSEUS_OPTIMIZER_TOKEN_FILE', DEFAULT_CONFIG.tokenFile, env),
    stragglerMargin: envNumber(
      'PERSEUS_OPTIMIZER_STRAGGLER_MARGIN',
      DEFAULT_CONFIG.stragglerMargin,
      env,
    ),
    stragglerWindow: envNumber(
      'PERSEUS_OPTIMIZER_STRAGGLER_WINDOW',
      DEFAULT_CONFIG.stragglerWindow,
      env,
    ),
    exactBudgetS: envNumber('PERSEUS_OPTIMIZER_EXACT_BUDGET_S', DEFAULT_CONFIG.exactBudgetS, env),
    dashboardListen: envString(
      'PERSEUS_OPTIMIZER_DASHBOARD_LISTEN',
      DEFAULT_CONFIG.dashboardListen,
      env,
    ),
    dashboardTlsCert: envString(
      'PERSEUS_OPTIMIZER_DASHBOARD_TLS_CERT',
      DEFAULT_CONFIG.dashboardTlsCert,
      env,
    ),
    dashboardTlsKey: envString(
      'PERSEUS_OPTIMIZER_DASHBOARD_TLS_KEY',
      DEFAULT_CONFIG.dashboardTlsKey,
      env,
    ),
  };
}

/** Blocking power of known GPUs, W (the paper's artifact), used when a job asks to measure it and no measurement is possible. */
export const KNOWN_BLOCKING_POWER_W: ReadonlyArray<[RegExp, number]> = [
  [/a100/i, 83.64],
  [/a40/i, 70.38],
];
/** Last resort when the GPU is unknown and nothing could be measured. */
export const FALLBACK_BLOCKING_POWER_W = 75;

/** A configuration value out of range (the message names the setting, its variable and the range). */
export class OptimizerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptimizerConfigError';
  }
}

/**
 * Checks every numeric setting (from flags, environment or an embedder) before the optimizer
 * starts: a margin of NaN or a window of 0 would silently disable straggler detection.
 */
export function validateOptimizerConfig(cfg: OptimizerConfig): OptimizerConfig {
  const bad: string[] = [];
  if (
    !(Number.isFinite(cfg.stragglerMargin) && cfg.stragglerMargin > 0 && cfg.stragglerMargin <= 10)
  )
    bad.push(
      `stragglerMargin (PERSEUS_OPTIMIZER_STRAGGLER_MARGIN) must be in (0, 10], got ${cfg.stragglerMargin}`,
    );
  if (
    !(
      Number.isInteger(cfg.stragglerWindow) &&
      cfg.stragglerWindow >= 1 &&
      cfg.stragglerWindow <= 1000
    )
  )
    bad.push(
      `stragglerWindow (PERSEUS_OPTIMIZER_STRAGGLER_WINDOW) must be an integer in [1, 1000], got ${cfg.stragglerWindow}`,
    );
  if (!(Number.isFinite(cfg.exactBudgetS) && cfg.exactBudgetS >= 0 && cfg.exactBudgetS <= 600))
    bad.push(
      `exactBudgetS (PERSEUS_OPTIMIZER_EXACT_BUDGET_S) must be in [0, 600], got ${cfg.exactBudgetS}`,
    );
  if (cfg.dataDir === '') bad.push('dataDir (PERSEUS_OPTIMIZER_DATA_DIR) must not be empty');
  if (bad.length > 0)
    throw new OptimizerConfigError(`invalid optimizer configuration: ${bad.join('; ')}`);
  return cfg;
}
