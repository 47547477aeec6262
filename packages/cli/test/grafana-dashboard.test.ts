import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServe, type RunningServe } from '../src/commands/serve';
import { REPO_ROOT } from './support/serve-process';

const DASHBOARD = path.join(REPO_ROOT, 'deploy', 'grafana', 'perseus-dashboard.json');

interface Panel {
  title?: string;
  type?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

/** Every PromQL query in the dashboard: panel targets and templating queries. */
function queries(dash: {
  panels: Panel[];
  templating: { list: Array<{ query?: unknown }> };
}): string[] {
  const out: string[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating.list)
    if (typeof v.query === 'string' && v.query.includes('(')) out.push(v.query);
  return out;
}

/** Metric names a query reads (identifiers that are not functions, keywords or label names). */
function metricNames(expr: string): string[] {
  const noStrings = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]');
  const words = noStrings.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  const notMetrics = new Set([
    'rate',
    'increase',
    'sum',
    'max',
    'min',
    'avg',
    'by',
    'without',
    'histogram_quantile',
    'label_values',
    'le',
    'instance',
    'job_id',
    'phase',
    'result',
    'device',
    'e9',
  ]);
  return words.filter((w) => !notMetrics.has(w) && /_/.test(w));
}

describe('deploy/grafana dashboard', () => {
  let running: RunningServe;
  let dir: string;
  let exported: Map<string, string>;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-grafana-'));
    const quiet = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      running = await startServe(['agent', 'profiler', 'optimizer'], {
        listen: '127.0.0.1:0',
        logLevel: 'silent',
        agentBackend: 'simulated',
        agentStateFile: path.join(dir, 'agent.json'),
        profilerDataDir: ':memory:',
        optimizerDataDir: ':memory:',
        optimizerMetricsListen: '127.0.0.1:0',
      });
    } finally {
      quiet.mockRestore();
    }
    const mod = running.modules.find((m) => m.name === 'optimizer') as unknown as {
      metricsAddress(): string | undefined;
    };
    const text = await (await fetch(`http://${mod.metricsAddress()!}/metrics`)).text();
    // `# TYPE <name> <type>` for every metric the process exports, with or without samples.
    exported = new Map(
      [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const),
    );
  }, 60_000);

  afterAll(async () => {
    await running.server.shutdown(2000);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes the metrics of all three services from the one endpoint', () => {
    for (const name of [
      'perseus_optimizer_jobs',
      'perseus_profiler_queued_batches',
      'perseus_agent_energy_joules_total',
      'process_cpu_seconds_total',
    ])
      expect(exported.has(name)).toBe(true);
  });

  it('queries only metrics the services export, with suffixes that fit their type', () => {
    const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Parameters<typeof queries>[0];
    const all = queries(dash);
    expect(all.length).toBeGreaterThan(30);
    const unknown: string[] = [];
    for (const q of all) {
      for (const name of metricNames(q)) {
        const hist = /^(.*)_(bucket|sum|count)$/.exec(name);
        if (exported.has(name)) {
          if (/quantile=/.test(q) && name.startsWith('perseus_'))
            if (q.includes(`${name}{`) && /quantile=/.test(q.split(name)[1]!.split('}')[0]!))
              // quantile selects a summary's series; a counter or gauge has none.
              expect([name, exported.get(name)]).toEqual([name, 'summary']);
          continue;
        }
        if (hist && exported.get(hist[1]!) === 'histogram') continue;
        unknown.push(`${name} (in ${q})`);
      }
    }
    expect(unknown).toEqual([]);
  });
});
