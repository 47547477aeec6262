/**
 * Sustained-ingest benchmark of the profiler (issue 5): N concurrent client streams on loopback
 * against `perseus serve profiler` (a separate process, SQLite store, sync=full by default); every
 * counted measurement was acknowledged after its durable commit. Samples the server's RSS every
 * second to show memory stays bounded.
 *
 *   npx tsx tools/bench/profiler/ingest.ts [--duration-s 30] [--streams 8] [--batch 2000]
 *       [--window 4] [--sync full|normal]
 *
 * Prints one JSON line with the figures.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, registerJob, runStream } from './ingest-client';
import { scrapeMetric, startProfilerProcess } from './server-process';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const durationS = Number(arg('duration-s', '30'));
  const streams = Number(arg('streams', '8'));
  const batchSize = Number(arg('batch', '2000'));
  const window = Number(arg('window', '4'));
  const sync = arg('sync', 'full');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-bench-profiler-'));
  const server = await startProfilerProcess(dir, ['--profiler-sync', sync]);
  const client = connect(server.address);
  try {
    await registerJob(client, 'bench');
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(server.rssBytes()), 1000);
    const t0 = process.hrtime.bigint();
    const deadline = Date.now() + durationS * 1000;
    const results = await Promise.all(
      Array.from({ length: streams }, (_, i) =>
        runStream(client, 'bench', i, { batchSize, window, until: () => Date.now() >= deadline }),
      ),
    );
    const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
    clearInterval(sampler);
    const acked = results.reduce((n, r) => n + r.ackedMeasurements, 0);
    const errors = results.reduce((n, r) => n + r.errors, 0);
    const rows = await scrapeMetric(server.metricsAddress, 'perseus_profiler_raw_rows');
    // GetProfile right after ingest (aggregates whatever is still dirty), then again (all fresh).
    const getProfile = (): Promise<{ ms: number; cells: number }> => {
      const g0 = process.hrtime.bigint();
      return new Promise((resolve, reject) =>
        client.GetProfile({ job_id: 'bench', min_count: 0 }, (err, res) =>
          err
            ? reject(err)
            : resolve({ ms: Number(process.hrtime.bigint() - g0) / 1e6, cells: res!.cells.length }),
        ),
      );
    };
    const firstProfile = await getProfile();
    const secondProfile = await getProfile();
    const lagSum = await scrapeMetric(
      server.metricsAddress,
      'perseus_profiler_commit_lag_seconds_sum',
    );
    const lagCount = await scrapeMetric(
      server.metricsAddress,
      'perseus_profiler_commit_lag_seconds_count',
    );
    const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
    const third = Math.max(1, Math.floor(rss.length / 3));
    console.log(
      JSON.stringify({
        bench: 'profiler-ingest-ts',
        streams,
        batch: batchSize,
        window,
        sync,
        duration_s: Math.round(elapsedS * 10) / 10,
        acked_measurements: acked,
        measurements_per_s: Math.round(acked / elapsedS),
        target_per_s: 100_000,
        errors,
        rows_in_store: rows,
        get_profile_ms: {
          after_ingest: Math.round(firstProfile.ms),
          fresh: Math.round(secondProfile.ms * 10) / 10,
          cells: secondProfile.cells,
        },
        mean_commit_lag_ms: lagCount > 0 ? Math.round((lagSum / lagCount) * 1e4) / 10 : 0,
        server_rss_mib: {
          first_third_max: mib(Math.max(...rss.slice(0, third))),
          last_third_max: mib(Math.max(...rss.slice(-third))),
          max: mib(Math.max(...rss)),
        },
        cpus: os.cpus().length,
      }),
    );
    if (rows !== acked) throw new Error(`store holds ${rows} rows but ${acked} were acknowledged`);
  } finally {
    client.close();
    await server.stop('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
